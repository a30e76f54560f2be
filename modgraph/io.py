"""Atomic file writes: a temporary file in the target's folder, flushed to disk, then ``os.replace``.

A reader (or a process killed mid-write) sees the old file or the new one, never half of one. Every writer of
specs, networks, checkpoints, recordings and result files goes through :func:`atomic_write`.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text"]


def _make_parent(path: Path) -> None:
    """Create ``path``'s missing parent folders; a file where a folder should be is named (``mkdir`` says only
    "File exists", or names the folder it wanted)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), None)
        if blocker is None:
            raise
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(blocker)) from None


def atomic_write(path: str | os.PathLike, writer: Callable[[IO], None], binary: bool = False) -> Path:
    """Call ``writer(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    Args:
        path: the file to (re)place; missing parent folders are created.
        writer: writes the content to the open file it receives.
        binary: open the temporary file in ``"wb"`` mode (default: text, UTF-8).

    On any error (or interrupt) the temporary file is removed and ``path`` is left as it was. The file gets the
    permissions a plain ``open(path, "w")`` would give it: an existing file's own (a private file stays private),
    else ``0o666`` less the umask (``mkstemp`` alone makes it readable by its owner only).
    """
    path = Path(path)
    if path.is_dir():  # else os.replace fails naming the temporary file, not the folder given
        raise IsADirectoryError(errno.EISDIR, "Is a directory (give a file name)", str(path))
    _make_parent(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:  # a folder one cannot write in: name the file asked for, not the temporary one
        raise type(err)(err.errno, err.strerror, str(path)) from None
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text))


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = 2, allow_nan: bool = False) -> Path:
    """Write ``obj`` as JSON (and a final newline) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=allow_nan) + "\n")
