import math

import networkx as nx
import pytest
import torch
import torch.nn.functional as F

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


# the scores written out by hand from the table of modgraph.functional.scores (k, q: [..., D], v: [D])
HAND_SCORES = {
    "additive": lambda k, q, v: (torch.tanh(k + q) * v).sum(-1),
    "mlp": lambda k, q, v: (torch.relu(k + q) * v).sum(-1),
    "dot": lambda k, q, v: (k * q).sum(-1),
    "scaled_dot": lambda k, q, v: (k * q).sum(-1) / math.sqrt(k.shape[-1]),
    "cosine": lambda k, q, v: (k * q).sum(-1) / (k.norm(dim=-1) * q.norm(dim=-1)),
    "gat": lambda k, q, v: F.leaky_relu(((k + q) * v).sum(-1), 0.2),
}


@pytest.mark.parametrize("score", SCORES)
def test_every_score_kind_builds_and_normalises(score):
    torch.manual_seed(0)
    net = mg.ModuleGraph(merge_graph(attention="softmax", score=score))
    x = torch.randn(4, 6)
    net(x)
    w = net.edge_weights()
    torch.testing.assert_close(w[("a", "m")] + w[("b", "m")], torch.ones(4))
    # the weights are a hand softmax over the two branches of the hand-written score of each branch's key
    att = net.branch_attention["m"]
    v = None if att.scorer.v is None else att.scorer.v[0]
    scores = torch.stack([HAND_SCORES[score](lin(net.nodes[u](x)), att.query[0], v)
                          for lin, (u, _) in zip(att.keys, att.gate.edges)], 1)  # (B, K)
    expected = torch.softmax(scores, dim=1)
    torch.testing.assert_close(torch.stack([w[e] for e in att.gate.edges], 1), expected)


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
    torch.testing.assert_close(pair_scores("dot", k, q), (k * q).sum(-1))  # unscaled
    torch.testing.assert_close(pair_scores("mlp", k, q, v), (torch.relu(k + q) * v).sum(-1))
    torch.testing.assert_close(pair_scores("gat", k, q, v), F.leaky_relu(((k + q) * v).sum(-1), 0.2))
    with pytest.raises(ValueError, match="score 'mlp' needs the vector v"):
        pair_scores("mlp", k, q)
    with pytest.raises(ValueError, match="unknown score 'bilinear'"):
        pair_scores("bilinear", k, q)
    with pytest.raises(ValueError, match="needs the vector v"):
        pair_scores("additive", k, q)


def test_outer_neuron_score_is_cheaper_and_runs():
    from .helpers import mlp_graph

    full = mg.ModuleGraph(mlp_graph(hidden=30))
    outer = mg.ModuleGraph(mlp_graph(hidden=30, score="outer"))
    assert sum(p.numel() for p in outer.attention_parameters()) < sum(p.numel() for p in full.attention_parameters())
    torch.manual_seed(0)
    att = outer.neuron_attention["h->y"]
    with torch.no_grad():  # non-zero biases, so a dropped or misplaced bias shows
        att.rows.bias.uniform_(-1, 1)
        att.cols.bias.uniform_(-1, 1)
        outer.nodes["y"].bias.uniform_(-1, 1)
    x = torch.randn(2, 5)
    out = outer(x)
    assert outer.edge_weights()[("h", "y")].shape == (2, 30, 3)
    # by hand: S_io = a_i(h) + b_o(h), the sigmoid gate, then y_bo = sum_i h_bi a_bio W_oi + b_o
    h_lin, y_lin = outer.nodes["h"], outer.nodes["y"]
    h = torch.sigmoid(x @ h_lin.weight.T + h_lin.bias)  # (B, 30)
    rows = h @ att.rows.weight.T + att.rows.bias  # (B, 30)
    cols = h @ att.cols.weight.T + att.cols.bias  # (B, 3)
    a = torch.sigmoid(rows[:, :, None] + cols[:, None, :])  # (B, 30, 3)
    torch.testing.assert_close(outer.edge_weights()[("h", "y")], a)
    expected = (h[:, :, None] * a * y_lin.weight.T).sum(1) + y_lin.bias
    torch.testing.assert_close(out, expected)


