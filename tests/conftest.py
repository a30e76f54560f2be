"""Fixtures shared by every test folder.

``data_root`` is ``$MODGRAPH_DATA`` (the offline data, e.g. ``/work/shared/data``). When it is unset the tests
that need it are skipped locally, and fail on CI (``CI=true``) so a misconfigured job cannot pass by skipping.
Nothing here writes to the data root; every cache goes to a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    value = os.environ.get("MODGRAPH_DATA")
    problem = None
    if not value:
        problem = "MODGRAPH_DATA is not set"
    elif not Path(value).is_dir():
        problem = f"MODGRAPH_DATA={value!r} is not a folder"
    if problem is not None:
        message = f"{problem}; set it to the offline data folder (e.g. MODGRAPH_DATA=/work/shared/data)."
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} On CI the data tests must run, not be skipped.", pytrace=False)
        pytest.skip(message)
    return Path(value)


@pytest.fixture(scope="module")
def one_thread():
    """Single-threaded, as the batched programs run (torch's threads crawl on a machine shared with other jobs);
    a test module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default cache at a temporary folder, so no test writes to ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture(scope="session")
def planetoid_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One processed-Planetoid cache for the whole session (Cora is processed once)."""
    return tmp_path_factory.mktemp("planetoid-cache")


@pytest.fixture(scope="session")
def cora(data_root: Path, planetoid_cache: Path):
    from modgraph.data import load_planetoid

    return load_planetoid("cora", data_root, cache_dir=planetoid_cache)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict:
    """``{file name: Figure}`` of every matplotlib figure saved during the test. The plot functions build their own
    ``Figure`` and only write it, so the writers are wrapped to keep the object (the originals still write):
    ``modgraph.plot``'s atomic ``_save`` (whose ``savefig`` gets an open temporary file, not the name) and
    ``Figure.savefig`` called with a path."""
    from matplotlib.figure import Figure

    from modgraph import plot

    figures = {}
    save, save_atomically = Figure.savefig, plot._save

    def keep(fig, fname, *args, **kwargs):
        if isinstance(fname, (str, os.PathLike)):
            figures[Path(fname).name] = fig
        return save(fig, fname, *args, **kwargs)

    def keep_atomic(fig, path):
        figures[Path(path).name] = fig
        return save_atomically(fig, path)

    monkeypatch.setattr(Figure, "savefig", keep)
    monkeypatch.setattr(plot, "_save", keep_atomic)
    return figures
