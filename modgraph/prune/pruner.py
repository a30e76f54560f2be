"""``prune(net, importance, ...)``: a new, physically smaller network and a :class:`PruneReport`.

Four levels, one call:

==============  ===========================================================================================
level           what goes
==============  ===========================================================================================
``neuron``      hidden units (dependency groups): every layer they touch shrinks, allocators included
``connection``  single connections of neuron-level gates, zeroed with ``torch.nn.utils.prune``; then every
                unit left without an outgoing connection (and read by no allocator) is removed structurally
``branch``      attended in-edges of merges; nodes left without a path to an output go with them
``graph``       columns of ``edge_index`` (graph sparsification); the network itself is copied unchanged
==============  ===========================================================================================

The original network is never modified.
"""

from __future__ import annotations

import torch
from torch.nn.utils import prune as torch_prune

from .. import checks
from ..errors import PruneError
from .dependency import DependencyGraph, check_network
from .graph_edges import sparsify_edges
from .importance import Importance
from .report import PruneReport, count_connections, count_macs, count_neurons, count_params
from .select import check_amount, check_scope, select_lowest
from .structural import copy_network, dead_nodes, rebuild

LEVELS = ("neuron", "connection", "branch", "graph")


def prune(net, importance: Importance, *, level: str = "neuron", sparsity: float | None = None,
          threshold: float | None = None, scope: str = "global", edge_index: torch.Tensor | None = None,
          self_loops: str = "keep", symmetric: bool = True, num_nodes: int | None = None, evaluate=None,
          fine_tune=None):
    """Prune ``net`` by ``importance``; return ``(pruned network, report)``.

    Args:
        net: a :class:`~modgraph.ModuleGraph` (unchanged).
        importance: an :class:`~modgraph.prune.importance.Importance` (attention, magnitude, random, sgl).
        level: ``"neuron"``, ``"connection"``, ``"branch"`` or ``"graph"`` (see the module table).
        sparsity: fraction in ``[0, 1)`` of the scored units/connections/edges to remove, or
        threshold: in ``[0, 1]``: remove those whose score / the largest score (in the scope) is below it.
        scope: ``"global"`` (rank everything together) or ``"local"`` (per layer, gate, or merge node).
        edge_index: the graph (``level="graph"``; also handed to ``evaluate``/``fine_tune`` when given).
        self_loops, symmetric: graph level only, see :func:`~modgraph.prune.graph_edges.sparsify_edges`.
        num_nodes: the graph's node count (``x.size(0)``) for the report's MACs; default
            ``edge_index.max() + 1`` of the graph before pruning (isolated nodes past the last id are missed).
        evaluate: ``evaluate(net) -> accuracy`` (``evaluate(net, edge_index)`` with a graph) fills the report's
            accuracy before and after.
        fine_tune: ``fine_tune(net)`` (``fine_tune(net, edge_index)``) trains the pruned network in place
            before the last evaluation. At ``level="connection"`` the removed connections are held at zero
            while it trains (their gradients are masked, and their values zeroed afterwards).

    Returns:
        ``(pruned, report)``; with ``level="graph"`` the sparsified graph is ``report.edge_index``.

    Raises:
        PruneError: a level, scope, sparsity or threshold out of range; a request that would remove every unit
            of a layer, every connection of a gate, every in-edge of a node or every path from an input; a
            criterion without scores for the level.
    """
    check_network(net, "prune")
    if level not in LEVELS:
        raise PruneError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if not isinstance(importance, Importance):
        raise PruneError(f"importance must be a modgraph.prune Importance (AttentionImportance, "
                         f"MagnitudeImportance, RandomImportance, SGLImportance), got {type(importance).__name__}")
    check_amount(sparsity, threshold)
    check_scope(scope)
    for name, fn in (("evaluate", evaluate), ("fine_tune", fine_tune)):
        if fn is not None and not callable(fn):
            call = f"{name}(net)" if edge_index is None else f"{name}(net, edge_index)"
            raise TypeError(f"prune: {name} must be callable as {call}, got {type(fn).__name__} {fn!r}")
    if level == "graph" and edge_index is None:
        raise PruneError("level='graph' needs the graph: pass edge_index=[2, E]")
    num_nodes = checks.integer("num_nodes", num_nodes, least=0, optional=True, why="the graph's node count")
    if edge_index is not None:
        nodes = None if num_nodes is None else f"num_nodes is {num_nodes}; it must be the graph's node count, x.size(0)"
        checks.edge_index("edge_index", edge_index, num_nodes, nodes=nodes, error=PruneError)
    amount = {"sparsity": sparsity, "threshold": threshold, "scope": scope}
    report = PruneReport(level, importance.name, sparsity, threshold, scope)
    if edge_index is not None and num_nodes is None:
        num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
    _counts(report, "before", net, edge_index, num_nodes)
    if evaluate is not None:
        report.acc_before = _call(evaluate, net, edge_index)
    new_edge_index = edge_index
    masks = {}
    if level == "neuron":
        pruned, report.removed = _neurons(net, importance, amount)
    elif level == "connection":
        pruned, report.removed, masks = _connections(net, importance, amount)
    elif level == "branch":
        pruned, report.removed = _branches(net, importance, amount)
    else:
        if scope != "global":
            raise PruneError("graph edges are ranked globally; use scope='global'")
        scores = importance.graph_edges(net, edge_index)
        new_edge_index, keep = sparsify_edges(edge_index, scores, sparsity=sparsity, threshold=threshold,
                                              self_loops=self_loops, symmetric=symmetric)
        pruned = copy_network(net)  # without the weight hooks of recorders attached to net
        report.removed = {"graph_edges": int((~keep).sum())}
        report.edge_index = new_edge_index
    _counts(report, "after", pruned, new_edge_index, num_nodes)
    if evaluate is not None:
        report.acc_after = _call(evaluate, pruned, new_edge_index)
    if fine_tune is not None:
        _fine_tune_masked(fine_tune, pruned, new_edge_index, masks)
        report.connections_after = count_connections(pruned)
        if evaluate is not None:
            report.acc_finetuned = _call(evaluate, pruned, new_edge_index)
    return pruned, report


