"""``prune(net, importance, ...)``: a new, physically smaller network and a :class:`PruneReport`.

Four levels, one call:

==============  ===========================================================================================
level           what goes
==============  ===========================================================================================
``neuron``      hidden units (dependency groups): every layer they touch shrinks, allocators included
``connection``  single connections of neuron-level gates, zeroed with ``torch.nn.utils.prune``; then every
                unit left without an outgoing connection is removed structurally
``branch``      attended in-edges of merges; nodes left without a path to an output go with them
``graph``       columns of ``edge_index`` (graph sparsification); the network itself is copied unchanged
==============  ===========================================================================================

The original network is never modified.
"""

from __future__ import annotations

import copy

import torch
from torch.nn.utils import prune as torch_prune

from ..errors import PruneError
from .dependency import DependencyGraph
from .graph_edges import sparsify_edges
from .importance import Importance
from .report import PruneReport, count_connections, count_macs, count_neurons, count_params
from .select import check_amount, check_scope, select_lowest
from .structural import dead_nodes, rebuild

LEVELS = ("neuron", "connection", "branch", "graph")


def prune(net, importance: Importance, *, level: str = "neuron", sparsity: float | None = None,
          threshold: float | None = None, scope: str = "global", edge_index: torch.Tensor | None = None,
          self_loops: str = "keep", symmetric: bool = True, evaluate=None, fine_tune=None):
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
        evaluate: ``evaluate(net) -> accuracy`` (``evaluate(net, edge_index)`` with a graph) fills the report's
            accuracy before and after.
        fine_tune: ``fine_tune(net)`` (``fine_tune(net, edge_index)``) trains the pruned network in place
            before the last evaluation.

    Returns:
        ``(pruned, report)``; with ``level="graph"`` the sparsified graph is ``report.edge_index``.

    Raises:
        PruneError: a level, scope, sparsity or threshold out of range; a request that would remove every unit
            of a layer, every connection of a gate, every in-edge of a node or every path from an input; a
            criterion without scores for the level.
    """
    if level not in LEVELS:
        raise PruneError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if not isinstance(importance, Importance):
        raise PruneError(f"importance must be a modgraph.prune Importance (AttentionImportance, "
                         f"MagnitudeImportance, RandomImportance, SGLImportance), got {type(importance).__name__}")
    check_amount(sparsity, threshold)
    check_scope(scope)
    if level == "graph" and edge_index is None:
        raise PruneError("level='graph' needs the graph: pass edge_index=[2, E]")
    amount = {"sparsity": sparsity, "threshold": threshold, "scope": scope}
    report = PruneReport(level, importance.name, sparsity, threshold, scope)
    _counts(report, "before", net, edge_index)
    if evaluate is not None:
        report.acc_before = _call(evaluate, net, edge_index)
    new_edge_index = edge_index
    if level == "neuron":
        pruned, report.removed = _neurons(net, importance, amount)
    elif level == "connection":
        pruned, report.removed = _connections(net, importance, amount)
    elif level == "branch":
        pruned, report.removed = _branches(net, importance, amount)
    else:
        if scope != "global":
            raise PruneError("graph edges are ranked globally; use scope='global'")
        scores = importance.graph_edges(net, edge_index)
        new_edge_index, keep = sparsify_edges(edge_index, scores, sparsity=sparsity, threshold=threshold,
                                              self_loops=self_loops, symmetric=symmetric)
        pruned = copy.deepcopy(net)
        report.removed = {"graph_edges": int((~keep).sum())}
        report.edge_index = new_edge_index
    _counts(report, "after", pruned, new_edge_index)
    if evaluate is not None:
        report.acc_after = _call(evaluate, pruned, new_edge_index)
    if fine_tune is not None:
        _call(fine_tune, pruned, new_edge_index)
        if evaluate is not None:
            report.acc_finetuned = _call(evaluate, pruned, new_edge_index)
    return pruned, report


def _call(fn, net, edge_index):
    return fn(net) if edge_index is None else fn(net, edge_index)


def _counts(report: PruneReport, when: str, net, edge_index) -> None:
    n_nodes = None
    if edge_index is not None:
        n_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        setattr(report, f"graph_edges_{when}", int(edge_index.shape[1]))
    num_edges = None if edge_index is None else int(edge_index.shape[1])
    setattr(report, f"params_{when}", count_params(net))
    setattr(report, f"macs_{when}", count_macs(net, n_nodes, num_edges))
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
    masked = copy.deepcopy(net)
    removed: dict = {}
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
    # units whose every outgoing weight is now zero carry nothing: remove them structurally
    deps = DependencyGraph(masked)
    dead, left = [], {}
    for g in deps.groups:
        left[g.layer] = left.get(g.layer, 0) + 1
    for g in deps.groups:
        silent = g.consumers and not g.keys and all(
            bool((masked.nodes[v].weight[:, col] == 0).all()) for v, col in g.consumers)
        if silent and left[g.layer] > 1:
            left[g.layer] -= 1
            dead.append(g.index)
    in_keep, out_keep = deps.keep(dead)
    units: dict = {}
    for i in dead:
        for node, row in deps.groups[i].producers:
            units.setdefault(node, []).append(row)
    return rebuild(masked, in_keep, out_keep), {"connections": removed, "units": units}


# ----------------------------------------------------------------------------------------------- branches
def _branches(net, importance, amount):
    scores = importance.branches(net)
    if not scores:
        raise PruneError("the network has no branch-level gates, so no branch edges to prune")
    g, outputs, inputs = net.graph, net.plan.outputs, net.plan.inputs
    edges = list(scores)
    sparsity, threshold, scope = amount["sparsity"], amount["threshold"], amount["scope"]

    def outcome(removed):
        """(dead nodes, edges gone, error) of removing ``removed``."""
        h = g.copy()
        h.remove_edges_from(removed)
        dead = dead_nodes(h, outputs)
        cut = [n for n in inputs if n in dead]
        if cut:
            return dead, None, f"it would disconnect input {cut[0]!r} from every output"
        h.remove_nodes_from(dead)
        for v in h.nodes:
            if v not in inputs and h.in_degree(v) == 0:
                return dead, None, f"node {v!r} would lose every in-edge"
        return dead, [e for e in edges if not h.has_edge(*e)], None

    target = lambda e: e[1]  # noqa: E731  (the gate of an edge is its merge node)
    if threshold is not None:
        groups = {}
        for e in edges:
            groups.setdefault(target(e) if scope == "local" else None, []).append(e)
        removed = []
        for members in groups.values():
            top = max(scores[e] for e in members)
            removed += [e for e in members if (scores[e] / top if top > 0 else 1.0) < threshold]
        dead, gone, error = outcome(removed)
        if error:
            raise PruneError(f"threshold {threshold} would remove {len(removed)} branch edges, but {error}")
    else:
        groups = {}
        for e in edges:
            groups.setdefault(target(e) if scope == "local" else None, []).append(e)
        removed, gone = [], []
        for key, members in groups.items():
            want = round(sparsity * len(members))
            got = 0
            for e in sorted(members, key=lambda e: (scores[e], edges.index(e))):
                if got >= want:
                    break
                if e in gone:
                    continue
                _, now_gone, error = outcome(removed + [e])
                if error is None:
                    removed.append(e)
                    gone = now_gone
                    got = sum(1 for x in gone if x in members)
            if got < want:
                where = f"of merge {key!r}" if key is not None else "in the network"
                raise PruneError(f"sparsity {sparsity} asks to remove {want} of {len(members)} branch edges "
                                 f"{where}, but only {got} can go without cutting a node off its inputs or an input "
                                 f"off every output")
        dead, gone, _ = outcome(removed)
    deps = DependencyGraph(net)
    in_keep, out_keep = deps.keep((), removed, dead)
    pruned = rebuild(net, in_keep, out_keep, removed, dead)
    return pruned, {"edges": [list(e) for e in gone], "nodes": sorted(dead)}


__all__ = ["LEVELS", "prune"]
