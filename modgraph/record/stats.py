r"""Running statistics of attention weights: count, sum, sum of squares, min, max, count under a threshold.

Bounded memory: one accumulator tensor per statistic, of the shape of one sample's weights (``[in, out]`` for a
neuron gate, ``[K, heads]`` for a branch gate, ``[E, heads]`` for a graph gate), never a tensor per sample.

The sums are *shifted* by the first batch's mean ``c`` (``sum(w - c)``, ``sum((w - c)^2)``, kept in float64), the
textbook remedy for the cancellation of ``E[w^2] - E[w]^2`` when the spread is small next to the mean:

.. math::
    \mu = c + \frac{S_1}{n}, \qquad \sigma^2 = \frac{S_2 - S_1^2 / n}{n}

(population variance, ``correction=0``). Each batch is reduced over its samples with a matrix product
``ones[1, N] @ w[N, D]`` (one fast kernel instead of a reduction over the outer dimension).
"""

from __future__ import annotations

from dataclasses import dataclass

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

    Shapes:
        update: weights ``[N, *shape]``; summary: :class:`EdgeStats` with tensors ``[*shape]``.
    """

    def __init__(self, shape: tuple[int, ...], threshold: float, device=None):
        self.shape = tuple(shape)
        self.threshold = float(threshold)
        self.count = 0
        size = 1
        for d in self.shape:
            size *= d
        self.shift: torch.Tensor | None = None  # (1, D): the first batch's mean
        self.s1 = torch.zeros(size, dtype=torch.float64, device=device)
        self.s2 = torch.zeros(size, dtype=torch.float64, device=device)
        self.under = torch.zeros(size, dtype=torch.float64, device=device)
        self.min = torch.full((size,), float("inf"), device=device)
        self.max = torch.full((size,), float("-inf"), device=device)

    @torch.no_grad()
    def update(self, w: torch.Tensor) -> None:
        if tuple(w.shape[1:]) != self.shape:
            raise ValueError(f"expected weights [N, {', '.join(map(str, self.shape))}], got {tuple(w.shape)}")
        w = w.reshape(w.shape[0], -1)  # (N, D)
        ones = w.new_ones(1, w.shape[0])
        if self.shift is None:
            self.shift = ones @ w / w.shape[0]
        d = w - self.shift
        self.count += w.shape[0]
        self.s1 += (ones @ d).squeeze(0)
        self.s2 += (ones @ (d * d)).squeeze(0)
        # indicator of w < t as sign(max(t - w, 0)): exact (t - w > 0 iff w < t for floats), and a cheaper
        # kernel than comparing to a bool tensor and casting it back
        under = (self.threshold - w).clamp_(min=0.0).sign_()
        self.under += (ones @ under).squeeze(0)
        torch.minimum(self.min, w.amin(0), out=self.min)
        torch.maximum(self.max, w.amax(0), out=self.max)

    def summary(self) -> EdgeStats:
        if self.count == 0:
            nan = torch.full(self.shape, float("nan"), device=self.s1.device)
            return EdgeStats(0, nan, nan.clone(), nan.clone(), nan.clone(), nan.clone())
        n = self.count
        mean = self.shift.squeeze(0).double() + self.s1 / n
        var = ((self.s2 - self.s1.square() / n) / n).clamp_(min=0.0)
        parts = (mean, var.sqrt(), self.min, self.max, self.under / n)
        return EdgeStats(n, *(p.float().reshape(self.shape).clone() for p in parts))
