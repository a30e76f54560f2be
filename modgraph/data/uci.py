"""Loaders for six small UCI classification tables, read from the original files, plus a generic CSV loader.

The files live under ``<data root>/uci/`` (see ``shared/data/README.md`` section 2 for their provenance):

============  ==============================================  ========  ========  =======
name          file(s) under ``uci/``                          rows      features  classes
============  ==============================================  ========  ========  =======
``balance``   ``balance-scale/balance-scale.data``            625       4         3
``ecoli``     ``ecoli/ecoli.data``                            336       7         8
``glass``     ``glass/glass.data``                            214       9         6
``liver``     ``liver-disorders/bupa.data``                   345       6 (5)     2
``sonar``     ``sonar/sonar.all-data``                        208       60        2
``vehicle``   ``vehicle/xaa.dat`` ... ``vehicle/xai.dat``     846       18        4
============  ==============================================  ========  ========  =======

Labels are mapped to ``0..C-1`` in sorted order of the label as written in the file (``class_names[k]`` is
the original label of class ``k``). Identifier columns (ecoli's sequence name, glass's ``Id``) are dropped:
glass's ``Id`` is sorted by class and would leak the label.

Every parse problem raises :class:`~modgraph.errors.DataError` naming the file, the 1-based line number, what
was expected and what was found.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modgraph import checks
from modgraph.data.checks import check_features, check_labels
from modgraph.data.checksums import verify_file
from modgraph.data.paths import HOW_TO_SET_ROOT, data_root_origin, resolve_data_root
from modgraph.errors import DataError

UCI_NAMES: tuple[str, ...] = ("balance", "ecoli", "glass", "liver", "sonar", "vehicle")
LIVER_LABELS: tuple[str, ...] = ("selector", "drinks")


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy fields with == is ambiguous
class UCIDataset:
    """A small tabular classification data set.

    Attributes:
        name: the data set's name (``"glass"``, or the file stem for :func:`load_csv`).
        X: features, ``float32`` array of shape ``[n, d]``.
        y: labels, ``int64`` array of shape ``[n]`` with values ``0..C-1``.
        feature_names: the ``d`` column names, in the order of ``X``'s columns.
        class_names: the ``C`` original labels; ``class_names[k]`` is what ``y == k`` stands for.
        source_files: the files the rows were read from, in order.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    source_files: tuple[Path, ...]

    def __post_init__(self) -> None:
        """DataError naming the data set when the fields do not fit together (a hand-built data set: the loaders'
        always do): every later step reads ``X [n, d]``, ``y [n]`` in ``0..C-1`` and one name per column."""
        what = f"UCIDataset {self.name!r}"
        X, y = np.asarray(self.X), np.asarray(self.y)
        if X.ndim != 2 or not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
            raise DataError(f"{what}: X must be a numeric array [n, d], got shape {X.shape} of {X.dtype}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{what}: y must be an integer array [n] of class indices 0..C-1, got shape {y.shape} of "
                            f"{y.dtype}")
        if len(y) != len(X):
            raise DataError(f"{what}: X has {len(X)} rows but y has {len(y)} labels; one label per row")
        if len(self.feature_names) != X.shape[1]:
            raise DataError(f"{what}: {len(self.feature_names)} feature names for {X.shape[1]} columns of X")
        # the data checks every loader's data passes; an empty table (no rows, no feature columns) is built, and
        # check_data names it against the protocol's minimum
        if len(y):
            check_labels(torch.from_numpy(y), len(self.class_names), what)
        if X.size:
            check_features(torch.from_numpy(X), what)

    @property
    def num_samples(self) -> int:
        """Rows of the table."""
        return int(self.X.shape[0])

    @property
    def num_features(self) -> int:
        """Input columns (the label excluded)."""
        return int(self.X.shape[1])

    @property
    def num_classes(self) -> int:
        """Distinct classes (``len(class_names)``)."""
        return len(self.class_names)

    def class_counts(self) -> dict[str, int]:
        """Number of rows per class, keyed by original label."""
        counts = np.bincount(self.y, minlength=self.num_classes)
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}

    def __repr__(self) -> str:
        return (
            f"UCIDataset(name={self.name!r}, samples={self.num_samples}, features={self.num_features}, "
            f"classes={self.class_counts()})"
        )


