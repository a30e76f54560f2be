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
from .dependency import CHANNEL_RULES, channel_rule, check_deps, check_network, check_removed

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
    """Teach :func:`rebuild` to copy the kept weights of ``module_class`` (``fn(old, new, keep_in, keep_out)``).

    Raises:
        TypeError: ``module_class`` is not a subclass of ``torch.nn.Module``, or ``fn`` is not callable.
    """
    if not (isinstance(module_class, type) and issubclass(module_class, nn.Module)):
        raise TypeError(f"register_slicer: module_class must be a torch.nn.Module subclass (the class of the modules "
                        f"to slice), got {module_class!r}")
    if not callable(fn):
        raise TypeError(f"register_slicer: fn must be callable as fn(old, new, keep_in, keep_out), got "
                        f"{type(fn).__name__} {fn!r}")
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
    """Nodes of ``g`` with no path to any of ``outputs``.

    Raises:
        TypeError: ``g`` is not a ``networkx.DiGraph`` (``net.graph`` for a network), or ``outputs`` is not a list of
            node names.
        PruneError: ``outputs`` is empty or names a node ``g`` does not have.
    """
    if not isinstance(g, nx.DiGraph):
        hint = "; for a network pass net.graph" if hasattr(g, "graph") and isinstance(g.graph, nx.DiGraph) else ""
        raise TypeError(f"dead_nodes: g must be a networkx.DiGraph{hint}, got {type(g).__name__}")
    if isinstance(outputs, (str, bytes, dict)) or not hasattr(outputs, "__iter__"):
        raise TypeError(f"dead_nodes: outputs must be a list of node names, got {type(outputs).__name__} "
                        f"{outputs!r}")
    outputs = list(outputs)
    if not outputs:
        raise PruneError("dead_nodes: outputs is empty; with no output every node is dead (give the network's "
                         "outputs, net.plan.outputs)")
    for o in outputs:
        if not (isinstance(o, str) and o in g):
            raise PruneError(f"dead_nodes: outputs names {o!r}, which is not a node of g")
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


def _brief(t: torch.Tensor, most: int = 8) -> str:
    """Positions for a message: all of them up to ``most``, else the first few, the last and the count."""
    values = t.tolist()
    if len(values) <= most:
        return str(values)
    return f"[{', '.join(map(str, values[:most - 2]))}, ..., {values[-1]}] ({len(values)} positions)"


def _positions(name: str, v, value, bound: int) -> torch.Tensor:
    """``value`` (``name[v]``) as a long tensor of distinct positions in ``[0, bound)``; else TypeError (not integer
    positions) or PruneError naming the first position at fault. One read of the minimum and maximum; more on a
    failure."""
    where = f"{name}[{v!r}]"
    if not isinstance(value, torch.Tensor):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise TypeError(f"rebuild: {where} must be a tensor [K] of integer positions, got {type(value).__name__}")
        try:
            value = torch.as_tensor(value, dtype=torch.long) if len(value) else torch.zeros(0, dtype=torch.long)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"rebuild: {where} must be a tensor [K] of integer positions, got {value!r}") from None
    elif value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"rebuild: {where} must hold integer positions (the kept ones, not a mask), got {value.dtype}")
    if value.dim() != 1:
        raise PruneError(f"rebuild: {where} must be a tensor [K] of positions, got shape {tuple(value.shape)}")
    if not value.numel():
        raise PruneError(f"rebuild: {where} keeps no position; node {v!r} would have no "
                         f"{'output' if name == 'out_keep' else 'input'} (a node keeps at least one)")
    low, high = torch.stack(torch.aminmax(value)).tolist()
    if low < 0 or high >= bound:
        i = int(((value < 0) | (value >= bound)).nonzero()[0])
        raise PruneError(f"rebuild: {where} holds position {int(value[i])} (at {i}), outside [0, {bound}) (the "
                         f"{'output' if name == 'out_keep' else 'merged input'} width of node {v!r} is {bound})")
    ordered = value.sort().values
    twice = ordered[1:] == ordered[:-1]
    if bool(twice.any()):
        raise PruneError(f"rebuild: {where} holds position {int(ordered[1:][twice][0])} twice; each kept position "
                         f"appears once")
    return value.long()


