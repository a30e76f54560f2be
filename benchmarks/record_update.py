"""One recorder update on its own: ``RunningStats`` against the reducing design it replaced, side by side.

    python benchmarks/record_update.py --json update.json

``RunningStats.update`` (``modgraph.record.stats``) adds a batch of weights ``[N, D]`` elementwise into
accumulators with one row per sample (seven flat passes) and reduces the rows once per epoch. The design before
commit ``037c7d9`` reduced every batch over its samples instead: shifted values, matrix products with a row of ones
for the three sums, NumPy's axis-0 minimum and maximum. :class:`ReducingStats` is that update, kept here as the
reference; both are checked to give the same sums, minima and maxima before timing. The weights are the gate of the
paper's Vehicle MLP (``[508, 30, 4]``, sigmoid values; random, the cost does not depend on them). Interleaved
repetitions, medians, ratio ours / reference. No goal: this is the measurement behind a design decision
(docs/pruning.md, "Recording overhead"); what recording costs during training is ``record_overhead.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import interleaved, machine, positive_int, row  # noqa: E402

from modgraph.io import atomic_write_text  # noqa: E402
from modgraph.record.stats import RunningStats  # noqa: E402


class ReducingStats:
    """The update of ``RunningStats`` before ``037c7d9`` (CPU path): every batch reduced over its samples."""

    def __init__(self, size: int, threshold: float):
        self.threshold, self.count, self.shift = float(threshold), 0, None
        self.partial = torch.zeros(3, 1, size)  # float32 sums of d, d^2, [w < t]
        self.min = torch.full((size,), float("inf"))
        self.max = torch.full((size,), float("-inf"))
        self._ones = torch.ones(1, 0)

    @torch.no_grad()
    def update(self, w: torch.Tensor) -> None:
        w = w.reshape(w.shape[0], -1).float()  # (N, D)
        n = w.shape[0]
        if self._ones.shape[1] != n:
            self._ones = w.new_ones(1, n)
        ones = self._ones
        if self.shift is None:
            self.shift = ones @ w / n
        self.count += n
        d = w - self.shift
        self.partial[0].addmm_(ones, d)
        self.partial[1].addmm_(ones, d.mul_(d))
        self.partial[2].addmm_(ones, torch.lt(w, self.threshold, out=d))
        a, lo, hi = w.contiguous().numpy(), self.min.numpy(), self.max.numpy()
        np.minimum(lo, a.min(axis=0), out=lo)
        np.maximum(hi, a.max(axis=0), out=hi)


def check_same(batches: list[torch.Tensor], threshold: float) -> None:
    """Both designs summarise the same batches alike (else the comparison would mean nothing)."""
    shape = tuple(batches[0].shape[1:])
    ours, ref = RunningStats(shape, threshold), ReducingStats(int(np.prod(shape)), threshold)
    for w in batches:
        ours.update(w)
        ref.update(w)
    got = ours.summary()
    n = ref.count
    mean = (ref.shift.squeeze(0) + ref.partial[0, 0] / n).view(shape)
    torch.testing.assert_close(got.mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.min, ref.min.view(shape))
    torch.testing.assert_close(got.max, ref.max.view(shape))
    torch.testing.assert_close(got.under, (ref.partial[2, 0] / n).view(shape))


def run(batch: int = 508, shape: tuple[int, ...] = (30, 4), updates: int = 200, reps: int = 11,
        threshold: float = 0.1, seed: int = 0) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    batches = [torch.sigmoid(torch.randn(batch, *shape, generator=gen)) for _ in range(4)]
    check_same(batches, threshold)
    ours, ref = RunningStats(shape, threshold), ReducingStats(int(np.prod(shape)), threshold)

    def timed(stats):
        def sample() -> float:
            start = time.perf_counter()
            for i in range(updates):
                stats.update(batches[i % len(batches)])
            return (time.perf_counter() - start) / updates
        return sample

    for fn in (timed(ours), timed(ref)):  # warm-up: buffers, first allocations
        fn()
    samples = interleaved({"ours": timed(ours), "reference": timed(ref)}, reps)
    return [row(f"record_update/[{batch}, {', '.join(map(str, shape))}]", samples["ours"],
                "reducing update (before 037c7d9)", samples["reference"], None, unit="s per update",
                updates_per_sample=updates, threads=torch.get_num_threads())]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=positive_int, default=508, help="samples per update (default 508)")
    p.add_argument("--updates", type=positive_int, default=200, help="updates per timed sample (default 200)")
    p.add_argument("--reps", type=positive_int, default=11, help="interleaved repetitions (default 11)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", default=None, metavar="PATH")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(args.batch, updates=args.updates, reps=args.reps)
    for r in rows:
        print(f"{r['name']}: RunningStats {r['ours_s'] * 1e6:.1f} us, reducing {r['reference_s'] * 1e6:.1f} us per "
              f"update: ratio {r['ratio']:.3f}")
    if args.json:
        atomic_write_text(args.json, json.dumps({"results": rows, "machine": machine()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
