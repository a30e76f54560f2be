"""Shared helpers of the benchmarks: interleaved repetitions, medians, peak memory and the machine's description.

Every benchmark compares ours with a reference *in the same process and the same run*: the two are timed in
interleaved repetitions (A B, B A, A B, ...) so that load from other jobs on a shared machine slows both alike,
and the medians are compared as a ratio ``ours / reference``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch


class Sample(float):
    """Wall-clock seconds of one timed run, with the process's CPU seconds over the same span in ``.cpu``."""

    cpu: float

    def __new__(cls, wall: float, cpu: float):
        obj = super().__new__(cls, wall)
        obj.cpu = cpu
        return obj


def interleaved(candidates: dict[str, Callable[[], float]], reps: int) -> dict[str, list[float]]:
    """Run every ``fn() -> seconds`` once per repetition, rotating the order each time; all samples per name."""
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(candidates[name]())
    return samples


def synchronize(device: torch.device | str | None) -> None:
    """Wait until the work queued on ``device`` is done (CUDA); nothing on the CPU. Clocks stop after it."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], sync: torch.device | None = None) -> Sample:
    """Wall-clock seconds taken by ``fn()``, with CPU seconds in ``.cpu`` (CUDA work is waited for)."""
    synchronize(sync)
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize(sync)
    return Sample(time.perf_counter() - start, time.process_time() - start_cpu)


def resolve_device(name: str) -> torch.device:
    """``auto``: cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(name)


def median(values: list[float]) -> float:
    return statistics.median(values)


def row(name: str, ours: list[float], reference_name: str, reference: list[float], goal: float | None,
        **extra) -> dict:
    """One result row: medians of both sides, their ratio and whether the goal (ratio <= goal) is met."""
    ours_s, ref_s = median(ours), median(reference)
    ratio = ours_s / ref_s
    out = {"name": name, "ours_s": ours_s, "reference": reference_name, "reference_s": ref_s, "ratio": ratio,
           "goal": goal, "met": None if goal is None else bool(ratio <= goal), "reps": len(ours)}
    if all(isinstance(s, Sample) for s in [*ours, *reference]):  # CPU time: less disturbed by other jobs
        ours_cpu, ref_cpu = median([s.cpu for s in ours]), median([s.cpu for s in reference])
        out.update(ours_cpu_s=ours_cpu, reference_cpu_s=ref_cpu, cpu_ratio=ours_cpu / ref_cpu)
    out.update(ours_samples_s=[float(s) for s in ours], reference_samples_s=[float(s) for s in reference], **extra)
    return out


def combine(runs: list[list[dict]]) -> list[dict]:
    """Rows of several processes (one list per process, the same measurements in the same order) -> one row per
    measurement: the median of the processes' ratios (``ratio``, each process's in ``process_ratios``), the medians
    of their times, and ``met`` judged on the median ratio."""
    out = []
    for rows in zip(*runs, strict=True):
        names = {r["name"] for r in rows}
        if len(names) != 1:
            raise ValueError(f"processes measured different things: {sorted(names)}")
        ratios = [r["ratio"] for r in rows]
        merged = {k: v for k, v in rows[0].items() if k not in ("ours_samples_s", "reference_samples_s")}
        merged.update(ours_s=median([r["ours_s"] for r in rows]), reference_s=median([r["reference_s"] for r in rows]),
                      ratio=median(ratios), process_ratios=ratios, processes=len(rows))
        if all("cpu_ratio" in r for r in rows):
            merged.update(ours_cpu_s=median([r["ours_cpu_s"] for r in rows]),
                          reference_cpu_s=median([r["reference_cpu_s"] for r in rows]),
                          cpu_ratio=median([r["cpu_ratio"] for r in rows]))
        if merged.get("goal") is not None:
            merged["met"] = bool(merged["ratio"] <= merged["goal"])
        out.append(merged)
    return out


def in_processes(script: str | Path, argv: list[str], processes: int) -> list[dict]:
    """Run ``script`` once per fresh process, one after the other, and :func:`combine` their rows.

    Each process gets ``argv`` followed by ``--processes 1 --json FILE`` (argparse keeps the last value of an option,
    so these override the caller's) and must write ``{"results": [...]}`` to ``FILE``. One process's ratio does not
    repeat in the next (memory layout, the other jobs on a shared machine), so a single process is one sample.

    Raises:
        RuntimeError: a process failed; the message names it, its exit code and the end of its stderr.
    """
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(processes):
            out = Path(tmp) / f"process{i}.json"
            cmd = [sys.executable, str(Path(script).resolve()), *argv, "--processes", "1", "--json", str(out)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"process {i + 1} of {processes} failed (exit code {proc.returncode}): "
                                   f"{proc.stderr.strip()[-2000:]}")
            rows = json.loads(out.read_text())["results"]
            runs.append(rows)
            print(f"process {i + 1}/{processes}: " + ", ".join(f"{r['name']} {r['ratio']:.3f}" for r in rows),
                  flush=True)
    return combine(runs)


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1 (argparse names the option in its one-line error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_processes_option(parser) -> None:
    """``--processes N``: measure in ``N`` fresh processes (default 5) and combine them (see :func:`in_processes`)."""
    parser.add_argument("--processes", type=positive_int, default=5,
                        help="fresh processes, one after the other; the ratio is the median of theirs (default 5)")


def rows_of_processes(parser, args, script: str | Path, argv: list[str] | None) -> list[dict] | None:
    """The combined rows of ``args.processes`` fresh processes of ``script``, or ``None`` when it is 1 (measure in
    this process). Exits with one line on stderr and code 1 when a process fails (not a traceback of this one)."""
    if args.processes == 1:
        return None
    try:
        return in_processes(script, sys.argv[1:] if argv is None else list(argv), args.processes)
    except RuntimeError as err:
        print(f"{Path(script).stem}: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def machine() -> dict:
    """What the numbers were measured on."""
    import torch_geometric

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    try:
        with open("/proc/meminfo") as f:
            info["ram_gb"] = round(int(f.readline().split()[1]) / 1024**2, 1)
        info["load_avg"] = os.getloadavg()
    except OSError:
        pass
    return info
