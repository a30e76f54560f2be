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

from .. import checks
from ..checks import is_integer
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
    wanted = None if epochs is None else _check_epochs(recorder, epochs)
    rows = []
    for info in recorder.gates.values():
        for epoch, stats in info.history:
            if wanted is None or epoch in wanted:
                rows.extend(_gate_rows(info, epoch, stats, recorder.threshold))
    rows.sort(key=lambda r: r["epoch"])  # stable: gates keep their order within an epoch
    return rows


def _check_epochs(recorder, epochs) -> set:
    """``epochs`` as a set, if it lists recorded epoch numbers; else ValueError/TypeError naming the first that is
    not (an epoch not recorded would give no rows, and a file that :func:`read_rows` refuses)."""
    if isinstance(epochs, (str, bytes)) or not hasattr(epochs, "__iter__"):
        raise TypeError(f"epochs must be a list of epoch numbers (or None: all), got {epochs!r}")
    epochs = list(epochs)
    recorded = set(recorder.epochs)
    for e in epochs:
        if not is_integer(e) or e not in recorded:
            raise ValueError(f"epochs: {e!r} is not a recorded epoch; recorded epochs: {sorted(recorded)}")
    return set(epochs)


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
def _check_target(rows: list[dict], path: Path, suffix: str, writer: str) -> None:
    """ValueError unless :func:`read_rows` will read the file back: some rows, a name ending in ``suffix``."""
    if path.suffix.lower() != suffix:
        other = {".csv": ".json", ".json": ".csv"}[suffix]
        hint = f"; use to_{other[1:]} for a {other} file" if path.suffix.lower() == other else ""
        raise ValueError(f"{writer}: {path}: the name must end in {suffix} (load() tells the format by the "
                         f"suffix){hint}")
    if not rows:
        raise ValueError(f"{writer}: {path}: nothing to write: no closed epoch has statistics (run the network, "
                         f"then call epoch_end())")


def write_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    path = checks.path("to_csv: path", path)
    _check_target(rows, path, ".csv", "to_csv")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
    atomic_write_text(path, buf.getvalue())
    return path


