"""The pruning contract on the cases an audit found answered wrongly: a pruned network is physically smaller and
computes what the original computes with the pruned units/connections/edges masked out; its report counts it."""

import copy

import networkx as nx
import pytest
import torch
import torch.nn.functional as F

import modgraph as mg
from modgraph.prune import Importance, MagnitudeImportance, RandomImportance, count_macs, prune
from modgraph.record import EdgeRecorder

from ..helpers import mlp_graph, mlp_with_layer_before_h


class Fixed(Importance):
    """Given scores: ``{(u, v): score}`` for branches, a list for graph edges."""

    name = "fixed"

    def __init__(self, scores):
        self.scores = scores

    def branches(self, net):
        return dict(self.scores)

    def graph_edges(self, net, edge_index):
        return torch.tensor(self.scores)


def zero_connections(net, removed):
    """The masked original of connection pruning: W's removed entries zeroed, nothing else changed."""
    masked = copy.deepcopy(net)
    with torch.no_grad():
        for key, pairs in removed.items():
            layer = masked.nodes[masked.neuron_attention[key].gate.name[1]]
            for i, o in pairs:
                layer.weight[o, i] = 0.0
    return masked


# ----------------------------------------------------------------------------------------------- F1
@pytest.mark.parametrize("attention", ["sigmoid", "softmax"])
def test_connection_pruning_keeps_units_the_allocator_reads_and_equals_the_masked_network(attention):
    """A unit whose every outgoing weight is zeroed still feeds the neuron-level allocator, which weighs every other
    connection from the whole of ``h``: removing it would change the kept connections' weights."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 6, 3, attention)).eval()
    small, report = prune(net, RandomImportance(3), level="connection", sparsity=0.6)
    removed = report.removed["connections"]["h->y"]
    assert any(all((i, o) in removed for o in range(3)) for i in range(6))  # a unit lost every connection
    assert report.removed["units"] == {}
    assert small.plan.widths["h"] == 6
    x = torch.randn(50, 5)
    with torch.no_grad():
        assert (small(x) - zero_connections(net, report.removed["connections"])(x)).abs().max() <= 1e-6


def test_connection_pruning_still_removes_units_silent_in_a_plain_consumer():
    """A unit read only by plain linear layers, all of whose weights are zero, carries nothing and goes."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_with_layer_before_h()).eval()
    with torch.no_grad():
        net.nodes["h"].weight[:, 2] = 0.0  # unit 2 of z: silent, and h -> y's allocator does not read z
    small, report = prune(net, RandomImportance(0), level="connection", sparsity=0.2)
    assert report.removed["units"] == {"z": [2]}
    x = torch.randn(20, 5)
    with torch.no_grad():
        torch.testing.assert_close(small(x), zero_connections(net, report.removed["connections"])(x))


# ----------------------------------------------------------------------------------------------- F2
def test_fine_tuning_after_connection_pruning_keeps_the_removed_connections_at_zero():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 8, 3, "sigmoid"))
    x, y = torch.randn(64, 5), (torch.randn(64) > 0).long()

    def fine_tune(n):
        opt = torch.optim.Adam(n.parameters(), lr=0.01, weight_decay=1e-3)
        for _ in range(20):
            opt.zero_grad()
            F.cross_entropy(n(x), y).backward()
            opt.step()
        trained.append(n.nodes["y"].weight.detach().clone())

    trained = []
    small, report = prune(net, MagnitudeImportance(), level="connection", sparsity=0.7,
                          evaluate=lambda n: 0.0, fine_tune=fine_tune)
    weight = small.nodes["y"].weight
    assert torch.equal(trained[0], weight)  # held at zero while training, not only zeroed afterwards
    removed = report.removed["connections"]["h->y"]
    assert len(removed) == round(0.7 * 24)
    assert all(weight[o, i].item() == 0.0 for i, o in removed)
    assert int((weight != 0).sum()) == 24 - len(removed)  # the kept ones did train (none is exactly 0)
    assert report.connections_after == mg.prune.count_connections(small) == 5 * 8 + 24 - len(removed)
    # no reparametrisation or hook is left behind: a further step may move them again, as with any network
    assert isinstance(weight, torch.nn.Parameter) and not hasattr(small.nodes["y"], "weight_orig")


