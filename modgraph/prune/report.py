"""What pruning bought: parameters, multiply-accumulates, neurons and edges before and after, and accuracy.

Multiply-accumulates (MACs) are counted per sample by hand formula, per node and edge:

====================================  ==========================================================================
part                                  MACs per sample
====================================  ==========================================================================
linear ``in -> out``                  ``in * out``
neuron-level gate on it               ``in * out`` (scaling each connection) plus its allocator: ``in * in * out``
                                      (``score: linear``) or ``in * (in + out)`` (``score: outer``)
branch gate over ``K`` in-edges       per branch ``d_k * hidden`` (key) ``+ hidden`` (score) ``+ d_k`` (scaling)
edge weight (learnable or fixed)      the edge's width
batch_norm / layer_norm ``F``         ``F`` / ``2 F``
activations, dropout, merges          0 (no multiply-accumulate)
====================================  ==========================================================================

Graph ops count the whole graph of ``N`` nodes (the data's node count, isolated nodes included) and ``E'`` edges:
``E`` without added self-loops; when the op adds them (``add_self_loops``, like PyG's ``gcn_norm``, only where
missing) the ``E - L`` edges that are not self-loops plus one loop per node, ``E - L + N``, where ``L`` is the number
of self-loop columns already in ``edge_index``. The total is divided by ``N`` so that it stays per sample (per
node). Dense formulas: a sparse input's first layer
really costs ``nnz * out`` instead of ``N * in * out``.

====================================  ==========================================================================
gcn_conv ``in -> out``                ``N * in * out + E' * out``
gcn_propagate ``F``                   ``E' * F``
attention_conv ``in -> H x D``        ``N * in * H D`` (none for attention_propagate) ``+ 2 N H D`` (gat scores;
                                      other scores ``E' H D``) ``+ E' H`` (coefficients) ``+ E' H D`` (messages)
====================================  ==========================================================================

Further graph ops add their formula with :func:`register_macs` (``fn(net, step, num_nodes, num_edges) -> int``; a
function that also takes a ``self_loops`` keyword gets ``L``).
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field

import torch

from .. import checks
from .dependency import check_network

MACS: dict = {}


def register_macs(op: str, fn) -> None:
    """Count the MACs of op ``op`` with ``fn(net, step, num_nodes, num_edges)`` (for the whole graph).

    Raises:
        TypeError: ``op`` is not an op name (a non-empty string), or ``fn`` is not callable.
    """
    if not isinstance(op, str) or not op:
        raise TypeError(f"register_macs: op must be an op name (a non-empty string), got {op!r}")
    if not callable(fn):
        raise TypeError(f"register_macs: fn must be callable as fn(net, step, num_nodes, num_edges) -> int, got "
                        f"{type(fn).__name__} {fn!r}")
    MACS[op] = fn


def _edges_with_loops(module, num_nodes: int, num_edges: int, self_loops: int = 0) -> int:
    """``E'``: the op's edges; an op that adds the missing self-loops ends with one loop per node (gcn_norm)."""
    if getattr(module, "add_self_loops", False):
        return num_edges - self_loops + num_nodes
    return num_edges


def _gcn_conv_macs(net, step, num_nodes: int, num_edges: int, self_loops: int = 0) -> int:
    conv = net.nodes[step.name].conv
    e = _edges_with_loops(net.nodes[step.name], num_nodes, num_edges, self_loops)
    return num_nodes * conv.in_channels * conv.out_channels + e * conv.out_channels


def _gcn_propagate_macs(net, step, num_nodes: int, num_edges: int, self_loops: int = 0) -> int:
    return _edges_with_loops(net.nodes[step.name], num_nodes, num_edges, self_loops) * step.width


def _attention_conv_macs(net, step, num_nodes: int, num_edges: int, self_loops: int = 0) -> int:
    conv = net.nodes[step.name]
    e = _edges_with_loops(conv, num_nodes, num_edges, self_loops)
    width = conv.heads * conv.head_dim
    linear = num_nodes * conv.in_channels * width if conv.lin is not None else 0
    scores = 2 * num_nodes * width if conv.attention.scorer.kind == "gat" else e * width
    return linear + scores + e * conv.heads + e * width


MACS.update({"gcn_conv": _gcn_conv_macs, "gcn_propagate": _gcn_propagate_macs,
             "attention_conv": _attention_conv_macs, "attention_propagate": _attention_conv_macs})


def count_params(net) -> int:
    """The number of parameters of ``net`` (every tensor of ``net.parameters()``, attention included); any
    ``torch.nn.Module`` (TypeError otherwise)."""
    if not isinstance(net, torch.nn.Module):
        raise TypeError(f"count_params: expected a torch.nn.Module (a modgraph.ModuleGraph), got {type(net).__name__}")
    return sum(p.numel() for p in net.parameters())


def count_connections(net) -> int:
    """Non-zero weights of the network's linear layers (falls after unstructured pruning)."""
    check_network(net, "count_connections")
    return sum(int((m.weight != 0).sum()) for m in net.nodes.values() if isinstance(m, torch.nn.Linear))


def count_neurons(net) -> int:
    """Hidden units: output channels of linear layers (and other producing ops) that are not network outputs."""
    from .dependency import DependencyGraph

    check_network(net, "count_neurons")
    return DependencyGraph(net).hidden_units()


