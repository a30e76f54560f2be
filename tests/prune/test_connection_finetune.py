"""Connection pruning next to structural removal, and what fine-tuning leaves in the report and the weights."""

import networkx as nx
import torch

import modgraph as mg
from modgraph.prune import RandomImportance, prune

from ..helpers import mlp_graph, mlp_with_layer_before_h


def gated_hidden_net():
    """``x -> h -(sigmoid gate)-> v -> y``: the gated layer ``v`` is hidden, so its own units can go."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=5)
    g.add_node("h", op="linear", out_features=6, activation="sigmoid")
    g.add_node("v", op="linear", out_features=4, activation="tanh")
    g.add_node("y", op="linear", out_features=2)
    g.add_edge("x", "h")
    g.add_edge("h", "v", attention="sigmoid")
    g.add_edge("v", "y")
    return mg.ModuleGraph(g).eval()


def test_removed_connections_stay_zero_in_the_right_rows_after_fine_tuning():
    """Unit 0 of the gated layer ``v`` is silent (``y`` ignores it) and goes: the connection mask of ``v`` must
    follow its kept rows 1, 2, 3, and hold zero whatever ``fine_tune`` writes."""
    torch.manual_seed(0)
    net = gated_hidden_net()
    with torch.no_grad():
        net.nodes["y"].weight[:, 0] = 0.0

    def fine_tune(n):
        with torch.no_grad():
            n.nodes["v"].weight.fill_(1.0)

    small, report = prune(net, RandomImportance(1), level="connection", sparsity=0.5, fine_tune=fine_tune)
    assert report.removed["units"] == {"v": [0]}
    removed = set(report.removed["connections"]["h->v"])
    assert len(removed) == 12
    weight = small.nodes["v"].weight
    assert weight.shape == (3, 6)
    expected = torch.tensor([[0.0 if (i, o) in removed else 1.0 for i in range(6)] for o in (1, 2, 3)])
    assert torch.equal(weight, expected)


def test_the_last_unit_of_a_silent_layer_stays():
    """Every unit of ``z`` is silent (``h`` reads none): all but one go, the layer keeps a unit."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_with_layer_before_h()).eval()
    with torch.no_grad():
        net.nodes["h"].weight.zero_()
    small, report = prune(net, RandomImportance(0), level="connection", sparsity=0.2)
    assert report.removed["units"] == {"z": [0, 1, 2]}
    assert small.plan.widths["z"] == 1
    x = torch.randn(10, 5)
    with torch.no_grad():
        assert small(x).shape == (10, 3)


def test_connections_after_are_recounted_after_fine_tuning():
    """By hand: after ``sparsity=0.5`` the MLP 5 -> 18 -> 3 is 5 -> 9 -> 3 (45 + 27 weights); the fine-tune
    zeroes one row of ``h`` (5 weights)."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 18, 3))

    def fine_tune(n):
        with torch.no_grad():
            n.nodes["h"].weight[0] = 0.0

    small, report = prune(net, RandomImportance(0), sparsity=0.5, fine_tune=fine_tune)
    assert small.plan.widths["h"] == 9
    assert report.connections_before == 5 * 18 + 18 * 3
    assert report.connections_after == 45 - 5 + 27


def test_the_report_names_every_producer_of_a_summed_unit():
    """wide_dag's ``a`` and ``b`` are summed: a unit of ``a+b`` is a row of both, and the report lists it for both;
    by hand, each producer's removed rows are exactly the width it lost."""
    from .nets import wide_dag

    torch.manual_seed(0)
    net = wide_dag()
    small, report = prune(net, RandomImportance(0), sparsity=0.5)
    units = report.removed["units"]
    assert units.get("a") and sorted(units["a"]) == sorted(units["b"])
    for node in ("a", "b", "c", "h"):
        assert len(units.get(node, [])) == net.plan.widths[node] - small.plan.widths[node]


def test_global_connection_pruning_over_two_gates_matches_torch_global_unstructured():
    """Two neuron-level gates ranked together: the removed connections are torch's global L1 choice, each reported
    under its own gate as ``(in, out)``. ``y``'s connection 0 -> 0 is the smallest of all (the first item of the
    second gate)."""
    from torch.nn.utils import prune as torch_prune

    from modgraph.prune import MagnitudeImportance

    g = nx.DiGraph()
    g.add_node("x", op="input", features=3)
    g.add_node("h1", op="linear", out_features=4, activation="tanh")
    g.add_node("h2", op="linear", out_features=3, activation="tanh")
    g.add_node("y", op="linear", out_features=2)
    g.add_edge("x", "h1")
    g.add_edge("h1", "h2", attention="sigmoid")
    g.add_edge("h2", "y", attention="sigmoid")
    torch.manual_seed(0)
    net = mg.ModuleGraph(g).eval()
    with torch.no_grad():
        net.nodes["y"].weight[0, 0] = 1e-4
    small, report = prune(net, MagnitudeImportance(), level="connection", sparsity=0.5)
    ref2, ref_y = torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)
    ref2.weight.data.copy_(net.nodes["h2"].weight.data)
    ref_y.weight.data.copy_(net.nodes["y"].weight.data)
    torch_prune.global_unstructured([(ref2, "weight"), (ref_y, "weight")], torch_prune.L1Unstructured, amount=9)
    for key, ref, node in (("h1->h2", ref2, "h2"), ("h2->y", ref_y, "y")):
        expected = {(i, o) for o, i in (ref.weight_mask == 0).nonzero().tolist()}
        assert set(report.removed["connections"][key]) == expected
        assert torch.equal(small.nodes[node].weight == 0, ref.weight_mask == 0)
    assert (0, 0) in report.removed["connections"]["h2->y"]
