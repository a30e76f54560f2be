"""Tidy rows, CSV and JSON files of recorded statistics, and reading them back."""

import json

import pytest
import torch

import modgraph as mg
from modgraph.record import COLUMNS, EdgeRecorder

from ..helpers import default_dtype
from .test_recorder import branch_net


def recorded():
    torch.manual_seed(0)
    net = branch_net(heads=2)
    g = net.graph.copy()
    g.add_node("h", op="linear", out_features=3, activation="sigmoid")
    g.add_node("z", op="linear", out_features=2)
    g.add_edge("m", "h")
    g.add_edge("h", "z", attention="sigmoid")
    net = mg.ModuleGraph(g)
    gate = mg.Gate("softmax", level="graph", name="conv")
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 2]])
    rec = EdgeRecorder(threshold=0.3).attach(gates=net.gates() + [gate])
    for _ in range(2):
        net(torch.randn(8, 4))
        gate(torch.randn(4, 2), index=edge_index[1], num_segments=3, edge_index=edge_index)
        rec.epoch_end()
    return rec


def test_rows_are_tidy_one_per_entry_head_and_epoch():
    rec = recorded()
    rows = rec.to_rows()
    per_epoch = 3 * 2 + 3 * 2 + 4 * 2  # branch [3 edges, 2 heads], neuron [3, 2], graph [4 edges, 2 heads]
    assert len(rows) == 2 * per_epoch
    assert all(tuple(r) == COLUMNS for r in rows)
    neuron = [r for r in rows if r["level"] == "neuron" and r["epoch"] == 1]
    stats = rec.stats("h->z", epoch=1)
    for r in neuron:
        assert (r["source"], r["target"]) == ("h", "z")
        assert r["mean"] == pytest.approx(stats.mean[r["source_index"], r["target_index"]].item())
    graph = [r for r in rows if r["level"] == "graph" and r["epoch"] == 0 and r["head"] == 0]
    assert [(r["source_index"], r["target_index"]) for r in graph] == [(0, 1), (1, 0), (1, 2), (2, 2)]
    branch = {(r["source"], r["head"]) for r in rows if r["level"] == "branch"}
    assert branch == {(b, h) for b in "abc" for h in (0, 1)}
    assert len(rec.to_rows(epochs=[1])) == per_epoch


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_files_round_trip(tmp_path, suffix):
    rec = recorded()
    path = getattr(rec, f"to_{suffix}")(tmp_path / f"rec.{suffix}")
    back = EdgeRecorder.load(path)
    assert back.epochs == rec.epochs and list(back.gates) == list(rec.gates)
    for key, info in rec.gates.items():
        other = back.gates[key]
        assert other.level == info.level and other.shape == info.shape and other.edges == info.edges
        if info.edge_index is not None:
            assert torch.equal(other.edge_index, info.edge_index)
        for epoch in rec.epochs:
            a, b = rec.stats(key, epoch), back.stats(key, epoch)
            assert a.count == b.count
            for name in ("mean", "std", "min", "max", "under"):
                torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-7, rtol=1e-6)
    for a, b in zip(back.to_rows(), rec.to_rows()):
        assert {k: a[k] for k in COLUMNS[:9]} == {k: b[k] for k in COLUMNS[:9]}
    assert [p.name for p in tmp_path.iterdir()] == [f"rec.{suffix}"]


def test_loading_keeps_float32_whatever_the_default_dtype(tmp_path):
    rec = recorded()
    path = rec.to_csv(tmp_path / "rec.csv")
    with default_dtype(torch.float64):
        back = EdgeRecorder.load(path)
    a, b = rec.stats("h->z"), back.stats("h->z")
    assert b.mean.dtype == torch.float32
    torch.testing.assert_close(a.mean, b.mean, atol=1e-7, rtol=1e-6)  # dtype-checked: both float32


def test_bad_files_are_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,level\n0,neuron\n")
    with pytest.raises(mg.DataError, match=r"bad.csv: not a recording file: missing column\(s\) gate"):
        EdgeRecorder.load(bad)
    rec = recorded()
    path = rec.to_csv(tmp_path / "r.csv")
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("neuron", "nevron") if "neuron" in lines[3] else lines[3].replace(",0,", ",x,", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(mg.DataError, match=r"r.csv, line 4: "):
        EdgeRecorder.load(path)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": []}))
    with pytest.raises(mg.DataError, match="other.json: not a recording file"):
        EdgeRecorder.load(other)
    with pytest.raises(mg.DataError, match="no such recording file"):
        EdgeRecorder.load(tmp_path / "none.csv")
    with pytest.raises(mg.DataError, match="unknown recording file type '.txt'"):
        (tmp_path / "x.txt").write_text("")
        EdgeRecorder.load(tmp_path / "x.txt")
