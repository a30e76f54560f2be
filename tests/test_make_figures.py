"""docs/make_figures.py: the quick mode writes every kind of figure, and the file-only groups redraw the committed
pictures byte for byte."""

import json
import re
import struct
from pathlib import Path

import matplotlib
import pytest

import modgraph as mg
from tests.helpers import legend_texts, load_script

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


def test_quick_mode_writes_every_kind(make_figures, data_root, tmp_path, capsys, monkeypatch, drawn):
    monkeypatch.setenv("MODGRAPH_DATA", str(data_root))
    assert make_figures.main(["--quick", "--out", str(tmp_path)]) == 0
    figures = {Path(name).stem: fig for name, fig in drawn.items()}  # each Figure as it was saved, to look inside
    for kind in KINDS:
        _png(tmp_path / f"{kind}.png")
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == sorted(KINDS) == sorted(figures)
    assert "curves: 1 figure(s)" in capsys.readouterr().out

    # branches: the untrained DAG of examples/branches.yaml, a label per node and an arrow per edge
    spec = mg.ModuleGraph.from_file(ROOT / "examples" / "branches.yaml").graph
    (ax,) = figures["branches"].axes
    assert ax.get_title() == "attended edges (solid) and plain edges"
    assert sorted(t.get_text().split("\n")[0] for t in ax.texts) == sorted(spec.nodes)
    assert len(ax.patches) == spec.number_of_edges()

    # pruning curves: a panel per data set of the result file, a line per criterion plus the unpruned level
    for name in ("uci", "cora", "citeseer"):
        rows = json.loads((ROOT / "docs" / "results" / f"prune_{name}.json").read_text())["results"]
        fig = figures[f"prune_{name}"]
        assert fig.get_suptitle() == "test accuracy after pruning and fine-tuning"
        assert [ax.get_title() for ax in fig.axes] == list(dict.fromkeys(r["dataset"] for r in rows))
        for ax in fig.axes:
            criteria = list(dict.fromkeys(r["criterion"] for r in rows if r["dataset"] == ax.get_title()))
            assert legend_texts(ax) == criteria + ["unpruned"] and len(ax.lines) == len(criteria) + 1

    # glass recordings: the single neuron gate h -> y of the 9-22-6 MLP
    (ax,) = figures["glass_histograms"].axes
    assert ax.get_title() == "neuron gate h->y"
    assert len(ax.patches) == len(legend_texts(ax)) == 6  # up to six epochs, one curve each
    assert all(re.fullmatch(r"epoch \d+", label) for label in legend_texts(ax))
    assert all(p.get_data().values.sum() == 22 * 6 for p in ax.patches)  # every entry counted in [0, 1]
    heat_ax, _colour_bar = figures["glass_heatmap"].axes
    assert heat_ax.get_title() == "h->y: mean weight" and heat_ax.images[0].get_array().shape == (22, 6)
    (ax,) = figures["glass_dag"].axes
    assert ax.get_title() == "mean attention weight per edge" and len(ax.patches) == 2  # x -> h, h -> y
    assert len(ax.texts) == 3 + 1  # three nodes and the attended edge's weight

    # Cora: a panel per graph-level gate of the attention GCN, a curve per recorded epoch
    axes = figures["cora_histograms"].axes
    assert [ax.get_title() for ax in axes] == ["graph gate conv1", "graph gate conv2"]
    for ax in axes:
        assert len(ax.patches) == len(legend_texts(ax)) >= 1

    # training curves: loss and score panels, one line per schedule, the alternating run's phases shaded
    fig = figures["training_curves"]
    loss_ax, score_ax = fig.axes
    assert fig.get_suptitle().startswith("glass, attention MLP 9-22-6")
    assert (loss_ax.get_ylabel(), score_ax.get_ylabel()) == ("training loss", "validation score")
    for ax in (loss_ax, score_ax):
        assert [line.get_label() for line in ax.lines] == ["joint", "alternating"]
        assert len(ax.patches) > 1
    assert legend_texts(score_ax) == ["joint", "alternating"]
    phases = legend_texts(loss_ax)[2:]
    assert phases and all(label.startswith("alternating: ") for label in phases)

    # hop weights: one line per degree group; the groups partition Cora's 2708 nodes (each has an in-edge)
    (ax,) = figures["cora_hop_weights"].axes
    assert ax.get_title().startswith("hop_attention, Cora") and ax.get_xlabel() == "depth k of z_k"
    labels = legend_texts(ax)
    assert [label.rsplit(" (", 1)[0] for label in labels] == ["in-degree 1", "2-3", "4-7", ">= 8"]
    assert sum(int(label.rsplit(" (", 1)[1].rstrip(")")) for label in labels) == 2708
    depths = [t.get_text() for t in ax.get_xticklabels()]
    assert depths == [str(k) for k in range(len(depths))] and len(depths) > 1
    assert all(len(line.get_ydata()) == len(depths) for line in ax.lines)


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
