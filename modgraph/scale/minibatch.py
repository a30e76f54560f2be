r"""Mini-batch training on neighbour-sampled subgraphs, for graphs too large for one full-batch step.

A ``NeighborLoader`` batch (:func:`modgraph.scale.sampler.neighbor_loader`) is the subgraph around
``batch.batch_size`` seed nodes: its first ``batch_size`` nodes are the seeds, the others are the sampled
neighbourhood they need. The network runs on the whole subgraph (``net(batch.x, edge_index=batch.edge_index)``,
the same models and gates as full-batch training) and **the loss and the accuracy count the seeds only**.

Graph ops normalise per ``edge_index`` tensor (:class:`modgraph.functional.gcn_norm.EdgeIndexCache`): every batch
brings a new tensor, so its GCN normalisation and self-loops are computed for that batch, never reused from the
previous one.

With :func:`modgraph.train.fit` (each ``loss_fn`` call draws the next batch)::

    task = MiniBatchTask(train_loader, val_loader, device)
    fit(net, task.loss, task.evaluate, steps=epochs * task.steps_per_epoch, eval_every=task.steps_per_epoch)

or one epoch at a time with :func:`train_epoch`. For data-parallel training, ``forward`` is the
``DistributedDataParallel`` wrapper and ``reduce`` sums a tensor over the processes
(:mod:`modgraph.scale.distributed`), so every process selects the same model.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .. import checks

__all__ = ["BatchStream", "MiniBatchTask", "evaluate_loader", "seed_loss", "train_epoch"]

Forward = Callable[..., Tensor]


def _device(forward, device) -> torch.device:
    """``device`` if given, else where ``forward``'s parameters live (the CPU for a parameterless callable)."""
    if device is not None:
        try:
            return torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"device must be a torch.device such as 'cpu' or 'cuda:0' (or None: where the network's "
                             f"parameters are), got {device!r}") from None
    params = forward.parameters() if isinstance(forward, nn.Module) else iter(())
    first = next(params, None)
    return first.device if first is not None else torch.device("cpu")


def _inputs(batch, device: torch.device) -> tuple[Tensor, Tensor, Tensor, int]:
    """``(x, edge_index, y, batch_size)`` of a sampled batch, on ``device`` (only what the step needs moves)."""
    for key, what in (("x", "the node features"), ("edge_index", "the sampled edges"), ("y", "the labels")):
        if not isinstance(getattr(batch, key, None), Tensor):
            raise ValueError(f"a batch has no {key} ({what}); the loader's graph needs x, edge_index and y "
                             f"(Data(x=..., edge_index=..., y=...)), got {type(batch).__name__}")
    n = int(batch.batch_size) if hasattr(batch, "batch_size") else batch.num_nodes
    return (batch.x.to(device, non_blocking=True), batch.edge_index.to(device, non_blocking=True),
            batch.y.to(device, non_blocking=True), n)


