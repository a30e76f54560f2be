"""Figures: each writes a PNG of the expected size and draws what it says (lines per epoch, curves per criterion)."""

import pytest
import torch

import modgraph as mg
from modgraph import models, plot
from modgraph.record import EdgeRecorder

from .helpers import mlp_graph


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return data


@pytest.fixture
def recorded():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    rec = EdgeRecorder().attach(net)
    for _ in range(3):
        net(torch.randn(16, 5))
        rec.epoch_end()
    return net, rec


def test_recording_figures(tmp_path, recorded):
    net, rec = recorded
    _png(plot.weight_histograms(rec, tmp_path / "hist.png"))
    _png(plot.neuron_heatmaps(rec, tmp_path / "heat.png"))
    _png(plot.dag_figure(net, rec, tmp_path / "dag.png"))
    assert plot._epochs(rec, "h->y", None) == [0, 1, 2]
    assert plot._edge_means(rec, -1) == {("h", "y"): pytest.approx(rec.stats("h->y").mean.mean().item())}


def test_sparsity_curves(tmp_path):
    rows = [{"dataset": d, "criterion": c, "sparsity": s, "test_acc_after": 0.9 - s / 10, "test_acc_before": 0.9}
            for d in ("glass", "sonar") for c in ("attention", "magnitude") for s in (0.0, 0.5)]
    _png(plot.sparsity_curves(rows, tmp_path / "curves.png"))
    with pytest.raises(ValueError, match="no rows to plot"):
        plot.sparsity_curves([], tmp_path / "none.png")


def test_empty_recorders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no neuron-level gate"):
        plot.neuron_heatmaps(EdgeRecorder(), tmp_path / "x.png")
    with pytest.raises(ValueError, match="no gates to draw"):
        plot.weight_histograms(EdgeRecorder(), tmp_path / "x.png")


def test_training_curves(tmp_path):
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    result = mg.train.fit(net, lambda n: torch.nn.functional.cross_entropy(n(x), y),
                          lambda n: (n(x).argmax(1) == y).float().mean(), schedule="alternating", steps=40)
    assert len(result.phases) > 1 and len(result.history) == result.steps
    _png(plot.training_curves({"alternating": result, "history only": result.history}, tmp_path / "curves.png"))
    with pytest.raises(ValueError, match="no runs to plot"):
        plot.training_curves({}, tmp_path / "none.png")
    with pytest.raises(ValueError, match="no evaluations"):
        plot.training_curves({"empty": []}, tmp_path / "none.png")
    with pytest.raises(ValueError, match="ensemble"):
        plot.training_curves({"k": [{"step": 1, "loss": 1.0, "score": [0.5, 0.6]}]}, tmp_path / "none.png")


def test_dag_layout_follows_the_spec_order():
    """Nodes of one generation are stacked top to bottom in the spec's order (not in set order, which varies
    with the hash seed), so the same spec gives the same picture on every run."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_edges_from([("x", name) for name in ("zeta", "alpha", "mid")] + [(n, "y") for n in ("zeta", "alpha", "mid")])
    layers = {v: i for i, gen in enumerate(nx.topological_generations(g)) for v in gen}
    pos = plot._layered_positions(g, layers)
    assert [pos[v][0] for v in ("x", "zeta", "alpha", "mid", "y")] == [0.0, 1.0, 1.0, 1.0, 2.0]
    assert pos["zeta"][1] > pos["alpha"][1] > pos["mid"][1] and pos["x"][1] == pos["y"][1] == 0.0


def test_branch_profile(tmp_path):
    torch.manual_seed(0)
    net = mg.ModuleGraph(models.hop_attention(6, 3, steps=2, dropout=0.0))
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    net(torch.rand(4, 6), edge_index=edge_index)
    weights = {u: w for (u, v), w in net.edge_weights().items() if v == "out"}
    groups = {"even": torch.tensor([True, False, True, False]), "odd": torch.tensor([False, True, False, True])}
    path = plot.branch_profile(weights, tmp_path / "p.png", groups=groups, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no branch weights"):
        plot.branch_profile({}, tmp_path / "q.png")
    with pytest.raises(ValueError, match="group 'bad' has 3 entries, the weights 4 samples"):
        plot.branch_profile(weights, tmp_path / "q.png", groups={"bad": torch.ones(3, dtype=torch.bool)})
