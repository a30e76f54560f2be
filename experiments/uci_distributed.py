"""experiments/uci.py's comparison with its programs spread over processes started by torchrun.

    torchrun --standalone --nproc_per_node 2 experiments/uci_distributed.py --json uci.json
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --nproc_per_node 8 experiments/uci_distributed.py --seeds 10
    python experiments/uci_distributed.py --fast --dataset balance            # one process works too

The flags are experiments/uci.py's, except ``--workers`` (the processes are torchrun's ``--nproc_per_node``).
Every (data set, method) program - all folds x seeds x candidates of one method on one data set, trained as one
batched ensemble - runs whole on one process: the costliest programs first, each to the process with the least
work so far (``modgraph.scale.distributed.run_jobs``). A program's result depends on the protocol's seeds only, so
the table is the one experiments/uci.py prints. Rank 0 prints it and writes the JSON.

--checkpoint-dir/--resume work as in experiments/uci.py (a finished program is saved by the process that ran it,
the program in progress saves its training every --checkpoint-every steps); the folder is interchangeable with
experiments/uci.py's. The folder must be one that every process can reach (a shared file system across nodes).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uci  # noqa: E402  (experiments/uci.py: flags, protocol, data loading)
from common import (  # noqa: E402
    UsageError,
    checkpoint_config,
    open_run_dir,
    run_main,
    save_outputs,
    setup_logging,
    write_json,
)

from modgraph.benchmarks.methods import METHODS  # noqa: E402
from modgraph.benchmarks.uci import (  # noqa: E402
    MethodResult,
    program_cost,
    program_key,
    run_method,
)
from modgraph.scale import distributed as D  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = uci.build_parser()
    parser.description = __doc__.splitlines()[0]
    parser.epilog = __doc__
    parser.set_defaults(workers=None)
    for action in parser._actions:  # kept (so that giving it is named below), not offered
        if "--workers" in action.option_strings:
            action.help = argparse.SUPPRESS
    args = parser.parse_args(argv)
    if args.workers is not None:
        raise UsageError("--workers: the processes are torchrun's here (torchrun --nproc_per_node N ...)")
    setup_logging(args.log_level)
    config = checkpoint_config(args, "uci.py")  # the results are experiments/uci.py's: the folders interchange
    torch.set_num_threads(args.threads)  # the numbers and outputs: checked when parsed (uci.build_parser)
    methods = uci.parse_list(args.method, list(METHODS), "--method")
    protocol = uci.protocol_from(args)
    datasets = uci.load_datasets(args)
    for d in datasets:
        if protocol.folds > d.num_samples:
            raise UsageError(f"--folds {protocol.folds}: {d.name} has only {d.num_samples} rows")
    try:
        ctx = D.init_distributed(args.device)
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
    failed = True
    try:
        store = open_run_dir(args, config, ctx, check_unit=uci.check_unit)

        def run(job):
            key = program_key(*job)
            return MethodResult(**store.unit(key, lambda: asdict(run_method(
                job[0], job[1], protocol, ctx.device, checkpoint=store.progress_path(key),
                checkpoint_every=args.checkpoint_every))))

        jobs = [(d, m) for d in datasets for m in methods]
        start = time.perf_counter()
        results = D.run_jobs(jobs, run, ctx, cost=[program_cost(d, m, protocol) for d, m in jobs])
        wall = time.perf_counter() - start
        failed = False
    finally:
        D.cleanup(failed=failed)  # no barrier after an error: the other processes may never reach it
    if not ctx.is_main:
        return 0
    rows = [r.row for r in results]
    uci.print_results(rows, wall, f"{ctx.world_size} process(es) x {torch.get_num_threads()} thread(s), {ctx.device}")
    command = " ".join(["experiments/uci_distributed.py", *(argv if argv is not None else sys.argv[1:])])
    machine = {"threads": torch.get_num_threads(), "processes": ctx.world_size, "backend": ctx.backend,
               "device": str(ctx.device), "torch": torch.__version__}
    extra = {"protocol": protocol.to_dict(), "wall_time_s": wall, "command": command, "machine": machine,
             "runs": {f"{r.row['dataset']}/{r.row['method']}": r.runs for r in results},
             "phases": {f"{r.row['dataset']}/{r.row['method']}": r.phases for r in results}}
    save_outputs(("--json", args.json, lambda: write_json(args.json, rows, **extra)))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
