"""Dependency groups: which layers shrink together, and what can never be pruned (and why)."""

import networkx as nx
import torch

import modgraph as mg
from modgraph.prune import DependencyGraph, register_channel_rule

from ..helpers import mlp_graph
from .nets import wide_dag


def test_mlp_groups_are_the_hidden_units():
    deps = DependencyGraph(mg.ModuleGraph(mlp_graph(5, 18, 3)))
    assert len(deps.groups) == 18 and deps.layers() == {"h": list(range(18))}
    assert deps.groups[4].producers == [("h", 4)] and deps.groups[4].consumers == [("y", 4)]
    assert deps.blocked == {"y": "output 'y'"}
    assert deps.hidden_units() == 18


def test_summed_producers_share_units_and_concat_offsets_consumers():
    deps = DependencyGraph(wide_dag())
    layers = deps.layers()
    assert list(layers) == ["a+b", "c", "h"] and [len(v) for v in layers.values()] == [8, 5, 7]
    g = deps.groups[3]  # unit 3 of a and b: summed, normed, read by c and by h through the concat
    assert g.producers == [("a", 3), ("b", 3)]
    assert g.consumers == [("c", 3), ("h", 3)]
    assert g.keys == [("s", 0, 3), ("s", 1, 3)]
    assert deps.groups[8 + 2].consumers == [("h", 8 + 2)]  # unit 2 of c sits after the 8 of bn in the concat
    in_keep, out_keep = deps.keep([3, 10])
    assert out_keep["a"].tolist() == out_keep["bn"].tolist() == [0, 1, 2, 4, 5, 6, 7]
    assert in_keep["h"].tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9, 11, 12]


def test_blocked_units_name_their_reason():
    g = mlp_graph(5, 6, 3)
    g.add_node("ln", op="layer_norm")
    g.remove_edge("h", "y")
    g.add_edge("h", "ln")
    g.add_edge("ln", "y")
    assert DependencyGraph(mg.ModuleGraph(g)).blocked["h"] == ("it feeds node 'ln': layer_norm mixes channels "
                                                               "(not channel-separable)")
    res = nx.DiGraph()
    res.add_node("x", op="input", features=4)
    res.add_node("h", op="linear", out_features=4)
    res.add_node("s", op="relu")
    res.add_node("y", op="linear", out_features=2)
    res.add_edges_from([("x", "h"), ("x", "s"), ("h", "s"), ("s", "y")])  # a residual sum with the input
    assert DependencyGraph(mg.ModuleGraph(res)).blocked == {"h": "input 'x'", "y": "output 'y'"}


def test_multi_head_branches_and_unknown_ops_block(monkeypatch):
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    for b in ("a", "b"):
        g.add_node(b, op="linear", out_features=6)
        g.add_edge("x", b)
        g.add_edge(b, "m", attention="softmax", heads=2, hidden=4)
    g.add_node("m", op="identity")
    g.add_node("y", op="linear", out_features=2)
    g.add_edge("m", "y")
    deps = DependencyGraph(mg.ModuleGraph(g))
    assert deps.groups == [] and deps.blocked["a"] == "it feeds the 2-head branch gate of 'm'"

    g2 = mlp_graph(5, 6, 3, attention=None)
    g2.add_node("e", op="elu")
    g2.remove_edge("h", "y")
    g2.add_edges_from([("h", "e"), ("e", "y")])
    monkeypatch.delitem(mg.prune.CHANNEL_RULES, "elu")
    assert DependencyGraph(mg.ModuleGraph(g2)).blocked["h"] == "it feeds node 'e': op 'elu' has no channel rule"
    register_channel_rule("elu", "elementwise")
    assert len(DependencyGraph(mg.ModuleGraph(g2)).groups) == 6


def test_bad_queries_are_named():
    import pytest
    import torch

    with pytest.raises(TypeError, match=r"^DependencyGraph: expected a modgraph\.ModuleGraph, got Linear$"):
        DependencyGraph(torch.nn.Linear(3, 3))
    deps = DependencyGraph(mg.ModuleGraph(mlp_graph(5, 6, 3)))
    with pytest.raises(ValueError, match=r"^group_of: no node 'zz' with an output here"):
        deps.group_of("zz", 0)  # a KeyError before
    with pytest.raises(ValueError, match=r"^group_of: side must be 'out' or 'in', got 'up'$"):
        deps.group_of("h", 0, side="up")  # None (not prunable) before
    with pytest.raises(ValueError, match=r"^group_of: position must be an integer in \[0, 6\) .*, got 6$"):
        deps.group_of("h", 6)
    for bad in (6, -1):  # ignored before: nothing removed, silently
        with pytest.raises(ValueError, match=rf"^keep: removed_groups must be groups or their indices in \[0, 6\) "
                                             rf"\(deps\.groups\), got {bad}$"):
            deps.keep([bad])


def test_keep_refuses_edges_and_nodes_the_network_does_not_have():
    import pytest

    from .nets import branchy

    deps = DependencyGraph(branchy())
    with pytest.raises(mg.PruneError, match=r"^keep: removed_edges\[0\] is 'a' -> 'm', which is not an edge of the "
                                            r"network \(its in-edges: 'a2' -> 'm', 'b' -> 'm', 'c' -> 'm'\)$"):
        deps.keep((), [("a", "m")])  # ignored before: nothing removed, silently
    with pytest.raises(mg.PruneError, match=r"^keep: removed_nodes names 'zz', which is not a node of the network$"):
        deps.keep((), (), ["zz"])  # ignored before
    with pytest.raises(mg.PruneError, match=r"^keep: removed_nodes names input 'x'; pruning keeps the network's "
                                            r"inputs and outputs$"):
        deps.keep((), (), ["x"])  # a KeyError before
    with pytest.raises(TypeError, match=r"^keep: removed_edges must be a list of edges \(u, v\), got str 'cm'$"):
        deps.keep((), "cm")
    # a removed node takes its edges with it (a KeyError before, unless they were listed too)
    by_node = deps.keep((), (), ["c"])
    by_both = deps.keep((), [("c", "m")], ["c"])
    assert all(by_node[i].keys() == by_both[i].keys() for i in (0, 1))
    assert all(torch.equal(by_node[i][k], by_both[i][k]) for i in (0, 1) for k in by_node[i])


def test_register_channel_rule_refuses_an_op_that_is_not_a_name():
    import pytest

    from modgraph.prune.dependency import CHANNEL_RULES

    with pytest.raises(TypeError, match=r"^register_channel_rule: op must be an op name \(a non-empty string\), "
                                        r"got 5$"):
        register_channel_rule(5, "elementwise")  # registered under 5, never used, before
    assert 5 not in CHANNEL_RULES
