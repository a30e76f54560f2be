"""Where the recorder's time goes in training, and the designs timed against it (docs/benchmarks.md, section 4).

    python benchmarks/record_breakdown.py                 # 15 interleaved repetitions of 200 steps
    python benchmarks/record_breakdown.py --reps 21 --json breakdown.json

The network and data are those of ``record_overhead.py`` (the paper's Vehicle MLP, 18 - 30 - 4, a full batch of 508
random rows, one thread). Two measurements, in one process:

* ``split``: 400 steps with and 400 without an ``EdgeRecorder`` (8 interleaved rounds), each timed in its two
  halves (forward; backward plus Adam), and every ``RunningStats.update`` timed where it runs; medians per step.
  Then the update alone, on the same ``[508, 30, 4]`` weights, 2000 times.
* ``designs``: training steps with the recorder as it is, with its accumulators capped at fewer rows (several
  passes per batch), and with two updates that reduce every batch over its samples into ``[1, D]`` accumulators
  (torch's ``sum``/``amin``/``amax``; ``ReducingStats`` of ``record_update.py``, NumPy's axis-0 minimum and
  maximum) - against steps without a recorder, interleaved; ratio of the medians. The reducing updates are
  checked to give the current update's statistics before timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record_overhead import network  # noqa: E402
from record_update import ReducingStats  # noqa: E402
from timing import interleaved, machine, positive_int  # noqa: E402

from modgraph.io import atomic_write_text  # noqa: E402
from modgraph.record import EdgeRecorder  # noqa: E402
from modgraph.record import stats as S  # noqa: E402


class TorchReducingStats(ReducingStats):
    """``ReducingStats`` with torch's reductions over the samples in place of matrix products and NumPy."""

    @torch.no_grad()
    def update(self, w: torch.Tensor) -> None:
        w = w.reshape(w.shape[0], -1).float()
        if self.shift is None:
            self.shift = w.mean(0, keepdim=True)
        self.count += w.shape[0]
        d = w - self.shift
        self.partial[0, 0] += d.sum(0)
        self.partial[1, 0] += d.mul_(d).sum(0)
        self.partial[2, 0] += torch.lt(w, self.threshold, out=d).sum(0)
        torch.minimum(self.min, w.amin(0), out=self.min)
        torch.maximum(self.max, w.amax(0), out=self.max)


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    x, y = torch.randn(508, 18), torch.randint(0, 4, (508,))
    net = network(18, 30, 4)
    return net, torch.optim.Adam(net.parameters(), lr=0.01), x, y


def split(steps: int = 400, rounds: int = 8) -> dict:
    net, opt, x, y = _setup()
    inside: list[float] = []
    original = S.RunningStats.update

    def timed_update(self, w):
        start = time.perf_counter()
        original(self, w)
        inside.append(time.perf_counter() - start)

    def run(n, fw, bw):
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            loss = F.cross_entropy(net(x), y)
            t1 = time.perf_counter()
            loss.backward()
            opt.step()
            bw.append(time.perf_counter() - t1)
            fw.append(t1 - t0)

    def recorded_run(n, fw, bw):
        S.RunningStats.update = timed_update
        try:
            with EdgeRecorder().attach(net):
                run(n, fw, bw)
        finally:
            S.RunningStats.update = original

    run(50, [], [])
    times = {"recorded": ([], []), "plain": ([], [])}
    for r in range(rounds):  # interleaved: recorded, plain, plain, recorded, ...
        for name in (("recorded", "plain") if r % 2 == 0 else ("plain", "recorded")):
            (recorded_run if name == "recorded" else run)(steps // rounds, *times[name])
    recorded = tuple(statistics.median(t) for t in times["recorded"])
    plain = tuple(statistics.median(t) for t in times["plain"])
    alone = S.RunningStats((30, 4), 0.1)
    w = torch.sigmoid(torch.randn(508, 30, 4))
    alone.update(w)
    start = time.perf_counter()
    for _ in range(2000):
        alone.update(w)
    return {"update_in_training_s": statistics.median(inside), "update_alone_s": (time.perf_counter() - start)
            / 2000, "forward_s": {"recorded": recorded[0], "plain": plain[0]},
            "backward_adam_s": {"recorded": recorded[1], "plain": plain[1]}}


def _check_same(reducing_class) -> None:
    gen = torch.Generator().manual_seed(1)
    batches = [torch.sigmoid(torch.randn(508, 30, 4, generator=gen)) for _ in range(3)]
    ours, ref = S.RunningStats((30, 4), 0.1), reducing_class(120, 0.1)
    for w in batches:
        ours.update(w)
        ref.update(w)
    got = ours.summary()
    torch.testing.assert_close(got.mean.reshape(-1), ref.shift[0] + ref.partial[0, 0] / ref.count)
    torch.testing.assert_close(got.min.reshape(-1), ref.min)
    torch.testing.assert_close(got.max.reshape(-1), ref.max)
    torch.testing.assert_close(got.under.reshape(-1), ref.partial[2, 0] / ref.count)


def designs(reps: int, steps: int = 200) -> list[dict]:
    net, opt, x, y = _setup()

    def train():
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
        return (time.perf_counter() - start) / steps

    def with_rows(rows):
        def sample():
            old = S.RunningStats.ROW_BUDGET
            S.RunningStats.ROW_BUDGET = rows * 120
            try:
                rec = EdgeRecorder()
                with rec.attach(net):
                    t = train()
                rec.epoch_end()
                return t
            finally:
                S.RunningStats.ROW_BUDGET = old
        return sample

    def with_reducing(reducing_class):
        _check_same(reducing_class)

        def sample():
            stats = reducing_class(120, 0.1)
            handle = net.gates()[0].register_weight_hook(lambda gate, w, context: stats.update(w.detach()))
            try:
                return train()
            finally:
                handle.remove()
        return sample

    train()
    candidates = {"none": train, "current (508 rows)": with_rows(508)}
    for rows in (254, 128, 64):
        candidates[f"{rows} rows"] = with_rows(rows)
    candidates["reducing, torch"] = with_reducing(TorchReducingStats)
    candidates["reducing, NumPy"] = with_reducing(ReducingStats)
    samples = interleaved(candidates, reps)
    base = statistics.median(samples["none"])
    return [{"name": name, "ours_s": statistics.median(v), "reference": "no recorder", "reference_s": base,
             "ratio": statistics.median(v) / base, "steps": steps, "reps": reps}
            for name, v in samples.items() if name != "none"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=positive_int, default=15, help="interleaved repetitions (default 15)")
    p.add_argument("--json", default=None, metavar="PATH")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = {"results": designs(args.reps), "split": split(), "machine": machine()}
    s = out["split"]
    print(f"update: {s['update_in_training_s'] * 1e6:.0f} us in training, {s['update_alone_s'] * 1e6:.0f} us alone")
    for part in ("forward_s", "backward_adam_s"):
        print(f"{part[:-2]}: {s[part]['recorded'] * 1e6:.0f} us recorded, {s[part]['plain'] * 1e6:.0f} us plain")
    print(f"{'no recorder':>20}: {out['results'][0]['reference_s'] * 1e6:7.0f} us per step")
    for r in out["results"]:
        print(f"{r['name']:>20}: {r['ours_s'] * 1e6:7.0f} us per step, ratio {r['ratio']:.3f}")
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
