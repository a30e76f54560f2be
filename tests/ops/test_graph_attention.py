"""The attention conv against a dense reference on a hand-made 5-node graph, for every normaliser."""

import entmax
import networkx as nx
import pytest
import torch
import torch.nn.functional as F

import modgraph as mg
from modgraph.functional.gcn_norm import gcn_norm
from modgraph.ops.graph_attention import GraphAttentionConv

# 0 -> 1, 1 -> 0, 1 -> 2, 2 -> 1, 2 -> 0, 3 -> 4, 4 -> 3, 0 -> 3 (directed on purpose: in-degrees differ)
EDGE_INDEX = torch.tensor([[0, 1, 1, 2, 2, 3, 4, 0],
                           [1, 0, 2, 1, 0, 4, 3, 3]])
N = 5


def dense_reference(conv: GraphAttentionConv, x: torch.Tensor, edge_index: torch.Tensor):
    """Per-target attention and output computed densely, node by node, from the formulas in the docstring."""
    heads, dim = conv.heads, conv.head_dim
    h = (x @ conv.lin.weight.t()).view(N, heads, dim)  # (N, H, D)
    adj = torch.zeros(N, N, dtype=torch.bool)  # adj[i, j]: edge j -> i, self-loops added
    adj[edge_index[1], edge_index[0]] = True
    adj |= torch.eye(N, dtype=torch.bool)
    deg = adj.sum(1).to(x.dtype)  # in-degree with the self-loop
    v, g = conv.attention.scorer.v, conv.attention.query  # (H, D)
    weights = torch.zeros(N, N, heads, dtype=x.dtype)  # weights[i, j, k]
    for i in range(N):
        nbrs = adj[i].nonzero().flatten()
        s = F.leaky_relu(((h[nbrs] + g * h[i]) * v).sum(-1), 0.2)  # (n_i, H): GAT score v.(k_j + q_i)
        s = s / conv.gate.temperature
        if conv.gate.normalizer == "sigmoid":
            w = torch.sigmoid(s)
        elif conv.gate.normalizer == "softmax":
            w = torch.softmax(s, dim=0)
        else:
            w = entmax.sparsemax(s.t(), dim=-1).t()  # an independent implementation
        weights[i, nbrs] = w
    gcn = adj.to(x.dtype) / torch.sqrt(deg[:, None] * deg[None, :])  # D^-1/2 (A + I) D^-1/2
    if conv.gate.normalizer == "sigmoid":
        coef = weights * gcn[..., None]
    else:
        coef = weights * (gcn * deg[:, None])[..., None]
    out = torch.einsum("ijk,jkd->ikd", coef, h).flatten(1) + conv.bias
    return weights, adj, out


def conv_and_input(normalizer, heads=2, seed=0):
    torch.manual_seed(seed)
    conv = GraphAttentionConv(4, 6, heads=heads, attention=normalizer).double()
    with torch.no_grad():
        conv.attention.scorer.v.mul_(4.0)  # sharper scores, so sparsemax really produces zeros
        conv.attention.query.uniform_(-1.0, 2.0)
        conv.bias.uniform_(-1.0, 1.0)
    return conv, torch.randn(N, 4, dtype=torch.float64)


@pytest.mark.parametrize("normalizer", ["sigmoid", "softmax", "sparsemax"])
def test_matches_dense_reference(normalizer):
    conv, x = conv_and_input(normalizer)
    recorded = []
    conv.gate.register_weight_hook(lambda gate, w, ctx: recorded.append((w, ctx["edge_index"])))
    out = conv(x, EDGE_INDEX)
    weights, adj, expected = dense_reference(conv, x, EDGE_INDEX)
    torch.testing.assert_close(out, expected)

    w, ei = recorded[0]
    assert ei.shape == (2, EDGE_INDEX.size(1) + N) and w.shape == (ei.size(1), 2)
    assert torch.equal(ei[:, :EDGE_INDEX.size(1)], EDGE_INDEX)  # input edges first, in order
    assert torch.equal(ei[:, EDGE_INDEX.size(1):], torch.arange(N).repeat(2, 1))  # then the self-loops
    torch.testing.assert_close(w, weights[ei[1], ei[0]])  # weight e belongs to edge ei[0, e] -> ei[1, e]
    per_target = torch.zeros(N, 2, dtype=w.dtype).index_add_(0, ei[1], w)
    if normalizer == "sigmoid":
        assert ((w > 0) & (w < 1)).all()
    else:
        torch.testing.assert_close(per_target, torch.ones(N, 2, dtype=w.dtype))  # sums to 1 per target and head
    if normalizer == "sparsemax":
        assert (w == 0).any()  # exact zeros ...
        assert ((weights == 0) | adj[..., None]).all()  # ... and never a weight on a non-edge


