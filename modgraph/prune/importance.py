"""Importance criteria: one score per prunable unit (higher = keep), for each kind of thing that can be pruned.

Like Torch-Pruning's ``Importance``: an object that scores, a pruner that decides. Every criterion answers

* :meth:`~Importance.neurons` - one score per :class:`~modgraph.prune.dependency.Group` (hidden unit), ``NaN`` for a
  unit it cannot score (never pruned);
* :meth:`~Importance.connections` - ``{gate key: [in, out]}`` for the connections of neuron-level gates;
* :meth:`~Importance.branches` - ``{(u, v): score}`` for the attended in-edges of merges;
* :meth:`~Importance.graph_edges` - ``[E]``, one score per column of an ``edge_index``;

or raises :class:`~modgraph.errors.PruneError` saying it has no score for that kind.

=============  ===========================================================================================
criterion      score
=============  ===========================================================================================
attention      recorded mean attention weight of the unit's connections (mean or max over its outputs), or
               with ``weighted=True`` mean weight x ``|W_oi|``, the connection's effective magnitude
magnitude      L1 (``p=1``) norm of the unit's main weights: its incoming row and outgoing columns; a graph
               edge's coefficient in GCN's propagation matrix, ``1 / sqrt(d_i d_j)`` (degrees with self-loops)
random         uniform random numbers from a seeded generator
sgl            L2 norm of the unit's outgoing weights: the groups a smoothing-group-lasso penalty zeroes
=============  ===========================================================================================
"""

from __future__ import annotations

import torch

from .. import checks
from ..errors import PruneError
from .dependency import DependencyGraph, check_deps, check_network
from .sgl import _unit_weights


class Importance:
    """Base class; subclasses override the kinds they can score."""

    name = "importance"

    def _none(self, kind: str):
        raise PruneError(f"the {self.name} criterion has no score for {kind}; use attention or random")

    def neurons(self, net, deps: DependencyGraph) -> torch.Tensor:
        """One score per group of ``deps.groups`` (a hidden unit), ``NaN`` for a unit it cannot score."""
        self._none("hidden units")

    def connections(self, net) -> dict:
        """``{gate key: [in, out] scores}`` for the connections of every neuron-level gate."""
        self._none("connections")

    def branches(self, net) -> dict:
        """``{(u, v): score}`` for the attended in-edges of every branch gate."""
        self._none("branch edges")

    def graph_edges(self, net, edge_index: torch.Tensor) -> torch.Tensor:
        """``[E]`` scores, one per column of ``edge_index``."""
        self._none("graph edges")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _check(self, method: str, net, deps=None, edge_index=None) -> None:
        """The arguments of a scoring method: TypeError unless ``net`` is a ModuleGraph (and ``deps`` a
        DependencyGraph, ``edge_index`` a tensor of integer node ids); PruneError for ``deps`` of another network
        or an ``edge_index`` not ``[2, E]`` or with a negative node id."""
        who = f"{type(self).__name__}.{method}"
        if net is not None or edge_index is None:  # graph_edges of a recorded graph does not need the network
            check_network(net, who)
        if deps is not None or method == "neurons":
            check_deps(deps, net, who)
        if edge_index is not None or method == "graph_edges":
            checks.edge_index(f"{who}: edge_index", edge_index, error=PruneError)


def _neuron_gated(net) -> dict:
    """``{gate key: (u, v)}`` of the neuron-level gates of ``net``."""
    return {key: tuple(att.gate.name) for key, att in net.neuron_attention.items()}


