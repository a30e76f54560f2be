import networkx as nx
import pytest
import torch

import modgraph as mg
from modgraph.attention import scale_heads
from modgraph.functional.scores import SCORES, pair_scores


def merge_graph(**edge):
    g = nx.DiGraph()
    g.add_node("x", op="input", features=6)
    g.add_node("a", op="linear", out_features=8, activation="relu")
    g.add_node("b", op="linear", out_features=8, activation="tanh")
    g.add_node("m", op="identity")
    g.add_edges_from([("x", "a"), ("x", "b")])
    g.add_edge("a", "m", **edge)
    g.add_edge("b", "m", **edge)
    return g


@pytest.mark.parametrize("score", SCORES)
def test_every_score_kind_builds_and_normalises(score):
    torch.manual_seed(0)
    net = mg.ModuleGraph(merge_graph(attention="softmax", score=score))
    net(torch.randn(4, 6))
    w = net.edge_weights()
    torch.testing.assert_close(w[("a", "m")] + w[("b", "m")], torch.ones(4))


def test_heads_scale_feature_chunks():
    torch.manual_seed(0)
    net = mg.ModuleGraph(merge_graph(attention="softmax", heads=2, hidden=8))
    x = torch.randn(3, 6)
    out = net(x)
    w = net.edge_weights()
    assert w[("a", "m")].shape == (3, 2)
    a, b = net.nodes["a"](x), net.nodes["b"](x)
    wa, wb = w[("a", "m")], w[("b", "m")]
    expected = torch.cat([a[:, :4] * wa[:, :1] + b[:, :4] * wb[:, :1], a[:, 4:] * wa[:, 1:] + b[:, 4:] * wb[:, 1:]], 1)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(scale_heads(a, torch.ones(3, 2)), a)


def test_heads_must_divide_the_widths():
    with pytest.raises(mg.GraphSpecError, match=r"node 'm': heads=3 must divide hidden=32 and every attended"):
        mg.ModuleGraph(merge_graph(attention="softmax", heads=3))


def test_pair_scores_against_formulas():
    k, q, v = torch.randn(5, 2, 4), torch.randn(5, 2, 4), torch.randn(2, 4)
    torch.testing.assert_close(pair_scores("additive", k, q, v), (torch.tanh(k + q) * v).sum(-1))
    torch.testing.assert_close(pair_scores("scaled_dot", k, q), (k * q).sum(-1) / 2.0)
    torch.testing.assert_close(pair_scores("cosine", k, q), (k * q).sum(-1) / (k.norm(dim=-1) * q.norm(dim=-1)))
    with pytest.raises(ValueError, match="unknown score 'bilinear'"):
        pair_scores("bilinear", k, q)
    with pytest.raises(ValueError, match="needs the vector v"):
        pair_scores("additive", k, q)


def test_outer_neuron_score_is_cheaper_and_runs():
    from .helpers import mlp_graph

    full = mg.ModuleGraph(mlp_graph(hidden=30))
    outer = mg.ModuleGraph(mlp_graph(hidden=30, score="outer"))
    assert sum(p.numel() for p in outer.attention_parameters()) < sum(p.numel() for p in full.attention_parameters())
    outer(torch.randn(2, 5))
    assert outer.edge_weights()[("h", "y")].shape == (2, 30, 3)