@dataclass(frozen=True)
class _Spec:
    """How one UCI file is laid out. ``columns`` names every field; ``None`` marks a dropped field."""

    folder: str
    files: tuple[str, ...]
    separator: str | None  # None: runs of whitespace
    columns: tuple[str | None, ...]
    label_index: int
    classes: tuple[str, ...]


_VEHICLE_FEATURES = (
    "compactness", "circularity", "distance_circularity", "radius_ratio", "pr_axis_aspect_ratio",
    "max_length_aspect_ratio", "scatter_ratio", "elongatedness", "pr_axis_rectangularity",
    "max_length_rectangularity", "scaled_variance_major", "scaled_variance_minor",
    "scaled_radius_of_gyration", "skewness_about_major", "skewness_about_minor", "kurtosis_about_minor",
    "kurtosis_about_major", "hollows_ratio",
)  # fmt: skip

_SPECS: dict[str, _Spec] = {
    "balance": _Spec(
        "balance-scale", ("balance-scale.data",), ",",
        ("class", "left_weight", "left_distance", "right_weight", "right_distance"), 0, ("B", "L", "R"),
    ),
    "ecoli": _Spec(
        "ecoli", ("ecoli.data",), None,
        (None, "mcg", "gvh", "lip", "chg", "aac", "alm1", "alm2", "class"), 8,
        ("cp", "im", "imL", "imS", "imU", "om", "omL", "pp"),
    ),
    "glass": _Spec(
        "glass", ("glass.data",), ",",
        (None, "RI", "Na", "Mg", "Al", "Si", "K", "Ca", "Ba", "Fe", "type"), 10,
        ("1", "2", "3", "5", "6", "7"),  # type 4 (vehicle windows, non-float) has no rows
    ),
    "liver": _Spec(
        "liver-disorders", ("bupa.data",), ",",
        ("mcv", "alkphos", "sgpt", "sgot", "gammagt", "drinks", "selector"), 6, ("1", "2"),
    ),
    "sonar": _Spec(
        "sonar", ("sonar.all-data",), ",",
        tuple(f"band_{i:02d}" for i in range(1, 61)) + ("class",), 60, ("M", "R"),
    ),
    "vehicle": _Spec(
        "vehicle", tuple(f"xa{c}.dat" for c in "abcdefghi"), None,
        _VEHICLE_FEATURES + ("class",), 18, ("bus", "opel", "saab", "van"),
    ),
}  # fmt: skip


def _find_file(root: Path, folder: str, filename: str, dataset: str, origin: str) -> Path:
    """``root/uci/<folder>/<file>``, or ``root/<folder>/<file>`` if ``root`` is the ``uci`` folder itself."""
    candidates = [root / "uci" / folder / filename, root / folder / filename]
    for path in candidates:
        if path.is_file():
            return path
    searched = ", ".join(str(p) for p in candidates)
    raise DataError(
        f"UCI data set '{dataset}': file '{filename}' not found; searched {searched} "
        f"(data root {root}, from {origin}). "
        f"Place the original file at <data root>/uci/{folder}/{filename}, and {HOW_TO_SET_ROOT}."
    )


def _split(line: str, separator: str | None) -> list[str]:
    if separator is None:
        return line.split()
    return [field.strip() for field in line.split(separator)]


MISSING = ("?", "")  # how the UCI files and most CSV writers mark a missing value (a label too)


def _show(line: str, limit: int = 100) -> str:
    line = line.rstrip("\r\n")
    return repr(line if len(line) <= limit else line[:limit] + "...")


