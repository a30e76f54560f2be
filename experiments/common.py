"""Shared command-line helpers of the experiment scripts.

Flags every script takes (``add_common_args``): ``--data-root``, ``--device auto|cpu|cuda``, ``--seeds``,
``--json``, ``--log-level``. User errors (a missing data set, a bad flag value, CUDA asked for but absent) end the
script with exit code 2 and one line on stderr (``run_main``); progress bars are tqdm bars that stay quiet when
stderr is not a terminal (``progress``).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from modgraph.errors import ModgraphError
from modgraph.io import atomic_write_json


class UsageError(Exception):
    """A flag value the script cannot use (reported in one line, exit code 2)."""


def add_common_args(parser: argparse.ArgumentParser, seeds: int = 10) -> argparse.ArgumentParser:
    parser.add_argument("--data-root", default=None,
                        help="folder holding planetoid/ and uci/ (default: $MODGRAPH_DATA, else ./data)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: cuda when available, else cpu (default: auto)")
    parser.add_argument("--seeds", type=int, default=seeds, help=f"runs per configuration, seeds 0..N-1 (default: "
                                                                 f"{seeds})")
    parser.add_argument("--json", default=None, metavar="PATH", help='write {"results": [row, ...]} to PATH')
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is a :class:`UsageError`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(name)


def positive(name: str, value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise UsageError(f"{name} must be a positive integer, got {value}")
    return value


def progress(iterable: Iterable, **kwargs):
    """A tqdm bar on stderr, silent when stderr is not a terminal (``disable=None``)."""
    return tqdm(iterable, disable=None, **kwargs)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def write_json(path: str | os.PathLike, rows: list[dict], **extra) -> Path:
    """Write ``{"results": rows, **extra}`` atomically (a temporary file, then a rename)."""
    return atomic_write_json(path, {"results": rows, **extra})


def format_table(rows: list[dict], columns: list[tuple[str, str, Callable]]) -> str:
    """A plain-text table: ``columns`` are ``(header, key, formatter)``."""
    cells = [[header for header, _, _ in columns]]
    for row in rows:
        cells.append([fmt(row[key]) if not (isinstance(row[key], float) and math.isnan(row[key])) else "-"
                      for _, key, fmt in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call ``main(argv)``; user errors become one line on stderr and exit code 2."""
    try:
        return main(argv)
    except (ModgraphError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
