r"""Multi-process data parallelism through ``torch.distributed``, launched by ``torchrun``.

``torchrun --nproc_per_node 2 script.py`` starts two processes and gives each ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them, picks the device
(``cuda:LOCAL_RANK`` or the CPU) and joins the process group with the backend that fits it (``nccl`` on GPUs,
``gloo`` on CPUs). Run without ``torchrun`` it returns a one-process context, so the same script runs both ways.

Two ways of splitting work:

* **data parallel** (one model, mini-batches): :func:`wrap` puts the network in
  :class:`torch.nn.parallel.DistributedDataParallel`, which averages the gradients over the processes in
  ``backward``; :func:`seed_sampler` gives every process its own share of the seed nodes
  (:class:`torch.utils.data.DistributedSampler`: shuffled per epoch, padded to equal shares so every process runs
  the same number of steps); metrics are summed with :func:`all_reduce_sum`, so every process selects the same
  model; :func:`parameter_spread` checks that the replicas agree.
* **independent jobs** (a sweep of ``(dataset, method, fold)`` runs): :func:`run_jobs` spreads the jobs over the
  processes (round robin, or by their ``cost``: the dearest first, each to the least loaded process; see
  :func:`shard_jobs`) and gathers the results, in job order, on every process.

Only the process with ``ctx.is_main`` (rank 0) should write outputs.
"""

from __future__ import annotations

import datetime
import gc
import os
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import torch
import torch.distributed as dist
import torch.nn as nn
from torch import Tensor
from torch.utils.data import DistributedSampler

from .. import checks

__all__ = ["DistContext", "all_reduce_sum", "cleanup", "gather_objects", "init_distributed", "parameter_spread",
           "resolve_device", "run_jobs", "seed_sampler", "shard_jobs", "wrap"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, its ``device`` and the ``backend``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: no process group (a single process)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes outputs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group is in use (``False`` for a single process)."""
        return self.backend is not None


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: ``cuda:local_rank`` when CUDA is available, else the CPU; ``cuda`` without a GPU is an error, and so
    is a local rank without a GPU of its own (two processes on one GPU: nccl refuses it, later and less clearly)."""
    local_rank = checks.integer("resolve_device: local_rank", local_rank, least=0)
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: no CUDA device is available (use 'cpu' or 'auto')")
        if ":" in name:
            return torch.device(name)
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise ValueError(f"device {device!r}: local rank {local_rank} has no GPU of its own ({count} on this "
                             f"node); start at most {count} processes per node (torchrun --nproc_per_node {count})")
        return torch.device(f"cuda:{local_rank}")
    if name != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return torch.device("cpu")


def init_distributed(device: str | torch.device = "auto", timeout_s: float = 600.0) -> DistContext:
    """Join the process group described by ``torchrun``'s environment, or return a one-process context.

    Args:
        device: ``auto``, ``cpu`` or ``cuda``; with CUDA every process takes ``cuda:LOCAL_RANK``.
        timeout_s: how long a collective may wait for the other processes.

    The backend is ``nccl`` for CUDA devices and ``gloo`` for the CPU (``init_method="env://"``).
    """
    timeout_s = checks.number("init_distributed: timeout_s", timeout_s, low=0, low_open=True, why="seconds")
    world_size, rank, local_rank = (_env_int(k, d) for k, d in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size <= 1 and not dist.is_initialized():
        return DistContext(0, 1, 0, dev, None)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, dist.get_backend())


def _env_int(key: str, default: int) -> int:
    """The environment variable ``key`` (torchrun sets it) as a non-negative integer, ``default`` when unset."""
    text = os.environ.get(key)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"init_distributed: the environment variable {key} must be a non-negative integer (torchrun "
                         f"sets it), got {text!r}")
    return value


def _check_ctx(who: str, ctx) -> None:
    if not isinstance(ctx, DistContext):
        raise TypeError(f"{who}: ctx must be a DistContext (init_distributed() returns it), got {type(ctx).__name__}")