def test_uniform_attention_is_gcn():
    """softmax weights 1/d_i (all scores equal) make the coefficients exactly GCN's."""
    torch.manual_seed(0)
    conv = GraphAttentionConv(4, 6, heads=2, attention="softmax").double()
    with torch.no_grad():
        conv.attention.scorer.v.zero_()
    x = torch.randn(N, 4, dtype=torch.float64)
    norm = gcn_norm(EDGE_INDEX, N)
    gcn_out = torch.zeros(N, 6, dtype=x.dtype).index_add_(
        0, norm.edge_index[1], norm.edge_weight.double()[:, None] * conv.lin(x)[norm.edge_index[0]])
    torch.testing.assert_close(conv(x, EDGE_INDEX), gcn_out + conv.bias)
    conv.gate.enabled = False  # attention off: the plain GCN coefficients as well
    torch.testing.assert_close(conv(x, EDGE_INDEX), gcn_out + conv.bias)


@pytest.mark.parametrize("op", ["attention_conv", "attention_propagate"])
def test_without_self_loops_uniform_attention_is_gcn_without_self_loops(op):
    """With ``add_self_loops=False`` no loop is added: uniform softmax attention (all scores equal), and the gate
    switched off, propagate with ``D^-1/2 A D^-1/2`` (by hand, in-degrees, no loops), and the recorded weights belong
    to the input's edges alone."""
    from .test_gcn import NO_LOOPS_EDGE_INDEX, NO_LOOPS_N, dense_gcn_without_self_loops, graph_op_net

    torch.manual_seed(0)
    kwargs = {"out_features": 6} if op == "attention_conv" else {}
    net = graph_op_net(op, heads=2, attention="softmax", add_self_loops=False, **kwargs)
    conv = net.nodes["conv"]
    with torch.no_grad():
        conv.attention.scorer.v.zero_()
        if conv.bias is not None:
            conv.bias.uniform_(-1.0, 1.0)
    x = torch.randn(NO_LOOPS_N, 4, dtype=torch.float64)
    h = x if conv.lin is None else x @ conv.lin.weight.T
    expected = dense_gcn_without_self_loops(NO_LOOPS_EDGE_INDEX, NO_LOOPS_N) @ h
    expected = expected if conv.bias is None else expected + conv.bias
    torch.testing.assert_close(net(x, edge_index=NO_LOOPS_EDGE_INDEX), expected)
    ei, w = net.graph_weights()["conv"]
    assert torch.equal(ei, NO_LOOPS_EDGE_INDEX)
    in_degree = torch.bincount(NO_LOOPS_EDGE_INDEX[1], minlength=NO_LOOPS_N).double()
    torch.testing.assert_close(w, (1.0 / in_degree[ei[1]])[:, None].expand(-1, 2))
    with net.attention_off():
        torch.testing.assert_close(net(x, edge_index=NO_LOOPS_EDGE_INDEX), expected)


