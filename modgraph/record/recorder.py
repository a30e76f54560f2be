"""``EdgeRecorder``: running statistics of every attention weight of a network, per edge and per epoch.

The recorder attaches to a :class:`~modgraph.ModuleGraph` through the gates' one hook point
(:meth:`modgraph.Gate.register_weight_hook`) and keeps, per gate and per epoch, the count, mean, std, min, max and
fraction under a threshold of each of the gate's weights:

=========  ===================================  =====================  ==========================================
level      gate key                             statistics shape       one entry is
=========  ===================================  =====================  ==========================================
neuron     ``"h->y"`` (the edge)                ``[in, out]``          the connection from unit i of h to unit o
branch     ``"m"`` (the merge node)             ``[K, heads]``         in-edge k of the merge (``gate.edges[k]``)
graph      ``"conv1"`` (the graph-op node)      ``[E, heads]``         edge e of ``edge_index`` (from the context)
=========  ===================================  =====================  ==========================================

It reads detached weights and never changes them, so outputs and gradients are untouched; it works inside
``torch.no_grad()`` and on any device (statistics live on the weights' device). Memory is one accumulator per
statistic (at most as many rows as the largest batch, and at most ``RunningStats.ROW_BUDGET`` numbers) plus one
:class:`EdgeStats` per closed epoch: nothing grows with the number of batches.

Example::

    rec = EdgeRecorder(threshold=0.1).attach(net)
    for epoch in range(epochs):
        for x, y in loader:
            ...                                  # forward/backward as usual: the hooks record
        rec.epoch_end()
    rec.detach()
    rec.stats("h->y").mean                       # [in, out]: mean weight of every connection, last epoch
    rec.to_csv("weights.csv")
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .. import checks
from ..functional.normalize import threshold_problem
from ..gate import LEVELS, Gate
from .stats import EdgeStats, RunningStats


def gate_key(gate: Gate) -> str:
    """The recorder's name for a gate: ``"u->v"`` for a neuron gate, the node name for branch and graph gates."""
    if not isinstance(gate, Gate):
        raise TypeError(f"gate_key: expected a modgraph Gate (net.gates() lists a network's), got "
                        f"{type(gate).__name__}")
    return _key(gate)


def _key(gate: Gate) -> str:
    """:func:`gate_key` without the check (the recording hook's, which gets gates from the gates themselves)."""
    if gate.level == "neuron":
        u, v = gate.name
        return f"{u}->{v}"
    return str(gate.name)


@dataclass
class GateInfo:
    """What a recorded gate weighs: its level, the DAG edges, and for graph gates the graph's ``edge_index``.

    Attributes:
        key: the gate key (see :func:`gate_key`).
        level: ``"neuron"``, ``"branch"`` or ``"graph"``.
        edges: the DAG edges ``(u, v)``: the one gated edge (neuron), the attended in-edges in the gate's order
            (branch), or ``[(node, node)]`` (graph: messages run inside the node).
        shape: the statistics shape (see the module table).
        edge_index: graph gates only, ``[2, E]`` on the CPU: entry ``e`` of the statistics is edge
            ``edge_index[:, e]``.
    """

    key: str
    level: str
    edges: list
    shape: tuple
    edge_index: torch.Tensor | None = None
    history: list = field(default_factory=list, repr=False)  # (epoch, EdgeStats) per closed epoch


