"""prune(): every level end to end, the report's counts, and the errors a user can cause."""

import networkx as nx
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import modgraph as mg
from modgraph.prune import (
    AttentionImportance,
    MagnitudeImportance,
    RandomImportance,
    count_macs,
    prune,
)
from modgraph.record import EdgeRecorder

from ..helpers import mlp_graph
from .nets import branchy, params


def recorded(net, x):
    rec = EdgeRecorder().attach(net)
    with torch.no_grad():
        net(x)
    rec.epoch_end()
    rec.detach()
    return rec


def test_neuron_pruning_report_and_accuracy_hooks():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 18, 3))
    x = torch.randn(50, 5)
    rec = recorded(net, x)
    calls = []

    def mean_output(n):
        with torch.no_grad():
            return n(x).mean().item()

    small, report = prune(net, AttentionImportance(rec), sparsity=0.5, evaluate=mean_output,
                          fine_tune=lambda n: calls.append(n))
    assert calls == [small]
    assert (report.params_before, report.params_after) == (1191, params((5, 9), (9, 3), (9, 27)))
    assert (report.neurons_before, report.neurons_after) == (18, 9)
    assert report.macs_before == 5 * 18 + 18 * 3 + 18 * 3 + 18 * 54  # h, y, scaling, allocator
    assert report.macs_after == 5 * 9 + 9 * 3 + 9 * 3 + 9 * 27
    scores = rec.stats("h->y").mean.mean(1)
    assert sorted(report.removed["units"]["h"]) == torch.argsort(scores)[:9].sort().values.tolist()
    assert report.acc_before == pytest.approx(mean_output(net))
    assert report.acc_after == pytest.approx(mean_output(small))
    assert "params" in str(report) and report.to_dict()["neurons_after"] == 9


def test_macs_of_a_plain_mlp_match_torch_flop_counter():
    net = mg.ModuleGraph(mlp_graph(7, 11, 4, attention=None))
    with FlopCounterMode(display=False) as counter:
        net(torch.randn(1, 7))
    assert count_macs(net) == counter.get_total_flops() // 2 == 7 * 11 + 11 * 4


def test_macs_of_graph_ops_by_hand():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=10)
    g.add_node("c1", op="attention_conv", out_features=8, heads=2)
    g.add_node("c2", op="gcn_conv", out_features=3)
    g.add_edges_from([("x", "c1"), ("c1", "c2")])
    net = mg.ModuleGraph(g)
    n, e = 5, 12  # self-loops are added: E' = 17
    c1 = n * 10 * 8 + 2 * n * 8 + 17 * 2 + 17 * 8  # linear, gat scores, coefficients, messages
    c2 = n * 8 * 3 + 17 * 3
    assert count_macs(net, num_nodes=n, num_edges=e) == (c1 + c2) // n
    with pytest.raises(ValueError, match="node 'c1' is a graph op: pass num_nodes and num_edges"):
        count_macs(net)


@pytest.mark.parametrize("heads", [1, 2])
def test_macs_of_a_branch_gate_by_hand(heads):
    """A branch gate costs, per attended branch of width d_k, d_k * hidden (key) + hidden (score) + d_k (scaling)."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=3)
    g.add_node("a", op="linear", out_features=4)
    g.add_node("b", op="linear", out_features=6)
    g.add_node("m", op="linear", out_features=2, merge="concat")
    g.add_edges_from([("x", "a"), ("x", "b")])
    g.add_edge("a", "m", attention="softmax", hidden=6, heads=heads)
    g.add_edge("b", "m", attention="softmax", hidden=6, heads=heads)
    net = mg.ModuleGraph(g)
    linears = 3 * 4 + 3 * 6 + (4 + 6) * 2  # a, b, m
    gate = (4 * 6 + 6 + 4) + (6 * 6 + 6 + 6)  # branch a, branch b (hidden = 6 in all, whatever the heads)
    assert count_macs(net) == linears + gate == 132


def test_macs_of_scaled_edges_by_hand():
    """A learnable or fixed edge weight scales every feature of its edge: the edge's width; a plain edge costs 0."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("p", op="linear", out_features=3)
    g.add_node("q", op="linear", out_features=5)
    g.add_node("r", op="linear", out_features=2)
    g.add_node("m", op="linear", out_features=2, merge="concat")
    g.add_edges_from([("x", "p"), ("x", "q"), ("x", "r"), ("r", "m")])
    g.add_edge("p", "m", learnable=True, weight=0.5)
    g.add_edge("q", "m", weight=2.0)
    net = mg.ModuleGraph(g)
    linears = 4 * 3 + 4 * 5 + 4 * 2 + (3 + 5 + 2) * 2  # p, q, r, m
    assert count_macs(net) == linears + 3 + 5 == 68  # p -> m (learnable) and q -> m (fixed); r -> m unscaled