@pytest.mark.parametrize("score", ["dot", "cosine", "additive", "scaled_dot"])
def test_other_scores_use_the_shared_scorer(score):
    torch.manual_seed(0)
    conv = GraphAttentionConv(4, 6, heads=3, attention="softmax", score=score, combine="replace").double()
    x = torch.randn(N, 4, dtype=torch.float64)
    out = conv(x, EDGE_INDEX)
    norm = gcn_norm(EDGE_INDEX, N)
    src, dst = norm.edge_index
    h = conv.lin(x).view(N, 3, 2)
    s = conv.attention.scorer(h[src], h[dst] * conv.attention.query)  # (E', H)
    w = torch.zeros_like(s)
    for i in range(N):
        w[dst == i] = torch.softmax(s[dst == i], 0)
    expected = torch.zeros(N, 3, 2, dtype=x.dtype).index_add_(0, dst, w[..., None] * h[src]).flatten(1) + conv.bias
    torch.testing.assert_close(out, expected)


def test_gat_fast_path_equals_the_scorer():
    torch.manual_seed(0)
    conv = GraphAttentionConv(4, 6, heads=2).double()
    with torch.no_grad():
        conv.attention.query.uniform_(-1, 1)
    h = torch.randn(N, 2, 3, dtype=torch.float64)
    src, dst = EDGE_INDEX
    fast = conv.attention.scores(h, EDGE_INDEX)
    generic = conv.attention.scorer(h[src], h[dst] * conv.attention.query)
    torch.testing.assert_close(fast, generic)


def test_heads_averaged_and_gradcheck():
    torch.manual_seed(0)
    conv = GraphAttentionConv(3, 2, heads=2, concat=False, attention="sparsemax").double()
    with torch.no_grad():
        conv.attention.scorer.v.mul_(4.0)  # sharper scores: sparsemax zeros, heads that differ
        conv.attention.query.uniform_(-1.0, 2.0)
        conv.bias.uniform_(-1.0, 1.0)
    x = torch.randn(N, 3, dtype=torch.float64, requires_grad=True)
    out = conv(x, EDGE_INDEX)
    assert out.shape == (N, 2)
    # a concat=True twin with the same weights (and no bias) gives the heads side by side: their mean is the output
    twin = GraphAttentionConv(3, 4, heads=2, concat=True, attention="sparsemax", bias=False).double()
    twin.load_state_dict({k: t for k, t in conv.state_dict().items() if k != "bias"})
    heads = twin(x, EDGE_INDEX).view(N, 2, 2)  # (N, H, D)
    assert not torch.allclose(heads[:, 0], heads[:, 1])
    torch.testing.assert_close(out, (heads[:, 0] + heads[:, 1]) / 2 + conv.bias)
    assert torch.autograd.gradcheck(lambda x: conv(x, EDGE_INDEX), (x,))


def test_threshold_and_attention_dropout():
    torch.manual_seed(0)
    conv = GraphAttentionConv(4, 4, heads=1, attention="softmax", threshold=0.3, attention_dropout=0.5)
    recorded = []
    conv.gate.register_weight_hook(lambda gate, w, ctx: recorded.append(w))
    x = torch.randn(N, 4)
    conv.eval()
    a, b = conv(x, EDGE_INDEX), conv(x, EDGE_INDEX)
    torch.testing.assert_close(a, b)  # no attention dropout in eval mode
    w = recorded[-1]
    assert ((w == 0) | (w >= 0.3)).all()
    conv.train()
    assert not torch.allclose(conv(x, EDGE_INDEX), a)


def test_propagate_without_weights():
    torch.manual_seed(0)
    conv = GraphAttentionConv(4, None, attention="softmax")
    assert conv.lin is None and conv.bias is None
    assert [n for n, _ in conv.named_parameters()] == ["attention.query", "attention.scorer.v"]
    x = torch.randn(N, 4)
    conv.gate.enabled = False
    norm = gcn_norm(EDGE_INDEX, N)
    expected = torch.zeros(N, 4).index_add_(0, norm.edge_index[1], norm.edge_weight[:, None] * x[norm.edge_index[0]])
    torch.testing.assert_close(conv(x, EDGE_INDEX), expected)