# ----------------------------------------------------------------------------------------------- F3
def multi_head_net():
    """``a, b -> c`` (concat, sigmoid branch gate) and ``c, d -> m`` (2-head branch gate): c's width is chunked."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    for n in ("a", "b", "d"):
        g.add_node(n, op="linear", out_features=4, activation="tanh")
        g.add_edge("x", n)
    g.add_node("c", op="concat")
    g.add_node("m", op="linear", out_features=3, merge="concat")
    g.add_edge("a", "c", attention="sigmoid")
    g.add_edge("b", "c", attention="sigmoid")
    g.add_edge("c", "m", attention="sigmoid", heads=2, hidden=8)
    g.add_edge("d", "m", attention="sigmoid", heads=2, hidden=8)
    return mg.ModuleGraph(g).eval()


def test_a_branch_that_changes_the_width_of_a_multi_head_gates_input_is_not_a_candidate():
    net = multi_head_net()
    scores = {("a", "c"): 0.9, ("b", "c"): 0.1, ("c", "m"): 0.8, ("d", "m"): 0.7}
    small, report = prune(net, Fixed(scores), level="branch", sparsity=0.5)  # 1 of the 2 candidates
    assert report.removed["blocked_edges"] == [["a", "c"], ["b", "c"]]
    assert report.removed["edges"] == [["d", "m"]] and report.removed["nodes"] == ["d"]
    assert small.plan.widths["c"] == 8
    x = torch.randn(5, 4)
    ref = copy.deepcopy(net.graph)
    ref.edges["d", "m"]["weight"] = 0.0  # sigmoid gates: removing a branch of m equals giving it the weight 0
    ref = mg.ModuleGraph(ref).eval()
    ref.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(small(x), ref(x))
    # a threshold never picks a blocked edge either
    _, report = prune(net, Fixed(scores), level="branch", threshold=0.95)
    assert report.removed["edges"] == [["d", "m"]]


def test_branch_pruning_refuses_when_every_branch_is_blocked():
    with pytest.raises(mg.PruneError, match="no branch edge can be pruned"):  # the scored edges are all blocked
        prune(multi_head_net(), Fixed({("a", "c"): 0.9, ("b", "c"): 0.1}), level="branch", sparsity=0.5)


# ----------------------------------------------------------------------------------------------- F4
def concat_net(op):
    """``a, b -> c`` (concat merge, sigmoid branch gate, node op ``op``) ``-> y``."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    for n in ("a", "b"):
        g.add_node(n, op="linear", out_features=3, activation="tanh")
        g.add_edge("x", n)
    g.add_node("c", op=op, merge="concat", **({"out_features": 5} if op == "linear" else {}))
    g.add_node("y", op="linear", out_features=2)
    g.add_edge("c", "y")
    g.add_edge("a", "c", attention="sigmoid")
    g.add_edge("b", "c", attention="sigmoid")
    torch.manual_seed(0)
    return mg.ModuleGraph(g).eval()


def with_weight_zero(net, edge):
    g = copy.deepcopy(net.graph)
    g.edges[edge]["weight"] = 0.0
    ref = mg.ModuleGraph(g).eval()
    ref.load_state_dict(net.state_dict())
    return ref


def test_removing_a_concat_branch_into_a_linear_node_equals_weight_zero():
    net = concat_net("linear")
    small, _ = prune(net, Fixed({("a", "c"): 0.9, ("b", "c"): 0.1}), level="branch", sparsity=0.5)
    x = torch.randn(7, 4)
    with torch.no_grad():
        torch.testing.assert_close(small(x), with_weight_zero(net, ("b", "c"))(x))


@pytest.mark.parametrize("op", ["sigmoid", "batch_norm"])
def test_removing_a_concat_branch_of_a_nonlinear_node_removes_its_channels(op):
    """``f(0) != 0`` (sigmoid(0) = 0.5, batch norm's shift): weight 0 still sends ``f(0)`` on in b's channels;
    removal drops those channels, so it equals weight 0 with the consumer's columns of those channels zeroed."""
    net = concat_net(op)
    if op == "batch_norm":
        with torch.no_grad():
            net.nodes["c"].running_mean.normal_()
            net.nodes["c"].bias.normal_()
    small, _ = prune(net, Fixed({("a", "c"): 0.9, ("b", "c"): 0.1}), level="branch", sparsity=0.5)
    assert small.plan.widths["c"] == 3 and small.nodes["y"].in_features == 3
    ref = with_weight_zero(net, ("b", "c"))
    x = torch.randn(7, 4)
    with torch.no_grad():
        assert (small(x) - ref(x)).abs().max() > 1e-3  # not weight 0 ...
        ref.nodes["y"].weight[:, 3:] = 0.0  # ... but weight 0 without b's channels (columns 3..5 of y)
        torch.testing.assert_close(small(x), ref(x))


