"""The checkpoint folder of a run made of independent units (seeds, programs, prune runs): resuming skips the
finished units and continues the one in progress.

Layout of the folder::

    run.json               {"format": "modgraph-run/1", "config": {...}}: the configuration that wrote the folder
    units/<key>.json       the result of each finished unit (plain JSON data), written atomically as it finishes
    progress/<key>.pt      the periodic Trainer checkpoint of a unit in progress (modgraph.train.checkpoint),
                           removed when the unit finishes

A unit's result must depend on the configuration and the unit's key only (each unit seeds its own RNGs), so a
resumed run ends with exactly the results of an uninterrupted one. :meth:`RunDir.unit` returns the result as it
reads back from JSON in both cases (tuples become lists), so later steps see the same values either way.

A key names its files as it is, ``/`` written ``--``; a key with other characters (which become ``_``) or with
``--`` of its own gets a short hash of itself appended, so two keys never share a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Callable

from .. import checks
from ..errors import CheckpointError
from ..io import atomic_write_json
from ..plaindata import Fault, Policy, first_fault
from .checkpoint import Checkpointer, _check_trainer, load_checkpoint

__all__ = ["RUN_FORMAT", "RunDir", "resume_or_start"]

log = logging.getLogger(__name__)

RUN_FORMAT = "modgraph-run/1"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")


#: what ``json.dumps`` writes and ``json.loads`` reads back (keys that are not strings come back as strings; NaN and
#: infinities are written, as JavaScript's NaN and Infinity)
_JSON = Policy(leaf=lambda v: v is None or isinstance(v, (bool, int, float, str)),
               key=lambda k: k is None or isinstance(k, (str, int, float, bool)))


def _plain(value, where: str):
    """``value`` as it reads back from JSON (NaN allowed); a TypeError names where the first value that is not plain
    data sits (``config['root'] is PosixPath``), else json's own message."""
    try:
        return json.loads(json.dumps(value, allow_nan=True))
    except (TypeError, ValueError, RecursionError) as err:  # walked only then: the writes that succeed cost nothing
        fault = first_fault(value, _JSON)
        problem = f"{where}: {err}" if fault is None else _described(fault, where)  # None: nested deeper than json goes
    raise TypeError(f"{problem}; a run's config and unit results are plain data (numbers, strings, bools, None, "
                    f"lists, dicts with string keys): convert it (str(path), float(x), x.tolist())")


def _described(fault: Fault, where: str) -> str:
    """``config['a'][2] is PosixPath PosixPath('x')``: the fault, with its place in the value named ``where``."""
    at = fault.where(where)
    if fault.kind == "key":
        return f"{at} has the key {fault.value!r} ({type(fault.value).__name__})"
    if fault.kind == "loop":
        return f"{at} contains itself"
    return f"{at} is {type(fault.value).__name__} {fault.value!r:.40}"


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable {what} ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None


def first_difference(stored: dict, current: dict) -> str | None:
    """``"K is A there, B here"`` for the first key whose values differ (in ``current``'s order), else ``None``."""
    for key in list(current) + [k for k in stored if k not in current]:
        a, b = stored.get(key, "<absent>"), current.get(key, "<absent>")
        if a != b:
            return f"{key} is {a!r} there, {b!r} here"
    return None


_UNFINISHED = object()  # RunDir._saved: no result saved for the unit


