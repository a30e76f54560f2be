"""Every benchmark of modgraph beside its reference, in one run: ratios ``ours / reference`` of medians.

    python benchmarks/run.py                       # the full set (about 50 minutes on 2 busy cores: the 1M-node epochs)
    python benchmarks/run.py --quick --json bench.json
    python benchmarks/run.py --only executor,graph_scale

Rows (``{"results": [...]}`` with ``--json``) carry at least ``name``, ``ours_s``, ``reference``, ``reference_s``,
``ratio`` (ours / reference) and ``goal`` (the largest ratio that meets it, or ``None``), plus ``met``; a benchmark
that cannot run gives one row with ``status: "missing"`` or ``"failed"`` and the reason.

=================  ====================================================================  ==========  ============
benchmark          what                                                                  reference   goal
=================  ====================================================================  ==========  ============
executor           DAG executor, forward + backward: UCI attention MLP, plain MLP,       hand-written  <= 1.10
                   20-node random DAG (``benchmarks/executor.py``)                       nn.Module
cora_speed         200 Cora epochs of the attention GCN and hop_attention                PyG GCN /   <= 1.0 (GCN)
                   (``benchmarks/cora_speed.py``)                                        PyG GAT
uci_time           UCI attention training time per step, alternating schedule           weight       <= 1.5
                   (``benchmarks/uci_time.py``)                                          decay
record_overhead    training with the attention recorder attached: the paper's MLP        no recorder  <= 1.10
                   (``benchmarks/record_overhead.py``); Cora's rows come with cora_speed
graph_scale        full-batch epoch time and memory of graph-edge attention, 10k - 1M    PyG GATConv  slope ~ 1
                   nodes; log-log slopes against edges (``benchmarks/graph_scale.py``)
scale_epoch        one NeighborLoader epoch on 1M nodes / 10M edges (``experiments/      -            < 24 GiB
                   scale.py``), 1 process; with ``torchrun`` 2 processes                1 process
=================  ====================================================================  ==========  ============

The scripts run as subprocesses, each with this repository first on ``PYTHONPATH``, and write JSON that is read
back here; every row records the commit the script ran at (``script_commit``, ``script_state``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from timing import machine, resolve_device  # noqa: E402

MEMORY_BUDGET_MB = 24 * 1024
RECORD_GOAL = 1.10  # training with an EdgeRecorder attached / without
EXECUTOR_GOAL = 1.10  # the DAG executor / the hand-written module


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def status_row(name: str, status: str, reason: str, goal=None) -> dict:
    return {"name": name, "status": status, "reason": reason, "ours_s": None, "reference": None,
            "reference_s": None, "ratio": None, "goal": goal, "met": None}


def script(name: str) -> Path:
    return HERE / f"{name}.py"


def provenance(path: Path) -> dict:
    """Which version of a script ran: its repository's branch and commit, and whether the file is committed."""
    repo = path.resolve().parents[1]

    def git(*cmd):
        proc = subprocess.run(["git", "-C", str(repo), *cmd], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else None

    state = git("status", "--porcelain", "--", str(path.resolve()))
    return {"script": str(path), "script_branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "script_commit": git("rev-parse", "--short", "HEAD"),
            "script_state": None if state is None else ("committed" if state == "" else
                                                        "uncommitted" if state.startswith("??") else "modified")}


def run_script(path: Path, args: list[str], threads: int, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run a benchmark script with its own repository first on PYTHONPATH and ``threads`` CPU threads."""
    repo = path.resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(repo), os.environ.get("PYTHONPATH")] if p),
           "OMP_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, env=env,
                          cwd=str(repo), timeout=timeout)


def run_json(name: str, flags: list[str], args) -> tuple[dict | None, subprocess.CompletedProcess]:
    """Run ``benchmarks/<name>.py`` with ``flags``, this run's ``--threads`` and a temporary ``--json``: the JSON it
    wrote (``None`` if it failed or wrote nothing) and the finished process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        proc = run_script(script(name), [*flags, "--threads", str(args.threads), "--json", str(out)], args.threads)
        ok = proc.returncode == 0 and out.exists()
        return (json.loads(out.read_text()) if ok else None), proc


def failed(name: str, proc: subprocess.CompletedProcess, goal=None) -> dict:
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return status_row(name, "failed", f"exit code {proc.returncode}: " + " | ".join(tail), goal)


# ------------------------------------------------------------------------------------------- the benchmarks
def bench_executor(args) -> list[dict]:
    name = "executor"
    extra = ["--reps", "5", "--steps", "30", "--processes", "2"] if args.quick else []
    report, proc = run_json(name, [*extra, "--device", args.device.type], args)
    if report is None:
        return [failed(name, proc, EXECUTOR_GOAL)]
    return [{**r, **provenance(script(name))} for r in report["results"]]


def bench_cora_speed(args) -> list[dict]:
    name, goal = "cora_speed", 1.0
    path = script(name)
    data_root = args.data_root or os.environ.get("MODGRAPH_DATA")
    if not data_root:
        return [status_row(f"{name}/attention_gcn", "missing", "no Cora: set MODGRAPH_DATA or --data-root", goal)]
    flags = ["--epochs", "200", "--reps", "2" if args.quick else "5", "--device", args.device.type, "--data-root",
             data_root]
    report, proc = run_json(name, flags, args)
    if report is None:
        return [failed(f"{name}/attention_gcn", proc, goal)]
    models = {r["model"]: r for r in report["results"]}
    rows = []
    for ours, ref, g in (("modgraph attention_gcn", "PyG GCN example", goal),
                         ("modgraph hop_attention", "PyG GCN example", goal),
                         ("modgraph attention_gcn", "PyG GAT example", None),
                         ("modgraph gcn", "PyG GCN example", None),
                         ("modgraph attention_gcn +recorder", "modgraph attention_gcn", RECORD_GOAL),
                         ("modgraph hop_attention +recorder", "modgraph hop_attention", RECORD_GOAL)):
        if ours not in models or ref not in models:
            rows.append(status_row(f"{name}/{ours} vs {ref}", "failed", f"{ours!r} or {ref!r} not in its JSON", g))
            continue
        a, b = models[ours], models[ref]
        ratio = a["median_s"] / b["median_s"]
        rows.append({"name": f"{name}/{ours.removeprefix('modgraph ')} vs {ref}", "ours_s": a["median_s"],
                     "reference": ref,
                     "reference_s": b["median_s"], "ratio": ratio, "goal": g,
                     "met": None if g is None else bool(ratio <= g), "reps": len(a.get("times_s", [])),
                     "epochs": a.get("epochs"), **provenance(path)})
    return rows


def bench_uci_time(args) -> list[dict]:
    name, goal = "uci_time", 1.5
    path = script(name)
    extra = ["--dataset", "vehicle,glass", "--reps", "3", "--steps", "20"] if args.quick else []
    data = ["--data-root", args.data_root] if args.data_root else []
    report, proc = run_json(name, [*extra, *data, "--device", args.device.type], args)
    if report is None:
        return [failed(name, proc, goal)]
    rows = []
    for r in report["results"]:
        wd = r["wd_ms_per_step"] / 1000
        rows.append({"name": f"{name}/{r['dataset']} (alternating)", "ours_s": wd * r["ratio_alternating"],
                     "reference": "weight decay MLP", "reference_s": wd, "ratio": r["ratio_alternating"],
                     "goal": goal, "met": bool(r["ratio_alternating"] <= goal), "ratio_joint": r["ratio_joint"],
                     "models": r.get("models"), "reps": r.get("reps"), "unit": "s per step", **provenance(path)})
    med = report.get("median_ratio_alternating")
    if med is not None:
        rows.append({"name": f"{name}/median over data sets (alternating)", "ours_s": None,
                     "reference": "weight decay MLP", "reference_s": None, "ratio": med, "goal": goal,
                     "met": bool(med <= goal), "ratio_joint": report.get("median_ratio_joint"), **provenance(path)})
    return rows


def bench_record_overhead(args) -> list[dict]:
    name, goal = "record_overhead", RECORD_GOAL
    extra = ["--reps", "5", "--steps", "100", "--processes", "2"] if args.quick else []
    report, proc = run_json(name, [*extra, "--device", args.device.type], args)
    if report is None:
        return [failed(name, proc, goal)]
    return [{**r, "name": f"{name}/{r['name']}", "goal": goal, "met": bool(r["ratio"] <= goal),
             **provenance(script(name))} for r in report["results"]]


def bench_graph_scale(args) -> list[dict]:
    import graph_scale

    sizes = [2_000, 20_000] if args.quick else [10_000, 100_000, 1_000_000]
    rows, slopes = graph_scale.run(sizes, reps=2 if args.quick else 3, epochs=2, threads=args.threads, log=log,
                                   device=str(args.device))
    rows.append({"name": "graph_scale/log-log slope vs edges", "ours_s": None, "reference": "PyG GATConv",
                 "reference_s": None, "ratio": None, "goal": None, "slopes": slopes,
                 "sizes": sizes, "note": "1.0 is linear growth; a dense N x N would show as 2"})
    return rows


def bench_scale_epoch(args) -> list[dict]:
    nodes = 50_000 if args.quick else 1_000_000
    name = f"scale_epoch/{nodes // 1000}k nodes"
    script = ROOT / "experiments" / "scale.py"
    flags = ["--nodes", str(nodes), "--avg-degree", "10", "--epochs", "1", "--device", args.device.type,
             "--threads", str(args.threads), "--eval-nodes", "20000"]

    def one(cmd: list[str]) -> dict | subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "scale.json"
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH")]
                                                               if p), "OMP_NUM_THREADS": str(args.threads)}
            proc = subprocess.run([*cmd, *flags, "--json", str(out)], capture_output=True, text=True, env=env,
                                  cwd=str(ROOT))
            return json.loads(out.read_text())["results"][0] if proc.returncode == 0 and out.exists() else proc

    single = one([sys.executable, str(script)])
    if not isinstance(single, dict):
        return [failed(name, single)]
    rows = [{"name": f"{name}, 1 process", "ours_s": single["train_s_per_epoch"], "reference": None,
             "reference_s": None, "ratio": None, "goal": None, "peak_rss_mb": single["peak_rss_mb_max"],
             "memory_goal_mb": MEMORY_BUDGET_MB, "met": bool(single["peak_rss_mb_max"] < MEMORY_BUDGET_MB),
             "edges": single["edges"], "steps": single["steps"], "val_acc": single["best_val_acc"],
             "test_acc": single["test_acc"], "sampler": single["sampler"], "threads": single["threads"]}]
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    if args.quick or not Path(torchrun).exists():
        return rows
    double = one([torchrun, "--standalone", "--nproc_per_node", "2", str(script)])
    if not isinstance(double, dict):
        return rows + [failed(f"{name}, 2 processes", double)]
    total_mb = sum(double["peak_rss_mb_per_process"])
    rows.append({"name": f"{name}, 2 processes (torchrun, gloo)", "ours_s": double["train_s_per_epoch"],
                 "reference": "1 process, same run", "reference_s": single["train_s_per_epoch"],
                 "ratio": double["train_s_per_epoch"] / single["train_s_per_epoch"], "goal": None,
                 "peak_rss_mb": total_mb, "peak_rss_mb_per_process": double["peak_rss_mb_per_process"],
                 "memory_goal_mb": MEMORY_BUDGET_MB, "met": bool(total_mb < MEMORY_BUDGET_MB),
                 "parameter_spread": double["parameter_spread"], "steps": double["steps"],
                 "val_acc": double["best_val_acc"], "test_acc": double["test_acc"]})
    return rows


