"""Physically smaller networks: rewrite the spec, build a new ``ModuleGraph``, copy the sliced weights.

:func:`rebuild` takes the kept positions of every tensor (from :meth:`DependencyGraph.keep`) and the removed edges
and nodes, edits a copy of the DAG (new ``out_features`` of "produce" ops, fewer edges and nodes), compiles it,
and copies every kept weight. :func:`mask_units` is the reference it must agree with: the same network with the
removed units' contributions zeroed in place, so ``rebuild(...)(x) == mask_units(...)(x)`` up to float rounding.

:func:`dead_nodes` finds what an edge removal leaves without a path to an output.
"""

from __future__ import annotations

import copy

import networkx as nx
import torch
import torch.nn as nn

from ..attention import BranchAttention, NeuronAttention
from ..errors import GraphSpecError, PruneError
from ..ops.basic import Linear

#: A score so low that softmax, sparsemax and sigmoid all give exactly zero weight.
_OFF = -1e9


# ----------------------------------------------------------------------------------------------- slicers
def _slice_linear(old: nn.Linear, new: nn.Linear, keep_in, keep_out) -> None:
    new.weight.copy_(old.weight[keep_out][:, keep_in])
    if old.bias is not None:
        new.bias.copy_(old.bias[keep_out])


def _slice_batch_norm(old: nn.BatchNorm1d, new: nn.BatchNorm1d, keep_in, keep_out) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        if getattr(old, name) is not None:
            getattr(new, name).copy_(getattr(old, name)[keep_out])
    if old.num_batches_tracked is not None:
        new.num_batches_tracked.copy_(old.num_batches_tracked)


#: module class -> ``fn(old, new, keep_in, keep_out)`` copying the kept weights (graph ops register theirs).
SLICERS = {Linear: _slice_linear, nn.Linear: _slice_linear, nn.BatchNorm1d: _slice_batch_norm}


def register_slicer(module_class: type, fn) -> None:
    """Teach :func:`rebuild` to copy the kept weights of ``module_class`` (``fn(old, new, keep_in, keep_out)``)."""
    SLICERS[module_class] = fn


def _slicer(module: nn.Module):
    for cls in type(module).__mro__:
        if cls in SLICERS:
            return SLICERS[cls]
    return None


def _connection_rows(keep_in, keep_out, out: int) -> torch.Tensor:
    """Flat rows ``i * out + o`` of the allocator entries of the kept connections, in ``[in, out]`` order."""
    return (keep_in.unsqueeze(1) * out + keep_out.unsqueeze(0)).reshape(-1)


def _slice_neuron_attention(old: NeuronAttention, new: NeuronAttention, keep_in, keep_out) -> None:
    if old.score == "linear":
        rows = _connection_rows(keep_in, keep_out, old.out_features)
        new.allocator.weight.copy_(old.allocator.weight[rows][:, keep_in])
        new.allocator.bias.copy_(old.allocator.bias[rows])
    else:
        _slice_linear(old.rows, new.rows, keep_in, keep_in)
        _slice_linear(old.cols, new.cols, keep_in, keep_out)


def _slice_branch_attention(old: BranchAttention, new: BranchAttention, old_edges, new_edges, out_keep) -> None:
    for k, (u, v) in enumerate(new_edges):
        k_old = old_edges.index((u, v))
        lin_old, lin_new = old.keys[k_old], new.keys[k]
        lin_new.weight.copy_(lin_old.weight[:, out_keep[u]])
        lin_new.bias.copy_(lin_old.bias)
    new.query.copy_(old.query)
    new.scorer.load_state_dict(old.scorer.state_dict())


# ----------------------------------------------------------------------------------------------- structure
def dead_nodes(g: nx.DiGraph, outputs) -> set:
    """Nodes of ``g`` with no path to any of ``outputs``."""
    useful = set(outputs)
    for o in outputs:
        useful |= nx.ancestors(g, o)
    return set(g.nodes) - useful


def _pruned_graph(net, in_keep, out_keep, removed_edges, removed_nodes) -> nx.DiGraph:
    g = net.graph.copy()
    g.remove_edges_from(removed_edges)
    g.remove_nodes_from(removed_nodes)
    for v, attrs in g.nodes(data=True):
        if "module" in attrs:
            attrs["module"] = copy.deepcopy(attrs["module"])
        step = _step(net, v)
        if v in out_keep and step.width != len(out_keep[v]) and _produces(net, v):
            # every op whose channel rule is "produce" creates its own width: linear and registered ops alike
            op = attrs.get("op")
            if "out_features" not in attrs and "out_features" not in _op_arguments(op):
                raise PruneError(f"node {v!r} (op {op!r}) would change width {step.width} -> {len(out_keep[v])}, "
                                 f"but its op takes no out_features argument to build the smaller layer")
            attrs["out_features"] = int(len(out_keep[v]))
        if "in_features" in attrs and v in in_keep:
            attrs["in_features"] = int(len(in_keep[v]))
    # a merge left with one attended in-edge keeps its branch gate (it would otherwise compile as neuron level)
    for (u, v), level in net.plan.levels.items():
        if level == "branch" and g.has_edge(u, v) and g.in_degree(v) == 1:
            g.edges[u, v]["level"] = "branch"
    return g