def _call(fn, net, edge_index):
    return fn(net) if edge_index is None else fn(net, edge_index)


def _fine_tune_masked(fine_tune, pruned, edge_index, masks) -> None:
    """``fine_tune(pruned)`` with the entries ``masks`` marks (``{node: bool [out, in]}``, True = removed) held at 0.

    Their gradients are zeroed by a tensor hook (so plain SGD, Adam and AdamW leave a zero at zero), and the values
    are zeroed once more afterwards, whatever the optimiser did.
    """
    handles = []
    for v, gone in masks.items():
        weight = pruned.nodes[v].weight
        keep = (~gone).to(device=weight.device, dtype=weight.dtype)
        handles.append(weight.register_hook(lambda grad, keep=keep: grad * keep))
    try:
        _call(fine_tune, pruned, edge_index)
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for v, gone in masks.items():
                pruned.nodes[v].weight.masked_fill_(gone.to(pruned.nodes[v].weight.device), 0.0)


def _counts(report: PruneReport, when: str, net, edge_index, num_nodes) -> None:
    num_edges = loops = None
    if edge_index is not None:
        setattr(report, f"graph_edges_{when}", int(edge_index.shape[1]))
        num_edges = int(edge_index.shape[1])
        loops = int((edge_index[0] == edge_index[1]).sum())
    setattr(report, f"params_{when}", count_params(net))
    setattr(report, f"macs_{when}", count_macs(net, num_nodes, num_edges, self_loops=loops or 0))
    setattr(report, f"neurons_{when}", count_neurons(net))
    setattr(report, f"connections_{when}", count_connections(net))
    setattr(report, f"dag_edges_{when}", net.graph.number_of_edges())


