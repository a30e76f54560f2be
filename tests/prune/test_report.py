"""The report's counts refuse what they cannot count: a network of another kind, graph sizes that are not counts."""

import networkx as nx
import pytest
import torch

import modgraph as mg
from modgraph.prune import count_connections, count_macs, count_neurons, count_params, register_macs

from ..helpers import mlp_graph


def gcn():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=10)
    g.add_node("c", op="gcn_conv", out_features=3)
    g.add_edge("x", "c")
    return mg.ModuleGraph(g)


def test_counts_of_a_network_of_another_kind_are_refused():
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    ensemble = mg.train.Ensemble([net, mg.ModuleGraph(mlp_graph(5, 6, 3))])
    for bad in (torch.nn.Linear(5, 3), ensemble, net.graph):  # AttributeErrors before (count_connections(graph): 0)
        name = type(bad).__name__
        for fn in (count_macs, count_neurons, count_connections):
            with pytest.raises(TypeError, match=rf"^{fn.__name__}: expected a modgraph\.ModuleGraph, got {name}$"):
                fn(bad)
    with pytest.raises(TypeError, match=r"^count_params: expected a torch\.nn\.Module \(a modgraph\.ModuleGraph\), "
                                        r"got DiGraph$"):
        count_params(net.graph)
    # valid: any module's parameters; the counts of a network as before
    assert count_params(torch.nn.Linear(5, 3)) == 18 and count_params(ensemble) == 2 * count_params(net)
    assert (count_macs(net), count_neurons(net), count_connections(net)) == (5 * 6 + 6 * 3 + 6 * 6 * 3 + 6 * 3, 6,
                                                                              5 * 6 + 6 * 3)


@pytest.mark.parametrize("args, message", [
    ((-5, 12), r"^count_macs: num_nodes must be a non-negative integer or None \(the graph's node count, "
               r"x\.size\(0\)\), got -5$"),  # -129 MACs before
    ((5.5, 12), r"^count_macs: num_nodes must be .*, got 5\.5$"),  # 39 before
    (("5", 12), r"^count_macs: num_nodes must be .*, got '5'$"),  # a TypeError before
    ((True, 12), r"^count_macs: num_nodes must be .*, got True$"),  # one node before
    ((5, -12), r"^count_macs: num_edges must be a non-negative integer or None \(the columns of edge_index\), "
               r"got -12$"),  # 25 before
    ((5, 12, 20), r"^count_macs: self_loops must be an integer in \[0, 12\] \(the self-loop columns of edge_index, at "
                  r"most num_edges\), got 20$"),  # 28 before
    ((5, 12, None), r"^count_macs: self_loops must be an integer in \[0, 12\] .*, got None$"),  # a TypeError before
    ((0, 12), r"^count_macs: num_edges is 12 but num_nodes is 0; a graph with edges has nodes$"),  # 36 before
])
def test_graph_sizes_that_are_not_counts_are_refused(args, message):
    net = gcn()
    assert count_macs(net, 5, 12) == (5 * 10 * 3 + 17 * 3) // 5 == 40
    assert count_macs(net, 5, 12, self_loops=2) == count_macs(net, 5, 10) == (5 * 10 * 3 + 15 * 3) // 5
    with pytest.raises(ValueError, match=message):
        count_macs(net, *args)


def test_register_macs_refuses_what_cannot_count_and_a_count_that_is_not_one():
    from modgraph.prune.report import MACS, _gcn_conv_macs

    with pytest.raises(TypeError, match=r"^register_macs: op must be an op name \(a non-empty string\), got 5$"):
        register_macs(5, lambda net, step, num_nodes, num_edges: 0)  # registered under 5, never used, before
    with pytest.raises(TypeError, match=r"^register_macs: fn must be callable as fn\(net, step, num_nodes, "
                                        r"num_edges\) -> int, got int 5$"):
        register_macs("gcn_conv", 5)  # a TypeError at the next count before
    assert MACS["gcn_conv"] is _gcn_conv_macs and 5 not in MACS
    try:
        register_macs("gcn_conv", lambda net, step, num_nodes, num_edges: 1.5)
        with pytest.raises(ValueError, match=r"^count_macs: the MACs of node 'c' \(op 'gcn_conv', by its "
                                             r"register_macs function\) must be a non-negative integer, got 1\.5$"):
            count_macs(gcn(), 5, 12)  # 0 before (1.5 // 5)
    finally:
        register_macs("gcn_conv", _gcn_conv_macs)