def write_json(rows: list[dict], path: str | os.PathLike) -> Path:
    path = checks.path("to_json: path", path)
    _check_target(rows, path, ".json", "to_json")
    atomic_write_text(path, json.dumps({"format": FORMAT, "rows": rows}) + "\n")
    return path


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Rows of a recording file (``.csv`` or ``.json``), typed and checked; errors name the file and row."""
    return [row for row, _ in read_located_rows(path)]


def read_located_rows(path: str | os.PathLike) -> list[tuple[dict, str]]:
    """:func:`read_rows` with where each row is in the file: ``(row, "line 5")`` (CSV) or ``(row, "row 3")``
    (JSON), for error messages."""
    path = checks.path("read_rows: path", path, what="a recording file's path")
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
        located = [(row, f"row {i}") for i, row in enumerate(blob["rows"])]
    elif path.suffix.lower() == ".csv":
        reader = csv.reader(io.StringIO(text, newline=""))
        located = []
        try:
            header = next(reader, [])
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise DataError(f"{path}: not a recording file: missing column(s) {', '.join(missing)}")
            last = reader.line_num
            for fields in reader:
                first, last = last + 1, reader.line_num  # a row starts on the line after the previous one ended
                if not fields:
                    continue  # a blank line
                if len(fields) != len(header):
                    raise DataError(f"{path}, line {first}: expected {len(header)} fields (as in the header), got "
                                    f"{len(fields)}")
                located.append((dict(zip(header, fields)), f"line {first}"))
        except csv.Error as err:
            raise DataError(f"{path}, line {reader.line_num}: malformed CSV ({err})") from None
    else:
        raise DataError(f"{path}: unknown recording file type {path.suffix or '(none)'!r}; use .csv or .json")
    return [(_typed(row, f"{path}, {where}"), where) for row, where in located]


# what source_index / target_index name at each level (branch rows leave both empty)
_INDEX_MEANING = {"neuron": ("the input unit", "the output unit"),
                  "graph": ("the edge's source node", "the edge's target node")}


def _typed(row, where: str) -> dict:
    if not isinstance(row, dict) or any(c not in row for c in COLUMNS):
        raise DataError(f"{where}: expected the columns {', '.join(COLUMNS)}")
    out = {"level": row["level"], "gate": row["gate"], "source": row["source"], "target": row["target"]}
    if out["level"] not in ("neuron", "branch", "graph"):
        raise DataError(f"{where}: level must be neuron, branch or graph, got {out['level']!r}")
    for k in ("gate", "source", "target"):
        if not isinstance(out[k], str):
            raise DataError(f"{where}: {k} must be a string (a node name or gate key), got {out[k]!r}")
    try:
        for k in _INT:
            out[k] = _int(row[k], k)
        for k in _OPTIONAL_INT:
            out[k] = None if row[k] in ("", None) else _int(row[k], k)
        for k in _FLOAT:
            out[k] = float("nan") if row[k] in ("", None) else _float(row[k], k)
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}: {err}") from None
    for k in ("mean", "min", "max"):
        if math.isinf(out[k]):
            raise DataError(f"{where}: {k} must be a finite number (or empty), got {row[k]!r}")
    lo, mean, hi = out["min"], out["mean"], out["max"]
    if not any(math.isnan(v) for v in (lo, mean, hi)):  # float32 rounding may put the mean an ulp past an extreme
        slack = 1e-5 * (1.0 + abs(lo) + abs(hi))
        if lo > hi or not lo - slack <= mean <= hi + slack:
            raise DataError(f"{where}: mean {row['mean']!r} must lie within [min, max] = [{row['min']!r}, "
                            f"{row['max']!r}]")
    if not (out["std"] >= 0 or math.isnan(out["std"])) or math.isinf(out["std"]):
        raise DataError(f"{where}: std must be a finite number >= 0 (or empty), got {row['std']!r}")
    if not (0.0 <= out["under"] <= 1.0 or math.isnan(out["under"])):
        raise DataError(f"{where}: under must be a fraction in [0, 1] (or empty), got {row['under']!r}")
    for k, meaning in zip(_OPTIONAL_INT, _INDEX_MEANING.get(out["level"], ())):
        if out[k] is None:
            raise DataError(f"{where}: {k} is empty; a {out['level']} row needs it ({meaning})")
    for k in ("epoch", "head", "count", *_OPTIONAL_INT):
        if out[k] is not None and out[k] < 0:
            raise DataError(f"{where}: {k} must be a non-negative integer, got {out[k]}")
    if out["count"] == 0:  # a recorder writes a gate's rows only for an epoch that recorded it
        raise DataError(f"{where}: count must be a positive integer (the samples summarised), got {out['count']}")
    if not 0.0 <= out["threshold"] <= 1.0:  # NaN fails too
        raise DataError(f"{where}: threshold must be a number in [0, 1] (the recorder's), got {row['threshold']!r}")
    return out


def _float(value, column: str) -> float:
    """A number field: text (CSV) or a JSON number; never a bool or anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{column} must be a number (or empty), got {value!r}")