class RunDir:
    """A run's checkpoint folder (see the module docstring).

    Args:
        path: the folder (created when missing); ``None``: nothing is saved (results still pass through JSON, so a
            run with and without a folder sees the same values).
        config: plain data describing everything the results depend on (flags, not paths or thread counts).
        resume: continue the run the folder holds; without it the folder must not hold a run yet.
        check_unit: ``check_unit(result)`` describes what is wrong with a saved unit result that parsed (a missing
            key the caller reads), or returns ``None``; :meth:`done` then refuses the file naming it.
        clean: remove the temporary files a killed atomic write left in the folder (``False`` when another process
            of the same run opened the folder first and may be writing already).

    Raises:
        CheckpointError: the folder holds a run and ``resume`` is false; it holds a run of another configuration
            (the message names the first setting that differs); ``run.json`` is unreadable; it holds ``units/`` or
            ``progress/`` but no ``run.json`` (nothing to check them against).
    """

    def __init__(self, path: str | os.PathLike | None, config: dict, resume: bool = False,
                 check_unit: Callable[[object], str | None] | None = None, clean: bool = True):
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict of plain data, got {type(config).__name__}")
        self.path = None if path is None else Path(path)
        self.config, self.resume = _plain(config, "config"), bool(resume)
        self.check_unit = check_unit
        if self.path is None:
            return
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"{self.path}: not a folder")
        meta = self.path / "run.json"
        if not meta.exists():
            for sub in ("units", "progress"):
                if (self.path / sub).is_dir() and any((self.path / sub).iterdir()):
                    raise CheckpointError(f"{self.path} holds {sub}/ but no run.json: it cannot be checked against "
                                          f"these flags; use an empty folder or restore run.json")
        if clean:
            self._remove_stale_temporaries()
        if meta.exists():
            if not self.resume:
                raise CheckpointError(f"{self.path}: already holds a run; resume it or use an empty folder")
            blob = _read_json(meta, "run description")
            if not isinstance(blob, dict) or blob.get("format") != RUN_FORMAT or not isinstance(blob.get("config"),
                                                                                                 dict):
                raise CheckpointError(f"{meta}: not a modgraph run description (expected format {RUN_FORMAT!r})")
            diff = first_difference(blob["config"], self.config)
            if diff is not None:
                raise CheckpointError(f"{self.path}: the checkpoints were written by another configuration: {diff}")
            log.info("resuming the run in %s: %d unit(s) finished", self.path, len(self.finished()))
        else:
            if self.resume:
                log.info("%s holds no run yet; starting one", self.path)
            atomic_write_json(meta, {"format": RUN_FORMAT, "config": self.config})

    def _remove_stale_temporaries(self) -> None:
        """Remove the temporary files a killed atomic write left (``.<name>.<random>.tmp``, see
        ``modgraph.io.atomic_write``) in the folder, ``units/`` and ``progress/``: the run (re)starts here, so no
        write of its own is in flight."""
        for folder in (self.path, self.path / "units", self.path / "progress"):
            if not folder.is_dir():
                continue
            for tmp in folder.glob(".*.tmp"):
                if _TEMPORARY.match(tmp.name) and tmp.is_file():
                    tmp.unlink(missing_ok=True)
                    log.info("%s: removed a temporary file left by an interrupted write", tmp)

    # ------------------------------------------------------------------------------------------ paths
    def _name(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise ValueError(f"a unit key is a non-empty string, got {key!r}")
        name = _UNSAFE.sub("_", key.replace("/", "--"))
        if name != key.replace("/", "--") or "--" in key:  # the mapping alone could give two keys one file
            name += "-" + hashlib.sha1(key.encode()).hexdigest()[:10]
        return name

    def unit_path(self, key: str) -> Path:
        return self.path / "units" / f"{self._name(key)}.json"

    def progress_path(self, key: str) -> Path | None:
        """Where the unit in progress keeps its Trainer checkpoint (``None`` without a folder)."""
        if self.path is None:
            return None
        return self.path / "progress" / f"{self._name(key)}.pt"

    # ------------------------------------------------------------------------------------------ units
    def finished(self) -> list[Path]:
        if self.path is None:
            return []
        folder = self.path / "units"
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def done(self, key: str):
        """The saved result of unit ``key``, or ``None`` when it has not finished."""
        saved = self._saved(key)
        return None if saved is _UNFINISHED else saved

    def _saved(self, key: str):
        """The saved result of unit ``key`` (which may be ``None``), or ``_UNFINISHED``."""
        if self.path is None:
            return _UNFINISHED
        path = self.unit_path(key)
        if not path.exists():
            return _UNFINISHED
        blob = _read_json(path, "unit result")
        if not isinstance(blob, dict) or blob.get("key") != key or "result" not in blob:
            raise CheckpointError(f"{path}: not the result of unit {key!r}")
        problem = None if self.check_unit is None else self.check_unit(blob["result"])
        if problem is not None:
            raise CheckpointError(f"{path}: not a readable unit result ({problem})")
        return blob["result"]

    def finish(self, key: str, result):
        """Save ``result`` as unit ``key``'s (atomically), drop its progress checkpoint; return it as saved."""
        plain = _plain(result, f"unit {key!r}: result")
        if self.path is None:
            return plain
        atomic_write_json(self.unit_path(key), {"key": key, "result": plain}, indent=None, allow_nan=True)
        self.progress_path(key).unlink(missing_ok=True)
        return plain

    def unit(self, key: str, compute: Callable[[], object]):
        """Unit ``key``'s saved result, or ``compute()`` saved; either way as it reads back from JSON."""
        saved = self._saved(key)  # (a saved None is a result too)
        if saved is not _UNFINISHED:
            log.info("unit %s: finished earlier, skipped", key)
            return saved
        return self.finish(key, compute())

    def checkpointer(self, trainer, key: str, every: int) -> Checkpointer | None:
        """``trainer.run``'s callback saving unit ``key`` in progress every ``every`` steps (restoring the trainer
        from an earlier save first); ``None`` without a folder."""
        return None if self.path is None else resume_or_start(trainer, self.progress_path(key), every)


def resume_or_start(trainer, path: str | os.PathLike, every: int) -> Checkpointer:
    """A :class:`Checkpointer` saving ``trainer`` to ``path`` every ``every`` steps; when ``path`` exists the
    trainer (and the global RNGs) are first restored from it. Pass the result as ``trainer.run``'s callback."""
    path = checks.path("resume_or_start: path", path)
    _check_trainer(trainer, "resume_or_start")
    checkpointer = Checkpointer(path.parent, path.name, every=every)
    if path.exists():
        load_checkpoint(path, trainer)
        log.info("%s: resumed at step %d", path, trainer.step)
    return checkpointer
