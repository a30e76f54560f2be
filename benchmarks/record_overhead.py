"""What recording every attention weight costs during training: time with and without an ``EdgeRecorder``.

Two measurements, each as interleaved repetitions (A B B A A B ...) so that load changes on a shared machine hit
both sides alike, reported as medians:

* ``step``: one training step (forward, backward, Adam) of the paper's attention MLP on a full batch;
* ``fit``: a whole ``modgraph.train.fit`` run (training steps plus validation every 5 steps, with the recorder
  paused during validation and an epoch closed every 10 steps), the way ``experiments/prune.py`` trains.

The default shape is the Vehicle network of the paper (18 - 30 - 4, 508 training rows); the data are random (the
cost does not depend on the values). The goal is a ratio of at most 1.10.

The ratio of one process does not repeat in the next: on the 2-core machine of ``docs/benchmarks.md`` the same
code measured 1.01 in one run and 1.24 in the next. So the measurement runs in ``--processes`` fresh processes
(default 5), one after the other, and reports per measurement the median of their ratios (``ratio``, each
process's in ``process_ratios``) and the medians of their times.

Example:
    python benchmarks/record_overhead.py --processes 5 --reps 11 --json record.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import networkx as nx
import torch
import torch.nn.functional as F

import modgraph as mg
from modgraph.io import atomic_write_text
from modgraph.record import EdgeRecorder
from modgraph.train import fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import add_processes_option, positive_int, resolve_device, rows_of_processes, synchronize  # noqa: E402


def network(features: int, hidden: int, classes: int) -> mg.ModuleGraph:
    g = nx.DiGraph()
    g.add_node("x", op="input", features=features)
    g.add_node("h", op="linear", out_features=hidden, activation="sigmoid")
    g.add_node("y", op="linear", out_features=classes)
    g.add_edge("x", "h")
    g.add_edge("h", "y", attention="sigmoid")
    return mg.ModuleGraph(g)


def time_steps(net, opt, x, y, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
    synchronize(x.device)
    return (time.perf_counter() - start) / steps


def time_fit(net, x, y, xv, yv, steps: int, rec: EdgeRecorder | None) -> float:
    def evaluate(n):
        return (n(xv).argmax(-1) == yv).float().mean().item()

    synchronize(x.device)
    start = time.perf_counter()
    fit(net, lambda n: F.cross_entropy(n(x), y), evaluate, steps=steps, eval_every=5, recorder=rec,
        record_every=None if rec is None else 10)  # the recorder paused in validation, an epoch every 10 steps
    synchronize(x.device)
    return (time.perf_counter() - start) / steps


def interleaved(run_plain, run_recorded, reps: int) -> tuple[float, float]:
    plain, recorded = [], []
    for r in range(reps):
        order = (run_plain, run_recorded) if r % 2 == 0 else (run_recorded, run_plain)
        for fn in order:
            (plain if fn is run_plain else recorded).append(fn())
    return statistics.median(plain), statistics.median(recorded)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", type=positive_int, default=18)
    p.add_argument("--hidden", type=positive_int, default=30)
    p.add_argument("--classes", type=positive_int, default=4)
    p.add_argument("--batch", type=positive_int, default=508, help="training rows per (full-batch) step")
    p.add_argument("--steps", type=positive_int, default=200, help="steps per timed repetition")
    p.add_argument("--reps", type=positive_int, default=9, help="interleaved repetitions per measurement")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--every", type=positive_int, default=1,
                   help="EdgeRecorder(every=...): record one forward in this many")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: cuda when available, else cpu (default: auto)")
    add_processes_option(p)
    p.add_argument("--json", default=None, metavar="PATH",
                   help='write {"results": [step row, fit row]} (name, ours_s, reference_s, ratio, ...)')
    args = p.parse_args(argv)
    rows = rows_of_processes(p, args, __file__, argv)
    if rows is not None:
        print(f"network {args.features}-{args.hidden}-{args.classes}, batch {args.batch}, {args.threads} thread(s), "
              f"every={args.every}, {args.processes} processes of {args.reps} interleaved repetitions: medians")
        for r in rows:
            print(f"{r['name'] + ':':5s} {r['reference_s'] * 1e6:8.1f} us without, {r['ours_s'] * 1e6:8.1f} us with "
                  f"the recorder per step: ratio {r['ratio']:.3f} (processes: "
                  f"{', '.join(f'{q:.3f}' for q in r['process_ratios'])})")
        write(args.json, rows)
        return 0
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    x, y = torch.randn(args.batch, args.features), torch.randint(0, args.classes, (args.batch,))
    xv, yv = torch.randn(args.batch // 3, args.features), torch.randint(0, args.classes, (args.batch // 3,))
    x, y, xv, yv = (t.to(device) for t in (x, y, xv, yv))

    net = network(args.features, args.hidden, args.classes).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    rec = EdgeRecorder(every=args.every)
    time_steps(net, opt, x, y, 50)  # warm-up (compiles the forward, allocates)

    def plain_steps():
        return time_steps(net, opt, x, y, args.steps)

    def recorded_steps():
        with rec.attach(net):
            t = time_steps(net, opt, x, y, args.steps)
        rec.epoch_end()
        return t

    shape = {"network": f"{args.features}-{args.hidden}-{args.classes}", "batch": args.batch, "every": args.every,
             "steps": args.steps, "reps": args.reps, "threads": args.threads, "device": str(device),
             "unit": "s per step"}
    rows = []

    def row(name, without, recorded):
        rows.append({"name": name, "ours_s": recorded, "reference": "training without recorder",
                     "reference_s": without, "ratio": recorded / without, **shape})

    a, b = interleaved(plain_steps, recorded_steps, args.reps)
    row("step", a, b)
    print(f"network {args.features}-{args.hidden}-{args.classes}, batch {args.batch}, {args.threads} thread(s), "
          f"every={args.every}, {args.reps} interleaved repetitions, medians")
    print(f"step: {a * 1e6:8.1f} us without, {b * 1e6:8.1f} us with the recorder: ratio {b / a:.3f}")

    def plain_fit():
        return time_fit(network(args.features, args.hidden, args.classes).to(device), x, y, xv, yv, args.steps, None)

    def recorded_fit():
        n = network(args.features, args.hidden, args.classes).to(device)
        r = EdgeRecorder(every=args.every)
        with r.attach(n):
            return time_fit(n, x, y, xv, yv, args.steps, r)

    a, b = interleaved(plain_fit, recorded_fit, args.reps)
    row("fit", a, b)
    print(f"fit:  {a * 1e6:8.1f} us without, {b * 1e6:8.1f} us with the recorder per step: ratio {b / a:.3f}")
    write(args.json, rows)
    return 0


def write(path, rows: list[dict]) -> None:
    if path:
        atomic_write_text(path, json.dumps({"results": rows}, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
