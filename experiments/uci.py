"""The paper's UCI comparison (Table 2): neuron-level attention vs WDBP, WEBP and SGLBP, stratified cross-validation.

    python experiments/uci.py                                   # 6 data sets x 6 methods, 10 folds, 1 seed
    python experiments/uci.py --dataset glass,sonar --method wd,attention --seeds 3
    python experiments/uci.py --fast --dataset balance          # a CI-sized run (seconds)
    python experiments/uci.py --csv my.csv --label-column class # any other table
    python experiments/uci.py --checkpoint-dir runs/uci            # killed? add --resume to continue

Every (data set, method) pair is one batched program: all folds x seeds x hyper-parameter candidates train together
as one ensemble (modgraph.train.Ensemble). The protocol is in modgraph/benchmarks/uci.py and docs/uci.md.
With --checkpoint-dir every finished program is saved and the program in progress saves its training every
--checkpoint-every steps; --resume skips the finished ones and continues the others (docs/checkpoints.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling module common.py

from common import (  # noqa: E402
    UsageError,
    add_common_args,
    checkpoint_config,
    integer,
    number,
    open_run_dir,
    resolve_device,
    run_main,
    save_outputs,
    script_parser,
    setup_logging,
    write_json,
)

from modgraph.benchmarks.methods import METHODS  # noqa: E402
from modgraph.benchmarks.uci import Protocol, format_comparison, format_table, run_benchmark  # noqa: E402
from modgraph.data import UCI_NAMES, load_csv, load_uci  # noqa: E402
from modgraph.data.uci import LIVER_LABELS  # noqa: E402
from modgraph.train import SCHEDULES  # noqa: E402

FAST = {"folds": 3, "steps": 400, "eval_every": 10, "patience": 5}  # --fast: seconds, for CI


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


def load_datasets(args) -> list:
    """The data sets the flags name: ``--csv PATH --label-column NAME``, else ``--dataset`` (UCI names)."""
    if args.csv is not None:
        if not args.label_column:
            raise UsageError("--csv needs --label-column NAME (the header name of the label column)")
        return [load_csv(args.csv, args.label_column)]
    if args.label_column:
        raise UsageError("--label-column goes with --csv PATH")
    names = parse_list(args.dataset, list(UCI_NAMES), "--dataset")
    return [load_uci(n, args.data_root, liver_label=args.liver_label) for n in names]


def print_results(rows: list[dict], wall: float, how: str) -> None:
    """The table in the paper's layout, attention's paired comparisons (when it ran) and the wall time."""
    print(format_table(rows))
    comparison = format_comparison(rows) if any(r["method"] == "attention" for r in rows) else ""
    if comparison:
        print()
        print(comparison)
    print(f"\n{len(rows)} programs, {sum(r['models'] for r in rows)} networks, wall time {wall:.1f} s ({how})")


def build_parser() -> argparse.ArgumentParser:
    parser = script_parser(__doc__)
    parser.add_argument("--dataset", default="all", help=f"{', '.join(UCI_NAMES)}, comma-separated or all "
                                                         "(default: all)")
    parser.add_argument("--method", default="all", help=f"{', '.join(METHODS)}, comma-separated or all (default: all)")
    parser.add_argument("--schedule", default="alternating", choices=[s for s in SCHEDULES if s != "main"],
                        help="schedule of the attention methods (default: alternating, the paper's); the others "
                             "have no attention and train jointly")
    parser.add_argument("--folds", type=int, default=None, check=integer(2),
                        help="outer stratified folds (default: 10; --fast: 3)")
    parser.add_argument("--steps", type=int, default=None, check=integer(1),
                        help="step budget per run (default: Table 1's 15 000 to 40 000 times --budget-scale; "
                             "--fast: 400)")
    parser.add_argument("--budget-scale", type=float, default=None, check=number(0, 10, low_open=True),
                        help="share of Table 1's iterations when --steps is not given (default: 1, the paper's; "
                             "0.05: a 20x smaller budget)")
    parser.add_argument("--patience", type=int, default=None, check=integer(1),
                        help="evaluations without improvement that end a phase (default: 10; --fast: 5)")
    parser.add_argument("--eval-every", type=int, default=None, check=integer(1),
                        help="steps between evaluations (default: 25)")
    parser.add_argument("--fast", action="store_true",
                        help="a small budget for CI: 3 folds, 400 steps, evaluation every 10 steps, patience 5")
    parser.add_argument("--csv", default=None, metavar="PATH", help="run on this CSV table (header row) instead")
    parser.add_argument("--label-column", default=None, help="the label column of --csv")
    parser.add_argument("--liver-label", default="selector", choices=LIVER_LABELS,
                        help="liver's label: the selector field as in the older literature (default) or drinks >= 3")
    parser.add_argument("--workers", type=int, default=None, check=integer(1),
                        help="programs run at once, one process each (default: min(2, CPUs); --fast: 1)")
    # --data-root, --device, --seeds (repetitions of the CV), --json, --threads, --checkpoint-dir, --resume, ...
    return add_common_args(parser, seeds=1, threads=1, checkpoint_every=200)


#: the keys of a saved program's summary row that a resumed run reads (the table, the comparison, the JSON)
ROW_KEYS = ("dataset", "method", "schedule", "test_acc_mean", "test_acc_std", "train_acc_mean", "train_acc_std",
            "models", "test_acc_runs")


def check_unit(result) -> str | None:
    """What is wrong with a saved program result (``MethodResult`` as JSON) that a resumed run would read, or
    ``None``: ``RunDir``'s ``check_unit``, so a damaged file is one line naming it, not a ``KeyError``."""
    if not isinstance(result, dict) or set(result) != {"row", "runs", "phases"}:
        return "expected the keys row, runs, phases"
    if not isinstance(result["row"], dict) or not all(isinstance(result[k], list) for k in ("runs", "phases")):
        return "row must be a mapping, runs and phases lists"
    missing = [k for k in ROW_KEYS if k not in result["row"]]
    return f"the row lacks {', '.join(missing)}" if missing else None


