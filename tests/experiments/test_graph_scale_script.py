"""benchmarks/graph_scale.py: the relabelled graph is the same graph; the workers' rows and the log-log slopes."""

import math

import pytest
import torch

from tests.helpers import load_script


@pytest.fixture(scope="module")
def scale():
    return load_script("benchmarks/graph_scale.py", "graph_scale")


def test_class_order_is_the_same_graph_with_consecutive_ids_per_class(scale):
    a, b = scale.graph(600, 6.0, 0, "cpu"), scale.graph(600, 6.0, 0, "cpu", order="class")
    assert torch.equal(b.y, torch.sort(a.y).values)  # each class's nodes consecutive
    perm = torch.argsort(a.y, stable=True)  # new id -> old id
    assert torch.equal(b.x, a.x[perm]) and torch.equal(b.train_mask, a.train_mask[perm])
    old_edges = {tuple(e) for e in a.edge_index.t().tolist()}
    new_edges = {(int(perm[s]), int(perm[d])) for s, d in b.edge_index.t().tolist()}
    assert new_edges == old_edges  # the same edges, under the new ids
    key = b.edge_index[0] * 600 + b.edge_index[1]
    assert torch.equal(key, key.sort().values)  # sorted again
    with pytest.raises(ValueError, match="order must be 'random' or 'class', got 'bfs'"):
        scale.graph(600, 6.0, 0, "cpu", order="bfs")


def test_slope_of_a_power_law(scale):
    assert scale.slope([1e3, 1e4, 1e5], [2.0, 20.0, 200.0]) == pytest.approx(1.0)
    assert scale.slope([1e3, 1e4], [1.0, 100.0]) == pytest.approx(2.0)
    assert scale.slope([1e3], [1.0]) is None


def test_run_in_worker_processes(scale):
    rows, slopes = scale.run([300, 600], reps=1, epochs=1, log=lambda m: None, order="class")
    assert [r["nodes"] for r in rows] == [300, 600] and all(r["order"] == "class" for r in rows)
    for r in rows:
        assert r["ratio"] == pytest.approx(r["ours_s"] / r["reference_s"]) and r["edges"] > 0
        assert r["ratio_to_floor"] == pytest.approx(r["ours_s"] / r["floor_s"])
    assert set(slopes) == {"ours", "pyg_gat", "gather_scatter"}
    assert all(math.isfinite(s["time_vs_edges"]) for s in slopes.values())


@pytest.mark.parametrize("flags, message", [
    (["--sizes", "abc"], "argument --sizes: expected comma-separated node counts, got 'abc'"),
    (["--sizes", "3,100"], "argument --sizes: every size must be at least 5 nodes (5 classes), got '3,100'"),
    (["--reps", "0"], "argument --reps: expected a positive integer, got 0"),
    (["--avg-degree", "-1"], "--avg-degree must be a number >= 0, got -1.0"),
])
def test_bad_numbers_are_one_line_errors(scale, capsys, flags, message):
    with pytest.raises(SystemExit) as stop:
        scale.main(flags)
    assert stop.value.code == 2 and message in capsys.readouterr().err