def seed_loss(forward: Forward, batch, device: torch.device | str | None = None,
              loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> Tensor:
    """The loss of one sampled batch on its seed nodes (the first ``batch.batch_size`` nodes).

    Args:
        forward: the network, or its ``DistributedDataParallel`` wrapper: ``forward(x, edge_index=...)``.
        batch: a ``NeighborLoader`` batch (``x``, ``edge_index``, ``y``, ``batch_size``).
        device: where the step runs (default: where ``forward``'s parameters are).
        loss: ``loss(logits [B, C], y [B])``, mean over the seeds (default cross-entropy).
    """
    if not (callable(forward) and callable(loss)):
        _callables("seed_loss", forward=forward, loss=loss)
    x, edge_index, y, n = _inputs(batch, _device(forward, device))
    out = forward(x, edge_index=edge_index)  # (num sampled nodes, C)
    return loss(out[:n], y[:n])


def _callables(who: str, **given) -> None:
    """TypeError naming the first of ``given`` that is not callable (``None`` is allowed, but for ``forward``); else
    it fails at its first call, perhaps after an epoch of work, with only "'int' object is not callable"."""
    for name, value in given.items():
        if (value is not None or name == "forward") and not callable(value):
            optional = "" if name == "forward" else " (or None)"
            raise TypeError(f"{who}: {name} must be callable{optional}, got {type(value).__name__} {value!r:.60}")


def _check_loader(loader, who: str) -> None:
    """TypeError for a graph given where a loader of its batches belongs (iterating a Data gives its attributes)."""
    from torch_geometric.data.data import BaseData

    if isinstance(loader, BaseData):
        raise TypeError(f"{who}: expected a loader of sampled batches (e.g. neighbor_loader(data, [10, 10], "
                        f"batch_size=...)), got the graph itself ({type(loader).__name__})")


class BatchStream(Iterator):
    """The batches of a loader, epoch after epoch, without end; ``set_epoch`` reaches a distributed sampler.

    Attributes:
        epoch: the epoch the next batch belongs to (0-based).
        steps_per_epoch: ``len(loader)``.
    """

    def __init__(self, loader: Iterable, start_epoch: int = 0):
        _check_loader(loader, "BatchStream")
        if not hasattr(loader, "__len__"):
            raise TypeError(f"BatchStream: the loader must be re-iterable with a length (a NeighborLoader, a list of "
                            f"batches), got {type(loader).__name__}")
        self.loader = loader
        self.steps_per_epoch = len(loader)
        if self.steps_per_epoch == 0:
            raise ValueError("the loader yields no batches (no seed nodes?)")
        self.epoch = checks.integer("BatchStream: start_epoch", start_epoch, least=0)
        self._it = None

    def __next__(self):
        while True:
            if self._it is None:
                sampler = getattr(self.loader, "sampler", None)
                if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new shuffle of the seeds per epoch
                    sampler.set_epoch(self.epoch)
                self._it = iter(self.loader)
            try:
                return next(self._it)
            except StopIteration:
                self._it = None
                self.epoch += 1


@torch.no_grad()
def evaluate_loader(forward: Forward, loader: Iterable, device: torch.device | str | None = None,
                    reduce: Callable[[Tensor], Tensor] | None = None) -> dict:
    """Accuracy and mean loss over the seed nodes of every batch of ``loader``.

    ``reduce`` (e.g. :func:`modgraph.scale.distributed.all_reduce_sum`) sums the counts over processes, so every
    process returns the same numbers. Call it on a network in eval mode. ``device``: default where ``forward``'s
    parameters are.
    """
    _check_loader(loader, "evaluate_loader")
    _callables("evaluate_loader", forward=forward, reduce=reduce)
    if not hasattr(loader, "__iter__"):
        raise TypeError(f"evaluate_loader: loader must be a loader of sampled batches, got {type(loader).__name__}")
    device = _device(forward, device)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # correct, loss sum, seeds
    for batch in loader:
        x, edge_index, y, n = _inputs(batch, device)
        out = forward(x, edge_index=edge_index)[:n]
        totals += torch.stack([(out.argmax(-1) == y[:n]).sum().double(),
                               F.cross_entropy(out, y[:n], reduction="sum").double(),
                               totals.new_full((), float(n))])  # filled on the device: no copy from the host
    if reduce is not None:
        totals = reduce(totals)
    correct, loss_sum, seen = totals.tolist()
    if seen == 0:
        raise ValueError("evaluate_loader: the loader gave no seed nodes (an empty split?); an accuracy over no "
                         "nodes would mean nothing")
    return {"accuracy": correct / seen, "loss": loss_sum / seen, "seeds": int(seen)}


class MiniBatchTask:
    """``loss``/``evaluate`` closures for :func:`modgraph.train.fit` over sampled batches.

    Args:
        train: loader of the training seeds; each :meth:`loss` call draws its next batch.
        val: loader of the validation seeds; :meth:`evaluate` returns the accuracy over all of them.
        device: where the steps run (default: where the network's parameters are).
        forward: what runs a training batch (default: the network ``fit`` passes; the
            ``DistributedDataParallel`` wrapper for data-parallel training). Evaluation always runs the network
            ``fit`` passes: no collective inside, so the processes may hold different numbers of validation batches.
        reduce: sums a tensor over processes (data-parallel training), so all processes see the same score and
            select the same model.
        loss: ``loss(logits, y)`` on the seeds (default cross-entropy).

    Attributes:
        last_eval: ``{"accuracy", "loss", "seeds"}`` of the last :meth:`evaluate`.
    """

    def __init__(self, train: Iterable, val: Iterable, device: torch.device | str | None = None,
                 forward: Forward | None = None, reduce: Callable[[Tensor], Tensor] | None = None,
                 loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy):
        self.stream = BatchStream(train)
        _check_loader(val, "MiniBatchTask: val")
        _callables("MiniBatchTask", reduce=reduce, loss=loss)
        if forward is not None:
            _callables("MiniBatchTask", forward=forward)
        if not hasattr(val, "__iter__"):
            raise TypeError(f"MiniBatchTask: val must be a loader of sampled batches, got {type(val).__name__}")
        self.val, self.forward, self.reduce = val, forward, reduce
        self.device = None if device is None else _device(None, device)
        self.loss_of = loss
        self.last_eval: dict = {}

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per pass over the training loader."""
        return self.stream.steps_per_epoch

    def loss(self, net) -> Tensor:
        """``fit``'s ``loss_fn``: the loss on the seed nodes of the next training batch."""
        return seed_loss(self.forward or net, next(self.stream), self.device, self.loss_of)

    def evaluate(self, net) -> float:
        """``fit``'s ``evaluate``: the accuracy over the seed nodes of every validation batch; NaN when their loss is
        not finite (the network diverged: ``fit`` then stops with ``TrainingDiverged``, where an accuracy alone
        would go on selecting)."""
        self.last_eval = evaluate_loader(net, self.val, self.device, self.reduce)
        return self.last_eval["accuracy"] if math.isfinite(self.last_eval["loss"]) else float("nan")


def train_epoch(forward: Forward, loader: Iterable, optimizer: torch.optim.Optimizer,
                device: torch.device | str | None = None, loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
                max_batches: int | None = None, progress: Callable[[Iterable], Iterable] | None = None) -> dict:
    """One pass over ``loader`` (one optimiser step per batch); the mean seed loss, batches, seeds and seconds.

    ``forward`` is the network in training mode (or its DDP wrapper); ``max_batches`` stops early (benchmarks).
    With a :func:`modgraph.scale.distributed.seed_sampler` in the loader, call its ``set_epoch(epoch)`` before each
    pass, or every epoch draws the same order (:class:`BatchStream` does it for ``fit``). The loss is this process's.
    """
    # checked before the loop: 0 would still take one step
    max_batches = checks.positive_int("train_epoch: max_batches", max_batches, optional=True)
    if not (hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad")):
        raise TypeError(f"train_epoch: optimizer must be a torch.optim.Optimizer over the network's parameters, "
                        f"got {type(optimizer).__name__}")
    _check_loader(loader, "train_epoch")
    _callables("train_epoch", forward=forward, loss=loss, progress=progress)
    if not hasattr(loader, "__iter__"):
        raise TypeError(f"train_epoch: loader must be a loader of sampled batches, got {type(loader).__name__}")
    device = _device(forward, device)
    start = time.perf_counter()
    # the loss summed on the device in float64 (as the float additions it replaces), read once after the loop: a
    # read per batch would wait for the GPU at every step
    total, batches, seeds, nodes, edges = None, 0, 0, 0, 0
    for batch in (progress(loader) if progress is not None else loader):
        optimizer.zero_grad(set_to_none=True)
        value = seed_loss(forward, batch, device, loss)
        value.backward()
        optimizer.step()
        value = value.detach().double()
        total = value if total is None else total + value
        batches += 1
        seeds += int(batch.batch_size) if hasattr(batch, "batch_size") else batch.num_nodes
        nodes += batch.num_nodes
        edges += batch.edge_index.size(1)
        if max_batches is not None and batches >= max_batches:
            break
    if batches == 0:  # a loss of 0.0 over no batch would look like a perfect fit
        raise ValueError("train_epoch: the loader gave no batches (no seed nodes? an empty training split?); "
                         "nothing was trained")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = float(total)
    return {"loss": total / max(batches, 1), "batches": batches, "seeds": seeds, "seconds": time.perf_counter() - start,
            "mean_batch_nodes": nodes / max(batches, 1), "mean_batch_edges": edges / max(batches, 1)}