def test_multi_head_branch_weights_by_hand():
    """With H heads, head h scores chunk h of each branch's key (features [h*D, (h+1)*D)) with its own query and
    vector; the softmax runs over the branches, per sample and head."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(merge_graph(attention="softmax", heads=2, hidden=8))
    att = net.branch_attention["m"]
    assert att.query.shape == (2, 4) and att.scorer.v.shape == (2, 4)
    x = torch.randn(5, 6)
    net(x)
    w = net.edge_weights()
    scores = []
    for lin, (u, _) in zip(att.keys, att.gate.edges):
        key = lin(net.nodes[u](x))  # (B, 8)
        scores.append(torch.stack([HAND_SCORES["additive"](key[:, 4 * h:4 * h + 4], att.query[h], att.scorer.v[h])
                                   for h in range(2)], 1))  # (B, H)
    expected = torch.softmax(torch.stack(scores, 1), dim=1)  # (B, K, H)
    torch.testing.assert_close(torch.stack([w[e] for e in att.gate.edges], 1), expected)
    assert not torch.allclose(expected[..., 0], expected[..., 1])  # the heads differ, so a swap would show


def test_branch_attention_on_a_batch_of_sets_equals_each_set_alone():
    """Inputs ``[B, N, d]``: every leading index is an independent sample, weights ``[B, N]`` per edge."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(merge_graph(attention="softmax"))
    x = torch.randn(2, 3, 6)
    out = net(x)
    w = net.edge_weights()
    assert out.shape == (2, 3, 8) and w[("a", "m")].shape == (2, 3)
    for i in range(2):
        torch.testing.assert_close(out[i], net(x[i]))
        torch.testing.assert_close(w[("a", "m")][i], net.edge_weights()[("a", "m")])


# ----------------------------------------------------------------------------------------------------
# bad arguments to the attention modules


@pytest.mark.parametrize("args, error, message", [
    ((0, 3, "gate"), ValueError, r"NeuronAttention: in_features must be a positive integer, got 0"),
    ((-1, 3, "gate"), ValueError, r"NeuronAttention: in_features must be a positive integer, got -1"),
    ((2.5, 3, "gate"), ValueError, r"NeuronAttention: in_features must be a positive integer, got 2.5"),
    ((3, "2", "gate"), ValueError, r"NeuronAttention: out_features must be a positive integer, got '2'"),
    ((3, 2, "sigmoid"), TypeError, r"NeuronAttention: gate must be a modgraph.Gate \(such as Gate\('sigmoid'\)\), "
                                   r"got 'sigmoid'"),
])
def test_neuron_attention_arguments_are_checked(args, error, message):
    # before: torch's "Trying to create tensor with negative dimension", a ZeroDivisionError in its init, or an
    # AttributeError "'str' object has no attribute 'enabled'" at the first forward
    args = tuple(mg.Gate() if a == "gate" else a for a in args)
    with pytest.raises(error, match=message):
        mg.NeuronAttention(*args)


@pytest.mark.parametrize("in_dims, kwargs, error, message", [
    (4, {}, TypeError, r"BranchAttention: in_dims must be a non-empty list of the attended branches' widths, got 4"),
    ([], {}, TypeError, r"BranchAttention: in_dims must be a non-empty list .*, got \[\]"),
    ([0, 4], {}, ValueError, r"BranchAttention: in_dims\[0\] must be a positive integer, got 0"),
    ([4, 4], {"heads": 0}, ValueError, r"BranchAttention: heads must be a positive integer, got 0"),
    ([4, 4], {"heads": "2"}, ValueError, r"BranchAttention: heads must be a positive integer, got '2'"),
    ([4, 4], {"hidden": 0}, ValueError, r"BranchAttention: hidden must be a positive integer, got 0"),
])
def test_branch_attention_arguments_are_checked(in_dims, kwargs, error, message):
    # before: "'int' object is not iterable", ZeroDivisionError, a module of width 0, or a failure at the forward
    with pytest.raises(error, match=message):
        mg.BranchAttention(in_dims, mg.Gate("softmax"), **kwargs)


def test_branch_attention_needs_one_tensor_per_attended_branch():
    att = mg.BranchAttention([4, 4], mg.Gate("softmax"))
    x = torch.randn(2, 4)
    for xs in ([x], [x, x, x]):  # before: zip scored 1 branch (weights [B, 1, 1]), or dropped the third silently
        with pytest.raises(ValueError, match=rf"BranchAttention: expected 2 branch tensors \(one per attended "
                                             rf"in-edge\), got {len(xs)}"):
            att(xs)
    assert att([x, x]).shape == (2, 2, 1)


@pytest.mark.parametrize("heads, dim, message", [
    (0, 4, "Scorer: heads must be a positive integer, got 0"),
    (-1, 4, "Scorer: heads must be a positive integer, got -1"),
    (1, 2.0, "Scorer: dim must be a positive integer, got 2.0"),
])
def test_scorer_sizes_are_checked(heads, dim, message):
    for kind in ("additive", "dot"):  # before: heads=0 built silently; -1 and 2.0 failed inside torch.empty
        with pytest.raises(ValueError, match=message):
            mg.Scorer(kind, heads, dim)
