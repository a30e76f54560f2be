"""Tidy rows of recorded edge statistics, their CSV and JSON files, and reading them back.

One row per recorded weight entry and epoch, with the columns of :data:`COLUMNS`:

=================  ==========================================================================================
column             meaning
=================  ==========================================================================================
epoch              the epoch number (``EdgeRecorder.epoch_end``)
level              ``neuron``, ``branch`` or ``graph``
gate               the gate key: ``h->y`` (neuron), the merge node (branch), the graph-op node (graph)
source, target     the DAG edge the weight belongs to (graph level: the graph-op node twice)
source_index       neuron: the input unit ``i``; graph: the source node ``edge_index[0, e]``; branch: empty
target_index       neuron: the output unit ``o``; graph: the target node ``edge_index[1, e]``; branch: empty
head               the attention head (0 without heads)
count              samples summarised in the epoch
mean, std          mean and population std (``correction=0``) of the weight over those samples
min, max           extremes seen
under              fraction of samples with the weight below ``threshold``
threshold          the recorder's threshold
=================  ==========================================================================================

JSON files hold ``{"format": "modgraph-record/1", "rows": [...]}``; CSV files the same rows under a header.
Both are written atomically. Reading rebuilds the statistics tensors from the rows alone.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import torch

from ..errors import DataError
from ..io import atomic_write_text
from .stats import STAT_FIELDS, EdgeStats

FORMAT = "modgraph-record/1"
COLUMNS = ("epoch", "level", "gate", "source", "target", "source_index", "target_index", "head", "count", "mean",
           "std", "min", "max", "under", "threshold")
_INT = ("epoch", "count", "head")
_FLOAT = ("mean", "std", "min", "max", "under", "threshold")
_OPTIONAL_INT = ("source_index", "target_index")


def recorder_rows(recorder, epochs=None) -> list[dict]:
    """The rows of every closed epoch of ``recorder`` (or of the epochs listed in ``epochs``)."""
    wanted = None if epochs is None else set(epochs)
    rows = []
    for info in recorder.gates.values():
        for epoch, stats in info.history:
            if wanted is None or epoch in wanted:
                rows.extend(_gate_rows(info, epoch, stats, recorder.threshold))
    rows.sort(key=lambda r: r["epoch"])  # stable: gates keep their order within an epoch
    return rows


def _gate_rows(info, epoch: int, stats: EdgeStats, threshold: float) -> list[dict]:
    values = {k: getattr(stats, k).reshape(-1).tolist() for k in STAT_FIELDS[1:]}
    a, b = info.shape
    rows = []
    for flat in range(a * b):
        first, second = divmod(flat, b)
        if info.level == "neuron":
            (source, target), head, si, ti = info.edges[0], 0, first, second
        elif info.level == "branch":
            (source, target), head, si, ti = info.edges[first], second, None, None
        else:
            (source, target), head = info.edges[0], second
            si, ti = int(info.edge_index[0, first]), int(info.edge_index[1, first])
        row = {"epoch": epoch, "level": info.level, "gate": info.key, "source": source, "target": target,
               "source_index": si, "target_index": ti, "head": head, "count": stats.count}
        row.update({k: _clean(values[k][flat]) for k in STAT_FIELDS[1:]})
        row["threshold"] = threshold
        rows.append(row)
    return rows


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else x


# ---------------------------------------------------------------------------------------------- files
def write_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    path = Path(path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
    atomic_write_text(path, buf.getvalue())
    return path


def write_json(rows: list[dict], path: str | os.PathLike) -> Path:
    path = Path(path)
    atomic_write_text(path, json.dumps({"format": FORMAT, "rows": rows}) + "\n")
    return path


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Rows of a recording file (``.csv`` or ``.json``), typed and checked; errors name the file and row."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such recording file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read recording file: {err}") from None
    if path.suffix.lower() == ".json":
        try:
            blob = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}:{err.colno}: malformed JSON: {err.msg}") from None
        if not isinstance(blob, dict) or blob.get("format") != FORMAT or not isinstance(blob.get("rows"), list):
            raise DataError(f"{path}: not a recording file (expected {{'format': {FORMAT!r}, 'rows': [...]}})")
        raw, first_line = blob["rows"], None
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: not a recording file: missing column(s) {', '.join(missing)}")
        raw, first_line = list(reader), 2
    else:
        raise DataError(f"{path}: unknown recording file type {path.suffix or '(none)'!r}; use .csv or .json")
    return [_typed(row, path, i if first_line is None else i + first_line, first_line is None)
            for i, row in enumerate(raw)]


def _typed(row, path: Path, n: int, is_json: bool) -> dict:
    where = f"{path}, row {n}" if is_json else f"{path}, line {n}"
    if not isinstance(row, dict) or any(c not in row for c in COLUMNS):
        raise DataError(f"{where}: expected the columns {', '.join(COLUMNS)}")
    out = {"level": row["level"], "gate": row["gate"], "source": row["source"], "target": row["target"]}
    if out["level"] not in ("neuron", "branch", "graph"):
        raise DataError(f"{where}: level must be neuron, branch or graph, got {out['level']!r}")
    try:
        for k in _INT:
            out[k] = int(row[k])
        for k in _OPTIONAL_INT:
            out[k] = None if row[k] in ("", None) else int(row[k])
        for k in _FLOAT:
            out[k] = float("nan") if row[k] in ("", None) else float(row[k])
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}: {err}") from None
    return out


# ---------------------------------------------------------------------------------------------- rebuild
def recorder_from_rows(rows: list[dict], source: str = "rows"):
    """A detached :class:`~modgraph.record.EdgeRecorder` holding the statistics the rows describe."""
    from .recorder import EdgeRecorder, GateInfo

    if not rows:
        raise DataError(f"{source}: no rows")
    recorder = EdgeRecorder(threshold=rows[0]["threshold"])
    by_gate: dict[str, list[dict]] = {}
    for row in rows:
        by_gate.setdefault(row["gate"], []).append(row)
    for key, gate_rows in by_gate.items():
        level = gate_rows[0]["level"]
        epochs = sorted({r["epoch"] for r in gate_rows})
        first = [r for r in gate_rows if r["epoch"] == epochs[0]]
        edges, shape, edge_index, locate = _layout(level, first)
        info = GateInfo(key, level, edges, shape, edge_index)
        size = shape[0] * shape[1]
        for epoch in epochs:
            er = [r for r in gate_rows if r["epoch"] == epoch]
            if len(er) != size:
                raise DataError(f"{source}: gate {key!r}, epoch {epoch}: expected {size} rows, got {len(er)}")
            values = {k: torch.full((size,), float("nan"), dtype=torch.float32) for k in STAT_FIELDS[1:]}
            for j, r in enumerate(er):
                flat = locate(r, j)
                if flat is None or not 0 <= flat < size:
                    raise DataError(f"{source}: gate {key!r}, epoch {epoch}: row {r} does not fit shape {shape}")
                for k in STAT_FIELDS[1:]:
                    values[k][flat] = r[k]
            stats = EdgeStats(er[0]["count"], *(values[k].reshape(shape) for k in STAT_FIELDS[1:]))
            info.history.append((epoch, stats))
        recorder.gates[key] = info
    recorder.epochs = sorted({r["epoch"] for r in rows})
    return recorder


def _layout(level: str, first: list[dict]):
    """``(edges, shape, edge_index, locate)`` of a gate from its rows of one epoch; ``locate(row, j)`` gives the
    flat position of a row (``j``: its position among the epoch's rows)."""
    heads = max(r["head"] for r in first) + 1
    if level == "neuron":
        shape = (max(r["source_index"] for r in first) + 1, max(r["target_index"] for r in first) + 1)

        def locate(r, j):
            return r["source_index"] * shape[1] + r["target_index"]

        return [(first[0]["source"], first[0]["target"])], shape, None, locate
    if level == "branch":
        edges = list(dict.fromkeys((r["source"], r["target"]) for r in first))
        k_of = {e: k for k, e in enumerate(edges)}

        def locate(r, j):
            return k_of.get((r["source"], r["target"]), len(edges)) * heads + r["head"]

        return edges, (len(edges), heads), None, locate
    pairs = [(r["source_index"], r["target_index"]) for r in first if r["head"] == 0]
    edge_index = torch.tensor(pairs, dtype=torch.long).t().reshape(2, -1)
    return [(first[0]["source"], first[0]["target"])], (len(pairs), heads), edge_index, lambda r, j: j