def _produces(net, v) -> bool:
    from .dependency import CHANNEL_RULES

    attrs = net.graph.nodes[v]
    return "module" not in attrs and CHANNEL_RULES.get(attrs.get("op")) == "produce"


def _op_arguments(op) -> list:
    from ..registry import _OPS

    return _OPS[op].arguments() if op in _OPS else []


def copy_network(net):
    """A deep copy of ``net`` without the weight hooks others attached to its gates (an ``EdgeRecorder``'s).

    The copy keeps what a freshly built :class:`~modgraph.ModuleGraph` registers: its own ``_store_weights``
    hook on every gate, bound to the copy. Foreign hooks are neither copied nor called by the copy.
    """
    memo = {}
    for gate in net.gates():
        for hook in gate._weight_hooks.values():
            if getattr(hook, "__self__", None) is not net:
                memo[id(hook)] = None
    new = copy.deepcopy(net, memo)
    for gate in new.gates():
        for key in [k for k, hook in gate._weight_hooks.items() if hook is None]:
            del gate._weight_hooks[key]
    return new


def _step(net, name):
    return next(s for s in net.plan.steps if s.name == name)


def rebuild(net, in_keep: dict, out_keep: dict, removed_edges=(), removed_nodes=()):
    """A new :class:`~modgraph.ModuleGraph`: ``net`` without the removed positions, edges and nodes.

    Args:
        net: the original network (left unchanged).
        in_keep, out_keep: node -> kept positions of its merged input / output (:meth:`DependencyGraph.keep`).
        removed_edges: DAG edges ``(u, v)`` to drop; removed_nodes: nodes to drop (with their edges).

    Returns:
        the pruned network, on ``net``'s device and dtype, in ``net``'s train/eval mode.
    """
    from ..module_graph import ModuleGraph

    removed_edges, removed_nodes = [tuple(e) for e in removed_edges], set(removed_nodes)
    g = _pruned_graph(net, in_keep, out_keep, removed_edges, removed_nodes)
    try:
        new = ModuleGraph(g)
    except GraphSpecError as err:
        raise PruneError(f"the pruned network is not valid: {err}") from None
    ref = next(iter(net.parameters()), None)
    if ref is not None:
        new.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for v, module in new.nodes.items():
            old = net.nodes[v]
            slicer = _slicer(old)
            if slicer is not None:
                slicer(old, module, in_keep[v], out_keep[v])
            else:
                module.load_state_dict(old.state_dict())
        for key, att in new.neuron_attention.items():
            u, v = att.gate.name
            if key in net.neuron_attention:
                _slice_neuron_attention(net.neuron_attention[key], att, in_keep[v], out_keep[v])
            else:  # cannot happen: pruning never turns a branch edge into a neuron edge (level is pinned)
                raise PruneError(f"edge {u!r} -> {v!r} changed attention level while pruning")
        for v, att in new.branch_attention.items():
            old = net.branch_attention[v]
            _slice_branch_attention(old, att, old.gate.edges, att.gate.edges, out_keep)
        for key, p in new.adjacency_weights.items():
            p.copy_(net.adjacency_weights[key])
    for gate, old_gate in zip(new.gates(), _matching_gates(net, new)):
        gate.enabled = old_gate.enabled
    new.train(net.training)
    return new


def _matching_gates(net, new):
    by_name = {(g.level, _hashable(g.name)): g for g in net.gates()}
    return [by_name[(g.level, _hashable(g.name))] for g in new.gates()]


def _hashable(name):
    return tuple(name) if isinstance(name, list) else name


# ----------------------------------------------------------------------------------------------- masking
@torch.no_grad()
def mask_units(net, deps, groups):
    """A copy of ``net`` in which the units of ``groups`` contribute nothing: the reference of :func:`rebuild`.

    Every consumer's input columns of a removed unit are zeroed (linear layers, allocators, branch keys) and the
    allocator scores of its connections are set to ``-1e9``, so softmax and sparsemax renormalise over the
    remaining inputs exactly as the smaller network does. Parameter shapes do not change.
    """
    masked = copy_network(net)
    gone = {g if isinstance(g, int) else g.index for g in groups}
    for step in masked.plan.steps:
        if step.source:
            continue
        v = step.name
        cols = [j for j in range(len(deps.in_atoms[v])) if deps.group_of(v, j, "in") in gone]
        if not cols:
            continue
        cols = torch.as_tensor(cols)
        if step.has_module and isinstance(masked.nodes[v], nn.Linear):
            masked.nodes[v].weight[:, cols] = 0.0
        if step.neuron is not None:
            att = masked.neuron_attention[step.neuron]
            if att.score == "linear":
                out = att.out_features
                rows = _connection_rows(cols, torch.arange(out), out)
                att.allocator.weight[rows] = 0.0
                att.allocator.weight[:, cols] = 0.0
                att.allocator.bias[rows] = _OFF
            else:
                att.rows.weight[cols] = 0.0
                att.rows.weight[:, cols] = 0.0
                att.rows.bias[cols] = _OFF
                att.cols.weight[:, cols] = 0.0
    for group in (deps.groups[i] for i in gone):
        for v, k, col in group.keys:
            masked.branch_attention[v].keys[k].weight[:, col] = 0.0
    return masked