def _parse_number(field: str, path: Path, lineno: int, column: str, line: str) -> float:
    where = f"{path}, line {lineno}, column '{column}'"
    if field in MISSING:
        raise DataError(
            f"{where}: missing value {field!r} in {_show(line)}; expected a number. These loaders do not "
            "impute: remove the row or fill in the value."
        )
    try:
        if "_" in field:  # float() reads "1_000" as 1000: a digit separator no data file means
            raise ValueError(field)
        value = float(field)
    except ValueError:
        raise DataError(
            f"{where}: expected a number, got {field!r} in {_show(line)}. Fix the field, or check that the "
            "separator and column layout match the file."
        ) from None
    if not math.isfinite(value):
        raise DataError(f"{where}: expected a finite number, got {field!r} in {_show(line)}.")
    if abs(value) >= _FLOAT32_OVERFLOW:  # finite in float64, but the features are float32: it would become inf
        raise DataError(
            f"{where}: {field} overflows float32 (the features' type; largest {_FLOAT32_MAX:.8g}) in "
            f"{_show(line)}. Rescale the column."
        )
    return value


#: float32's largest value, and the smallest magnitude that rounds to inf when cast to float32 (halfway to 2**128)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT32_OVERFLOW = 2.0**128 - 2.0**103


def _read_text(path: Path) -> list[str]:
    """The lines of ``path`` (text without line ending; index ``i`` is line ``i + 1``), a UTF-8 byte-order mark
    (as Excel writes) dropped."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a UTF-8/ASCII text file ({err.reason} at byte {err.start}).") from None
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}.") from None
    return [line.removesuffix("\r") for line in text.split("\n")]  # LF or CRLF; keeps line numbers exact


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of ``path`` as (1-based line number, text without line ending)."""
    rows = [(i, line) for i, line in enumerate(_read_text(path), start=1) if line.strip()]
    if not rows:
        raise DataError(f"{path} is empty: expected data rows. Restore the original file.")
    return rows


def _read_records(path: Path, delimiter: str) -> list[tuple[int, int, list[str], str]]:
    """Non-blank CSV records of ``path`` as ``(first line, last line, fields, text)``; a quoted field may span
    lines (``csv.reader``), so a record's lines are a range."""
    lines = _read_text(path)
    if lines[-1] == "":
        lines.pop()  # the end of the last line, not a line of its own
    reader = csv.reader((line + "\n" for line in lines), delimiter=delimiter)
    records, last = [], 0
    try:
        for fields in reader:
            first, last = last + 1, reader.line_num
            if fields and not (len(fields) == 1 and not fields[0].strip()):
                records.append((first, last, fields, "\n".join(lines[first - 1 : last])))
    except csv.Error as err:
        raise DataError(f"{path}, line {reader.line_num}: malformed CSV ({err}).") from None
    if not records:
        raise DataError(f"{path} is empty: expected data rows. Restore the original file.")
    return records


def _parse_table(path: Path, spec: _Spec) -> tuple[list[list[float]], list[str]]:
    """Rows of one file: the kept numeric fields and the raw label."""
    features, labels = [], []
    kind = "whitespace-separated" if spec.separator is None else f"'{spec.separator}'-separated"
    for lineno, line in _read_lines(path):
        fields = _split(line, spec.separator)
        if len(fields) != len(spec.columns):
            raise DataError(
                f"{path}, line {lineno}: expected {len(spec.columns)} {kind} fields, got {len(fields)} in "
                f"{_show(line)}. Fix or remove the line (a truncated or merged line?)."
            )
        label = fields[spec.label_index]
        if label not in spec.classes:
            raise DataError(
                f"{path}, line {lineno}: unknown class label {label!r}; expected one of "
                f"{', '.join(spec.classes)} (line {_show(line)})."
            )
        row = [
            _parse_number(field, path, lineno, column, line)
            for index, (field, column) in enumerate(zip(fields, spec.columns, strict=True))
            if column is not None and index != spec.label_index
        ]
        features.append(row)
        labels.append(label)
    return features, labels