# ----------------------------------------------------------------------------------------------- neurons
def _neurons(net, importance, amount):
    deps = DependencyGraph(net)
    if not deps.groups:
        why = "; ".join(f"{layer!r}: {reason}" for layer, reason in deps.blocked.items()) or "no linear layers"
        raise PruneError(f"the network has no prunable hidden units ({why})")
    scores = importance.neurons(net, deps)
    bins = [g.layer for g in deps.groups]
    sizes = {b: bins.count(b) for b in bins}
    gone = select_lowest(scores, bins, sizes, what="hidden units", bin_kind="layer", **amount)
    in_keep, out_keep = deps.keep(gone)
    units: dict = {}
    for i in gone:
        for node, row in deps.groups[i].producers:
            units.setdefault(node, []).append(row)
    return rebuild(net, in_keep, out_keep), {"units": units}


# ----------------------------------------------------------------------------------------------- connections
def _connections(net, importance, amount):
    scores = importance.connections(net)
    if not scores:
        raise PruneError("the network has no neuron-level gates, so no connections to prune")
    keys = list(scores)
    flat = torch.cat([scores[k].reshape(-1).cpu() for k in keys])
    bins = [k for k in keys for _ in range(scores[k].numel())]
    sizes = {k: scores[k].numel() for k in keys}
    gone = select_lowest(flat, bins, sizes, what="connections", bin_kind="gate", **amount)
    offsets, start = {}, 0
    for k in keys:
        offsets[k] = start
        start += scores[k].numel()
    masked = copy_network(net)
    removed: dict = {}
    full_masks: dict = {}
    for k in keys:
        n_out = scores[k].shape[1]
        local = [i - offsets[k] for i in gone if offsets[k] <= i < offsets[k] + scores[k].numel()]
        removed[k] = [divmod(i, n_out) for i in local]
        layer = masked.nodes[masked.neuron_attention[k].gate.name[1]]
        mask = torch.ones_like(layer.weight)  # (out, in)
        for i, o in removed[k]:
            mask[o, i] = 0.0
        torch_prune.custom_from_mask(layer, "weight", mask)
        torch_prune.remove(layer, "weight")
        full_masks[masked.neuron_attention[k].gate.name[1]] = mask == 0
    # units whose every outgoing weight is now zero carry nothing: remove them structurally; but not a unit an
    # attention allocator reads (a neuron-level gate's allocator takes the whole merged input of its node, branch
    # keys the whole branch): it still shapes the weights of the connections that stay
    deps = DependencyGraph(masked)
    gated = {s.name for s in masked.plan.steps if s.neuron is not None}
    dead, left = [], {}
    for g in deps.groups:
        left[g.layer] = left.get(g.layer, 0) + 1
    for g in deps.groups:
        read_by_allocator = bool(g.keys) or any(v in gated for v, _ in g.consumers)
        silent = g.consumers and not read_by_allocator and all(
            bool((masked.nodes[v].weight[:, col] == 0).all()) for v, col in g.consumers)
        if silent and left[g.layer] > 1:
            left[g.layer] -= 1
            dead.append(g.index)
    in_keep, out_keep = deps.keep(dead)
    units: dict = {}
    for i in dead:
        for node, row in deps.groups[i].producers:
            units.setdefault(node, []).append(row)
    masks = {v: m[out_keep[v]][:, in_keep[v]] for v, m in full_masks.items()}
    return rebuild(masked, in_keep, out_keep), {"connections": removed, "units": units}, masks