BENCHMARKS = {"executor": bench_executor, "cora_speed": bench_cora_speed, "uci_time": bench_uci_time,
              "record_overhead": bench_record_overhead, "graph_scale": bench_graph_scale,
              "scale_epoch": bench_scale_epoch}


def show(rows: list[dict]) -> str:
    lines = [f"{'benchmark':58s} {'ours (s)':>10s} {'ref (s)':>10s} {'ratio':>7s} {'goal':>6s}  status"]
    for r in rows:
        def num(v, fmt):
            width = int(fmt.split(".")[0])
            return format(v, fmt) if isinstance(v, (int, float)) else "-".rjust(width)
        status = r.get("status") or ({True: "met", False: "MISSED"}.get(r.get("met"), ""))
        lines.append(f"{r['name'][:58]:58s} {num(r.get('ours_s'), '10.4f')} {num(r.get('reference_s'), '10.4f')} "
                     f"{num(r.get('ratio'), '7.3f')} {num(r.get('goal'), '6.2f')}  {status}"
                     + (f" ({r['reason']})" if r.get("reason") else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions and smaller sizes (minutes)")
    p.add_argument("--json", default=None, metavar="PATH", help='write {"results": [...], "machine": {...}}')
    p.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads everywhere (default 1; on shared "
                                                          "cores more threads mostly wait on each other)")
    p.add_argument("--data-root", default=None, help="offline data (default: $MODGRAPH_DATA)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: cuda when available, else cpu (default: auto); every benchmark runs on it")
    args = p.parse_args(argv)
    args.device = resolve_device(args.device)
    names = list(BENCHMARKS) if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    bad = [n for n in names if n not in BENCHMARKS]
    if bad:
        print(f"error: unknown benchmark(s) {bad}; valid: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    import torch

    from modgraph.io import atomic_write_text

    torch.set_num_threads(args.threads)
    started = time.time()
    info = {**machine(), "command": " ".join([Path(sys.executable).name, *sys.argv]), "quick": args.quick,
            "device": str(args.device),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    rows: list[dict] = []
    for name in names:
        log(f"{name} ...")
        t = time.perf_counter()
        try:
            got = BENCHMARKS[name](args)
        except Exception as err:  # one broken benchmark must not hide the others
            got = [status_row(name, "failed", f"{type(err).__name__}: {err}")]
        for r in got:
            r.setdefault("benchmark", name)
            r.setdefault("met", None)  # every row carries the key; None: no goal applies
        rows.extend(got)
        log(f"{name}: {len(got)} row(s) in {time.perf_counter() - t:.0f} s")
        if args.json:  # keep what is done if a later benchmark is interrupted
            atomic_write_text(args.json, json.dumps({"results": rows, "machine": info}, indent=2) + "\n")
    info["load_avg_end"] = os.getloadavg()
    info["minutes"] = round((time.time() - started) / 60, 1)
    print(show(rows))
    ratios = [r["ratio"] for r in rows if isinstance(r.get("ratio"), float)]
    if ratios:
        print(f"\n{len(ratios)} ratios, median {statistics.median(ratios):.3f}; machine: {info['cpus']} CPUs, "
              f"{info.get('ram_gb')} GB, torch {info['torch']}, PyG {info['torch_geometric']}, "
              f"{args.threads} thread(s), load {info.get('load_avg')} at start")
    if args.json:
        atomic_write_text(args.json, json.dumps({"results": rows, "machine": info}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