# ----------------------------------------------------------------------------------------------- attention
class AttentionImportance(Importance):
    """Scores from recorded attention weights (an :class:`~modgraph.record.EdgeRecorder`).

    Args:
        recorder: a recorder that saw the network run (its gates' statistics for ``epoch``).
        epoch: the recorded epoch to use (``-1``: the last).
        weighted: multiply each connection's mean weight by ``|W_oi|`` (its effective magnitude).
        reduce: how a unit's connections become one score: ``"mean"`` or ``"max"`` over its outputs.
        relative: graph edges only: each edge's weight times the number of in-edges of its target (self-loop
            included), i.e. relative to a uniform allocation (1 = uniform). Softmax weights of a node with ``k``
            in-edges average ``1/k``, so raw weights rank the edges of high-degree nodes first; relative ones do not.
    """

    name = "attention"

    def __init__(self, recorder, epoch: int = -1, weighted: bool = False, reduce: str = "mean",
                 relative: bool = False):
        from ..record import EdgeRecorder

        if not isinstance(recorder, EdgeRecorder):
            raise TypeError(f"AttentionImportance: recorder must be a modgraph.record.EdgeRecorder that saw the "
                            f"network run, got {type(recorder).__name__}")
        if reduce not in ("mean", "max"):
            raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
        weighted = checks.flag("AttentionImportance: weighted", weighted, error=TypeError)
        relative = checks.flag("AttentionImportance: relative", relative, error=TypeError)
        epoch = checks.integer("AttentionImportance: epoch", epoch, why="a recorded epoch number; -1: the last",
                               error=TypeError)
        self.recorder, self.epoch, self.weighted, self.reduce = recorder, epoch, weighted, reduce
        self.relative = relative

    def __repr__(self) -> str:
        return (f"AttentionImportance(epoch={self.epoch}, weighted={self.weighted}, reduce={self.reduce!r}, "
                f"relative={self.relative})")

    def _stats(self, key: str):
        """The recorded statistics of gate ``key`` in ``self.epoch``; PruneError when there are none."""
        epochs = [e for e, _ in self.recorder.gates[key].history]
        if not epochs:
            raise PruneError(f"gate {key!r} has no closed epoch in the recorder: call epoch_end() after running the "
                             f"network (before pruning)")
        if self.epoch != -1 and self.epoch not in epochs:
            raise PruneError(f"gate {key!r} has no recorded epoch {self.epoch}; recorded epochs: {epochs} "
                             f"(epoch=-1: the last)")
        return self.recorder.stats(key, self.epoch)

    def _mean(self, key: str, shape) -> torch.Tensor:
        if key not in self.recorder.gates:
            raise PruneError(f"the recorder has no statistics for gate {key!r}; attach an EdgeRecorder to this "
                             f"network and run it (recorded gates: {', '.join(self.recorder.gates) or 'none'})")
        mean = self._stats(key).mean
        if tuple(mean.shape) != tuple(shape):
            raise PruneError(f"gate {key!r}: recorded statistics of shape {tuple(mean.shape)} do not fit this "
                             f"network's {tuple(shape)}; record the network you prune")
        return mean

    def connections(self, net) -> dict:
        self._check("connections", net)
        result = {}
        for key, (_u, v) in _neuron_gated(net).items():
            att = net.neuron_attention[key]
            mean = self._mean(key, (att.in_features, att.out_features)).to(net.nodes[v].weight.device)
            result[key] = mean * net.nodes[v].weight.detach().abs().t() if self.weighted else mean
        return result

    def neurons(self, net, deps: DependencyGraph) -> torch.Tensor:
        self._check("neurons", net, deps)
        conns = self.connections(net)
        if not conns:
            raise PruneError("the network has no neuron-level attention gates, so the attention criterion has no "
                             "scores for its hidden units; use magnitude, sgl or random")
        scores = torch.full((len(deps.groups),), float("nan"))
        pred_of = {v: key for key, (u, v) in _neuron_gated(net).items()}
        for group in deps.groups:
            rows = [conns[pred_of[v]][col] for v, col in group.consumers if v in pred_of]
            if rows:
                values = torch.cat(rows)
                scores[group.index] = float(values.mean() if self.reduce == "mean" else values.max())
        return scores

    def branches(self, net) -> dict:
        self._check("branches", net)
        result = {}
        for v, att in net.branch_attention.items():
            mean = self._mean(v, (len(att.gate.edges), att.heads))
            for k, edge in enumerate(att.gate.edges):
                result[tuple(edge)] = float(mean[k].mean())
        return result

    def graph_edges(self, net, edge_index: torch.Tensor) -> torch.Tensor:
        self._check("graph_edges", net, edge_index=edge_index)
        infos = [info for info in self.recorder.gates.values() if info.level == "graph"]
        if not infos:
            raise PruneError("the recorder has no graph-level gate; record a network with graph attention")
        target = edge_index.detach().cpu().long()
        total = torch.zeros(target.shape[1])
        for info in infos:
            mean = self._stats(info.key).mean.mean(-1).cpu()  # (E_rec,) averaged over heads; on the CPU like the rest
            if self.relative:
                dst = info.edge_index[1]
                group = torch.zeros(int(dst.max()) + 1).index_add_(0, dst, torch.ones(len(dst)))
                mean = mean * group[dst]
            total += mean[_positions(info.edge_index, target, info.key)]
        return total / len(infos)


def _positions(recorded: torch.Tensor, target: torch.Tensor, key: str) -> torch.Tensor:
    """Position in ``recorded [2, E']`` of every edge of ``target [2, E]``; PruneError naming a missing edge."""
    n = int(max(recorded.max(), target.max())) + 1 if recorded.numel() and target.numel() else 1
    rec_keys = recorded[0] * n + recorded[1]
    order = torch.argsort(rec_keys, stable=True)
    sorted_keys = rec_keys[order]
    want = target[0] * n + target[1]
    pos = torch.searchsorted(sorted_keys, want).clamp(max=max(len(sorted_keys) - 1, 0))
    found = sorted_keys[pos] == want if len(sorted_keys) else torch.zeros_like(want, dtype=torch.bool)
    if not bool(found.all()):
        e = int((~found).nonzero()[0])
        raise PruneError(f"graph gate {key!r} never weighted edge {int(target[0, e])} -> {int(target[1, e])} "
                         f"(column {e} of edge_index); record on the graph you prune")
    return order[pos]