class EdgeRecorder:
    """Record every gate's weights per edge and per epoch with bounded memory.

    Args:
        threshold: the ``under`` statistic counts weights strictly below it; a number in ``[0, 1]``.
        every: record one forward in ``every`` per gate (default 1: all of them). The statistics are then those of
            the recorded forwards (a systematic sample of the batches), and the recording costs about
            ``1 / every`` of its full price.

    Use :meth:`attach` (also a context manager: ``with EdgeRecorder().attach(net) as rec:`` detaches at the end),
    :meth:`epoch_end` after each epoch, :meth:`paused` around passes that should not count (validation), then
    :meth:`stats`, :meth:`to_rows`, :meth:`to_csv`, :meth:`to_json`, and :meth:`load` to read a file back.
    """

    def __init__(self, threshold: float = 0.1, every: int = 1):
        if (problem := threshold_problem(threshold)) is not None:
            raise ValueError(f"EdgeRecorder: {problem}")
        every = checks.positive_int("EdgeRecorder: every", every)
        self.threshold = float(threshold)
        self.every = every
        self._calls: dict[str, int] = {}
        self.gates: dict[str, GateInfo] = {}
        self.epochs: list[int] = []
        self.enabled = True
        self._running: dict[str, RunningStats] = {}
        self._checked: dict[str, torch.Tensor] = {}  # graph gates: the last edge_index found equal to the recorded one
        self._handles: list = []

    # ------------------------------------------------------------------------------------------ hooks
    def attach(self, net=None, *, gates: list[Gate] | None = None) -> "EdgeRecorder":
        """Register the recording hook on every gate of ``net`` (or on the given ``gates``); returns ``self``."""
        if self._handles:
            raise RuntimeError("EdgeRecorder is already attached; call detach() first")
        if (net is None) == (gates is None):
            raise ValueError("attach needs a network or a list of gates (exactly one)")
        if gates is None:
            if not callable(getattr(net, "gates", None)):
                raise TypeError(f"attach: expected a modgraph.ModuleGraph (a network with gates()), got "
                                f"{type(net).__name__}; for an Ensemble attach to a standalone member, "
                                f"ens.member(k)")
            chosen = net.gates()
            if not chosen:
                raise ValueError("attach: the network has no attention gates (no edge or node with attention=...); "
                                 "there is nothing to record")
        else:
            if isinstance(gates, Gate) or not isinstance(gates, (list, tuple)):
                raise TypeError(f"attach: gates must be a list of Gate, got {type(gates).__name__}")
            chosen = list(gates)
            for i, gate in enumerate(chosen):
                if not isinstance(gate, Gate):
                    raise TypeError(f"attach: gates[{i}] is {type(gate).__name__}, not a modgraph Gate "
                                    f"(net.gates() lists a network's)")
        seen: dict[str, str] = {key: info.level for key, info in self.gates.items()}
        for gate in chosen:
            if gate.level not in LEVELS:
                raise ValueError(f"gate {gate.name!r}: unknown level {gate.level!r}; expected one of {LEVELS}")
            key = gate_key(gate)
            if seen.get(key, gate.level) != gate.level or (key in seen and key not in self.gates):
                raise ValueError(f"two gates share the key {key!r}; rename a node")
            seen[key] = gate.level
        for gate in chosen:
            self._handles.append(gate.register_weight_hook(self._record))
        return self

    def detach(self) -> None:
        """Remove every hook; recorded statistics stay."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def attached(self) -> bool:
        """Whether the recorder's hooks are on gates (between :meth:`attach` and :meth:`detach`)."""
        return bool(self._handles)

    @property
    def pending(self) -> bool:
        """Whether forwards were recorded since the last :meth:`epoch_end` (an epoch is open)."""
        return any(running.count for running in self._running.values())

    def __enter__(self) -> "EdgeRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    @contextmanager
    def paused(self):
        """Forwards inside this block are not recorded (e.g. validation passes during training)."""
        state, self.enabled = self.enabled, False
        try:
            yield self
        finally:
            self.enabled = state

    def _record(self, gate: Gate, weights: torch.Tensor, context: dict) -> None:
        if not self.enabled:
            return
        key = _key(gate)
        if self.every > 1:
            calls = self._calls[key] = self._calls.get(key, -1) + 1
            if calls % self.every:
                return
        w = weights.detach()
        if gate.level == "graph":
            w = (w if w.dim() == 2 else w.unsqueeze(-1)).unsqueeze(0)  # one sample: (1, E, heads)
        else:
            w = w.reshape(-1, *w.shape[-2:])  # (N, in, out) or (N, K, heads)
        running = self._running.get(key)
        dtype = torch.float64 if w.dtype == torch.float64 else torch.float32  # float32 holds the others exactly
        if running is None:
            self._first_sight(gate, key, w, context)
            running = self._running[key] = RunningStats(tuple(w.shape[1:]), self.threshold, w.device, dtype)
        elif running.shape != tuple(w.shape[1:]):
            self._first_sight(gate, key, w, context)  # raises: names the change of shape
        elif running.device != w.device or running.dtype != dtype:
            if running.count:
                raise ValueError(f"gate {key!r}: weights moved from {running.device} ({running.dtype}) to "
                                 f"{w.device} ({w.dtype}) within an epoch; call epoch_end() before moving or "
                                 f"converting the network")
            running = self._running[key] = RunningStats(running.shape, self.threshold, w.device, dtype)
            if gate.level == "graph":
                self._check_graph(key, w, context)
        elif gate.level == "graph":
            self._check_graph(key, w, context)
        running.update(w)

    def _first_sight(self, gate: Gate, key: str, w: torch.Tensor, context: dict) -> None:
        info = self.gates.get(key)
        if info is not None:  # a later epoch: the gate is known
            if gate.level == "graph":
                self._check_graph(key, w, context)
            if info.shape != tuple(w.shape[1:]):
                raise ValueError(f"gate {key!r}: weights of shape {tuple(w.shape[1:])}, recorded before as "
                                 f"{info.shape}; a recorder follows one network")
            return
        edge_index = None
        if gate.level == "neuron":
            edges = [tuple(gate.name)]
        elif gate.level == "branch":
            edges = [tuple(e) for e in gate.edges]
        else:
            edges = [(str(gate.name), str(gate.name))]
            edge_index = context.get("edge_index")
            if edge_index is None:
                raise ValueError(f"graph gate {key!r} reported weights without 'edge_index' in its context")
            edge_index = edge_index.detach().to("cpu", torch.long).clone()
        self.gates[key] = GateInfo(key, gate.level, edges, tuple(w.shape[1:]), edge_index)

    def _check_graph(self, key: str, w: torch.Tensor, context: dict) -> None:
        known = self.gates[key].edge_index
        seen = context.get("edge_index")
        if seen is not None and seen is self._checked.get(key):  # graph ops hand over their cached edge_index
            return
        if seen is None or seen.shape != known.shape or not torch.equal(seen.detach().cpu(), known):
            got = "none" if seen is None else f"{seen.shape[-1]} edges"
            raise ValueError(f"graph gate {key!r}: edge_index changed ({got}, recorded {known.shape[-1]} edges); "
                             f"record one graph per recorder")
        self._checked[key] = seen

    # ------------------------------------------------------------------------------------------ epochs
    def epoch_end(self, epoch: int | None = None) -> int:
        """Close the epoch: summarise and reset the running statistics. Returns the epoch number (0, 1, ...)."""
        if epoch is None:
            epoch = self.epochs[-1] + 1 if self.epochs else 0
        epoch = checks.integer("epoch_end: epoch", epoch, least=0, why="an epoch number; stats(key, -1) is the last")
        if self.epochs and epoch <= self.epochs[-1]:
            raise ValueError(f"epoch numbers must increase: got {epoch} after {self.epochs[-1]}")
        for key, running in self._running.items():
            if running.count:  # gates not recorded in this epoch get no entry for it
                self.gates[key].history.append((epoch, running.summary()))
                running.reset()  # the buffers serve the next epoch
        self.epochs.append(epoch)
        return epoch

    def stats(self, key: str, epoch: int = -1) -> EdgeStats:
        """Statistics of gate ``key`` in ``epoch`` (an epoch number; ``-1``: the last epoch that recorded it)."""
        if not isinstance(key, str):
            raise TypeError(f"stats: key must be a gate key (a str such as 'h->y'; recorded gates: "
                            f"{', '.join(map(repr, self.gates)) or 'none yet'}), got {type(key).__name__} {key!r:.60}")
        epoch = checks.integer("stats: epoch", epoch, why="an epoch number; -1: the last", error=TypeError)
        if key not in self.gates:
            valid = ", ".join(map(repr, self.gates)) or "none yet"
            raise KeyError(f"no recorded gate {key!r}; recorded gates: {valid}")
        history = self.gates[key].history
        if not history:
            raise KeyError(f"gate {key!r} has no closed epoch yet; call epoch_end() first")
        if epoch == -1:
            return history[-1][1]
        for e, stats in history:
            if e == epoch:
                return stats
        raise KeyError(f"gate {key!r} has no epoch {epoch}; recorded epochs: {[e for e, _ in history]}")

    # ------------------------------------------------------------------------------------------ export
    def to_rows(self, epochs=None) -> list[dict]:
        """Tidy rows, one per edge, head and epoch (see :mod:`modgraph.record.io` for the columns)."""
        from .io import recorder_rows

        return recorder_rows(self, epochs)

    def to_csv(self, path: str | os.PathLike, epochs=None):
        """Write :meth:`to_rows` as a CSV file (atomically); :meth:`load` reads it back."""
        from .io import write_csv

        return write_csv(self.to_rows(epochs), path)

    def to_json(self, path: str | os.PathLike, epochs=None):
        """Write :meth:`to_rows` as a JSON list of row objects (atomically); :meth:`load` reads it back."""
        from .io import write_json

        return write_json(self.to_rows(epochs), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EdgeRecorder":
        """Read a CSV or JSON file written by :meth:`to_csv`/:meth:`to_json` into a detached recorder."""
        from .io import read_located_rows, recorder_from_rows

        checks.path("EdgeRecorder.load: path", path, what="a recording file's path")
        located = read_located_rows(path)
        return recorder_from_rows([row for row, _ in located], source=str(path), where=[at for _, at in located])

    def __repr__(self) -> str:
        return (f"EdgeRecorder(threshold={self.threshold}, gates={list(self.gates)}, epochs={len(self.epochs)}, "
                f"attached={self.attached})")