def test_sparse_input_equals_dense():
    torch.manual_seed(0)
    conv = GraphAttentionConv(4, 6, heads=2)
    x = torch.randn(N, 4) * (torch.rand(N, 4) > 0.5)
    dense = conv(x, EDGE_INDEX)
    torch.testing.assert_close(conv(x.to_sparse_coo(), EDGE_INDEX), dense)
    torch.testing.assert_close(conv(x.to_sparse_csr(), EDGE_INDEX), dense)


def test_cache_follows_the_edge_index():
    torch.manual_seed(0)
    conv = GraphAttentionConv(4, 4)
    x = torch.randn(N, 4)
    ei = EDGE_INDEX.clone()
    first = conv(x, ei)
    cached = conv._norm_cache._value
    conv(x, ei)
    assert conv._norm_cache._value is cached  # same tensor: reused
    other = ei[:, :4].clone()
    fresh = GraphAttentionConv(4, 4)
    fresh.load_state_dict(conv.state_dict())
    torch.testing.assert_close(conv(x, other), fresh(x, other))  # another graph: recomputed
    ei[1, 7] = 2  # in place: recomputed as well
    fresh2 = GraphAttentionConv(4, 4)
    fresh2.load_state_dict(conv.state_dict())
    torch.testing.assert_close(conv(x, ei), fresh2(x, ei.clone()))
    assert not torch.allclose(conv(x, ei), first)


def test_in_a_module_graph_weights_line_up_with_edge_index():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("conv", op="attention_conv", out_features=6, heads=2, attention="sparsemax")
    g.add_node("y", op="gcn_conv", out_features=3)
    g.add_edges_from([("x", "conv"), ("conv", "y")])
    net = mg.ModuleGraph(g)
    assert net.nodes["conv"].gate.name == "conv"  # the gate reports under its node's name
    assert net.needs_graph
    with pytest.raises(ValueError, match="pass edge_index"):
        net(torch.randn(N, 4))
    out = net(torch.randn(N, 4), edge_index=EDGE_INDEX)
    assert out.shape == (N, 3)
    (name, (ei, w)), = net.graph_weights().items()
    assert name == "conv" and ei.shape == (2, 13) and w.shape == (13, 2)
    assert torch.equal(ei[:, :8], EDGE_INDEX)
    assert net.edge_weights() == {}  # graph-level weights are not edges of the DAG
    att = {id(p) for p in net.attention_parameters()}
    assert att == {id(net.nodes["conv"].attention.query), id(net.nodes["conv"].attention.scorer.v)}
    x = torch.randn(N, 4)
    on = net(x, edge_index=EDGE_INDEX)
    with net.attention_off():
        off = net(x, edge_index=EDGE_INDEX)
    # attention off: the conv propagates with the plain GCN coefficients, A_hat = D^-1/2 (A + I) D^-1/2, dense
    adj = torch.zeros(N, N)
    adj[EDGE_INDEX[1], EDGE_INDEX[0]] = 1.0
    adj += torch.eye(N)
    deg = adj.sum(1)
    a_hat = adj / torch.sqrt(deg[:, None] * deg[None, :])
    conv, y = net.nodes["conv"], net.nodes["y"].conv
    hidden = a_hat @ (x @ conv.lin.weight.T) + conv.bias
    torch.testing.assert_close(off, a_hat @ (hidden @ y.lin.weight.T) + y.bias)
    assert not torch.allclose(on, off)  # with the gate on, the weights do change the output


@pytest.mark.parametrize("kwargs, message", [
    ({"attention": "softmaxx"}, "attention must be one of 'sigmoid', 'softmax', 'sparsemax', got 'softmaxx'"),
    ({"score": "bilinear"}, "score must be one of"),
    ({"combine": "add"}, "combine must be one of 'gcn', 'replace', got 'add'"),
    ({"heads": 4}, "heads=4 must divide the output width 6"),
    ({"threshold": 1.5}, r"threshold must be a number in \[0, 1\], got 1.5"),
    ({"temperature": float("inf")}, r"temperature must be a finite number > 0, got inf"),  # NaN weights otherwise
    ({"attention_dropout": 1.0}, r"attention_dropout must be a number in \[0, 1\)"),
])
def test_bad_arguments_name_the_node(kwargs, message):
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("conv", op="attention_conv", out_features=6, **kwargs)
    g.add_edge("x", "conv")
    with pytest.raises(mg.GraphSpecError, match=f"node 'conv': bad arguments for op 'attention_conv': {message}"):
        mg.ModuleGraph(g)


