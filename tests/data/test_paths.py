"""Data root and cache resolution, and the writability probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from modgraph.data.paths import data_root_origin, is_writable_dir, resolve_data_root


def test_empty_data_root_falls_through_to_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODGRAPH_DATA", str(tmp_path))
    assert resolve_data_root("") == tmp_path  # "" (an empty --data-root) is "not given"
    assert data_root_origin("") == "$MODGRAPH_DATA"
    assert data_root_origin(tmp_path) == "the data_root argument"


def test_a_data_root_that_is_not_a_path_is_named() -> None:
    with pytest.raises(TypeError, match=r"data_root must be a folder path \(a str or a Path\), got int 5"):
        resolve_data_root(5)


def test_data_root_expands_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_root("~/data") == tmp_path / "data"
    monkeypatch.setenv("MODGRAPH_DATA", "~/shared")
    assert resolve_data_root(None) == tmp_path / "shared"


def test_a_path_below_a_file_is_not_writable(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    file.chmod(0o755)  # writable and executable: only being a file rules it out
    assert not is_writable_dir(file / "sub")
    assert is_writable_dir(tmp_path / "new" / "sub")  # nearest existing ancestor: tmp_path
