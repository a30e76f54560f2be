"""Markdown tables from the JSON of ``benchmarks/run.py`` (what docs/benchmarks.md shows).

    python benchmarks/report.py bench.json > tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fmt(value, spec: str = ".3f") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def status(row: dict) -> str:
    if row.get("status"):
        return f"**{row['status']}**: {row.get('reason', '')}"
    if row.get("met") is None:
        return ""
    return "met" if row["met"] else "**missed**"


def main_table(rows: list[dict]) -> str:
    lines = ["| benchmark | ours | reference | reference value | ratio | CPU-time ratio | goal | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["benchmark"] == "graph_scale" and "nodes" in r:
            continue  # its own table
        unit = "s" if r.get("unit") is None else r["unit"]
        ours = fmt(r.get("ours_s"), ".4g") + (f" {unit}" if r.get("ours_s") is not None else "")
        ref = fmt(r.get("reference_s"), ".4g") + (f" {unit}" if r.get("reference_s") is not None else "")
        goal = f"<= {r['goal']:g}" if isinstance(r.get("goal"), (int, float)) else "-"
        if r.get("memory_goal_mb"):
            goal = f"peak < {r['memory_goal_mb'] / 1024:.0f} GiB (peak {r['peak_rss_mb'] / 1024:.2f} GiB)"
        lines.append(f"| {r['name']} | {ours} | {r.get('reference') or '-'} | {ref} | {fmt(r.get('ratio'))} | "
                     f"{fmt(r.get('cpu_ratio'))} | {goal} | {status(r)} |")
    return "\n".join(lines)


def scale_table(rows: list[dict]) -> str:
    sizes = [r for r in rows if r["benchmark"] == "graph_scale" and "nodes" in r]
    if not sizes:
        return ""
    floor = all("floor_s" in r for r in sizes)  # runs since 2026-12-06 also time the memory system's floor
    lines = ["| nodes | edges | ours s/epoch | PyG GAT s/epoch | time ratio | "
             + ("floor s/epoch | ours / floor | " if floor else "")
             + "ours training MiB | PyG GAT training MiB | memory ratio | ours peak RSS MiB |",
             "|---|---|---|---|---|" + ("---|---|" if floor else "") + "---|---|---|---|"]
    for r in sizes:
        lines.append(f"| {r['nodes']:,} | {r['edges']:,} | {r['ours_s']:.3f} | {r['reference_s']:.3f} | "
                     f"{r['ratio']:.2f} | "
                     + (f"{r['floor_s']:.3f} | {r['ratio_to_floor']:.2f} | " if floor else "")
                     + f"{r['ours_train_mb']:.0f} | {r['reference_train_mb']:.0f} | "
                     f"{r['memory_ratio']:.2f} | {r['ours_peak_rss_mb']:.0f} |")
    slopes = next((r["slopes"] for r in rows if r.get("slopes")), None)
    if slopes:
        lines.append("")
        lines.append("log-log slope against the number of edges (1.0 = linear): " + "; ".join(
            f"{m}: time {fmt(s['time_vs_edges'], '.2f')}, memory {fmt(s['memory_vs_edges'], '.2f')}"
            for m, s in slopes.items()))
    return "\n".join(lines)


def load(path: str) -> tuple[list[dict], dict]:
    """The rows and the machine of a ``benchmarks/run.py --json`` file; ``ValueError`` naming the file and the
    fault (missing, not JSON, not ``{"results": [...]}``, a row without ``name`` or ``benchmark``)."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ValueError(f"{path}: cannot read it ({err.strerror or err})") from None
    try:
        report = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg})") from None
    rows = report.get("results") if isinstance(report, dict) else None
    if not isinstance(rows, list):
        raise ValueError(f'{path}: expected {{"results": [...], "machine": {{...}}}} as benchmarks/run.py --json '
                         f"writes it")
    for i, r in enumerate(rows):
        missing = [k for k in ("name", "benchmark") if not isinstance(r, dict) or k not in r]
        if missing:
            raise ValueError(f"{path}: row {i} has no {' or '.join(missing)} (not a benchmarks/run.py row)")
    info = report.get("machine")
    return rows, info if isinstance(info, dict) else {}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["-h"], ["--help"]):
        print("usage: python benchmarks/report.py bench.json\n\nMarkdown tables of a benchmarks/run.py --json file.")
        return 0
    if len(argv) != 1:
        print("usage: python benchmarks/report.py bench.json", file=sys.stderr)
        return 2
    try:
        rows, info = load(argv[0])
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Command: `{info.get('command', '?')}` (started {info.get('started', '?')}, "
          f"{info.get('minutes', '?')} min)\n")
    print(f"Machine: {info.get('cpus')} CPUs, {info.get('ram_gb')} GB RAM, {info.get('platform')}, Python "
          f"{info.get('python')}, torch {info.get('torch')}, torch_geometric {info.get('torch_geometric')}, "
          f"{info.get('torch_threads')} torch thread(s), device {info.get('device')}; load average "
          f"{fmt(info.get('load_avg', [None])[0], '.1f')} at the start, "
          f"{fmt((info.get('load_avg_end') or [None])[0], '.1f')} at the end (shared with other jobs).\n")
    print(main_table(rows))
    table = scale_table(rows)
    if table:
        print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
