r"""Running statistics of attention weights: count, sum, sum of squares, min, max, count under a threshold.

Bounded memory: one accumulator per statistic of at most ``rows`` rows of one sample's weights (``[rows, in * out]``
for a neuron gate, ``[rows, K * heads]`` for a branch gate, ``[1, E * heads]`` for a graph gate), where ``rows`` is
the largest batch seen, capped so that an accumulator holds at most ``ROW_BUDGET`` numbers. Nothing grows with the
number of batches.

Each batch is added **elementwise**: row ``r`` of a batch goes into row ``r`` of the accumulators (a batch larger
than the accumulators goes in as several chunks of rows), so a recorded forward costs a handful of flat, vectorised
passes (subtract, add, multiply-add, compare, add, minimum, maximum) and no reduction. The reduction over the rows
happens once per epoch, in :meth:`RunningStats.summary`. (Reducing every batch over its samples instead, the design
before, takes 1.6x as long per update on the CPU: ``benchmarks/record_update.py``.)

The sums are *shifted* by the first batch's mean ``c`` (``sum(w - c)``, ``sum((w - c)^2)``; float32 accumulators,
moved into float64 totals every ``FLUSH`` additions), the textbook remedy for the cancellation of
``E[w^2] - E[w]^2`` when the spread is small next to the mean:

.. math::
    \mu = c + \frac{S_1}{n}, \qquad \sigma^2 = \frac{S_2 - S_1^2 / n}{n}

(population variance, ``correction=0``).

An epoch whose only batch is a **single sample** (a graph gate's ``[1, E * heads]`` in full-batch training, one
recorded forward per epoch) is not added at all: the batch is copied aside, and its values are the statistics
(mean and extremes equal the weights, the spread is 0). A second batch adds the held one first, so the result is
the same either way; the accumulators are touched, and cleared at the epoch's end, only when something was added.

Every statistic is elementwise, so the accumulators follow the weights' **memory order**: a batch that is a permuted
view (the neuron-level attention's fused kernel hands out ``[B, in, out]`` as the transpose of its ``[B, out, in]``
result) is added as it lies in memory, with no copy, and :meth:`RunningStats.summary` permutes the results back to
``shape`` once per epoch. The order is taken from the first batch; a later batch in another layout is copied into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import checks

STAT_FIELDS = ("count", "mean", "std", "min", "max", "under")


@dataclass
class EdgeStats:
    """Summary of one gate's weights over the samples of one epoch; every tensor has the gate's stats shape.

    Attributes:
        count: number of samples summarised (the same for every entry of the gate).
        mean, std: mean and population standard deviation (``correction=0``) of each entry's weight.
        min, max: extreme values seen.
        under: fraction of samples whose weight was below the recorder's threshold.
    """

    count: int
    mean: torch.Tensor
    std: torch.Tensor
    min: torch.Tensor
    max: torch.Tensor
    under: torch.Tensor


class RunningStats:
    """Accumulate ``[N, *shape]`` batches of weights entry by entry (``N`` samples per call).

    Per call and per chunk of at most ``rows`` samples: one pass for the shifted values ``d = w - c``, elementwise
    float32 additions of ``d``, ``d^2`` and the indicator ``w < t`` into the accumulators, and elementwise minimum
    and maximum. Every ``FLUSH`` additions the float32 accumulators are reduced into float64 totals, so counts stay
    exact (float32 holds integers exactly up to ``2^24``) and long epochs lose no precision.

    ``dtype``: of the accumulators, ``torch.float32`` (weights in float32, float16 or bfloat16 are exact in it) or
    ``torch.float64`` (what :class:`~modgraph.record.EdgeRecorder` takes for float64 weights: in float32 their
    spread and their side of the threshold would round away). The statistics are float32 either way.

    Shapes:
        update: weights ``[N, *shape]``; summary: :class:`EdgeStats` with tensors ``[*shape]``.
    """

    FLUSH = 1 << 12  # additions into one accumulator row before its sums move into the float64 totals
    ROW_BUDGET = 1 << 20  # numbers per accumulator at most (4 MiB of float32): caps the rows of wide gates

    def __init__(self, shape: tuple[int, ...], threshold: float, device=None, dtype: torch.dtype = torch.float32):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"RunningStats: dtype must be torch.float32 or torch.float64, got {dtype}")
        if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list, torch.Size)):
            raise TypeError(f"RunningStats: shape must be a tuple of sizes (the per-sample weights' shape, e.g. "
                            f"(in, out)), got {shape!r:.80}")
        for i, d in enumerate(shape):
            checks.integer(f"RunningStats: shape[{i}]", d, least=0, why="a size")
        threshold = checks.number("RunningStats: threshold", threshold, low=0, high=1)
        try:
            device = None if device is None else torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"RunningStats: device must be a torch.device such as 'cpu' or 'cuda:0' (or None), got "
                             f"{device!r}") from None
        self.dtype = dtype
        self.shape = tuple(int(d) for d in shape)
        self.threshold = threshold
        self.count = 0
        size = 1
        for d in self.shape:
            size *= d
        self.size = size
        self.max_rows = max(1, self.ROW_BUDGET // max(size, 1))
        self.shift: torch.Tensor | None = None  # (1, D): the first batch's mean
        self._f32 = dict(dtype=dtype, device=device)  # accumulators: float32 whatever the default dtype, or float64
        self._out = dict(dtype=torch.float32, device=device)  # the statistics: float32 always
        self.rows = 0  # accumulator rows, grown to the largest batch seen (at most max_rows)
        self.sums = torch.zeros(3, 0, size, **self._f32)  # float32 sums of d, d^2, [w < t] per row since the flush
        self.lo = torch.zeros(0, size, **self._f32)  # elementwise minimum per row
        self.hi = torch.zeros(0, size, **self._f32)  # elementwise maximum per row
        self._buf = torch.zeros(0, size, **self._f32)  # scratch for d and the indicator
        self.pending = 0  # additions into the busiest accumulator row since the flush
        self.totals = torch.zeros(3, size, dtype=torch.float64, device=device)
        self._device = self.totals.device  # where the weights must be (cuda -> cuda:0: as a tensor's device reads)
        self.flushed = False  # whether `totals` holds anything (an epoch of more than FLUSH additions per row)
        self._t = torch.full((), self.threshold, **self._f32)
        self.order: tuple[int, ...] | None = None  # the per-sample dims in memory order (set by the first batch)
        self._single = torch.empty(0, size, **self._f32)
        self._dirty = False  # whether the accumulators hold anything since the last reset

    @property
    def _held(self) -> bool:
        """Whether the epoch so far is one single-sample batch, kept in ``_single`` and not added (nothing was)."""
        return self.count > 0 and not self._dirty

    @property
    def device(self) -> torch.device:
        return self.totals.device

    def reset(self) -> None:
        """Forget everything added (the buffers are kept: a recorder reuses them epoch after epoch)."""
        self.count = self.pending = 0
        self.shift = None
        if self._dirty:
            self.sums.zero_()
            self.lo.fill_(float("inf"))
            self.hi.fill_(float("-inf"))
            self._dirty = False
        if self.flushed:
            self.totals.zero_()
            self.flushed = False

    def _grow(self, rows: int) -> None:
        """Accumulators of ``rows`` rows, the old rows kept (new rows: zero sums, +-inf extremes)."""
        old = self.rows
        sums = torch.zeros(3, rows, self.size, **self._f32)
        lo = torch.full((rows, self.size), float("inf"), **self._f32)
        hi = torch.full((rows, self.size), float("-inf"), **self._f32)
        sums[:, :old], lo[:old], hi[:old] = self.sums, self.lo, self.hi
        self.sums, self.lo, self.hi = sums, lo, hi
        self._buf = torch.empty(rows, self.size, **self._f32)
        self.rows = rows
        self._views = (self._buf, *self.sums.unbind(0), self.lo, self.hi)

    @torch.no_grad()
    def update(self, w: torch.Tensor) -> None:
        """Add a batch of weights ``[N, *shape]`` (``N`` samples) to the running sums, minima and maxima."""
        try:  # one cheap test on the hot path; the message is composed only on a failure
            bad = w.shape[1:] != self.shape or w.device != self._device or w.is_complex()
        except AttributeError:
            bad = True
        if bad:
            self._refuse(w)
        n = w.shape[0]
        if n == 0:
            return
        if self.order is None:
            self.order = _memory_order(w)
        w = w.permute(0, *(d + 1 for d in self.order)).reshape(n, self.size).to(self.dtype)  # (N, D), no copy in order
        if n == 1 and self.count == 0:  # perhaps the epoch's only batch: kept aside, added only if another follows
            if self._single.shape[0] != 1:
                self._single = torch.empty(1, self.size, **self._f32)
            self._single.copy_(w)
            self.count = 1
            return
        if self._held:
            self.count = 0
            self._add(self._single)
        self._add(w)

    def _refuse(self, w) -> None:
        """Raise the error naming why :meth:`update` cannot add ``w``."""
        want = f"[N, {', '.join(map(str, self.shape))}]"
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"RunningStats.update: expected the weights as a torch.Tensor {want}, got "
                            f"{type(w).__name__}")
        if w.dim() == 0 or tuple(w.shape[1:]) != self.shape:
            raise ValueError(f"expected weights {want}, got {tuple(w.shape)}")
        if w.is_complex():
            raise TypeError(f"RunningStats.update: weights must be real numbers, got {w.dtype}")
        raise ValueError(f"RunningStats.update: weights on {w.device}, but the statistics live on {self._device}; "
                         f"make a RunningStats(..., device={str(w.device)!r}) for them")

    def _add(self, w: torch.Tensor) -> None:
        """Add ``w`` ``[N, D]`` (memory order, in ``dtype``) to the accumulators."""
        n = w.shape[0]
        self._dirty = True
        if n > self.rows and self.rows < self.max_rows:
            self._grow(min(n, self.max_rows))
        if self.shift is None:
            self.shift = w.mean(0, keepdim=True)
        chunks = -(-n // self.rows)
        if self.pending + chunks > self.FLUSH:
            self._flush()
        self.count += n
        self.pending += chunks
        for start in range(0, n, self.rows):
            c = w if n == self.rows else w[start:start + self.rows]
            k = c.shape[0]
            # (slicing costs microseconds per tensor on the CPU: full batches use the whole buffers as they are)
            buf, s1, s2, under, lo, hi = self._views if k == self.rows else (t[:k] for t in self._views)
            d = torch.sub(c, self.shift, out=buf)
            s1.add_(d)
            s2.addcmul_(d, d)
            under.add_(torch.lt(c, self._t, out=d))  # the indicator, written as 0./1.
            torch.minimum(lo, c, out=lo)
            torch.maximum(hi, c, out=hi)

    def _flush(self) -> None:
        self.totals += self.sums.sum(1, dtype=torch.float64)
        self.sums.zero_()
        self.pending = 0
        self.flushed = True

    def summary(self) -> EdgeStats:
        """The statistics of everything added so far (``NaN`` where nothing was added)."""
        if self.count == 0:
            nan = torch.full(self.shape, float("nan"), **self._out)
            return EdgeStats(0, nan, nan.clone(), nan.clone(), nan.clone(), nan.clone())
        if self._held:  # one sample: its weights are the mean and both extremes, with no spread
            w, out = self._single[0], torch.empty(5, self.size, **self._out)
            out[0].copy_(w)
            out[1].zero_()
            out[2].copy_(w)
            out[3].copy_(w)
            out[4].copy_(torch.lt(w, self._t))
            return EdgeStats(1, *self._in_shape(out).unbind(0))
        if self.flushed or self.count >= 1 << 24:  # float64 totals: float32 sums would round the counts
            self._flush()
            (s1, s2, under), shift = self.totals, self.shift.squeeze(0).double()
        else:  # every sample is still in the float32 accumulators, fewer than 2^24 of them: exact counts
            sums = self.sums[:, 0] if self.rows == 1 else self.sums.sum(1)
            (s1, s2, under), shift = sums, self.shift.squeeze(0)
        n = self.count
        out = torch.empty(5, self.size, **self._out)  # mean, std, min, max, under: one float32 block
        out[0].copy_(torch.add(shift, s1, alpha=1.0 / n))
        _sqrt_(out[1].copy_(torch.mul(s1, s1).mul_(-1.0 / n).add_(s2).div_(n).clamp_(min=0.0)))
        if self.rows == 1:
            out[2].copy_(self.lo[0])
            out[3].copy_(self.hi[0])
        elif self.dtype == out.dtype:
            torch.amin(self.lo, 0, out=out[2])
            torch.amax(self.hi, 0, out=out[3])
        else:
            out[2].copy_(self.lo.amin(0))
            out[3].copy_(self.hi.amax(0))
        torch.div(under, n, out=out[4]) if under.dtype == out.dtype else out[4].copy_(under / n)
        return EdgeStats(n, *self._in_shape(out).unbind(0))  # views of this fresh block

    def _in_shape(self, out: torch.Tensor) -> torch.Tensor:
        """``[5, D]`` statistics in memory order -> ``[5, *shape]`` in the declared order."""
        if self.order is not None and self.order != tuple(range(len(self.shape))):  # back from memory order
            stored = tuple(self.shape[d] for d in self.order)
            inverse = tuple(self.order.index(d) for d in range(len(self.shape)))
            return out.view(5, *stored).permute(0, *(d + 1 for d in inverse)).contiguous()
        return out.view(5, *self.shape)


def _memory_order(w: torch.Tensor) -> tuple[int, ...]:
    """The dims after the first of ``w``, from the outermost in memory to the innermost: ``w.permute(0, *those + 1)``
    is contiguous when ``w`` is a permuted contiguous tensor (and the identity when ``w`` is contiguous)."""
    if w.is_contiguous():
        return tuple(range(w.dim() - 1))
    return tuple(sorted(range(w.dim() - 1), key=lambda d: (-w.stride(d + 1), d)))


def _sqrt_(t: torch.Tensor) -> torch.Tensor:
    """In-place square root. On the CPU through NumPy: torch 2.13's CPU kernel takes ~25x longer on zeros (a zero
    variance, e.g. every entry of a gate recorded once per epoch) than on other numbers; NumPy's does not."""
    if t.device.type == "cpu" and t.is_contiguous():
        a = t.numpy()
        np.sqrt(a, out=a)
        return t
    return t.sqrt_()
