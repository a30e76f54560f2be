"""Training time of the attention MLP against the weight-decay MLP, side by side (the paper's attention took 2-3x).

    python benchmarks/uci_time.py                          # all six data sets, 10 folds x 3 candidates each
    python benchmarks/uci_time.py --dataset vehicle --reps 9 --json time.json
    python benchmarks/uci_time.py --reference        # also the attention program without the fused kernel

Both methods are built exactly as in experiments/uci.py (one batched program of folds x seeds x candidates
networks) and run the same number of optimisation steps, without early stopping, in interleaved repetitions (wd,
attention, wd, attention, ...) so that other jobs on the machine slow both alike; the medians are compared. The
attention network is timed in each kind of phase of the paper's alternating schedule (attention off; attention
trained with the main network frozen; main trained with attention frozen; joint), and the schedule's ratio weighs
the phases by their share of the alternating budget. With ``--reference`` the attention program is also timed, in
the same interleaved loop, with the fused neuron-attention kernel switched off (the modules run as written), which
measures what the kernel saves under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import resolve_device, synchronize  # noqa: E402

from modgraph.benchmarks.uci import Protocol, build_program  # noqa: E402
from modgraph.data import UCI_NAMES, load_uci  # noqa: E402
from modgraph.errors import ModgraphError  # noqa: E402
from modgraph.io import atomic_write_text  # noqa: E402
from modgraph.merge import fused_neuron_attention  # noqa: E402
from modgraph.train import Phase, make_schedule  # noqa: E402

ATTENTION_PHASES = {  # phase kinds of the alternating schedule
    "attention off": Phase("main", "main", False, 1),
    "attention only": Phase("attention", "attention", True, 1),
    "main, attention frozen": Phase("main", "main", True, 1),
    "joint": Phase("joint", "all", True, 1),
}


def time_steps(program, phase: Phase, steps: int) -> tuple[float, float]:
    """Wall and CPU seconds per optimisation step of the whole batched program in ``phase`` (no evaluation in
    between). The process's CPU time leaves out the time other jobs hold the cores, so its ratios are steadier on a
    busy machine; the wall time is what a user waits."""
    p = Phase(phase.name, phase.trains, phase.attention, steps, phase.round)
    device = next(program.ensemble.parameters()).device
    synchronize(device)
    start, cpu = time.perf_counter(), time.process_time()
    program.fit(Protocol(), schedule=[p], steps=steps, eval_every=steps, patience=None)
    synchronize(device)
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps


def schedule_shares(steps: int = 1000) -> dict:
    """Share of the alternating budget spent in each kind of phase."""
    phases = make_schedule("alternating", steps)
    total = sum(p.budget for p in phases)
    kinds = {"attention off": 0, "attention only": 0, "main, attention frozen": 0, "joint": 0}
    for p in phases:
        kind = ("attention off" if not p.attention else "attention only" if p.trains == "attention"
                else "main, attention frozen" if p.trains == "main" else "joint")
        kinds[kind] += p.budget / total
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="all", help=f"{', '.join(UCI_NAMES)}, comma-separated or all")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40, help="steps per timed block (default: 40)")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (default: 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1, as experiments/uci.py)")
    parser.add_argument("--reference", action="store_true",
                        help="also time the attention program with the fused kernel off (the modules as written)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: cuda when available, else cpu (default: auto)")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    names = list(UCI_NAMES) if args.dataset == "all" else args.dataset.split(",")
    bad = [n for n in names if n not in UCI_NAMES]
    if bad or args.folds < 2 or args.steps < 1 or args.reps < 1:
        print(f"error: unknown data set(s) {bad}; valid: {', '.join(UCI_NAMES)}" if bad
              else "error: --folds >= 2, --steps >= 1 and --reps >= 1", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    torch.set_num_threads(max(1, args.threads))
    shares = schedule_shares()
    protocol = Protocol(folds=args.folds)
    rows = []
    print(f"{'dataset':8s} {'K':>3s} {'wd ms/step':>10s} " + " ".join(f"{k:>22s}" for k in ATTENTION_PHASES)
          + f" {'joint/wd':>9s} {'alternating/wd':>15s} {'cpu: joint/wd':>13s} {'alternating/wd':>15s}")
    for name in names:
        try:
            data = load_uci(name, args.data_root)
        except ModgraphError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        wd, att = build_program(data, "wd", protocol, device), build_program(data, "attention", protocol, device)
        joint = Phase("joint", "all", True, 1)
        time_steps(wd, joint, 3)  # warm-up (allocations, first vmap trace)
        for phase in ATTENTION_PHASES.values():
            time_steps(att, phase, 3)
            if args.reference:
                with fused_neuron_attention(False):
                    time_steps(att, phase, 3)
        samples = {"wd": [], **{k: [] for k in ATTENTION_PHASES}, **{"reference " + k: [] for k in ATTENTION_PHASES}}
        for _ in range(args.reps):  # interleaved: the machine's load hits both methods alike
            for kind, phase in ATTENTION_PHASES.items():
                samples["wd"].append(time_steps(wd, joint, args.steps))
                samples[kind].append(time_steps(att, phase, args.steps))
                if args.reference:
                    with fused_neuron_attention(False):
                        samples["reference " + kind].append(time_steps(att, phase, args.steps))
        med = {k: statistics.median(t[0] for t in v) for k, v in samples.items() if v}
        cpu = {k: statistics.median(t[1] for t in v) for k, v in samples.items() if v}
        models = wd.ensemble.size
        alternating = sum(shares[k] * med[k] for k in ATTENTION_PHASES)
        row = {"dataset": name, "models": models, "steps_per_block": args.steps, "reps": args.reps,
               "device": str(device),
               "wd_ms_per_step": 1000 * med["wd"],
               "attention_ms_per_step": {k: 1000 * med[k] for k in ATTENTION_PHASES},
               "ratio_joint": med["joint"] / med["wd"], "ratio_alternating": alternating / med["wd"],
               "cpu_wd_ms_per_step": 1000 * cpu["wd"],
               "cpu_attention_ms_per_step": {k: 1000 * cpu[k] for k in ATTENTION_PHASES},
               "cpu_ratio_joint": cpu["joint"] / cpu["wd"],
               "cpu_ratio_alternating": sum(shares[k] * cpu[k] for k in ATTENTION_PHASES) / cpu["wd"],
               "per_model_ms_per_step": {"wd": 1000 * med["wd"] / models,
                                         "attention_joint": 1000 * med["joint"] / models}}
        if args.reference:
            reference = sum(shares[k] * med["reference " + k] for k in ATTENTION_PHASES)
            row["reference_ms_per_step"] = {k: 1000 * med["reference " + k] for k in ATTENTION_PHASES}
            row["reference_ratio_joint"] = med["reference joint"] / med["wd"]
            row["reference_ratio_alternating"] = reference / med["wd"]
            row["cpu_reference_ms_per_step"] = {k: 1000 * cpu["reference " + k] for k in ATTENTION_PHASES}
            row["cpu_reference_ratio_joint"] = cpu["reference joint"] / cpu["wd"]
            row["cpu_reference_ratio_alternating"] = sum(shares[k] * cpu["reference " + k]
                                                         for k in ATTENTION_PHASES) / cpu["wd"]
        rows.append(row)
        print(f"{name:8s} {models:3d} {1000 * med['wd']:10.2f} "
              + " ".join(f"{1000 * med[k]:22.2f}" for k in ATTENTION_PHASES)
              + f" {row['ratio_joint']:9.2f} {row['ratio_alternating']:15.2f}"
              + f" {row['cpu_ratio_joint']:13.2f} {row['cpu_ratio_alternating']:15.2f}", flush=True)
        if args.reference:
            print(f"{'  ref.':8s} {'':3s} {'':10s} " + " ".join(f"{1000 * med['reference ' + k]:22.2f}"
                                                              for k in ATTENTION_PHASES)
                  + f" {row['reference_ratio_joint']:9.2f} {row['reference_ratio_alternating']:15.2f}"
                  + f" {row['cpu_reference_ratio_joint']:13.2f} {row['cpu_reference_ratio_alternating']:15.2f}",
                  flush=True)
    joint = statistics.median(r["ratio_joint"] for r in rows)
    alt = statistics.median(r["ratio_alternating"] for r in rows)
    print(f"\nmedian ratio attention/wd per step: joint {joint:.2f}, alternating schedule {alt:.2f} (goal <= 1.5); "
          f"in CPU time {statistics.median(r['cpu_ratio_joint'] for r in rows):.2f} and "
          f"{statistics.median(r['cpu_ratio_alternating'] for r in rows):.2f}; {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.json:
        summary = {"results": rows, "schedule_shares": shares, "median_ratio_joint": joint,
                   "median_ratio_alternating": alt, "threads": torch.get_num_threads(),
                   "load_average": list(os.getloadavg())}
        atomic_write_text(args.json, json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