def test_macs_of_batch_norm_and_layer_norm_by_hand():
    """batch_norm over F features costs F, layer_norm 2 F (different widths, so neither can stand in for the other)."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=5)
    g.add_node("h", op="linear", out_features=6)
    g.add_node("bn", op="batch_norm")
    g.add_node("k", op="linear", out_features=4)
    g.add_node("ln", op="layer_norm")
    g.add_node("y", op="linear", out_features=2)
    g.add_edges_from([("x", "h"), ("h", "bn"), ("bn", "k"), ("k", "ln"), ("ln", "y")])
    net = mg.ModuleGraph(g)
    assert count_macs(net) == 5 * 6 + 6 + 6 * 4 + 2 * 4 + 4 * 2 == 76  # h, bn, k, ln, y


class NeighbourSum(torch.nn.Module):
    """A user's graph op: ``out_i = sum over edges j -> i of W x_j`` (no MAC formula built in)."""

    needs_graph = True

    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(out_features, in_features))

    def forward(self, x, edge_index):
        h = x @ self.weight.T
        return torch.zeros_like(h).index_add_(0, edge_index[1], h[edge_index[0]])


def test_register_macs_counts_a_custom_graph_op_by_its_formula():
    """``register_macs(op, fn)``: ``fn(net, step, num_nodes, num_edges)`` gives the op's MACs over the whole graph,
    which ``count_macs`` divides by the number of nodes; the op then needs the graph's size like the built-ins."""
    from modgraph.prune import register_macs
    from modgraph.prune.report import MACS
    from modgraph.registry import _OPS

    @mg.register_op("test_neighbour_sum")
    def neighbour_sum(in_features: int, out_features: int) -> mg.Built:
        return mg.Built(NeighbourSum(in_features, out_features), out_features)

    calls = []

    def macs(net, step, num_nodes, num_edges):
        module = net.nodes[step.name]
        calls.append((step.name, num_nodes, num_edges))
        out, inp = module.weight.shape
        return num_nodes * inp * out + num_edges * out  # the transform, then one multiply-add per edge and feature

    try:
        register_macs("test_neighbour_sum", macs)
        g = nx.DiGraph()
        g.add_node("x", op="input", features=4)
        g.add_node("c", op="test_neighbour_sum", out_features=3)
        g.add_node("y", op="linear", out_features=2)
        g.add_edges_from([("x", "c"), ("c", "y")])
        net = mg.ModuleGraph(g)
        n, e = 4, 12
        assert count_macs(net, num_nodes=n, num_edges=e) == (4 * 4 * 3 + 12 * 3) // 4 + 3 * 2 == 27
        assert calls == [("c", 4, 12)]
        with pytest.raises(ValueError, match="node 'c' is a graph op: pass num_nodes and num_edges"):
            count_macs(net)
    finally:
        MACS.pop("test_neighbour_sum", None)
        _OPS.pop("test_neighbour_sum", None)


def test_pruning_everything_or_out_of_range_is_refused():
    net = mg.ModuleGraph(mlp_graph(5, 18, 3))
    with pytest.raises(mg.PruneError, match=r"sparsity 0.99 asks to remove 18 of 18 hidden units, but at most 17 "
                                            r"can go \(every layer keeps one\); valid sparsity: \[0, 0.944\]"):
        prune(net, RandomImportance(), sparsity=0.99)
    with pytest.raises(mg.PruneError, match=r"sparsity must be a number in \[0, 1\), got 1"):
        prune(net, RandomImportance(), sparsity=1)
    with pytest.raises(mg.PruneError, match="level must be one of neuron, connection, branch, graph"):
        prune(net, RandomImportance(), level="layer", sparsity=0.5)
    with pytest.raises(mg.PruneError, match="importance must be a modgraph.prune Importance"):
        prune(net, "attention", sparsity=0.5)
    with pytest.raises(mg.PruneError, match=r"level='graph' needs the graph: pass edge_index"):
        prune(net, RandomImportance(), level="graph", sparsity=0.5)
    g = mlp_graph(5, 4, 3, attention=None)
    g.remove_node("h")
    g.add_edge("x", "y")
    with pytest.raises(mg.PruneError, match=r"no prunable hidden units \('y': output 'y'\)"):
        prune(mg.ModuleGraph(g), MagnitudeImportance(), sparsity=0.5)