def load_uci(
    name: str,
    data_root: str | os.PathLike | None = None,
    liver_label: str = "selector",
    verify: bool = True,
) -> UCIDataset:
    """Load one of the six UCI tables from its original file(s).

    Args:
        name: ``"balance"``, ``"ecoli"``, ``"glass"``, ``"liver"``, ``"sonar"`` or ``"vehicle"``
            (case-insensitive).
        data_root: the folder holding ``uci/`` (or the ``uci`` folder itself); default ``$MODGRAPH_DATA``,
            then ``./data`` (see :func:`~modgraph.data.paths.resolve_data_root`).
        liver_label: only used for ``"liver"`` (BUPA). Field 7 of ``bupa.data`` is a train/test *selector*
            that the donors added, not a diagnosis (McDermott & Forsyth, *Diagnosing a disorder in a
            classification benchmark*, Pattern Recognition Letters 73, 2016).

            - ``"selector"`` (default): ``y = selector - 1`` (145 vs. 200 rows), all 6 blood/drink features.
              This is the label used by most of the older literature that reports "liver" accuracies, so it
              is the default for comparability with published tables (such as the paper's Table 2); the
              numbers measure how well a model predicts an arbitrary split, not a disorder.
            - ``"drinks"``: ``y = [drinks >= 3]`` (169 vs. 176 rows), and ``drinks`` is removed from the
              features (5 features), as McDermott & Forsyth propose.
        verify: after parsing, check every file against its known SHA-256 (a corrupted or edited file raises
            :class:`DataError` naming it). Files are tiny and the digests are cached per process.

    Returns:
        :class:`UCIDataset` with ``X`` ``float32 [n, d]``, ``y`` ``int64 [n]`` in ``0..C-1``.

    Raises:
        DataError: unknown name or ``liver_label``; a missing file (names the paths searched); a malformed
            line (names the file and 1-based line number); a checksum mismatch.

    Example:
        >>> ds = load_uci("glass", "/work/shared/data")
        >>> ds.X.shape, ds.num_classes
        ((214, 9), 6)
    """
    key = str(name).strip().lower()
    if key not in _SPECS:
        raise DataError(f"unknown UCI data set {name!r}; expected one of {', '.join(UCI_NAMES)}.")
    if liver_label not in LIVER_LABELS:
        raise DataError(f"liver_label: expected one of {', '.join(LIVER_LABELS)}, got {liver_label!r}.")
    spec = _SPECS[key]
    root = resolve_data_root(data_root)
    origin = data_root_origin(data_root)
    paths = [_find_file(root, spec.folder, filename, key, origin) for filename in spec.files]

    features: list[list[float]] = []
    labels: list[str] = []
    for path in paths:
        file_features, file_labels = _parse_table(path, spec)
        features += file_features
        labels += file_labels
    if verify:
        for path, filename in zip(paths, spec.files, strict=True):
            verify_file(path, f"uci/{spec.folder}/{filename}")

    X = np.asarray(features, dtype=np.float64)  # (n, d); float64 until the liver columns are chosen
    index = {label: k for k, label in enumerate(spec.classes)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    feature_names = tuple(c for i, c in enumerate(spec.columns) if c is not None and i != spec.label_index)
    class_names = spec.classes

    if key == "liver":
        if liver_label == "selector":
            class_names = ("selector=1", "selector=2")
        else:
            drinks = feature_names.index("drinks")
            y = (X[:, drinks] >= 3).astype(np.int64)
            X = np.delete(X, drinks, axis=1)
            feature_names = feature_names[:drinks] + feature_names[drinks + 1 :]
            class_names = ("drinks<3", "drinks>=3")

    return UCIDataset(
        name=key,
        X=X.astype(np.float32),
        y=y,
        feature_names=feature_names,
        class_names=class_names,
        source_files=tuple(paths),
    )


def _label_sort_key(labels: set[str]) -> list[str]:
    """Sort numerically when every label is a number (so "10" follows "9"), else as strings (so a NaN, which
    compares with nothing, can never make the order depend on the set's iteration order)."""
    try:
        keys = {s: (float(s), s) for s in labels}
    except ValueError:
        return sorted(labels)
    if any(math.isnan(k[0]) for k in keys.values()):
        return sorted(labels)
    return sorted(labels, key=keys.__getitem__)


def load_csv(
    path: str | os.PathLike,
    label_column: str,
    *,
    drop_columns: Sequence[str] = (),
    delimiter: str = ",",
    name: str | None = None,
) -> UCIDataset:
    """Load a classification table from a CSV file with a header row.

    Args:
        path: the CSV file.
        label_column: header name of the label column. Its values (any text) are mapped to ``0..C-1`` in
            sorted order: numerically if every label is a number, else as strings.
        drop_columns: header names of columns to ignore (identifiers, row numbers); one name may be given as a
            string; ``None``: none.
        delimiter: field separator (default ``","``). Quoted fields are handled by :mod:`csv`.
        name: the data set's name (default: the file's stem).

    Returns:
        :class:`UCIDataset`; every column but the label and ``drop_columns`` becomes a ``float32`` feature,
        in file order.

    Raises:
        DataError: missing or empty file, unknown or duplicated column name, no feature column, a row with the
            wrong number of fields, a non-numeric or missing (``?``, empty) feature value or one beyond
            ``float32``'s range, an empty, ``?`` or ``nan`` label, a single class; the message names the file and
            1-based line number. The file is read as UTF-8 (a byte-order mark, as Excel writes, is skipped).

    Example:
        >>> ds = load_csv("iris.csv", label_column="species")   # doctest: +SKIP
    """
    if not isinstance(label_column, str):
        raise TypeError(f"load_csv: label_column must be a column name (a str), got {type(label_column).__name__} "
                        f"{label_column!r:.60}")
    if drop_columns is None:
        drop_columns = ()
    elif isinstance(drop_columns, str):  # one name, not its characters
        drop_columns = (drop_columns,)
    if not hasattr(drop_columns, "__iter__") or not all(isinstance(c, str) for c in drop_columns):
        raise TypeError(f"load_csv: drop_columns must be a list of column names (str), got {drop_columns!r:.80}")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        raise (TypeError if not isinstance(delimiter, str) else ValueError)(
            f"load_csv: delimiter must be one character (not a quote or a line break), such as ',' or ';', got "
            f"{delimiter!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"load_csv: name must be a str (or None: the file's stem), got {type(name).__name__}")
    path = checks.path("load_csv: path", path).expanduser()
    if not path.is_file():
        raise DataError(f"CSV file not found: {path}. Check the path (relative paths start at {Path.cwd()}).")
    records = _read_records(path, delimiter)
    header_lineno, _, raw_header, _ = records[0]
    header = [h.strip() for h in raw_header]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise DataError(f"{path}, line {header_lineno}: duplicated column name(s) {duplicated} in header.")
    for column in [label_column, *drop_columns]:
        if column not in header:
            raise DataError(f"{path}, line {header_lineno}: no column named {column!r}; the header has {header}.")
    label_index = header.index(label_column)
    kept = [i for i, h in enumerate(header) if i != label_index and h not in drop_columns]
    if not kept:
        dropped = f" and the dropped {list(drop_columns)}" if drop_columns else ""
        raise DataError(f"{path}, line {header_lineno}: no feature columns besides {label_column!r}{dropped}; "
                        f"the header has {header}.")
    if len(records) < 2:
        raise DataError(f"{path}: has a header but no data rows.")

    features, labels = [], []
    for lineno, last, fields, line in records[1:]:
        if len(fields) != len(header):
            spans = f" (a quoted field runs from line {lineno} to line {last})" if last > lineno else ""
            raise DataError(
                f"{path}, line {lineno}: expected {len(header)} '{delimiter}'-separated fields (as in the "
                f"header), got {len(fields)}{spans} in {_show(line)}. Fix or remove the line."
            )
        label = fields[label_index].strip()
        if label in MISSING or label.lower() == "nan":  # "nan": a missing value as pandas or str(float) write it
            raise DataError(f"{path}, line {lineno}: missing label {label!r} in column {label_column!r}.")
        features.append([_parse_number(fields[i].strip(), path, lineno, header[i], line) for i in kept])
        labels.append(label)

    classes = tuple(_label_sort_key(set(labels)))
    if len(classes) < 2:
        raise DataError(f"{path}: column {label_column!r} has a single class ({classes[0]}); classification needs two.")
    index = {label: k for k, label in enumerate(classes)}
    return UCIDataset(
        name=name if name is not None else path.stem,
        X=np.asarray(features, dtype=np.float32).reshape(len(features), len(kept)),
        y=np.array([index[label] for label in labels], dtype=np.int64),
        feature_names=tuple(header[i] for i in kept),
        class_names=classes,
        source_files=(path,),
    )