# ----------------------------------------------------------------------------------------------- branches
def _branches(net, importance, amount):
    scores = importance.branches(net)
    if not scores:
        raise PruneError("the network has no branch-level gates, so no branch edges to prune")
    g, outputs, inputs = net.graph, net.plan.outputs, net.plan.inputs
    sparsity, threshold, scope = amount["sparsity"], amount["threshold"], amount["scope"]
    deps = DependencyGraph(net)
    # the branches of multi-head branch gates: their heads split the features into fixed chunks, so their width
    # must not change (the rule that blocks their units at neuron level)
    multi_head = [(s.preds[k], s.name) for s in net.plan.steps
                  if s.branch is not None and net.branch_attention[s.name].heads > 1 for k in s.branch]

    def width_fault(removed, dead, h):
        """Why removing ``removed`` changes the width of a branch of a multi-head branch gate, or ``None``."""
        if not multi_head:
            return None
        out_keep = deps.keep((), removed, dead)[1]
        for u, v in multi_head:
            if h.has_edge(u, v) and len(out_keep[u]) != net.plan.widths[u]:
                heads = net.branch_attention[v].heads
                return (f"it would change the width of {u!r} ({net.plan.widths[u]} -> {len(out_keep[u])}), which "
                        f"feeds the {heads}-head branch gate of {v!r}")
        return None

    def outcome(removed):
        """``(dead nodes, edges gone, error, width error)`` of removing ``removed``; ``error`` is either
        structural (an input or a node cut off) or the width error."""
        h = g.copy()
        h.remove_edges_from(removed)
        dead = dead_nodes(h, outputs)
        cut = [n for n in inputs if n in dead]
        if cut:
            return dead, None, f"it would disconnect input {cut[0]!r} from every output", None
        h.remove_nodes_from(dead)
        for v in h.nodes:
            if v not in inputs and h.in_degree(v) == 0:
                return dead, None, f"node {v!r} would lose every in-edge", None
        fault = width_fault(removed, dead, h)
        if fault is not None:
            return dead, None, fault, fault
        return dead, [e for e in all_edges if not h.has_edge(*e)], None, None

    all_edges = list(scores)
    # an edge whose removal on its own breaks a multi-head branch gate is not a candidate (not scored, not counted)
    edges = [e for e in all_edges if not (multi_head and outcome([e])[3] is not None)]
    if not edges:
        raise PruneError("no branch edge can be pruned: every one changes the width of a branch of a multi-head "
                         "branch gate")
    blocked = [e for e in all_edges if e not in edges]

    target = lambda e: e[1]  # noqa: E731  (the gate of an edge is its merge node)
    groups = {}  # the bins: one per merge node (scope "local") or one for the network
    for e in edges:
        groups.setdefault(target(e) if scope == "local" else None, []).append(e)
    if threshold is not None:
        removed = []
        for members in groups.values():
            top = max(scores[e] for e in members)
            removed += [e for e in members if (scores[e] / top if top > 0 else 1.0) < threshold]
        dead, gone, error, _ = outcome(removed)
        if error:
            raise PruneError(f"threshold {threshold} would remove {len(removed)} branch edges, but {error}")
    else:
        wants = {key: round(sparsity * len(members)) for key, members in groups.items()}

        def counts(gone):
            """Edges gone per bin: an edge cut off by another's removal counts too."""
            return {key: sum(1 for x in gone if x in members) for key, members in groups.items()}

        removed, gone = [], []
        for key, members in groups.items():
            got = counts(gone)[key]
            for e in sorted(members, key=lambda e: (scores[e], edges.index(e))):
                if got >= wants[key]:
                    break
                if e in gone:
                    continue
                _, now_gone, error, _ = outcome(removed + [e])
                if error is not None:
                    continue
                now = counts(now_gone)
                if any(now[k] > wants[k] for k in groups):  # its cascade would remove more than asked
                    continue
                removed.append(e)
                gone = now_gone
                got = now[key]
            want = wants[key]
            if got < want:
                where = f"of merge {key!r}" if key is not None else "in the network"
                raise PruneError(f"sparsity {sparsity} asks to remove {want} of {len(members)} branch edges "
                                 f"{where}, but only {got} can go without cutting a node off its inputs or an input "
                                 f"off every output, or removing more edges than asked with the nodes it cuts off")
        dead, gone, _, _ = outcome(removed)
    in_keep, out_keep = deps.keep((), removed, dead)
    pruned = rebuild(net, in_keep, out_keep, removed, dead)
    result = {"edges": [list(e) for e in gone], "nodes": sorted(dead)}
    if blocked:
        result["blocked_edges"] = [list(e) for e in blocked]
    return pruned, result


__all__ = ["LEVELS", "prune"]
