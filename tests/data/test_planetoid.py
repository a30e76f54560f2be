"""Planetoid loader: known statistics, read-only roots, the processed cache, partial and offline errors."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torch_geometric.datasets import Planetoid
from torch_geometric.utils import is_undirected

from modgraph.data import load_planetoid
from modgraph.data.planetoid import raw_file_names
from modgraph.errors import DataError


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and mode: to show a root was not written to."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mode) for p in folder.rglob("*")}


def _set_read_only(folder: Path, read_only: bool) -> None:
    for p in [folder, *folder.rglob("*")]:
        if p.is_dir():
            p.chmod(0o555 if read_only else 0o755)
        else:
            p.chmod(0o444 if read_only else 0o644)


def _offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make PyG's download fail as it does offline; return the list of roots it was asked to download into."""
    calls: list[str] = []

    def download(self: Planetoid) -> None:
        calls.append(self.root)
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(Planetoid, "download", download)
    return calls


def test_cora_statistics(cora) -> None:
    assert cora.num_nodes == 2708
    assert cora.num_edges == 10556
    assert cora.x.shape == (2708, 1433) and cora.x.dtype == torch.float32
    assert cora.num_classes == 7
    assert set(cora.y.unique().tolist()) == set(range(7))
    assert is_undirected(cora.edge_index)


def test_cora_public_split(cora) -> None:
    train, val, test = cora.train_mask, cora.val_mask, cora.test_mask
    assert (int(train.sum()), int(val.sum()), int(test.sum())) == (140, 500, 1000)
    assert not (train & val).any() and not (train & test).any() and not (val & test).any()
    assert torch.bincount(cora.y[train], minlength=7).tolist() == [20] * 7  # 20 per class
    assert train.nonzero().flatten().tolist() == list(range(140))  # the first 140 nodes (Yang et al.)


def test_citeseer_statistics(data_root: Path, planetoid_cache: Path) -> None:
    data = load_planetoid("CiteSeer", data_root, cache_dir=planetoid_cache)
    assert data.num_nodes == 3327 and data.num_edges == 9104
    assert data.x.shape[1] == 3703 and data.num_classes == 6
    sizes = (int(data.train_mask.sum()), int(data.val_mask.sum()), int(data.test_mask.sum()))
    assert sizes == (120, 500, 1000)


def test_shared_root_is_not_written(data_root: Path, planetoid_cache: Path, cora) -> None:
    before = _snapshot(data_root / "planetoid")
    load_planetoid("CORA", data_root, cache_dir=planetoid_cache)
    assert _snapshot(data_root / "planetoid") == before
    assert not (data_root / "planetoid" / "Cora" / "processed").exists()


def test_read_only_copy_is_processed_in_the_cache(copy_data, tmp_path: Path, cora) -> None:
    root = copy_data("planetoid/Cora")
    _set_read_only(root, True)
    try:
        before = _snapshot(root)
        data = load_planetoid("cora", root, cache_dir=tmp_path / "cache")
        assert _snapshot(root) == before
        assert all(not (p.stat().st_mode & stat.S_IWUSR) for p in root.rglob("*"))
    finally:
        _set_read_only(root, False)
    assert torch.equal(data.x, cora.x) and torch.equal(data.edge_index, cora.edge_index)
    (processed,) = (tmp_path / "cache").glob("Cora-*/Cora/processed/data.pt")
    assert processed.is_file()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no staging left


def test_root_may_be_the_planetoid_folder(data_root: Path, planetoid_cache: Path, cora) -> None:
    data = load_planetoid("cora", data_root / "planetoid", cache_dir=planetoid_cache)
    assert torch.equal(data.y, cora.y)


def test_processed_cache_is_reused(
    data_root: Path, planetoid_cache: Path, cora, monkeypatch: pytest.MonkeyPatch
) -> None:
    def process(self: Planetoid) -> None:
        raise AssertionError("the processed cache should have been reused")

    monkeypatch.setattr(Planetoid, "process", process)
    assert load_planetoid("cora", data_root, cache_dir=planetoid_cache).num_nodes == 2708


