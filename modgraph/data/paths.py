"""Where modgraph looks for data sets and where it may write derived files.

Data roots are treated as read-only: loaders never write into them (the one exception is a PyG download into
an empty, writable Planetoid root). Anything derived (PyG's ``processed/`` folder) goes to a cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MODGRAPH_DATA"

#: How a user points modgraph at the data; quoted in every "file not found" message.
HOW_TO_SET_ROOT = (
    f"pass data_root=... (--data-root on the command line) or set the environment variable {DATA_ENV} "
    "to the folder that holds 'planetoid/' and 'uci/' (for example /work/shared/data)"
)


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """Return the data root: ``data_root`` if given, else ``$MODGRAPH_DATA``, else ``./data``.

    Args:
        data_root: an explicit folder (the ``--data-root`` flag). ``None`` or ``""`` falls through to the
            environment variable, then to ``./data`` relative to the current directory.

    The path is expanded (``~``) and made absolute but not required to exist; loaders report a missing
    folder themselves, naming what they searched.

    Example:
        >>> resolve_data_root("/work/shared/data")
        PosixPath('/work/shared/data')
    """
    if data_root is not None and not isinstance(data_root, (str, os.PathLike)):
        raise TypeError(f"data_root must be a folder path (a str or a Path), got {type(data_root).__name__} "
                        f"{data_root!r}")
    if data_root is not None and str(data_root) != "":
        chosen: str | os.PathLike = data_root
    elif os.environ.get(DATA_ENV):
        chosen = os.environ[DATA_ENV]
    else:
        chosen = "data"
    return Path(chosen).expanduser().absolute()


def resolve_cache_dir(cache_dir: str | os.PathLike | None, subdir: str) -> Path:
    """Return the cache folder for ``subdir``: ``cache_dir`` if given, else
    ``$XDG_CACHE_HOME/modgraph/<subdir>``, else ``~/.cache/modgraph/<subdir>``.

    An explicit ``cache_dir`` is used as is (no ``subdir`` appended).
    """
    if cache_dir is not None and str(cache_dir) != "":
        return Path(cache_dir).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()
    return Path(base).expanduser().absolute() / "modgraph" / subdir


def is_writable_dir(path: Path) -> bool:
    """True if ``path`` (or, when it does not exist yet, its nearest existing ancestor) may be written.

    Besides ``os.access`` this also requires a write bit in the folder's mode, so a folder that was
    ``chmod``-ed read-only counts as read-only even for root (who ``os.access`` always lets through).
    """
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    if not probe.is_dir():
        return False
    return os.access(probe, os.W_OK | os.X_OK) and bool(probe.stat().st_mode & 0o222)


def data_root_origin(data_root: str | os.PathLike | None = None) -> str:
    """Say where :func:`resolve_data_root` took the root from, for "not found" messages."""
    if data_root is not None and not isinstance(data_root, (str, os.PathLike)):
        raise TypeError(f"data_root must be a folder path (a str or a Path), got {type(data_root).__name__} "
                        f"{data_root!r}")
    if data_root is not None and str(data_root) != "":
        return "the data_root argument"
    if os.environ.get(DATA_ENV):
        return f"${DATA_ENV}"
    return f"the default ./data, as neither data_root nor ${DATA_ENV} was given"