def test_recorded_weights_prune_the_graph_they_name():
    """The docs/cora.md snippet: the recorded (edge_index, weights) pair drives an edge pruning."""
    torch.manual_seed(0)
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("conv1", op="attention_conv", out_features=4, heads=2)
    g.add_edge("x", "conv1")
    net = mg.ModuleGraph(g)
    x = torch.randn(N, 4)
    net(x, edge_index=EDGE_INDEX)
    ei, w = net.graph_weights()["conv1"]
    pruned, keep = mg.prune.sparsify_edges(ei, w.max(dim=1).values, sparsity=0.25, self_loops="drop")
    assert pruned.size(1) == 6 and (pruned[0] != pruned[1]).all()  # 8 input edges, 2 removed, no self-loops
    lowest = w.max(dim=1).values[:8].argsort()[:2]
    assert not keep[lowest].any()  # the two edges with the lowest recorded weight went
    assert net(x, edge_index=pruned).shape == (N, 4)
    assert net.graph_weights()["conv1"][0].size(1) == 6 + N  # the self-loops are added back


@pytest.mark.parametrize("out_channels", [None, 4])
def test_sparse_features_equal_dense_ones(out_channels):
    """The propagate-only op (no weights of its own) takes sparse features too, as the conv does."""
    torch.manual_seed(0)
    conv = GraphAttentionConv(6, out_channels, heads=2 if out_channels else 3, concat=True)
    x = torch.randn(5, 6) * (torch.rand(5, 6) > 0.5)
    edge_index = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])
    dense = conv(x, edge_index)
    for sparse in (x.to_sparse_csr(), x.to_sparse()):
        torch.testing.assert_close(conv(sparse, edge_index), dense)


def test_initial_parameters_and_reset():
    """As documented: the query map starts at ones and the bias at zeros (GAT's initialisation); reset_parameters
    restores both after training moved them and redraws the score vector."""
    torch.manual_seed(0)
    conv = GraphAttentionConv(4, 6, heads=2)
    assert torch.equal(conv.attention.query, torch.ones(2, 3))
    assert torch.equal(conv.bias, torch.zeros(6))
    with torch.no_grad():
        conv.attention.query.fill_(5.0)
        conv.attention.scorer.v.zero_()
        conv.bias.fill_(1.0)
    conv.reset_parameters()
    assert torch.equal(conv.attention.query, torch.ones(2, 3))
    assert torch.equal(conv.bias, torch.zeros(6))
    assert (conv.attention.scorer.v != 0).any()


def test_zero_out_features_names_the_node():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("conv", op="attention_conv", out_features=0)
    g.add_edge("x", "conv")
    with pytest.raises(mg.GraphSpecError,
                       match="node 'conv': bad arguments for op 'attention_conv': out_features must be a positive"):
        mg.ModuleGraph(g)


@pytest.mark.parametrize("edge_index", [EDGE_INDEX.tolist(), EDGE_INDEX.numpy()])
def test_an_edge_index_that_is_not_a_tensor_is_named(edge_index):
    conv = GraphAttentionConv(4, 6, heads=2)
    # before: AttributeError "'list' object has no attribute 'is_inference'"
    with pytest.raises(TypeError, match=r"edge_index must be a torch.Tensor \[2, E\] of dtype torch.long, got "):
        conv(torch.randn(N, 4), edge_index)
    net = mg.ModuleGraph.from_dict({"nodes": {"x": {"op": "input", "features": 4},
                                              "c": {"op": "attention_conv", "out_features": 6}},
                                    "edges": [["x", "c"]]})
    with pytest.raises(TypeError, match=r"edge_index must be a torch.Tensor \[2, E\] of dtype torch.long, got "):
        net(torch.randn(N, 4), edge_index)


