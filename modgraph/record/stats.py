r"""Running statistics of attention weights: count, sum, sum of squares, min, max, count under a threshold.

Bounded memory: one accumulator tensor per statistic, of the shape of one sample's weights (``[in, out]`` for a
neuron gate, ``[K, heads]`` for a branch gate, ``[E, heads]`` for a graph gate), never a tensor per sample.

The sums are *shifted* by the first batch's mean ``c`` (``sum(w - c)``, ``sum((w - c)^2)``; float32 partial sums,
moved into float64 totals every ``FLUSH`` samples), the textbook remedy for the cancellation of
``E[w^2] - E[w]^2`` when the spread is small next to the mean:

.. math::
    \mu = c + \frac{S_1}{n}, \qquad \sigma^2 = \frac{S_2 - S_1^2 / n}{n}

(population variance, ``correction=0``). Each batch is reduced over its samples with a matrix product
``ones[1, N] @ w[N, D]`` (one fast kernel instead of a reduction over the outer dimension).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

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

    Per call: one pass for the shifted values ``d = w - c``, one for ``d^2``, one for the indicator ``w < t``, three
    in-place matrix products ``ones @ .`` into float32 partial sums, and two reductions for min and max. The
    partial sums are flushed into float64 totals every ``FLUSH`` samples, so counts stay exact (float32 holds
    integers exactly up to ``2^24``) and long epochs lose no precision.

    Shapes:
        update: weights ``[N, *shape]``; summary: :class:`EdgeStats` with tensors ``[*shape]``.
    """

    FLUSH = 1 << 22

    def __init__(self, shape: tuple[int, ...], threshold: float, device=None):
        self.shape = tuple(shape)
        self.threshold = float(threshold)
        self.count = 0
        size = 1
        for d in self.shape:
            size *= d
        self.shift: torch.Tensor | None = None  # (1, D): the first batch's mean
        f32 = dict(dtype=torch.float32, device=device)  # whatever the default dtype: weights are summed in float32
        self.partial = torch.zeros(3, 1, size, **f32)  # float32 sums of d, d^2, [w < t] since the flush
        self.pending = 0  # samples in `partial`
        self.totals = torch.zeros(3, size, dtype=torch.float64, device=device)
        self.flushed = False  # whether `totals` holds anything (an epoch of more than FLUSH samples)
        self.min = torch.full((size,), float("inf"), **f32)
        self.max = torch.full((size,), float("-inf"), **f32)
        self._ones = torch.ones(1, 0, **f32)

    def reset(self) -> None:
        """Forget everything added (the buffers are kept: a recorder reuses them epoch after epoch)."""
        self.count = self.pending = 0
        self.shift = None
        self.partial.zero_()
        if self.flushed:
            self.totals.zero_()
            self.flushed = False
        self.min.fill_(float("inf"))
        self.max.fill_(float("-inf"))

    @torch.no_grad()
    def update(self, w: torch.Tensor) -> None:
        """Add a batch of weights ``[N, *shape]`` (``N`` samples) to the running sums, minima and maxima."""
        if tuple(w.shape[1:]) != self.shape:
            raise ValueError(f"expected weights [N, {', '.join(map(str, self.shape))}], got {tuple(w.shape)}")
        w = w.reshape(w.shape[0], -1).float()  # (N, D)
        n = w.shape[0]
        if self._ones.shape[1] != n:
            self._ones = w.new_ones(1, n)
        ones = self._ones
        if self.shift is None:
            self.shift = ones @ w / n
        if self.pending + n > self.FLUSH:
            self._flush()
        self.count += n
        self.pending += n
        d = w - self.shift
        if n == 1:  # one sample (a graph gate's edges): the sums are elementwise, no products or reductions
            self.partial[0].add_(d)
            self.partial[1].addcmul_(d, d)
            self.partial[2].add_(torch.lt(w, self.threshold, out=d))
            torch.minimum(self.min, w[0], out=self.min)
            torch.maximum(self.max, w[0], out=self.max)
            return
        self.partial[0].addmm_(ones, d)
        self.partial[1].addmm_(ones, d.mul_(d))
        self.partial[2].addmm_(ones, torch.lt(w, self.threshold, out=d))  # the indicator, written as 0./1.
        if w.device.type == "cpu":  # NumPy's reductions over the outer axis are several times faster than torch's
            a, lo, hi = w.contiguous().numpy(), self.min.numpy(), self.max.numpy()
            np.minimum(lo, a.min(axis=0), out=lo)
            np.maximum(hi, a.max(axis=0), out=hi)
        else:
            torch.minimum(self.min, w.amin(0), out=self.min)
            torch.maximum(self.max, w.amax(0), out=self.max)

    def _flush(self) -> None:
        self.totals += self.partial.squeeze(1).double()
        self.partial.zero_()
        self.pending = 0
        self.flushed = True

    def summary(self) -> EdgeStats:
        """The statistics of everything added so far (``NaN`` where nothing was added)."""
        if self.count == 0:
            nan = self.min.new_full(self.shape, float("nan"))
            return EdgeStats(0, nan, nan.clone(), nan.clone(), nan.clone(), nan.clone())
        if self.flushed:  # a long epoch: its float64 totals (float32 sums would round the counts)
            self._flush()
            (s1, s2, under), shift = self.totals, self.shift.squeeze(0).double()
        else:  # every sample is still in the float32 partial sums: exact counts, no float64 pass needed
            (s1, s2, under), shift = self.partial.squeeze(1), self.shift.squeeze(0)
        n = self.count
        out = self.min.new_empty(5, self.min.numel())  # mean, std, min, max, under: one float32 block
        out[0].copy_(torch.add(shift, s1, alpha=1.0 / n))
        _sqrt_(out[1].copy_(torch.mul(s1, s1).mul_(-1.0 / n).add_(s2).div_(n).clamp_(min=0.0)))
        out[2].copy_(self.min)
        out[3].copy_(self.max)
        torch.div(under, n, out=out[4]) if under.dtype == out.dtype else out[4].copy_(under / n)
        return EdgeStats(n, *out.view(5, *self.shape).unbind(0))  # views of this fresh block


def _sqrt_(t: torch.Tensor) -> torch.Tensor:
    """In-place square root. On the CPU through NumPy: torch 2.13's CPU kernel takes ~25x longer on zeros (a zero
    variance, e.g. every entry of a gate recorded once per epoch) than on other numbers; NumPy's does not."""
    if t.device.type == "cpu" and t.is_contiguous():
        a = t.numpy()
        np.sqrt(a, out=a)
        return t
    return t.sqrt_()