def _int(value, column: str) -> int:
    """An integer field: a whole number, as text (CSV) or a JSON number; never a fraction or a bool."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{column} must be an integer, got {value!r}")
    if isinstance(value, float):
        return int(value)
    if isinstance(value, (int, str)):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{column} must be an integer, got {value!r}") from None
    raise TypeError(f"{column} must be an integer, got {value!r}")


# ---------------------------------------------------------------------------------------------- rebuild
def recorder_from_rows(rows: list[dict], source: str = "rows", where: list[str] | None = None):
    """A detached :class:`~modgraph.record.EdgeRecorder` holding the statistics the rows describe.

    ``where``: where each row is (``"line 5"``), for error messages (default ``"row i"``, its position). A gate's
    rows of one epoch must hold every entry of its statistics once: a duplicated, missing or misplaced entry is a
    :class:`~modgraph.errors.DataError` naming it and the line.
    """
    from .recorder import EdgeRecorder, GateInfo

    if not rows:
        raise DataError(f"{source}: no rows")
    where = [f"row {i}" for i in range(len(rows))] if where is None else list(where)
    threshold = rows[0]["threshold"]
    by_gate: dict[str, list[tuple[dict, str]]] = {}
    for row, at in zip(rows, where, strict=True):
        if row["threshold"] != threshold:
            raise DataError(f"{source}, {at}: threshold {row['threshold']} differs from the first row's {threshold}; "
                            "a recording has one threshold")
        by_gate.setdefault(row["gate"], []).append((row, at))
    recorder = EdgeRecorder(threshold=threshold)
    for key, gate_rows in by_gate.items():
        level = gate_rows[0][0]["level"]
        for row, at in gate_rows:
            if row["level"] != level:
                raise DataError(f"{source}, {at}: gate {key!r} is a {level} gate (first row), but this row says "
                                f"{row['level']}")
        by_epoch: dict[int, list[tuple[dict, str]]] = {}
        for row, at in gate_rows:  # one pass, in file order within each epoch
            by_epoch.setdefault(row["epoch"], []).append((row, at))
        epochs = sorted(by_epoch)
        first = [r for r, _ in by_epoch[epochs[0]]]
        edges, shape, edge_index, locate, entry = _layout(level, first)
        info = GateInfo(key, level, edges, shape, edge_index)
        size = shape[0] * shape[1]
        for epoch in epochs:
            er = by_epoch[epoch]
            context = f"gate {key!r}, epoch {epoch}"
            values = {k: torch.full((size,), float("nan"), dtype=torch.float32) for k in STAT_FIELDS[1:]}
            seen: dict[int, str] = {}
            for j, (r, at) in enumerate(er):
                flat = locate(r, j)
                if isinstance(flat, str):  # a row that does not sit where the layout puts it
                    raise DataError(f"{source}, {at}: {context}: {flat}")
                if flat is None or not 0 <= flat < size:
                    raise DataError(f"{source}, {at}: {context}: row {r} does not fit shape {shape}")
                if flat in seen:
                    raise DataError(f"{source}, {at}: {context}: {entry(flat)} again (first at {seen[flat]}); a "
                                    "duplicated row")
                seen[flat] = at
                if r["count"] != er[0][0]["count"]:  # one count per gate and epoch: every entry saw every sample
                    raise DataError(f"{source}, {at}: {context}: count {r['count']} for {entry(flat)}, but "
                                    f"{er[0][0]['count']} at {er[0][1]}; a gate's rows of one epoch share one count")
                for k in STAT_FIELDS[1:]:
                    values[k][flat] = r[k]
            if len(seen) < size:  # every position seen is a distinct one in [0, size): some are missing
                missing = [flat for flat in range(size) if flat not in seen]
                before = [seen[f] for f in range(missing[0]) if f in seen]
                place = f"after {before[-1]}" if before else f"before {er[0][1]}"
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise DataError(f"{source}: {context}: no row for {entry(missing[0])}{more}; expected {place} "
                                f"({size} rows, got {len(er)})")
            stats = EdgeStats(er[0][0]["count"], *(values[k].reshape(shape) for k in STAT_FIELDS[1:]))
            info.history.append((epoch, stats))
        recorder.gates[key] = info
    recorder.epochs = sorted({r["epoch"] for r in rows})
    return recorder


def _layout(level: str, first: list[dict]):
    """``(edges, shape, edge_index, locate, entry)`` of a gate from its rows of one epoch. ``locate(row, j)`` gives
    the flat position of a row (``j``: its position among the epoch's rows), or a string saying why the row does
    not fit; ``entry(flat)`` describes the entry at a flat position (for error messages)."""
    heads = max(r["head"] for r in first) + 1
    if level == "neuron":
        source, target = first[0]["source"], first[0]["target"]
        shape = (max(r["source_index"] for r in first) + 1, max(r["target_index"] for r in first) + 1)

        def locate(r, j):
            return r["source_index"] * shape[1] + r["target_index"]

        def entry(flat):
            i, o = divmod(flat, shape[1])
            return f"connection {source}[{i}] -> {target}[{o}] (source_index {i}, target_index {o})"

        return [(source, target)], shape, None, locate, entry
    if level == "branch":
        edges = list(dict.fromkeys((r["source"], r["target"]) for r in first))
        k_of = {e: k for k, e in enumerate(edges)}

        def locate(r, j):
            return k_of.get((r["source"], r["target"]), len(edges)) * heads + r["head"]

        def entry(flat):
            k, h = divmod(flat, heads)
            return f"edge {edges[k][0]!r} -> {edges[k][1]!r}, head {h}"

        return edges, (len(edges), heads), None, locate, entry
    # graph: rows are edge-major, head-minor, in edge_index's column order (an edge may appear twice: a multigraph)
    pairs = [(r["source_index"], r["target_index"]) for r in first if r["head"] == 0]
    edge_index = torch.tensor(pairs, dtype=torch.long).t().reshape(2, -1)

    def entry(flat):
        e, h = divmod(flat, heads)
        if e >= len(pairs):
            return f"edge column {e}, head {h}"
        return f"edge {pairs[e][0]} -> {pairs[e][1]} (column {e} of edge_index), head {h}"

    def locate(r, j):
        e, h = divmod(j, heads)
        if e < len(pairs) and (pairs[e] != (r["source_index"], r["target_index"]) or h != r["head"]):
            return (f"expected {entry(j)} here (rows run edge by edge, head by head), got edge "
                    f"{r['source_index']} -> {r['target_index']}, head {r['head']}; a duplicated, missing or "
                    "moved row")
        return j

    return [(first[0]["source"], first[0]["target"])], (len(pairs), heads), edge_index, locate, entry