@pytest.mark.parametrize("kwargs, message", [
    ({"heads": 0}, "heads must be a positive integer, got 0"),
    ({"out_channels": 0}, "out_channels must be a positive integer, got 0"),
    ({"in_channels": 2.5}, "in_channels must be a positive integer, got 2.5"),
    ({"attention_dropout": 1.0}, r"attention_dropout must be a number in \[0, 1\), got 1.0"),
    ({"concat": "yes"}, "concat must be true or false, got 'yes'"),
])
def test_graph_attention_conv_arguments_are_checked(kwargs, message):
    args = {"in_channels": 4, "out_channels": 6, **kwargs}
    with pytest.raises(ValueError, match=message):  # before: heads=0 a ZeroDivisionError, out_channels=0 built
        GraphAttentionConv(**args)


def test_graph_attention_conv_names_wrong_features():
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    with pytest.raises(TypeError, match=r"GraphAttentionConv: x must be a torch.Tensor \[N, features\], got list"):
        GraphAttentionConv(3, 4)([[0.0] * 3] * 4, ei)
    with pytest.raises(ValueError, match=r"GraphAttentionConv: x must have 3 features \(in_channels\), got shape "
                                         r"\(4, 5\)"):
        GraphAttentionConv(3, 4)(torch.randn(4, 5), ei)  # torch's matmul error before
    with pytest.raises(ValueError, match=r"x must have 3 features \(in_channels\), got shape \(4, 5\)"):
        GraphAttentionConv(3, None)(torch.randn(4, 5), ei)  # a view error before
    with pytest.raises(ValueError, match=r"x must be a tensor \[N, features\] \(one row per node\), got shape "
                                         r"\(4, 1, 3\)"):
        GraphAttentionConv(3, None)(torch.randn(4, 1, 3), ei)  # accepted silently before
    with pytest.raises(TypeError, match="GraphAttentionConv: x must hold floating-point features, got torch.int64"):
        GraphAttentionConv(3, None)(torch.ones(4, 3, dtype=torch.long), ei)
    with pytest.raises(TypeError, match=r"x has dtype torch.float64 but the op's parameters have dtype torch.float32"):
        GraphAttentionConv(3, 4)(torch.randn(4, 3, dtype=torch.float64), ei)


def test_edge_attention_names_bad_parts_and_inputs():
    from modgraph.gate import Gate
    from modgraph.ops.graph_attention import EdgeAttention

    with pytest.raises(TypeError, match="EdgeAttention: gate must be a modgraph.Gate"):
        EdgeAttention(2, 3, "softmax")  # accepted until the forward before
    att = EdgeAttention(2, 3, Gate("softmax", level="graph"))
    h, ei = torch.randn(4, 2, 3), torch.tensor([[0, 1, 2], [1, 2, 3]])
    ref = att(h, ei)
    with pytest.raises(ValueError, match=r"EdgeAttention: h must be a tensor \[N, heads, dim\] = \[N, 2, 3\], got "
                                         r"shape \(4, 6\)"):
        att(h.flatten(1), ei)
    with pytest.raises(ValueError, match=r"EdgeAttention: edge_index has the edge -1 -> 0 \(column 0\), which names a "
                                         r"node outside \[0, 4\) \(h has 4 rows"):
        att(h, torch.tensor([[-1], [0]]))  # a negative source wrapped around to node 3, silently
    with pytest.raises(ValueError, match=r"edge_index has the edge 9 -> 0 \(column 0\)"):
        att(h, torch.tensor([[9], [0]]))  # an IndexError before
    with pytest.raises(ValueError, match=r"EdgeAttention: edge_index must be a tensor \[2, E\], got shape \(3, 1\)"):
        att(h, torch.tensor([[0], [1], [2]]))
    assert torch.equal(att(h, ei), ref)
