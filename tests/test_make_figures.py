"""docs/make_figures.py: the quick mode writes every kind of figure, and the file-only groups redraw the committed
pictures byte for byte."""

import struct
from pathlib import Path

import matplotlib
import pytest

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["branches", "prune_uci", "prune_cora", "prune_citeseer", "glass_histograms", "glass_heatmap", "glass_dag",
         "cora_histograms", "training_curves", "cora_hop_weights"]


@pytest.fixture(scope="module")
def make_figures():
    module = load_script("docs/make_figures.py", "make_figures")
    return module


def _png(path: Path) -> bytes:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, path
    return data


def test_quick_mode_writes_every_kind(make_figures, data_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MODGRAPH_DATA", str(data_root))
    assert make_figures.main(["--quick", "--out", str(tmp_path)]) == 0
    for kind in KINDS:
        _png(tmp_path / f"{kind}.png")
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == sorted(KINDS)
    assert "curves: 1 figure(s)" in capsys.readouterr().out


def _software(data: bytes) -> str | None:
    """The PNG's ``Software`` text chunk (matplotlib writes its version there)."""
    pos = 8
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        if kind == b"tEXt":
            key, _, value = data[pos + 8:pos + 8 + length].partition(b"\0")
            if key == b"Software":
                return value.decode("latin-1")
        pos += 12 + length
    return None


def _size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


def test_file_only_groups_redraw_the_committed_pictures(make_figures, tmp_path):
    """Byte for byte with the matplotlib version that drew the committed files; the same size with another."""
    assert make_figures.main(["--only", "dag,prune", "--out", str(tmp_path)]) == 0
    for name in ("branches", "prune_uci", "prune_cora", "prune_citeseer"):
        ours, committed = _png(tmp_path / f"{name}.png"), (ROOT / "docs" / "figures" / f"{name}.png").read_bytes()
        if _software(committed) == f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/":
            assert ours == committed, name
        else:
            assert _size(ours) == _size(committed), name


def test_every_committed_figure_has_a_maker(make_figures):
    """Each PNG in docs/figures is named in the script's table, so none is left without a way to redraw it."""
    table = make_figures.__doc__
    for path in (ROOT / "docs" / "figures").glob("*.png"):
        stem = path.stem
        kind = stem.split("_", 1)[1] if stem.split("_", 1)[0] in make_figures.UCI else None
        assert path.name in table or (kind and f"<name>_{kind}" in table.replace(".png", "").replace("\n", "")), \
            path.name


def test_unknown_group(make_figures, tmp_path, capsys):
    assert make_figures.main(["--only", "pies", "--out", str(tmp_path)]) == 2
    assert "--only: unknown pies; valid: dag, prune, uci, cora, curves, hops" in capsys.readouterr().err