def test_default_cache_is_under_xdg_cache_home(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    load_planetoid("cora", data_root)
    assert list((tmp_path / "modgraph" / "planetoid").glob("Cora-*/Cora/processed/data.pt"))


def test_pubmed_partial_folder_names_the_missing_file(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _offline(monkeypatch)
    with pytest.raises(DataError) as info:
        load_planetoid("pubmed", data_root, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "missing ind.pubmed.allx" in message and "7 of 8 files present" in message
    assert str(data_root / "planetoid" / "PubMed" / "raw") in message
    assert "MODGRAPH_DATA" in message and "kimiyoung/planetoid" in message
    assert calls == [] and not (tmp_path / "cache").exists()  # no download attempt, nothing written


def test_partial_copy_lists_every_missing_file(copy_data, tmp_path: Path) -> None:
    root = copy_data("planetoid/Cora")
    for suffix in ("graph", "ty"):
        (root / "planetoid" / "Cora" / "raw" / f"ind.cora.{suffix}").unlink()
    with pytest.raises(DataError, match=r"missing ind\.cora\.ty, ind\.cora\.graph \(6 of 8 files present"):
        load_planetoid("cora", root, cache_dir=tmp_path / "cache")


def test_empty_root_offline_gives_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _offline(monkeypatch)
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DataError) as info:
        load_planetoid("cora", root, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "no raw files found" in message and "URLError" in message and "offline" in message
    assert str(root / "planetoid" / "Cora" / "raw") in message
    assert len(calls) == 1
    assert list(root.iterdir()) == []  # the failed download left nothing behind


def test_read_only_empty_root_does_not_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _offline(monkeypatch)
    root = tmp_path / "empty"
    root.mkdir(mode=0o555)
    try:
        with pytest.raises(DataError, match=r"no raw files found .* is not writable"):
            load_planetoid("cora", root, cache_dir=tmp_path / "cache")
    finally:
        root.chmod(0o755)
    assert calls == []


def test_nonexistent_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _offline(monkeypatch)
    with pytest.raises(DataError, match=r"the data root .*nowhere does not exist"):
        load_planetoid("cora", tmp_path / "nowhere")
    assert calls == [] and not (tmp_path / "nowhere").exists()


def test_download_into_an_empty_writable_root(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cora
) -> None:
    def download(self: Planetoid) -> None:  # "online": serve the files from the shared data
        for f in self.raw_file_names:
            shutil.copyfile(data_root / "planetoid" / "Cora" / "raw" / f, os.path.join(self.raw_dir, f))

    monkeypatch.setattr(Planetoid, "download", download)
    root = tmp_path / "fresh"
    root.mkdir()
    data = load_planetoid("cora", root, cache_dir=tmp_path / "cache")
    assert torch.equal(data.x, cora.x)
    raw = root / "planetoid" / "Cora" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(raw_file_names("cora"))
    assert [p.name for p in (root / "planetoid").iterdir()] == ["Cora"]  # no staging folder, no processed/
    assert [p.name for p in (root / "planetoid" / "Cora").iterdir()] == ["raw"]


def test_checksum_mismatch_names_the_file(copy_data, tmp_path: Path) -> None:
    root = copy_data("planetoid/Cora")
    path = root / "planetoid" / "Cora" / "raw" / "ind.cora.test.index"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"ind\.cora\.test\.index is truncated: sha256 expected 297ce89a"):
        load_planetoid("cora", root, cache_dir=tmp_path / "cache")


def test_corrupted_file_without_verification_is_a_data_error(copy_data, tmp_path: Path) -> None:
    root = copy_data("planetoid/Cora")
    (root / "planetoid" / "Cora" / "raw" / "ind.cora.x").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"PyG could not process the raw files in .*Cora/raw"):
        load_planetoid("cora", root, cache_dir=tmp_path / "cache", verify=False)
    assert not list((tmp_path / "cache").iterdir())  # no half-built cache


def test_unknown_name() -> None:
    with pytest.raises(DataError, match=r"unknown Planetoid data set 'coraa'; expected one of Cora, CiteS"):
        load_planetoid("coraa")


def test_cache_is_keyed_by_the_raw_files_content(copy_data, tmp_path: Path, cora) -> None:
    """A raw file that changes after it was processed is processed again, not served from the old cache."""
    root = copy_data("planetoid/Cora")
    cache = tmp_path / "cache"
    assert torch.equal(load_planetoid("cora", root, cache_dir=cache).x, cora.x)
    (root / "planetoid" / "Cora" / "raw" / "ind.cora.x").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"PyG could not process the raw files"):
        load_planetoid("cora", root, cache_dir=cache, verify=False)


def test_partial_folders_name_the_first_one_searched(copy_data, tmp_path: Path) -> None:
    root = copy_data("planetoid/Cora")
    (root / "planetoid" / "Cora" / "raw" / "ind.cora.x").unlink()
    (root / "Cora" / "raw").mkdir(parents=True)
    (root / "Cora" / "raw" / "ind.cora.y").write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_planetoid("cora", root, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert f"the raw folder {root / 'planetoid' / 'Cora' / 'raw'} is incomplete; missing ind.cora.x " in message
    assert "(7 of 8 files present" in message


def test_download_into_an_empty_folder_named_planetoid(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root that is itself a (still empty) planetoid folder gets <root>/Cora/raw, not <root>/planetoid/Cora."""
    def download(self: Planetoid) -> None:
        for f in self.raw_file_names:
            shutil.copyfile(data_root / "planetoid" / "Cora" / "raw" / f, os.path.join(self.raw_dir, f))

    monkeypatch.setattr(Planetoid, "download", download)
    root = tmp_path / "planetoid"
    root.mkdir()
    assert load_planetoid("cora", root, cache_dir=tmp_path / "cache").num_nodes == 2708
    assert [p.name for p in root.iterdir()] == ["Cora"]
    assert sorted(p.name for p in (root / "Cora" / "raw").iterdir()) == sorted(raw_file_names("cora"))


def test_nan_in_a_raw_feature_file_is_named(copy_data, tmp_path: Path) -> None:
    """A raw file changed after its checksum (verify=False) to hold a NaN: the loader names it, not training."""
    import pickle

    root = copy_data("planetoid/Cora")
    path = root / "planetoid" / "Cora" / "raw" / "ind.cora.allx"  # PyG builds x from allx and tx
    with open(path, "rb") as f:
        x = pickle.load(f, encoding="latin1")  # scipy sparse, as PyG reads it
    x.data[0] = float("nan")
    with open(path, "wb") as f:
        pickle.dump(x, f)
    with pytest.raises(DataError, match=r"Cora \(.*Cora/raw\): 1 non-finite values \(NaN\); the first at row 0"):
        load_planetoid("cora", root, cache_dir=tmp_path / "cache", verify=False)
