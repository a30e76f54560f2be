"""Every structural and argument fault raises GraphSpecError naming it."""

import re

import networkx as nx
import pytest
import torch

import modgraph as mg

from .helpers import mlp_graph


def build(g):
    return mg.ModuleGraph(g)


def test_cycle_prints_its_edges():
    g = mlp_graph()
    g.add_node("z", op="relu")
    g.add_edges_from([("h", "z"), ("z", "h")])
    with pytest.raises(mg.GraphSpecError, match=r"cycle: 'h' -> 'z' -> 'h'"):
        build(g)


def test_no_input():
    g = nx.DiGraph()
    g.add_node("a", op="relu")
    g.add_node("b", op="relu")
    g.add_edge("a", "b")
    with pytest.raises(mg.GraphSpecError, match="no input node"):
        build(g)


def test_unreachable_node():
    g = mlp_graph()
    g.add_node("lonely", op="relu")
    g.add_edge("lonely", "y")
    with pytest.raises(mg.GraphSpecError, match=r"'lonely' cannot be reached from any input \('x'\)"):
        build(g)


def test_node_that_reaches_no_output():
    g = mlp_graph()
    g.graph["outputs"] = ["y"]
    g.add_node("dead", op="relu")
    g.add_edge("h", "dead")
    with pytest.raises(mg.GraphSpecError, match=r"'dead' reach no output \('y'\)"):
        build(g)


def test_unknown_op_lists_valid_ones():
    g = mlp_graph()
    g.nodes["h"]["op"] = "linaer"
    with pytest.raises(mg.GraphSpecError, match=r"node 'h': unknown op 'linaer'; valid ops: .*linear"):
        build(g)


def test_unexpected_argument():
    g = mlp_graph()
    g.nodes["h"]["out_feature"] = 3
    with pytest.raises(mg.GraphSpecError, match=r"node 'h': unexpected argument\(s\) 'out_feature' for op "
                                                r"'linear'; expected: out_features"):
        build(g)


def test_missing_argument():
    g = mlp_graph()
    del g.nodes["y"]["out_features"]
    with pytest.raises(mg.GraphSpecError, match=r"node 'y': op 'linear' needs argument\(s\) 'out_features'"):
        build(g)


@pytest.mark.parametrize("value", [0, -3, 2.5, "8", True])
def test_bad_argument_value(value):
    g = mlp_graph()
    g.nodes["h"]["out_features"] = value
    with pytest.raises(mg.GraphSpecError, match=r"node 'h': bad arguments for op 'linear': out_features must be "
                                                r"a positive integer"):
        build(g)


def test_bad_activation_lists_choices():
    g = mlp_graph()
    g.nodes["h"]["activation"] = "swish"
    with pytest.raises(mg.GraphSpecError, match=r"activation must be one of 'relu', 'tanh'"):
        build(g)


def test_shape_mismatch_on_an_edge():
    g = mlp_graph(hidden=20)
    g.nodes["y"]["in_features"] = 18
    with pytest.raises(mg.GraphSpecError, match=r"edge 'h' -> 'y': expected 18 features, got 20"):
        build(g)


def test_shape_mismatch_at_a_merge_names_both_edges():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("a", op="linear", out_features=16)
    g.add_node("b", op="linear", out_features=20)
    g.add_node("m", op="relu")
    g.add_edges_from([("x", "a"), ("x", "b"), ("a", "m"), ("b", "m")])
    with pytest.raises(mg.GraphSpecError, match=r"node 'm': a sum merge needs in-edges of equal width, but "
                                                r"'a' -> 'm' gives 16, 'b' -> 'm' gives 20"):
        build(g)


def test_unknown_attention():
    g = mlp_graph(attention="softmaxx")
    with pytest.raises(mg.GraphSpecError, match=r"edge 'h' -> 'y': unknown attention 'softmaxx'; valid: sigmoid"):
        build(g)


@pytest.mark.parametrize("t", [-0.1, 1.5, "a"])
def test_threshold_out_of_range(t):
    g = mlp_graph(threshold=t)
    with pytest.raises(mg.GraphSpecError, match=r"edge 'h' -> 'y': threshold must be a number in \[0, 1\]"):
        build(g)


def test_gate_settings_without_attention():
    g = mlp_graph(attention=None)
    g.edges["h", "y"]["threshold"] = 0.1
    with pytest.raises(mg.GraphSpecError, match=r"edge 'h' -> 'y': setting\(s\) 'threshold' need 'attention'"):
        build(g)


def test_neuron_level_needs_a_linear_target():
    g = mlp_graph(attention=None)
    g.add_node("r", op="relu")
    g.add_edge("y", "r", attention="sigmoid", level="neuron")
    with pytest.raises(mg.GraphSpecError, match=r"edge 'y' -> 'r': neuron-level attention needs a linear target"):
        build(g)


