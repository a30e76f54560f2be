"""Shared command-line helpers of the experiment scripts.

Flags every script takes (``add_common_args``): ``--data-root``, ``--device auto|cpu|cuda``, ``--seeds``,
``--json PATH``, ``--log-level``, ``--threads``, ``--checkpoint-dir DIR`` and ``--resume`` (plus
``--checkpoint-every STEPS`` where a unit in progress is saved periodically). Checkpointing (``checkpoint_config``,
``open_run_dir``) is one mechanism for every script, ``modgraph.train.RunDir``; see docs/checkpoints.md.
User errors (a missing data set, a bad flag value, CUDA asked for but absent) end the script with exit code 2 and
one line on stderr (``run_main``); progress bars are tqdm bars that stay quiet when stderr is not a terminal
(``progress``).
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
from modgraph.train import RunDir


class UsageError(Exception):
    """A flag value the script cannot use (reported in one line, exit code 2)."""


class ScriptParser(argparse.ArgumentParser):
    """``argparse`` whose errors (an unknown flag, a bad choice, a missing value) are :class:`UsageError`s, so
    ``run_main`` reports them in one line with exit code 2 instead of the usage text."""

    def error(self, message: str):
        raise UsageError(message)


def script_parser(doc: str, examples: str | None = None) -> ScriptParser:
    """A parser described by ``doc``'s first line, with ``examples`` (default: the whole ``doc``) after the flags."""
    return ScriptParser(description=doc.splitlines()[0], epilog=examples if examples is not None else doc,
                        formatter_class=argparse.RawDescriptionHelpFormatter)


def add_common_args(parser: argparse.ArgumentParser, seeds: int | None = 10, threads: int | None = 1,
                    checkpoint_every: int | None = None, data_root: bool = True,
                    device_help: str | None = None) -> argparse.ArgumentParser:
    """The flags shared by every script.

    Args:
        seeds: the default of ``--seeds`` (runs with seeds 0..N-1); ``None``: no ``--seeds`` (the script has one
            ``--seed``).
        threads: the default of ``--threads``; ``None``: torch's own thread count.
        checkpoint_every: offer ``--checkpoint-every STEPS`` with this default (scripts that save the unit in
            progress every so many steps).
        data_root: offer ``--data-root`` (scripts that read data sets).
        device_help: the help of ``--device`` when ``auto`` means more than "cuda when available".
    """
    if data_root:
        parser.add_argument("--data-root", default=None,
                            help="folder holding planetoid/ and uci/ (default: $MODGRAPH_DATA, else ./data)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help=device_help or "auto: cuda when available, else cpu (default: auto)")
    if seeds is not None:
        parser.add_argument("--seeds", type=int, default=seeds,
                            help=f"runs per configuration, seeds 0..N-1 (default: {seeds})")
    parser.add_argument("--json", default=None, metavar="PATH", help='write {"results": [row, ...]} to PATH')
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    default_threads = threads if threads is not None else "torch's own"
    parser.add_argument("--threads", type=int, default=threads,
                        help=f"torch CPU threads (default: {default_threads}; on a machine shared with other jobs "
                             "torch's multi-threaded kernels wait for busy cores)")
    parser.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                        help="save finished units (and the unit in progress) to DIR as the run goes; see "
                             "docs/checkpoints.md")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run saved in --checkpoint-dir: finished units are skipped, the unit in "
                             "progress continues from its last save; the results equal an uninterrupted run's")
    if checkpoint_every is not None:
        parser.add_argument("--checkpoint-every", type=int, default=checkpoint_every, metavar="STEPS",
                            help=f"save the unit in progress every STEPS optimisation steps (default: "
                                 f"{checkpoint_every})")
    return parser


#: flags that change how a run executes or where it writes, not its results (left out of the checkpoint config)
EXECUTION_FLAGS = ("data_root", "json", "log_level", "threads", "workers", "checkpoint_dir", "resume",
                   "checkpoint_every", "plot", "figures", "save")


def apply_threads(args) -> None:
    """``torch.set_num_threads(--threads)`` when given (a positive integer)."""
    if getattr(args, "threads", None) is not None:
        torch.set_num_threads(positive("--threads", args.threads))


def checkpoint_config(args, script: str) -> dict:
    """The configuration a checkpoint folder is tied to: the script and every flag that changes the results.

    Call it right after parsing (before the flags are resolved into objects). ``--resume`` needs
    ``--checkpoint-dir``; ``--checkpoint-every`` must be positive.
    """
    if args.resume and not args.checkpoint_dir:
        raise UsageError("--resume needs --checkpoint-dir DIR (the folder of the run to continue)")
    positive("--checkpoint-every", getattr(args, "checkpoint_every", None))
    config = {"script": script}
    for key, value in vars(args).items():
        if key not in EXECUTION_FLAGS:
            config[f"--{key.replace('_', '-')}"] = value if isinstance(value, (str, int, float, bool, type(None))) \
                else str(value)
    return config


def open_run_dir(args, config: dict, ctx=None) -> RunDir:
    """The run's checkpoint folder (``--checkpoint-dir``/``--resume``); without the flag a ``RunDir`` that saves
    nothing. A folder holding a run without ``--resume``, or a run of another configuration, is a one-line error.

    ``ctx``: a ``modgraph.scale.distributed.DistContext``; under torchrun rank 0 opens (or starts) the folder
    first, then the other processes, and an error is every process's.
    """
    if ctx is None or not ctx.distributed:
        return _open(args, config)
    from modgraph.scale.distributed import gather_objects

    store, error = None, None
    if ctx.is_main:
        try:
            store = _open(args, config)
        except (UsageError, ModgraphError) as err:
            error = err
    message = gather_objects(None if error is None else str(error))[0]
    if error is not None:
        raise error
    if message is not None:
        raise UsageError(message)
    return store if store is not None else RunDir(args.checkpoint_dir, config, resume=True)


def _open(args, config: dict) -> RunDir:
    folder = args.checkpoint_dir
    if folder and not args.resume and (Path(folder) / "run.json").exists():
        raise UsageError(f"--checkpoint-dir {folder}: holds an earlier run; add --resume to continue it, or use an "
                         f"empty folder")
    return RunDir(folder, config, resume=args.resume)


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
