"""Shared command-line helpers of the experiment scripts.

Flags every script takes (``add_common_args``): ``--data-root``, ``--device auto|cpu|cuda``, ``--seeds``,
``--json PATH``, ``--log-level``, ``--threads``, ``--checkpoint-dir DIR`` and ``--resume`` (plus
``--checkpoint-every STEPS`` where a unit in progress is saved periodically). Checkpointing (``checkpoint_config``,
``open_run_dir``) is one mechanism for every script, ``modgraph.train.RunDir``; see docs/checkpoints.md.
User errors (a missing data set, a bad flag value, CUDA asked for but absent) end the script with exit code 2 and
one line on stderr (``run_main``); progress bars are tqdm bars that stay quiet when stderr is not a terminal
(``progress``).

Flag values are checked when the flags are parsed, before any work (``ScriptParser``): every number flag declares
its range (``add_argument(..., check=integer(1))`` or ``check=number(0, 1, high_open=True)``; a float flag is
always refused when NaN or infinite), and every output flag its kind (``output="file"``, ``"figure"`` or
``"dir"``; ``check_output``), so an output that cannot be written is refused before the run, not after it. The
writes at the end of a run go through ``save_outputs``: a write that still fails (a full disk) is one line and exit
code 2, after the other outputs have been written. A training that diverges (``modgraph.train``'s "evaluate
returned NaN") is one line too (``run_main``).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from modgraph import checks
from modgraph.errors import ModgraphError
from modgraph.io import atomic_write_json
from modgraph.train import RunDir, TrainingDiverged


class UsageError(Exception):
    """A flag value the script cannot use (reported in one line, exit code 2)."""


class ScriptParser(argparse.ArgumentParser):
    """``argparse`` whose errors (an unknown flag, a bad choice, a missing value) are :class:`UsageError`s, so
    ``run_main`` reports them in one line with exit code 2 instead of the usage text.

    ``add_argument`` takes two more keywords, checked by ``parse_args`` on every value that is not ``None``:

    * ``check``: ``check(flag, value)`` raises a :class:`UsageError` for a value out of range (:func:`integer`,
      :func:`number`). A ``type=float`` flag without one is still refused when NaN or infinite.
    * ``output``: the flag names a path the script writes: ``"file"``, ``"figure"`` (a file whose suffix names an
      image format) or ``"dir"`` (:func:`check_output`).
    """

    def error(self, message: str):
        raise UsageError(message)

    def add_argument(self, *args, check: Callable | None = None, output: str | None = None, **kwargs):
        if output not in (None, *OUTPUT_KINDS):
            raise ValueError(f"output must be one of {', '.join(OUTPUT_KINDS)}, got {output!r}")
        action = super().add_argument(*args, **kwargs)
        action.check, action.output = check, output
        return action

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            if value is None:
                continue
            flag = action.option_strings[-1] if action.option_strings else action.dest  # a positional: its name
            check = getattr(action, "check", None)
            if check is None and action.type is float:
                check = number()
            for item in value if isinstance(value, list) else [value]:  # nargs / append: each value on its own
                if check is not None:
                    check(flag, item)
                if getattr(action, "output", None) is not None:
                    check_output(flag, item, action.output)
        return parsed


def integer(minimum: int = 1, why: str | None = None) -> Callable[[str, int], None]:
    """The ``check`` of an integer flag: at least ``minimum`` (``why``: the reason, shown in the message)."""

    def check(flag: str, value: int) -> None:
        checks.integer(flag, value, least=minimum, why=why, error=UsageError)

    return check


def number(low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False) -> Callable[[str, float], None]:
    """The ``check`` of a float flag: finite (never NaN or infinite) and within ``low``..``high`` (either may be
    ``None``: no bound), open at an end where asked."""

    def check(flag: str, value: float) -> None:
        checks.number(flag, value, low=low, high=high, low_open=low_open, high_open=high_open, error=UsageError)

    return check


#: the kinds of output flag (``ScriptParser.add_argument(output=...)``)
OUTPUT_KINDS = ("file", "figure", "dir")


def check_output(flag: str, path: str | os.PathLike, kind: str = "file") -> None:
    """Refuse (:class:`UsageError`) an output path that cannot be written, before any work.

    ``kind``: ``"file"`` (the path must not be a folder, and its folder must exist or be creatable, and be
    writable), ``"figure"`` (a file whose suffix is an image format matplotlib writes) or ``"dir"`` (a folder, or
    one that can be created). Whether a folder is writable is tried, not guessed from its permissions (which say
    nothing to root, nor of /proc): a temporary file is made and removed in it, as the atomic write will. Nothing
    else is created (no missing folder).
    """
    text = os.fspath(path)
    if not text:
        raise UsageError(f"{flag}: expected a path, got an empty value")
    path = Path(text)
    if kind == "figure":
        from modgraph.plot import figure_format

        try:
            figure_format(path)
        except ValueError as err:
            raise UsageError(f"{flag} {err}") from None
    if path.is_dir():
        if kind != "dir":
            raise UsageError(f"{flag} {text}: is a directory; give a file name")
        _try_writing(flag, text, path, "this directory")
        return
    if path.exists() or path.is_symlink():
        if kind == "dir":
            raise UsageError(f"{flag} {text}: is not a directory")
        folder = path.parent
    else:
        folder = path.parent
        while not (folder.exists() or folder.is_symlink()) and folder != folder.parent:
            folder = folder.parent  # the first existing ancestor: the missing folders are created under it
    shown = os.fspath(folder) if os.fspath(folder) not in ("", ".") else "the current directory"
    if not folder.is_dir():
        raise UsageError(f"{flag} {text}: {shown} is not a directory")
    _try_writing(flag, text, folder, shown)


def _try_writing(flag: str, text: str, folder: Path, shown: str) -> None:
    """Make and remove a temporary file in ``folder``, or raise a :class:`UsageError`."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
    except OSError as err:
        raise UsageError(f"{flag} {text}: cannot write in {shown} ({err.strerror or err})") from None
    os.close(fd)
    os.unlink(probe)


