"""The paper's UCI comparison (Table 2): neuron-level attention vs WDBP, WEBP and SGLBP, stratified cross-validation.

    python experiments/uci.py                                   # 6 data sets x 6 methods, 10 folds, 1 seed
    python experiments/uci.py --dataset glass,sonar --method wd,attention --seeds 3
    python experiments/uci.py --fast --dataset balance          # a CI-sized run (seconds)
    python experiments/uci.py --csv my.csv --label-column class # any other table

Every (data set, method) pair is one batched program: all folds x seeds x hyper-parameter candidates train together
as one ensemble (modgraph.train.Ensemble). The protocol is in modgraph/benchmarks/uci.py and docs/uci.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from modgraph.benchmarks.methods import METHODS
from modgraph.benchmarks.uci import Protocol, format_comparison, format_table, run_benchmark
from modgraph.data import UCI_NAMES, load_csv, load_uci
from modgraph.data.uci import LIVER_LABELS
from modgraph.errors import ModgraphError
from modgraph.train import SCHEDULES

FAST = {"folds": 3, "steps": 400, "eval_every": 10, "patience": 5}  # --fast: seconds, for CI


class UsageError(Exception):
    """A flag value the script cannot use (one line on stderr, exit code 2)."""


def parse_list(value: str, valid: list[str], flag: str) -> list[str]:
    """``a,b`` or ``all`` -> the names, checked against ``valid``."""
    if value == "all":
        return list(valid)
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in valid]
    if bad or not items:
        raise UsageError(f"{flag}: unknown {', '.join(map(repr, bad)) or 'empty value'}; valid: {', '.join(valid)} "
                         f"(comma-separated, or all)")
    return items


def positive(flag: str, value, minimum: int = 1):
    if value is not None and value < minimum:
        raise UsageError(f"{flag} must be an integer >= {minimum}, got {value}")
    return value


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(name)


def write_json(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--dataset", default="all", help=f"{', '.join(UCI_NAMES)}, comma-separated or all "
                                                         "(default: all)")
    parser.add_argument("--method", default="all", help=f"{', '.join(METHODS)}, comma-separated or all (default: all)")
    parser.add_argument("--schedule", default="alternating", choices=[s for s in SCHEDULES if s != "main"],
                        help="schedule of the attention methods (default: alternating, the paper's); the others "
                             "have no attention and train jointly")
    parser.add_argument("--folds", type=int, default=None, help="outer stratified folds (default: 10; --fast: 3)")
    parser.add_argument("--seeds", type=int, default=1, help="repetitions of the cross-validation, seeds 0..N-1 "
                                                             "(default: 1)")
    parser.add_argument("--steps", type=int, default=None,
                        help="step budget per run (default: 5%% of Table 1's 15 000 to 40 000; --fast: 400)")
    parser.add_argument("--budget-scale", type=float, default=None,
                        help="share of Table 1's iterations when --steps is not given (default: 0.05; 1: the paper's)")
    parser.add_argument("--patience", type=int, default=None,
                        help="evaluations without improvement that end a phase (default: 10; --fast: 5)")
    parser.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default: 25)")
    parser.add_argument("--fast", action="store_true", help="a small budget for CI: 3 folds, 400 steps")
    parser.add_argument("--csv", default=None, metavar="PATH", help="run on this CSV table (header row) instead")
    parser.add_argument("--label-column", default=None, help="the label column of --csv")
    parser.add_argument("--liver-label", default="selector", choices=LIVER_LABELS,
                        help="liver's label: the selector field as in the older literature (default) or drinks >= 3")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: 1; on a machine shared with other jobs torch's "
                             "multi-threaded kernels wait for busy cores and run several times slower)")
    parser.add_argument("--workers", type=int, default=None,
                        help="programs run at once, one process each (default: min(2, CPUs); --fast: 1)")
    parser.add_argument("--data-root", default=None,
                        help="folder holding uci/ (default: $MODGRAPH_DATA, else ./data)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: cuda when available, else cpu (default: auto)")
    parser.add_argument("--json", default=None, metavar="PATH", help='write {"results": [row, ...]} to PATH')
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def budget_scale(value: float | None) -> float | None:
    if value is not None and not 0 < value <= 10:
        raise UsageError(f"--budget-scale must be a number in (0, 10], got {value}")
    return value


def protocol_from(args) -> Protocol:
    base = Protocol()
    fast = FAST if args.fast else {}
    return Protocol(
        folds=positive("--folds", args.folds, 2) or fast.get("folds", base.folds),
        seeds=tuple(range(positive("--seeds", args.seeds))),
        schedule=args.schedule,
        steps=positive("--steps", args.steps) or fast.get("steps", base.steps),
        budget_scale=budget_scale(args.budget_scale) or base.budget_scale,
        patience=positive("--patience", args.patience) or fast.get("patience", base.patience),
        eval_every=positive("--eval-every", args.eval_every) or fast.get("eval_every", base.eval_every),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(positive("--threads", args.threads))
    methods = parse_list(args.method, list(METHODS), "--method")
    protocol = protocol_from(args)
    device = resolve_device(args.device)
    if args.csv is not None:
        if not args.label_column:
            raise UsageError("--csv needs --label-column NAME (the header name of the label column)")
        datasets = [load_csv(args.csv, args.label_column)]
    else:
        if args.label_column:
            raise UsageError("--label-column goes with --csv PATH")
        names = parse_list(args.dataset, list(UCI_NAMES), "--dataset")
        datasets = [load_uci(n, args.data_root, liver_label=args.liver_label) for n in names]
    for d in datasets:
        smallest = int(d.class_counts() and min(d.class_counts().values()))
        if protocol.folds > d.num_samples:
            raise UsageError(f"--folds {protocol.folds}: {d.name} has only {d.num_samples} rows")
        logging.getLogger("uci").info("%s: %d rows, %d features, %d classes (smallest %d)", d.name, d.num_samples,
                                      d.num_features, d.num_classes, smallest)

    start = time.perf_counter()
    workers = positive("--workers", args.workers) or (1 if args.fast else min(2, os.cpu_count() or 1))
    results = run_benchmark(datasets, methods, protocol, device, progress=True, workers=workers)
    wall = time.perf_counter() - start
    rows = [r.row for r in results]
    print(format_table(rows))
    if "attention" in methods:
        comparison = format_comparison(rows)
        if comparison:
            print()
            print(comparison)
    print(f"\n{len(rows)} programs, {sum(r['models'] for r in rows)} networks, wall time {wall:.1f} s "
          f"({workers} worker process(es) x {torch.get_num_threads()} thread(s), {device})")
    if args.json:
        payload = {"results": rows, "protocol": protocol.to_dict(), "wall_time_s": wall,
                   "command": " ".join(["python", "experiments/uci.py", *(argv if argv is not None else sys.argv[1:])]),
                   "machine": {"threads": torch.get_num_threads(), "workers": workers, "device": str(device),
                               "torch": torch.__version__, "cpus": os.cpu_count(),
                               "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
                   "runs": {f"{r.row['dataset']}/{r.row['method']}": r.runs for r in results},
                   "phases": {f"{r.row['dataset']}/{r.row['method']}": r.phases for r in results}}
        print(f"wrote {write_json(args.json, payload)}")
    return 0


def run_main(argv: list[str] | None = None) -> int:
    """``main``; user errors become one line on stderr and exit code 2."""
    try:
        return main(argv)
    except (ModgraphError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run_main())
