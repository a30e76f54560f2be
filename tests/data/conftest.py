"""Fixtures for the data tests (``data_root``, ``cora`` and the private cache are in ``tests/conftest.py``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def copy_data(data_root: Path, tmp_path: Path) -> Callable[[str], Path]:
    """``copy_data("uci/glass")`` copies that folder of the data root to a writable ``tmp_path/root`` and
    returns the new root (the shared data itself is read-only and must stay untouched)."""
    root = tmp_path / "root"

    def copy(relpath: str) -> Path:
        shutil.copytree(data_root / relpath, root / relpath, copy_function=shutil.copyfile)
        return root

    return copy