def save_outputs(*writes: tuple[str, str | os.PathLike | None, Callable[[], object]]) -> None:
    """The writes at the end of a run: each ``(flag, path, write)`` whose path is given runs ``write()`` and prints
    ``wrote PATH``. A write that fails (a full disk, a folder removed during the run) does not stop the others; once
    every one has been tried the failures are one :class:`UsageError` (one line, exit code 2), not a traceback.
    """
    failed = []
    for flag, path, write in writes:
        if not path:
            continue
        try:
            write()
        except OSError as err:
            failed.append(f"{flag} {path}: cannot write ({err.strerror or err})")
        else:
            print(f"wrote {path}")
    if failed:
        raise UsageError("; ".join(failed))


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
        parser.add_argument("--seeds", type=int, default=seeds, check=integer(1),
                            help=f"runs per configuration, seeds 0..N-1 (default: {seeds})")
    parser.add_argument("--json", default=None, metavar="PATH", output="file",
                        help='write {"results": [row, ...]} to PATH')
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    default_threads = threads if threads is not None else "torch's own"
    parser.add_argument("--threads", type=int, default=threads, check=integer(1),
                        help=f"torch CPU threads (default: {default_threads}; on a machine shared with other jobs "
                             "torch's multi-threaded kernels wait for busy cores)")
    parser.add_argument("--checkpoint-dir", default=None, metavar="DIR", output="dir",
                        help="save finished units (and the unit in progress) to DIR as the run goes; see "
                             "docs/checkpoints.md")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run saved in --checkpoint-dir: finished units are skipped, the unit in "
                             "progress continues from its last save; the results equal an uninterrupted run's")
    if checkpoint_every is not None:
        parser.add_argument("--checkpoint-every", type=int, default=checkpoint_every, metavar="STEPS",
                            check=integer(1), help=f"save the unit in progress every STEPS optimisation steps "
                                                   f"(default: {checkpoint_every})")
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


def open_run_dir(args, config: dict, ctx=None, check_unit: Callable | None = None) -> RunDir:
    """The run's checkpoint folder (``--checkpoint-dir``/``--resume``); without the flag a ``RunDir`` that saves
    nothing. A folder holding a run without ``--resume``, or a run of another configuration, is a one-line error.

    ``ctx``: a ``modgraph.scale.distributed.DistContext``; under torchrun rank 0 opens (or starts) the folder
    first, then the other processes, and an error is every process's. ``check_unit``: ``RunDir``'s check of a
    saved unit's structure.
    """
    if ctx is None or not ctx.distributed:
        return _open(args, config, check_unit)
    from modgraph.scale.distributed import gather_objects

    store, error = None, None
    if ctx.is_main:
        try:
            store = _open(args, config, check_unit)
        except (UsageError, ModgraphError) as err:
            error = err
    message = gather_objects(None if error is None else str(error))[0]
    if error is not None:
        raise error
    if message is not None:
        raise UsageError(message)
    return store if store is not None else RunDir(args.checkpoint_dir, config, resume=True, check_unit=check_unit,
                                                  clean=False)


def _open(args, config: dict, check_unit: Callable | None = None) -> RunDir:
    folder = args.checkpoint_dir
    if folder and not args.resume and (Path(folder) / "run.json").exists():
        raise UsageError(f"--checkpoint-dir {folder}: holds an earlier run; add --resume to continue it, or use an "
                         f"empty folder")
    return RunDir(folder, config, resume=args.resume, check_unit=check_unit)


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
    """Call ``main(argv)``; user errors become one line on stderr and exit code 2, and so does a training that
    diverged (``modgraph.train.TrainingDiverged``)."""
    try:
        return main(argv)
    except (ModgraphError, UsageError) as err:
        _say(f"error: {err}")
        return _failed(2)
    except TrainingDiverged as err:
        _say(f"error: {err}; lower the learning rate")
        return _failed(2)
    except KeyboardInterrupt:
        _say("interrupted")
        return _failed(130)


def _say(line: str) -> None:
    """``line`` on stderr in one write (under torchrun the processes share stderr: lines must not interleave)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _failed(code: int) -> int:
    """``code``; under torchrun (several processes) the process ends here, once the error line is out: the other
    processes may still be inside a collective, and the interpreter's ordinary exit (threads of the process group,
    a DistributedDataParallel wrapper freed late) could keep this one alive, so torchrun would never see it fail."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "TORCHELASTIC_RUN_ID" in os.environ:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