# ----------------------------------------------------------------------------------------------- F5
def test_branch_sparsity_counts_the_edges_a_removal_cuts_off_and_does_not_overshoot():
    """Removing m2 -> m leaves m2 without a path to the output, so p -> m2 and q -> m2 go too: 3 edges for a
    request of round(0.25 * 4) = 1. The next candidate that removes exactly one goes instead."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    for n in ("p", "q", "r", "m2"):
        g.add_node(n, op="linear", out_features=4, activation="tanh")
    g.add_node("m", op="linear", out_features=2)
    g.add_edges_from([("x", "p"), ("x", "q"), ("x", "r")])
    for u, v in (("p", "m2"), ("q", "m2"), ("m2", "m"), ("r", "m")):
        g.add_edge(u, v, attention="sigmoid")
    net = mg.ModuleGraph(g)
    scores = {("p", "m2"): 0.9, ("q", "m2"): 0.8, ("m2", "m"): 0.1, ("r", "m"): 0.7}
    _, report = prune(net, Fixed(scores), level="branch", sparsity=0.25)
    assert report.removed == {"edges": [["r", "m"]], "nodes": ["r"]}
    _, report = prune(net, Fixed(scores), level="branch", sparsity=0.75)  # 3: the cascade fits exactly
    assert report.removed["edges"] == [["p", "m2"], ["q", "m2"], ["m2", "m"]]


# ----------------------------------------------------------------------------------------------- F6
def two_gcn():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=5)
    g.add_node("c1", op="gcn_conv", out_features=4)
    g.add_node("y", op="gcn_conv", out_features=3)
    g.add_edges_from([("x", "c1"), ("c1", "y")])
    return mg.ModuleGraph(g)


def test_graph_level_macs_count_every_node_and_the_self_loops_the_ops_add():
    net = two_gcn()
    ei = torch.tensor([[0, 1, 1, 2, 4, 5], [1, 0, 2, 1, 5, 4]])
    # by hand: N = 6 nodes, E' = E + N; c1: N*5*4 + E'*4, y: N*4*3 + E'*3, per node (floor)
    def by_hand(e):
        return (6 * 5 * 4 + (e + 6) * 4 + 6 * 4 * 3 + (e + 6) * 3) // 6

    _, report = prune(net, Fixed([0.9, 0.9, 0.8, 0.8, 0.1, 0.1]), level="graph", edge_index=ei, sparsity=0.33)
    assert report.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]  # nodes 3, 4 and 5 are isolated now
    assert (report.macs_before, report.macs_after) == (by_hand(6), by_hand(4)) == (46, 43)
    # num_nodes from the data: node 6 has no edge at all
    _, report = prune(net, Fixed([0.9, 0.9, 0.8, 0.8, 0.1, 0.1]), level="graph", edge_index=ei, sparsity=0.33,
                      num_nodes=7)
    assert report.macs_before == (7 * 5 * 4 + 13 * 4 + 7 * 4 * 3 + 13 * 3) // 7
    # self-loops already in edge_index are not added twice (gcn_norm adds only the missing ones)
    loops = torch.cat([ei, torch.tensor([[0, 3], [0, 3]])], dim=1)
    assert count_macs(net, 6, 8, self_loops=2) == count_macs(net, 6, 6) == 46
    x = torch.randn(6, 5)
    assert net.nodes["c1"].conv is not None and net(x, loops).shape == (6, 3)
    _, report = prune(net, Fixed([0.9, 0.9, 0.8, 0.8, 0.1, 0.1, 1.0, 1.0]), level="graph", edge_index=loops,
                      sparsity=0.33)
    assert report.macs_before == 46 and report.macs_after == 43


# ----------------------------------------------------------------------------------------------- F7
def test_graph_level_copy_does_not_carry_the_recorders_attached_to_the_original():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=5)
    g.add_node("y", op="attention_conv", out_features=3)
    g.add_edge("x", "y")
    net = mg.ModuleGraph(g)
    ei = torch.tensor([[0, 1, 1, 2, 4, 5], [1, 0, 2, 1, 5, 4]])
    x = torch.randn(6, 5)
    rec = EdgeRecorder().attach(net)
    net(x, ei)
    rec.epoch_end()
    small, report = prune(net, RandomImportance(0), level="graph", edge_index=ei, sparsity=0.33,
                          evaluate=lambda n, e: float(n(x, e).detach().sum()))
    fresh = mg.ModuleGraph(net.graph)
    for gate, fresh_gate in zip(small.gates(), fresh.gates()):
        assert len(gate._weight_hooks) == len(fresh_gate._weight_hooks) == 1
        (hook,) = gate._weight_hooks.values()
        assert hook.__self__ is small and hook.__func__ is mg.ModuleGraph._store_weights
    small(x, report.edge_index)  # does not reach rec (which would refuse the changed graph)
    assert small.graph_weights()  # the copy's own hook stored the weights
    net(x, ei)  # the original still records
    rec.epoch_end()
    rec.detach()


# ----------------------------------------------------------------------------------------------- F9
def test_a_registered_produce_op_other_than_linear_gets_its_new_width():
    from modgraph.prune import register_channel_rule, register_slicer
    from modgraph.prune.dependency import CHANNEL_RULES
    from modgraph.prune.structural import SLICERS
    from modgraph.registry import _OPS

    class Dense(torch.nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(o, i))

        def forward(self, x):
            return torch.tanh(x @ self.weight.T)

    @mg.register_op("test_dense")
    def dense(in_features: int, out_features: int) -> mg.Built:
        return mg.Built(Dense(in_features, out_features), out_features)

    def slicer(old, new, keep_in, keep_out):
        new.weight.copy_(old.weight[keep_out][:, keep_in])

    try:
        register_channel_rule("test_dense", "produce")
        register_slicer(Dense, slicer)
        g = nx.DiGraph()
        g.add_node("x", op="input", features=5)
        g.add_node("h", op="test_dense", out_features=6)
        g.add_node("y", op="linear", out_features=2)
        g.add_edges_from([("x", "h"), ("h", "y")])
        torch.manual_seed(0)
        net = mg.ModuleGraph(g)
        small, report = prune(net, MagnitudeImportance(), sparsity=0.5)
        assert small.plan.widths["h"] == 3 and small.graph.nodes["h"]["out_features"] == 3
        assert small.nodes["h"].weight.shape == (3, 5) and small.nodes["y"].in_features == 3
        gone = report.removed["units"]["h"]
        kept = [i for i in range(6) if i not in gone]
        x = torch.randn(4, 5)
        h, y = net.nodes["h"].weight, net.nodes["y"]
        with torch.no_grad():
            expected = torch.tanh(x @ h[kept].T) @ y.weight[:, kept].T + y.bias
            torch.testing.assert_close(small(x), expected)
    finally:
        SLICERS.pop(Dense, None)
        CHANNEL_RULES.pop("test_dense", None)
        _OPS.pop("test_dense", None)


def test_a_produce_op_without_an_out_features_argument_is_refused_by_name():
    """A "produce" rule on an op whose builder has no out_features cannot build the smaller layer: PruneError."""
    from modgraph.prune import register_channel_rule, register_slicer
    from modgraph.prune.dependency import CHANNEL_RULES
    from modgraph.prune.structural import SLICERS
    from modgraph.registry import _OPS

    class Fixed(torch.nn.Module):  # a layer of a width of its own, 6
        def __init__(self, i):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(6, i))

        def forward(self, x):
            return x @ self.weight.T

    @mg.register_op("test_fixed")
    def fixed(in_features: int) -> mg.Built:
        return mg.Built(Fixed(in_features), 6)

    try:
        register_channel_rule("test_fixed", "produce")
        register_slicer(Fixed, lambda old, new, keep_in, keep_out: None)
        g = nx.DiGraph()
        g.add_node("x", op="input", features=5)
        g.add_node("h", op="test_fixed")
        g.add_node("y", op="linear", out_features=2)
        g.add_edges_from([("x", "h"), ("h", "y")])
        net = mg.ModuleGraph(g)
        with pytest.raises(mg.PruneError, match=r"node 'h' \(op 'test_fixed'\) would change width 6 -> 3, but its "
                                                r"op takes no out_features argument"):
            prune(net, MagnitudeImportance(), sparsity=0.5)
    finally:
        SLICERS.pop(Fixed, None)
        CHANNEL_RULES.pop("test_fixed", None)
        _OPS.pop("test_fixed", None)