def _whole(name: str, v, value, width: int, what: str, kind: str) -> torch.Tensor:
    """``_positions``, if they are all of ``0 .. width - 1`` in order (an input's, an output's, an unsliceable
    node's); else PruneError."""
    value = _positions(name, v, value, width)
    if len(value) != width or not torch.equal(value.cpu(), torch.arange(width)):
        raise PruneError(f"rebuild: {name}[{v!r}] is {_brief(value)}, {len(value)} of the {width} "
                         f"{'inputs' if name == 'in_keep' else 'features'} of {what}; {kind} keeps them all, in "
                         f"order")
    return value


def _check_keep(net, in_keep, out_keep, removed_edges, removed_nodes) -> tuple[dict, dict]:
    """``in_keep`` and ``out_keep`` as checked long tensors for every node left, if they describe one pruning of
    ``net``: in range, without repeats, an input's and an unsliceable node's positions whole, and every node's
    ``in_keep`` what its in-edges' ``out_keep`` leave of its merged input (what :meth:`DependencyGraph.keep`
    gives). Else PruneError (TypeError: not a dict of positions) naming the node and position."""
    plan = net.plan
    for name, keep in (("in_keep", in_keep), ("out_keep", out_keep)):
        if not isinstance(keep, dict):
            raise TypeError(f"rebuild: {name} must be a dict node -> kept positions (DependencyGraph.keep), got "
                            f"{type(keep).__name__}")
        for v in keep:
            if v not in plan.widths:
                raise PruneError(f"rebuild: {name} names {v!r}, which is not a node of the network")
    removed = set(removed_edges)
    ins, outs = {}, {}
    for step in plan.steps:
        v = step.name
        if v in removed_nodes:
            continue
        if step.source and v not in out_keep:  # an input keeps every feature: its entry may be left out
            outs[v] = torch.arange(step.width)
            continue
        for name, keep in (("out_keep", out_keep), ("in_keep", in_keep)):
            if v not in keep and (name == "out_keep" or not step.source):
                raise PruneError(f"rebuild: {name} has no entry for node {v!r}; it needs the kept positions of "
                                 f"every node left (DependencyGraph.keep gives them)")
        if step.source:
            outs[v] = _whole("out_keep", v, out_keep[v], step.width, f"input {v!r}", "an input")
            continue
        concat = step.merge == "concat" and len(step.preds) > 1
        in_width = sum(plan.widths[u] for u in step.preds) if concat else plan.widths[step.preds[0]]
        ins[v] = _positions("in_keep", v, in_keep[v], in_width)
        live = [u for u in step.preds if (u, v) not in removed and u not in removed_nodes]
        if not live:
            raise PruneError(f"rebuild: node {v!r} would lose every in-edge; remove it too (removed_nodes)")
        # what the in-edges' out_keep leave of v's merged input, in its original layout
        if concat:
            offsets, start = {}, 0
            for u in step.preds:
                offsets[u], start = start, start + plan.widths[u]
            expected = torch.cat([outs[u].cpu() + offsets[u] for u in live])
        else:
            expected = outs[live[0]].cpu()
            for u in live[1:]:
                if not torch.equal(outs[u].cpu(), expected):
                    raise PruneError(f"rebuild: out_keep[{u!r}] is {_brief(outs[u])} but out_keep[{live[0]!r}] is "
                                     f"{_brief(expected)}, and both are summed into node {v!r}; summed inputs keep "
                                     f"the same positions")
        if not torch.equal(ins[v].cpu(), expected):
            edges = ", ".join(repr(u) for u in live)
            raise PruneError(f"rebuild: in_keep[{v!r}] is {_brief(ins[v])}, but out_keep of the nodes it reads "
                             f"({edges}) leaves {_brief(expected)} of its merged input; in_keep and out_keep must "
                             f"describe one pruning (DependencyGraph.keep gives both)")
        rule = channel_rule(net, step)
        if rule is None:
            what = f"node {v!r} (no channel rule: it cannot be sliced)"
            _whole("in_keep", v, ins[v], in_width, what, "such a node")
            outs[v] = _whole("out_keep", v, out_keep[v], step.width, what, "such a node")
        elif v in plan.outputs:
            outs[v] = _whole("out_keep", v, out_keep[v], step.width, f"output {v!r}", "an output")
        else:
            outs[v] = _positions("out_keep", v, out_keep[v], step.width)
        if rule is not None and rule != "produce" and not torch.equal(outs[v].cpu(), ins[v].cpu()):
            raise PruneError(f"rebuild: out_keep[{v!r}] is {_brief(outs[v])}, but node {v!r} passes its input "
                             f"channels on ({rule}), so it must equal in_keep[{v!r}], {_brief(ins[v])}")
    return ins, outs