def protocol_from(args) -> Protocol:
    """The protocol the flags ask for (their values were checked when parsed: ``build_parser``)."""
    base = Protocol()
    fast = FAST if args.fast else {}
    return Protocol(
        folds=args.folds or fast.get("folds", base.folds),
        seeds=tuple(range(args.seeds)),
        schedule=args.schedule,
        steps=args.steps or fast.get("steps", base.steps),
        budget_scale=args.budget_scale or base.budget_scale,
        patience=args.patience or fast.get("patience", base.patience),
        eval_every=args.eval_every or fast.get("eval_every", base.eval_every),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    config = checkpoint_config(args, "uci.py")
    torch.set_num_threads(args.threads)
    methods = parse_list(args.method, list(METHODS), "--method")
    protocol = protocol_from(args)
    device = resolve_device(args.device)
    datasets = load_datasets(args)
    for d in datasets:
        smallest = int(d.class_counts() and min(d.class_counts().values()))
        if protocol.folds > d.num_samples:
            raise UsageError(f"--folds {protocol.folds}: {d.name} has only {d.num_samples} rows")
        logging.getLogger("uci").info("%s: %d rows, %d features, %d classes (smallest %d)", d.name, d.num_samples,
                                      d.num_features, d.num_classes, smallest)

    workers = args.workers or (1 if args.fast else min(2, os.cpu_count() or 1))
    store = open_run_dir(args, config, check_unit=check_unit)  # one unit per (data set, method) program
    start = time.perf_counter()
    results = run_benchmark(datasets, methods, protocol, device, progress=True, workers=workers, store=store,
                            checkpoint_every=args.checkpoint_every)
    wall = time.perf_counter() - start
    rows = [r.row for r in results]
    print_results(rows, wall, f"{workers} worker process(es) x {torch.get_num_threads()} thread(s), {device}")
    command = " ".join(["python", "experiments/uci.py", *(argv if argv is not None else sys.argv[1:])])
    machine = {"threads": torch.get_num_threads(), "workers": workers, "device": str(device),
               "torch": torch.__version__, "cpus": os.cpu_count(),
               "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    save_outputs(("--json", args.json, lambda: write_json(
        args.json, rows, protocol=protocol.to_dict(), wall_time_s=wall, command=command, machine=machine,
        runs={f"{r.row['dataset']}/{r.row['method']}": r.runs for r in results},
        phases={f"{r.row['dataset']}/{r.row['method']}": r.phases for r in results})))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