def test_attended_in_edges_must_agree():
    g = _branch_graph()
    g.edges["b", "m"]["attention"] = "sparsemax"
    with pytest.raises(mg.GraphSpecError, match=r"must agree on 'attention': 'a' -> 'm' has 'softmax', "
                                                r"'b' -> 'm' has 'sparsemax'"):
        build(g)


def test_input_with_in_edges_and_bad_names():
    g = mlp_graph()
    g.add_node("x2", op="input", features=5)
    g.add_edge("h", "x2")
    with pytest.raises(mg.GraphSpecError, match="input node 'x2' has in-edges from 'h'"):
        build(g)
    g = nx.relabel_nodes(mlp_graph(), {"h": 1})
    with pytest.raises(mg.GraphSpecError, match="node 1: names must be non-empty strings"):
        build(g)


def test_not_a_digraph_and_empty():
    with pytest.raises(mg.GraphSpecError, match="expected a networkx.DiGraph, got Graph"):
        build(nx.Graph())
    with pytest.raises(mg.GraphSpecError, match="no nodes"):
        build(nx.DiGraph())


def test_missing_op():
    g = mlp_graph()
    del g.nodes["h"]["op"]
    with pytest.raises(mg.GraphSpecError, match="node 'h' has no 'op'"):
        build(g)


def test_unknown_edge_setting_on_a_networkx_graph():
    """A misspelt edge attribute on a graph passed straight to ModuleGraph (not through a spec dict or file)."""
    g = mlp_graph()
    g.edges["h", "y"]["attenton"] = "softmax"
    with pytest.raises(mg.GraphSpecError, match=r"edge 'h' -> 'y': unknown setting\(s\) 'attenton'; valid: "
                                                r"attention, threshold, score"):
        build(g)


@pytest.mark.parametrize("value", ["18", True, 18.0, 0, -18, [18]])
def test_in_features_must_be_a_positive_integer(value):
    g = mlp_graph()
    g.nodes["y"]["in_features"] = value
    with pytest.raises(mg.GraphSpecError, match=r"node 'y': in_features must be a positive integer \(a width\), "
                                                r"got " + re.escape(repr(value))):
        build(g)


@pytest.mark.parametrize("value", ["6", True, 6.0, -6])
def test_declared_out_features_of_a_module_node_must_be_a_positive_integer(value):
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("m", module=torch.nn.Linear(4, 6), out_features=value)
    g.add_edge("x", "m")
    with pytest.raises(mg.GraphSpecError, match=r"node 'm': out_features must be a positive integer"):
        build(g)


def test_node_names_with_the_edge_separator_are_refused():
    """'a->b' -> 'c' and 'a' -> 'b->c' would both be the parameter 'a->b->c' (learnable adjacency, neuron
    attention), the second silently replacing the first."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=3)
    for name in ("a->b", "a", "c", "b->c"):
        g.add_node(name, op="linear", out_features=3)
    g.add_node("y", op="concat")
    g.add_edges_from([("x", "a->b"), ("x", "a"), ("c", "y"), ("b->c", "y")])
    g.add_edge("a->b", "c", learnable=True, attention="sigmoid")
    g.add_edge("a", "b->c", learnable=True, attention="sigmoid")
    with pytest.raises(mg.GraphSpecError, match=r"node 'a->b': names cannot contain '->'"):
        build(g)


def test_node_names_with_a_dot_are_refused_with_the_reason():
    g = nx.relabel_nodes(mlp_graph(), {"h": "layer.1"})
    with pytest.raises(mg.GraphSpecError, match=r"node 'layer.1': names cannot contain '\.' \(torch joins submodule "
                                                r"names with it"):
        build(g)


def test_an_empty_node_name_is_refused():
    g = nx.relabel_nodes(mlp_graph(), {"h": ""})
    with pytest.raises(mg.GraphSpecError, match=r"node '': names must be non-empty strings"):
        build(g)


@pytest.mark.parametrize("name", ["keys", "forward", "training", "update"])
def test_names_of_module_dict_attributes_are_refused(name):
    """torch.nn.ModuleDict cannot hold a module under the name of one of its attributes."""
    assert name in dir(torch.nn.ModuleDict())
    g = nx.relabel_nodes(mlp_graph(), {"h": name})
    with pytest.raises(mg.GraphSpecError, match=rf"node '{name}': the name is reserved \(an attribute of "
                                                r"torch.nn.ModuleDict\)"):
        build(g)


def test_a_node_with_both_op_and_module_is_refused():
    g = mlp_graph()
    g.nodes["h"]["module"] = torch.nn.Linear(5, 18)
    with pytest.raises(mg.GraphSpecError, match=r"node 'h' has both 'op' and 'module'; give one"):
        build(g)


def test_an_input_is_never_an_output_by_default():
    """The default outputs are the sinks that are not inputs: a lone input, or an input nothing reads, is a fault,
    not an output passed through."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=3)
    with pytest.raises(mg.GraphSpecError, match="the graph has no output: every sink is an input node"):
        build(g)
    g = mlp_graph()
    g.add_node("unused", op="input", features=2)
    with pytest.raises(mg.GraphSpecError, match=r"node\(s\) 'unused' reach no output \('y'\)"):
        build(g)