def cleanup(failed: bool = False) -> None:
    """Leave the process group (if any); call at the end of a distributed script.

    Let go of every ``DistributedDataParallel`` wrapper first (build them in a function that has returned): a
    wrapper that outlives the process group destroys the group's last reference later, while holding Python's
    lock, and a gloo thread that still needs that lock can then hang the process at exit. Collected garbage and a
    barrier (no collective still in flight) come first here.

    ``failed``: this process is leaving because of an error (call it so from the script's error path). There is no
    barrier then - the other processes may be waiting in a collective this one will never join, and a barrier
    would hang the whole job with no error shown - only the group is destroyed; the process should then exit
    promptly (``experiments/common.py``'s ``run_main`` prints the error line and exits), so that ``torchrun``
    sees it fail and stops the other processes.
    """
    if dist.is_available() and dist.is_initialized():
        if failed:
            try:
                dist.destroy_process_group()
            except Exception:  # noqa: BLE001 - leaving anyway; the error being raised is the one to report
                pass
            return
        gc.collect()
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def wrap(net: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """``DistributedDataParallel(net)`` when several processes run, else ``net`` itself.

    Gradients are averaged over the processes during ``backward``; the replicas start from rank 0's parameters.
    Set ``find_unused_parameters`` when some parameters get no gradient in a step (attention switched off or a
    group frozen by the alternating schedule).
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"wrap: net must be a network (a torch.nn.Module), got {type(net).__name__}")
    _check_ctx("wrap", ctx)
    if not ctx.distributed or ctx.world_size == 1:
        return net
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=device_ids,
                                               find_unused_parameters=find_unused_parameters)


def seed_sampler(num_seeds: int, ctx: DistContext, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False) -> DistributedSampler:
    """This process's share of ``num_seeds`` seed positions, for ``NeighborLoader(..., sampler=...)``.

    ``torch.utils.data.DistributedSampler`` over ``range(num_seeds)``: shuffled with ``seed + epoch`` (call
    ``set_epoch``; :class:`modgraph.scale.minibatch.BatchStream` does), then process ``r`` takes positions
    ``r, r + world, ...``; the list is padded with its first positions to a multiple of the world size, so every
    process draws the same number of batches.
    """
    num_seeds = checks.integer("seed_sampler: num_seeds", num_seeds, least=0)
    _check_ctx("seed_sampler", ctx)
    seed = checks.integer("seed_sampler: seed", seed, why="a random seed")
    shuffle = checks.flag("seed_sampler: shuffle", shuffle, error=TypeError)
    drop_last = checks.flag("seed_sampler: drop_last", drop_last, error=TypeError)
    return DistributedSampler(range(num_seeds), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle,
                              seed=seed, drop_last=drop_last)


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """The sum of ``tensor`` over all processes (a copy; ``tensor`` itself when a single process runs)."""
    if not _active():
        return tensor
    out = tensor.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def gather_objects(obj, group=None) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (picklable objects), over ``group`` (default: all)."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out


@torch.no_grad()
def parameter_spread(net: nn.Module) -> float:
    """The largest ``|p - p_rank0|`` over every parameter and buffer: 0 when the replicas agree exactly."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"parameter_spread: net must be a network (a torch.nn.Module), got {type(net).__name__}")
    tensors = [t.detach().flatten() for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()]
    if not _active() or not tensors:
        return 0.0
    flat = torch.cat(tensors).double()
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    spread = (flat - reference).abs().max().reshape(1)
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    return float(spread)


def shard_jobs(jobs: Sequence[T], rank: int, world_size: int,
               cost: Sequence[float] | None = None) -> list[tuple[int, T]]:
    """The ``(index, job)`` pairs process ``rank`` runs.

    Without ``cost``: jobs ``rank, rank + world_size, ...`` (round robin). With a cost per job: the costliest job
    first, each to the process with the least work so far (ties: the lower rank), which every process computes
    alike; a process's jobs come in that order.
    """
    world_size = checks.integer("shard_jobs: world_size", world_size, least=1, why="the number of processes")
    rank = checks.integer("shard_jobs: rank", rank, least=0)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank {rank} of world_size {world_size}")
    if isinstance(jobs, (str, bytes)) or not hasattr(jobs, "__iter__"):
        raise TypeError(f"shard_jobs: jobs must be a list of jobs, got {type(jobs).__name__}")
    if cost is None:
        return [(i, job) for i, job in enumerate(jobs) if i % world_size == rank]
    if isinstance(cost, (str, bytes)) or not hasattr(cost, "__len__"):
        raise TypeError(f"shard_jobs: cost must be a list of numbers, one per job (or None), got "
                        f"{type(cost).__name__}")
    if len(cost) != len(jobs):
        raise ValueError(f"cost must give one number per job: {len(cost)} costs for {len(jobs)} jobs")
    for i, c in enumerate(cost):  # NaN would sort anywhere: every process computing the same shares is not assured
        checks.number(f"shard_jobs: cost[{i}]", c, low=0, why="the job's cost")
    load = [0.0] * world_size
    mine = []
    for i in sorted(range(len(jobs)), key=lambda j: (-float(cost[j]), j)):
        target = min(range(world_size), key=lambda r: (load[r], r))
        load[target] += float(cost[i])
        if target == rank:
            mine.append((i, jobs[i]))
    return mine


JOB_WAIT_S = 7 * 24 * 3600.0


def run_jobs(jobs: Sequence[T], fn: Callable[[T], R], ctx: DistContext | None = None,
             cost: Sequence[float] | None = None, wait_s: float = JOB_WAIT_S) -> list[R]:
    """Run independent jobs spread over the processes; every process returns all results, in job order.

    ``fn(job)`` must return a picklable result; ``cost`` (one number per job) balances the processes' work (see
    :func:`shard_jobs`). With one process this is ``[fn(job) for job in jobs]``.

    The processes meet only when each has finished its jobs, and one with less work waits for the others for as long
    as they run. So the results are gathered over a ``gloo`` group of their own whose collectives wait ``wait_s``
    seconds (default a week), not the process group's timeout (:func:`init_distributed`, 10 minutes), which a process
    with less work used to hit while the others still trained: the whole job then failed. A process that fails
    instead ends the job through ``torchrun``, as before.
    """
    if ctx is not None:
        _check_ctx("run_jobs", ctx)
    if not callable(fn):
        raise TypeError(f"run_jobs: fn must be callable as fn(job) -> result, got {type(fn).__name__}")
    rank, world = (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)
    wait_s = checks.number("wait_s", wait_s, low=0, low_open=True, why="seconds")
    group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=wait_s)) if _active() else None
    mine = [(i, fn(job)) for i, job in shard_jobs(jobs, rank, world, cost)]
    results: list = [None] * len(jobs)
    for part in gather_objects(mine, group):
        for i, result in part:
            results[i] = result
    if group is not None:
        dist.destroy_process_group(group)
    return results