def _takes_self_loops(fn) -> bool:
    try:
        return "self_loops" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def count_macs(net, num_nodes: int | None = None, num_edges: int | None = None, self_loops: int = 0) -> int:
    """Multiply-accumulates per sample (see the module table).

    Graph ops need ``num_nodes`` (the data's node count) and ``num_edges`` (columns of ``edge_index``);
    ``self_loops`` is how many of those columns are self-loops already (ops that add loops add only the missing).

    Raises:
        TypeError: ``net`` is not a :class:`~modgraph.ModuleGraph`.
        ValueError: ``num_nodes`` or ``num_edges`` not a non-negative integer (or ``None``), ``self_loops`` not an
            integer in ``[0, num_edges]``, edges without nodes; a graph op without ``num_nodes`` and ``num_edges``;
            a :func:`register_macs` function that returns no count (a non-negative integer).
    """
    check_network(net, "count_macs")
    num_nodes = checks.integer("count_macs: num_nodes", num_nodes, least=0, optional=True,
                               why="the graph's node count, x.size(0)")
    num_edges = checks.integer("count_macs: num_edges", num_edges, least=0, optional=True,
                               why="the columns of edge_index")
    self_loops = checks.integer("count_macs: self_loops", self_loops, least=0, most=num_edges,
                                why="the self-loop columns of edge_index" + (", at most num_edges" if num_edges
                                                                              is not None else ""))
    if num_nodes == 0 and num_edges:
        raise ValueError(f"count_macs: num_edges is {num_edges} but num_nodes is 0; a graph with edges has nodes")
    plan, total, graph_total = net.plan, 0, 0
    for step in plan.steps:
        if step.source:
            continue
        attrs = net.graph.nodes[step.name]
        op = attrs.get("op")
        module = net.nodes[step.name] if step.has_module else None
        for i, _key, _const in step.scales:
            total += plan.widths[step.preds[i]]
        if op in MACS:
            if num_nodes is None or num_edges is None:
                raise ValueError(f"node {step.name!r} is a graph op: pass num_nodes and num_edges to count its MACs")
            fn = MACS[op]
            extra = {"self_loops": self_loops} if _takes_self_loops(fn) else {}
            macs = fn(net, step, num_nodes, num_edges, **extra)
            graph_total += checks.integer(f"count_macs: the MACs of node {step.name!r} (op {op!r}, by its "
                                          f"register_macs function)", macs, least=0)
        elif isinstance(module, torch.nn.Linear):
            total += module.in_features * module.out_features
        elif isinstance(module, torch.nn.BatchNorm1d):
            total += step.width
        elif isinstance(module, torch.nn.LayerNorm):
            total += 2 * step.width
        if step.neuron is not None:
            att = net.neuron_attention[step.neuron]
            i, o = att.in_features, att.out_features
            total += i * o + (i * i * o if att.score == "linear" else i * (i + o))
        if step.branch is not None:
            att = net.branch_attention[step.name]
            hidden = att.heads * att.dim
            for lin in att.keys:
                total += lin.in_features * hidden + hidden + lin.in_features
    if graph_total:
        total += graph_total // max(num_nodes, 1)
    return int(total)


@dataclass
class PruneReport:
    """The record of one pruning: the request, what went, and the counts and accuracies before and after.

    ``removed`` holds exactly what was removed (``units``: node -> removed output rows; ``connections``: gate key
    -> removed ``(i, o)``; ``edges``: DAG edges; ``nodes``: DAG nodes; ``graph_edges``: number of columns of
    ``edge_index`` dropped). Accuracies are ``None`` unless ``prune`` got ``evaluate`` (and ``fine_tune``).
    """

    level: str
    criterion: str
    sparsity: float | None
    threshold: float | None
    scope: str
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    neurons_before: int = 0
    neurons_after: int = 0
    connections_before: int = 0
    connections_after: int = 0
    dag_edges_before: int = 0
    dag_edges_after: int = 0
    graph_edges_before: int | None = None
    graph_edges_after: int | None = None
    acc_before: float | None = None
    acc_after: float | None = None
    acc_finetuned: float | None = None
    removed: dict = field(default_factory=dict)
    edge_index: torch.Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """Plain data (JSON-ready); ``edge_index`` is left out."""
        d = asdict(self)
        d.pop("edge_index")
        return d

    def __str__(self) -> str:
        amount = f"sparsity {self.sparsity}" if self.threshold is None else f"threshold {self.threshold}"
        rows = [("", "before", "after")]
        for name in ("params", "macs", "neurons", "connections", "dag_edges", "graph_edges", "acc"):
            before, after = getattr(self, f"{name}_before"), getattr(self, f"{name}_after")
            if before is None and after is None:
                continue
            rows.append((name, _fmt(before), _fmt(after)))
        if self.acc_finetuned is not None:
            rows.append(("acc (fine-tuned)", "", _fmt(self.acc_finetuned)))
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        what = {"neuron": "hidden units", "connection": "connections", "branch": "branch edges",
                "graph": "graph edges"}.get(self.level, self.level)
        lines = [f"pruned {what} by {self.criterion} ({amount}, {self.scope})"]
        lines += ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, width))) for r in rows]
        return "\n".join(lines)


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if isinstance(x, float) else f"{x:,}"