def test_connection_pruning_zeroes_connections_and_keeps_units_the_allocator_reads():
    torch.manual_seed(1)
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    rec = recorded(net, torch.randn(20, 5))
    mean = rec.stats("h->y").mean
    small, report = prune(net, AttentionImportance(rec), level="connection", sparsity=0.5)
    removed = report.removed["connections"]["h->y"]
    assert len(removed) == 9
    assert set(removed) == {divmod(i, 3) for i in torch.argsort(mean.reshape(-1))[:9].tolist()}
    # a unit without outgoing weights still feeds h -> y's allocator (it weighs every connection from all of h)
    assert report.removed["units"] == {}
    assert report.connections_after == report.connections_before - 9
    assert small.plan.widths["h"] == 6


def test_removing_a_branch_removes_its_dead_ancestors_and_matches_the_masked_network():
    torch.manual_seed(2)
    net = branchy("sigmoid")
    fixed = Fixed({("a2", "m"): 0.1, ("b", "m"): 0.9, ("c", "m"): 0.8})
    small, report = prune(net, fixed, level="branch", sparsity=0.34)
    assert report.removed == {"edges": [["a2", "m"]], "nodes": ["a", "a2", "p"]}  # s also feeds b: it stays
    assert set(small.graph.nodes) == {"x", "s", "b", "c", "m", "y"}
    masked = branchy("sigmoid", zero="a2")
    masked.load_state_dict(net.state_dict())
    x = torch.randn(9, 4)
    torch.testing.assert_close(small(x), masked(x))
    assert report.dag_edges_before - report.dag_edges_after == 5  # a2->m, a->a2, p->a, s->a, x->p


def test_softmax_branches_renormalise_over_the_edges_left():
    torch.manual_seed(3)
    net = branchy("softmax", merge="concat")
    x = torch.randn(5, 4)
    net(x)
    w = {u: net.edge_weights()[(u, "m")] for u in ("a2", "b", "c")}
    rec = recorded(net, x)
    lowest = min(w, key=lambda u: w[u].mean())
    small, report = prune(net, AttentionImportance(rec), level="branch", sparsity=0.34)
    assert report.removed["edges"] == [[lowest, "m"]]
    small(x)
    rest = [u for u in ("a2", "b", "c") if u != lowest]
    total = sum(w[u] for u in rest)
    for u in rest:
        torch.testing.assert_close(small.edge_weights()[(u, "m")], w[u] / total)
    assert small.plan.widths["m"] == 5 and small.nodes["m"].in_features == 12  # concat of two branches of 6


class Fixed(RandomImportance):
    def __init__(self, scores):
        self.scores = scores

    def branches(self, net):
        return self.scores


def test_branch_requests_that_cut_a_node_or_an_input_off_are_refused():
    net = branchy("sigmoid")
    fixed = Fixed({("a2", "m"): 0.1, ("b", "m"): 0.2, ("c", "m"): 0.3})
    with pytest.raises(mg.PruneError, match="asks to remove 3 of 3 branch edges in the network, but only 2 can go"):
        prune(net, fixed, level="branch", sparsity=0.9)
    g = nx.DiGraph()
    for x, h in (("x1", "a"), ("x2", "b")):
        g.add_node(x, op="input", features=3)
        g.add_node(h, op="linear", out_features=4)
        g.add_edge(x, h)
        g.add_edge(h, "m", attention="softmax")
    g.add_node("m", op="linear", out_features=2)
    two_inputs = mg.ModuleGraph(g)
    fixed = Fixed({("a", "m"): 0.1, ("b", "m"): 1.0})
    with pytest.raises(mg.PruneError, match="threshold 0.5 would remove 1 branch edges, but it would disconnect "
                                            "input 'x1' from every output"):
        prune(two_inputs, fixed, level="branch", threshold=0.5)
    with pytest.raises(mg.PruneError, match="asks to remove 1 of 2 branch edges in the network, but only 0 can go"):
        prune(two_inputs, fixed, level="branch", sparsity=0.5)