def test_outputs_given_as_one_name():
    g = nx.relabel_nodes(mlp_graph(), {"y": "out"})
    g.graph["outputs"] = "out"
    net = build(g)
    assert net.outputs == ["out"] and net(torch.randn(2, 5)).shape == (2, 3)


def test_an_empty_outputs_list_is_named():
    g = mlp_graph()
    g.graph["outputs"] = []
    with pytest.raises(mg.GraphSpecError, match=r"'outputs' must be a non-empty list of node names, got \[\]"):
        build(g)


def _branch_graph(**settings):
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("a", op="relu")
    g.add_node("b", op="tanh")
    g.add_node("m", op="identity")
    g.add_edges_from([("x", "a"), ("x", "b")])
    g.add_edge("a", "m", attention="softmax", **settings)
    g.add_edge("b", "m", attention="softmax", **settings)
    return g


@pytest.mark.parametrize("settings, message", [
    ({"heads": 0}, r"edge 'a' -> 'm': heads must be a positive integer, got 0"),
    ({"hidden": 0}, r"edge 'a' -> 'm': hidden must be a positive integer, got 0"),
    ({"heads": -2}, r"edge 'a' -> 'm': heads must be a positive integer, got -2"),
    ({"heads": 2, "hidden": 3}, r"node 'm': heads=2 must divide hidden=3 and every attended branch width \[4, 4\]"),
    ({"level": "edge"}, r"edge 'a' -> 'm': level must be 'neuron' or 'branch', got 'edge'"),
    ({"learnable": "yes"}, r"edge 'a' -> 'm': learnable must be true or false, got 'yes'"),
    ({"learnable": 1}, r"edge 'a' -> 'm': learnable must be true or false, got 1"),
    ({"weight": float("nan")}, r"edge 'a' -> 'm': weight must be a finite number, got nan"),
    ({"weight": float("-inf")}, r"edge 'a' -> 'm': weight must be a finite number, got -inf"),
])
def test_bad_edge_settings_are_named(settings, message):
    with pytest.raises(mg.GraphSpecError, match=message):
        build(_branch_graph(**settings))
    assert build(_branch_graph(heads=2, hidden=4)).branch_attention["m"] is not None  # heads dividing both: fine


def test_a_module_that_does_not_give_a_matrix_is_named():
    class AddsAnAxis(torch.nn.Module):
        def forward(self, x):
            return x.unsqueeze(1)

    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("m", module=AddsAnAxis())
    g.add_edge("x", "m")
    with pytest.raises(mg.GraphSpecError, match=r"node 'm': the module must map \[B, 4\] to a \[B, F\] tensor"):
        build(g)


def test_a_level_without_attention_is_named():
    g = mlp_graph(attention=None)
    g.edges["h", "y"]["level"] = "branch"
    with pytest.raises(mg.GraphSpecError, match=r"edge 'h' -> 'y': setting\(s\) 'level' need 'attention'"):
        build(g)


@pytest.mark.parametrize("key, a, b", [("threshold", 0.1, 0.2), ("temperature", 1.0, 2.0), ("score", "dot", "additive"),
                                       ("heads", 1, 2), ("hidden", 8, 16)])
def test_attended_in_edges_must_agree_on_every_group_setting(key, a, b):
    """One gate weighs the group: a second edge's threshold (or temperature, ...) would be dropped without a word."""
    g = _branch_graph()
    g.edges["a", "m"][key] = a
    g.edges["b", "m"][key] = b
    with pytest.raises(mg.GraphSpecError, match=rf"node 'm': its attended in-edges form one group and must agree on "
                                                rf"'{key}': 'a' -> 'm' has {a!r}, 'b' -> 'm' has {b!r}"):
        build(g)


def test_neuron_level_attention_has_no_heads_and_its_own_scores():
    with pytest.raises(mg.GraphSpecError, match=r"edge 'h' -> 'y': neuron-level attention has no heads, got 2"):
        build(mlp_graph(heads=2))
    with pytest.raises(mg.GraphSpecError, match=r"edge 'h' -> 'y': unknown neuron-level score 'additive'; valid: "
                                                r"linear, outer"):
        build(mlp_graph(score="additive"))


def test_a_node_that_feeds_only_the_second_output_is_used():
    g = mlp_graph()
    g.add_node("z", op="tanh")
    g.add_node("y2", op="linear", out_features=2)
    g.add_edges_from([("h", "z"), ("z", "y2")])
    g.graph["outputs"] = ["y", "y2"]
    net = build(g)
    out = net(torch.randn(3, 5))
    assert list(out) == ["y", "y2"] and out["y2"].shape == (3, 2)