def rebuild(net, in_keep: dict, out_keep: dict, removed_edges=(), removed_nodes=()):
    """A new :class:`~modgraph.ModuleGraph`: ``net`` without the removed positions, edges and nodes.

    Args:
        net: the original network (left unchanged).
        in_keep, out_keep: node -> kept positions of its merged input / output (:meth:`DependencyGraph.keep`), for
            every node left (an input's may be left out: it keeps every feature); tensors ``[K]`` of distinct
            integer positions (lists are taken too).
        removed_edges: DAG edges ``(u, v)`` to drop; removed_nodes: nodes to drop (with their edges).

    Returns:
        the pruned network, on ``net``'s device and dtype, in ``net``'s train/eval mode.

    Raises:
        TypeError: ``net`` is not a :class:`~modgraph.ModuleGraph`; an argument of the wrong type.
        PruneError: an edge or node that ``net`` does not have, or an input or output among ``removed_nodes``; a
            node left without its entry in ``in_keep``/``out_keep``; a position out of range or repeated; keeps
            that do not describe one pruning (a node's ``in_keep`` is not what its in-edges' ``out_keep`` leave,
            an elementwise node's ``out_keep`` is not its ``in_keep``, an input, output or unsliceable node
            shrinks); a node that would lose every in-edge or every path to an output.
    """
    from ..module_graph import ModuleGraph

    check_network(net, "rebuild")
    removed_edges, removed_nodes = check_removed(net, removed_edges, removed_nodes, "rebuild")
    in_keep, out_keep = _check_keep(net, in_keep, out_keep, removed_edges, removed_nodes)
    g = _pruned_graph(net, in_keep, out_keep, removed_edges, removed_nodes)
    try:
        new = ModuleGraph(g)
    except GraphSpecError as err:
        raise PruneError(f"the pruned network is not valid: {err}") from None
    extra = [o for o in new.plan.outputs if o not in net.plan.outputs]
    if extra:
        raise PruneError(f"rebuild: node {extra[0]!r} would become an output: the removed edges leave it no path to "
                         f"{', '.join(map(repr, net.plan.outputs))}; remove it too (removed_nodes; dead_nodes "
                         f"finds such nodes)")
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

    Raises:
        TypeError: ``net`` is not a :class:`~modgraph.ModuleGraph`, ``deps`` not a ``DependencyGraph``, ``groups`` not
            a list.
        ValueError: an item of ``groups`` that is not one of ``deps.groups`` or an index in ``[0, len(deps.groups))``
            (PruneError: ``deps`` built for another network).
    """
    check_network(net, "mask_units")
    check_deps(deps, net, "mask_units")
    gone = deps._group_indices(groups, "mask_units: groups")
    masked = copy_network(net)
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