# ----------------------------------------------------------------------------------------------- magnitude
class MagnitudeImportance(Importance):
    """Weight magnitude: ``||w||_p`` of a unit's main weights, ``|W_oi|`` of a connection.

    Args:
        p: the norm (1: L1, the default; 2: L2).
        side: which weights of a unit count: ``"both"`` (incoming rows and outgoing columns, Torch-Pruning's group
            norm), ``"in"`` or ``"out"``.
    """

    name = "magnitude"

    def __init__(self, p: float = 1.0, side: str = "both"):
        if side not in ("both", "in", "out"):
            raise ValueError(f"side must be 'both', 'in' or 'out', got {side!r}")
        self.p = checks.number("MagnitudeImportance: p", p, low=0, low_open=True, why="the norm: 1 L1, 2 L2")
        self.side = side

    def __repr__(self) -> str:
        return f"MagnitudeImportance(p={self.p}, side={self.side!r})"

    @torch.no_grad()
    def neurons(self, net, deps: DependencyGraph) -> torch.Tensor:
        self._check("neurons", net, deps)
        scores = torch.zeros(len(deps.groups))
        for group in deps.groups:
            total = 0.0
            if self.side in ("both", "in"):
                total += sum(float(net.nodes[v].weight[row].abs().pow(self.p).sum()) for v, row in group.producers)
            if self.side in ("both", "out"):
                total += sum(float(net.nodes[v].weight[:, col].abs().pow(self.p).sum())
                             for v, col in group.consumers)
            scores[group.index] = total ** (1.0 / self.p)
        return scores

    @torch.no_grad()
    def connections(self, net) -> dict:
        self._check("connections", net)
        return {key: net.nodes[v].weight.abs().t().clone() for key, (u, v) in _neuron_gated(net).items()}

    def graph_edges(self, net, edge_index: torch.Tensor) -> torch.Tensor:
        """``1 / sqrt(d_i d_j)``: the edge's entry of ``D^-1/2 (A + I) D^-1/2``, GCN's fixed edge weight."""
        self._check("graph_edges", net, edge_index=edge_index)
        ei = edge_index.detach().cpu().long()
        n = int(ei.max()) + 1 if ei.numel() else 0
        loops = ei[0] == ei[1]
        degree = torch.ones(n).index_add_(0, ei[1, ~loops], torch.ones(int((~loops).sum())))  # in-degree + 1
        return (degree[ei[0]] * degree[ei[1]]).rsqrt()


# ----------------------------------------------------------------------------------------------- random
class RandomImportance(Importance):
    """Uniform random scores from ``torch.Generator().manual_seed(seed)``: the chance baseline."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = checks.integer("RandomImportance: seed", seed, error=TypeError)

    def __repr__(self) -> str:
        return f"RandomImportance(seed={self.seed})"

    def _rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=torch.Generator().manual_seed(self.seed))

    def neurons(self, net, deps: DependencyGraph) -> torch.Tensor:
        self._check("neurons", net, deps)
        return self._rand(len(deps.groups))

    def connections(self, net) -> dict:
        self._check("connections", net)
        gen = torch.Generator().manual_seed(self.seed)
        return {key: torch.rand(att.in_features, att.out_features, generator=gen)
                for key, att in net.neuron_attention.items()}

    def branches(self, net) -> dict:
        self._check("branches", net)
        edges = [tuple(e) for att in net.branch_attention.values() for e in att.gate.edges]
        return dict(zip(edges, self._rand(len(edges)).tolist()))

    def graph_edges(self, net, edge_index: torch.Tensor) -> torch.Tensor:
        self._check("graph_edges", net, edge_index=edge_index)
        return self._rand(edge_index.shape[1])


# ----------------------------------------------------------------------------------------------- sgl
class SGLImportance(Importance):
    """L2 norm of each unit's outgoing weights, the groups :func:`~modgraph.prune.sgl.sgl_penalty` zeroes.

    Meant for a network trained with that penalty; on any other network it is a structured L2 magnitude.
    """

    name = "sgl"

    @torch.no_grad()
    def neurons(self, net, deps: DependencyGraph) -> torch.Tensor:
        self._check("neurons", net, deps)
        return _unit_weights(net, deps, "SGLImportance.neurons").norm(dim=-1).cpu()


CRITERIA = {"attention": AttentionImportance, "magnitude": MagnitudeImportance, "random": RandomImportance,
            "sgl": SGLImportance}

__all__ = ["CRITERIA", "AttentionImportance", "Importance", "MagnitudeImportance", "RandomImportance",
           "SGLImportance"]