def test_graph_level_sparsifies_edge_index_and_keeps_the_network():
    gate = mg.Gate("softmax", level="graph", name="conv")
    rec = EdgeRecorder().attach(gates=[gate])
    edge_index = torch.tensor([[0, 1, 1, 2, 0, 2], [1, 0, 2, 1, 2, 0]])
    gate(torch.tensor([[3.0], [1.0], [0.0], [2.0], [1.0], [0.5]]), index=edge_index[1], num_segments=3,
         edge_index=edge_index)
    rec.epoch_end()
    net = mg.ModuleGraph(mlp_graph(5, 4, 3))
    seen = []
    small, report = prune(net, AttentionImportance(rec), level="graph", sparsity=1 / 3, edge_index=edge_index,
                          evaluate=lambda n, ei: seen.append(ei.shape[1]) or 0.0)
    assert report.edge_index.shape[1] == 4 and seen == [6, 4]
    assert (report.graph_edges_before, report.graph_edges_after) == (6, 4)
    assert report.params_before == report.params_after


def test_pruned_networks_save_and_load(tmp_path):
    torch.manual_seed(4)
    net = branchy("softmax", merge="concat")
    small, _ = prune(net, RandomImportance(1), level="branch", sparsity=0.34)
    smaller, _ = prune(small, MagnitudeImportance(), sparsity=0.5)
    back = mg.load_network(mg.save_network(smaller, tmp_path / "p.pt"))
    x = torch.randn(6, 4)
    assert torch.equal(back(x), smaller(x))
    assert back.to_dict() == smaller.to_dict()


def test_a_network_and_a_graph_of_the_wrong_kind_are_named():
    with pytest.raises(TypeError, match=r"^prune: expected a modgraph\.ModuleGraph, got Linear$"):
        prune(torch.nn.Linear(5, 3), MagnitudeImportance(), sparsity=0.5)  # AttributeError 'plan' before
    net = mg.ModuleGraph(mlp_graph(5, 4, 3))
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    graph = dict(level="graph", sparsity=0.5)
    with pytest.raises(TypeError, match=r"^edge_index must be a torch\.Tensor \[2, E\] of integer node ids "
                                        r"\(torch\.long\), got ndarray$"):
        prune(net, MagnitudeImportance(), edge_index=edge_index.numpy(), **graph)
    with pytest.raises(TypeError, match=r"^edge_index must hold integer node ids \(torch\.long\), got torch\.float32$"):
        prune(net, MagnitudeImportance(), edge_index=edge_index.float(), **graph)  # a float graph back before
    with pytest.raises(mg.PruneError, match=r"^edge_index has the edge -1 -> 0 \(column 0\), which names a negative "
                                            r"node id \(node ids must be >= 0; the lowest is -1\)$"):
        prune(net, MagnitudeImportance(), edge_index=edge_index - 1, **graph)  # an IndexError before
    with pytest.raises(mg.PruneError, match=r"^edge_index has the edge 1 -> 2 \(column 2\), which names a node outside "
                                            r"\[0, 2\) \(num_nodes is 2; it must be the graph's node count, "
                                            r"x\.size\(0\); node ids span \[0, 2\]\)$"):
        prune(net, MagnitudeImportance(), edge_index=edge_index, num_nodes=2, **graph)  # wrong MACs before
    with pytest.raises(ValueError, match=r"^num_nodes must be a non-negative integer or None .*, got '3'$"):
        prune(net, MagnitudeImportance(), edge_index=edge_index, num_nodes="3", **graph)


def test_evaluate_and_fine_tune_that_cannot_be_called_are_refused_before_any_work():
    net = mg.ModuleGraph(mlp_graph(5, 4, 3))
    with pytest.raises(TypeError, match=r"^prune: evaluate must be callable as evaluate\(net\), got float 0\.9$"):
        prune(net, MagnitudeImportance(), sparsity=0.5, evaluate=0.9)  # "'float' object is not callable" before
    edge_index = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(TypeError, match=r"^prune: fine_tune must be callable as fine_tune\(net, edge_index\), got "
                                        r"str 'adam'$"):
        prune(net, MagnitudeImportance(), sparsity=0.5, edge_index=edge_index, fine_tune="adam")
