"""The gcn_conv op is PyG's GCNConv; its normalisation is cached per edge_index and recomputed for another graph."""

import networkx as nx
import pytest
import torch
from torch_geometric.nn import GCNConv as PyGGCNConv

import modgraph as mg
from modgraph.ops.gcn import GCNConv, GCNPropagate

EDGE_INDEX = torch.tensor([[0, 1, 1, 2, 2, 3, 4, 0],
                           [1, 0, 2, 1, 0, 4, 3, 3]])


def pyg_twin(conv: GCNConv) -> PyGGCNConv:
    ref = PyGGCNConv(conv.conv.in_channels, conv.conv.out_channels, cached=False)
    ref.load_state_dict(conv.conv.state_dict())
    return ref


def test_equals_pyg_gcnconv_on_every_graph():
    torch.manual_seed(0)
    conv = GCNConv(4, 3)
    with torch.no_grad():
        conv.conv.bias.uniform_(-1, 1)
    ref = pyg_twin(conv)
    x = torch.randn(5, 4)
    torch.testing.assert_close(conv(x, EDGE_INDEX), ref(x, EDGE_INDEX))
    other = EDGE_INDEX[:, 2:].clone()  # a different graph must not reuse the first one's normalisation
    torch.testing.assert_close(conv(x, other), ref(x, other))
    torch.testing.assert_close(conv(x.to_sparse_csr(), EDGE_INDEX), ref(x, EDGE_INDEX))


def test_normalisation_is_computed_once_per_graph(monkeypatch):
    import modgraph.functional.gcn_norm as gcn_norm_module

    calls = []
    real = gcn_norm_module.gcn_norm
    monkeypatch.setattr(gcn_norm_module, "gcn_norm", lambda *a, **k: calls.append(1) or real(*a, **k))
    conv, x = GCNConv(4, 3), torch.randn(5, 4)
    ei = EDGE_INDEX.clone()
    for _ in range(3):
        conv(x, ei)
    assert len(calls) == 1
    ei[0, 0] = 4  # modified in place: recomputed
    conv(x, ei)
    conv(x, ei.clone())  # another tensor: recomputed
    assert len(calls) == 3
    conv.double()(x.double(), ei)  # another dtype: recomputed in it
    assert len(calls) == 4


def test_float64_equals_pyg_to_float64_precision():
    """The normalisation is computed in the layer's dtype, as PyG's GCNConv does (not in float32, then cast)."""
    torch.manual_seed(0)
    conv, x = GCNConv(4, 3), torch.randn(5, 4)
    conv(x, EDGE_INDEX)  # a float32 normalisation in the cache first
    conv, x = conv.double(), x.double()
    ref = pyg_twin(conv).double()
    torch.testing.assert_close(conv(x, EDGE_INDEX), ref(x, EDGE_INDEX), rtol=1e-13, atol=1e-13)


def test_op_in_a_dag():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("conv", op="gcn_conv", out_features=3)
    g.add_edge("x", "conv")
    net = mg.ModuleGraph(g)
    assert net(torch.randn(5, 4), edge_index=EDGE_INDEX).shape == (5, 3)
    assert net.graph_weights() == {} and net.attention_parameters() == []
    g.nodes["conv"]["out_features"] = 0
    with pytest.raises(mg.GraphSpecError, match="node 'conv': bad arguments for op 'gcn_conv': out_features must be"):
        mg.ModuleGraph(g)


def test_propagate_is_the_normalised_adjacency():
    from modgraph.ops.gcn import GCNPropagate

    x = torch.randn(5, 3)
    a = torch.zeros(5, 5)
    a[EDGE_INDEX[1], EDGE_INDEX[0]] = 1.0
    a += torch.eye(5)
    deg = a.sum(1)
    a_hat = a / torch.sqrt(deg[:, None] * deg[None, :])
    prop = GCNPropagate()
    torch.testing.assert_close(prop(x, EDGE_INDEX), a_hat @ x)
    a, x = a.double(), x.double()  # in float64 from the start: the normalisation too
    a_hat = a / torch.sqrt(deg.double()[:, None] * deg.double()[None, :])
    torch.testing.assert_close(prop(x, EDGE_INDEX), a_hat @ x, rtol=1e-13, atol=1e-13)
    assert list(prop.parameters()) == []


def test_inference_mode_first_then_training():
    conv, x = GCNConv(4, 3), torch.randn(5, 4)
    with torch.inference_mode():
        conv(x, EDGE_INDEX)
    conv(x, EDGE_INDEX).sum().backward()  # the normalisation is recomputed outside inference mode
    ref = pyg_twin(conv)  # PyG's GCNConv, normalising itself, with the same weights: the same gradients
    ref(x, EDGE_INDEX).sum().backward()
    torch.testing.assert_close(conv.conv.lin.weight.grad, ref.lin.weight.grad)
    torch.testing.assert_close(conv.conv.bias.grad, ref.bias.grad)


# 0 <-> 1, 1 <-> 2, 2 -> 0, 3 <-> 4, 0 -> 3, 5 -> 2: node 5 only sends (in-degree 0) and node 6 is isolated
NO_LOOPS_EDGE_INDEX = torch.tensor([[0, 1, 1, 2, 2, 3, 4, 0, 5],
                                    [1, 0, 2, 1, 0, 4, 3, 3, 2]])
NO_LOOPS_N = 7


def dense_gcn_without_self_loops(edge_index, n, dtype=torch.float64):
    """``D^-1/2 A D^-1/2`` by hand: ``A[i, j] = 1`` for an edge ``j -> i``, ``D`` the in-degrees (PyG's flow), and
    ``0^-1/2`` read as 0 (PyG's ``gcn_norm`` masks the infinity): a node without in-edges neither receives nor sends."""
    a = torch.zeros(n, n, dtype=dtype)
    a[edge_index[1], edge_index[0]] = 1.0
    deg = a.sum(1)
    inv_sqrt = torch.where(deg > 0, deg.clamp(min=1).rsqrt(), 0.0)
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def graph_op_net(op, **kwargs):
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("conv", op=op, **kwargs)
    g.add_edge("x", "conv")
    return mg.ModuleGraph(g).double()


def test_gcn_conv_without_self_loops_equals_pyg_and_the_dense_formula():
    """``gcn_conv`` with ``add_self_loops=False`` is PyG's ``GCNConv(add_self_loops=False)`` with the same weights,
    that is ``D^-1/2 A D^-1/2 X W + b``: a node without in-edges gets the bias alone."""
    torch.manual_seed(0)
    net = graph_op_net("gcn_conv", out_features=3, add_self_loops=False)
    conv = net.nodes["conv"].conv
    with torch.no_grad():
        conv.bias.uniform_(-1, 1)
    ref = PyGGCNConv(4, 3, add_self_loops=False).double()
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(NO_LOOPS_N, 4, dtype=torch.float64)
    out = net(x, edge_index=NO_LOOPS_EDGE_INDEX)
    torch.testing.assert_close(out, ref(x, NO_LOOPS_EDGE_INDEX))
    a_hat = dense_gcn_without_self_loops(NO_LOOPS_EDGE_INDEX, NO_LOOPS_N)
    torch.testing.assert_close(out, a_hat @ x @ conv.lin.weight.T + conv.bias)
    torch.testing.assert_close(out[[5, 6]], conv.bias.expand(2, 3))


def test_gcn_propagate_without_self_loops_is_the_dense_normalised_adjacency():
    """``gcn_propagate`` with ``add_self_loops=False`` is ``D^-1/2 A D^-1/2 x``; nodes without in-edges get 0."""
    torch.manual_seed(0)
    net = graph_op_net("gcn_propagate", add_self_loops=False)
    x = torch.randn(NO_LOOPS_N, 4, dtype=torch.float64)
    out = net(x, edge_index=NO_LOOPS_EDGE_INDEX)
    torch.testing.assert_close(out, dense_gcn_without_self_loops(NO_LOOPS_EDGE_INDEX, NO_LOOPS_N) @ x)
    assert (out[[5, 6]] == 0).all()


def test_gcn_conv_without_bias_equals_pyg_without_bias():
    torch.manual_seed(0)
    net = graph_op_net("gcn_conv", out_features=3, bias=False)
    conv = net.nodes["conv"].conv
    assert conv.bias is None
    ref = PyGGCNConv(4, 3, bias=False).double()
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(net(x, edge_index=EDGE_INDEX), ref(x, EDGE_INDEX))


def test_gcn_conv_reset_parameters_resets_the_layer():
    """PyG's initialisation: glorot weights and a zero bias, restored by reset_parameters."""
    torch.manual_seed(0)
    conv = GCNConv(4, 3)
    with torch.no_grad():
        conv.conv.lin.weight.zero_()
        conv.conv.bias.fill_(1.0)
    conv.reset_parameters()
    assert torch.equal(conv.conv.bias, torch.zeros(3))
    assert (conv.conv.lin.weight != 0).all()


def test_an_edge_index_made_in_inference_mode_against_pyg():
    # a graph loaded or sampled inside torch.inference_mode(): PyG's GCNConv takes it, so must ours
    from modgraph.ops.gcn import GCNPropagate
    from modgraph.ops.graph_attention import GraphAttentionConv

    torch.manual_seed(0)
    conv, ref = GCNConv(4, 3), PyGGCNConv(4, 3)
    ref.load_state_dict(conv.conv.state_dict())
    x, edges = torch.randn(3, 4), [[0, 1, 1, 2], [1, 0, 2, 1]]
    ops = [GCNPropagate(), GraphAttentionConv(4, 4)]
    expected = [op(x, torch.tensor(edges)) for op in ops]
    for op in ops:
        op._norm_cache.clear()
    with torch.inference_mode():
        edge_index = torch.tensor(edges)
        torch.testing.assert_close(conv(x, edge_index), ref(x, edge_index))
        for op, want in zip(ops, expected):
            torch.testing.assert_close(op(x, edge_index), want)


@pytest.mark.parametrize("make", [lambda: GCNConv(4, 3), GCNPropagate])
@pytest.mark.parametrize("edge_index", [EDGE_INDEX.tolist(), EDGE_INDEX.numpy()])
def test_an_edge_index_that_is_not_a_tensor_is_named(make, edge_index):
    # before: AttributeError "'list' object has no attribute 'is_inference'" from the normalisation cache
    with pytest.raises(TypeError, match=rf"edge_index must be a torch.Tensor \[2, E\] of dtype torch.long, got "
                                        rf"{type(edge_index).__name__}"):
        make()(torch.randn(5, 4), edge_index)


@pytest.mark.parametrize("args, kwargs, message", [
    ((4, -1), {}, "out_channels must be a positive integer, got -1"),
    ((0, 3), {}, "in_channels must be a positive integer, got 0"),
    ((4, 3), {"add_self_loops": "no"}, "add_self_loops must be true or false, got 'no'"),
])
def test_gcn_conv_arguments_are_checked(args, kwargs, message):
    with pytest.raises(ValueError, match=message):  # before: torch's "Trying to create tensor with negative dimension"
        GCNConv(*args, **kwargs)


EI = torch.tensor([[0, 1, 2], [1, 2, 3]])


@pytest.mark.parametrize("make", [lambda: GCNConv(3, 2), lambda: GCNPropagate()], ids=["conv", "propagate"])
@pytest.mark.parametrize("x, error, match", [
    ([[1.0, 2.0, 3.0]] * 4, TypeError, r"x must be a torch.Tensor \[N, features\], got list"),
    (torch.randn(4), ValueError, r"x must be a tensor \[N, features\] \(one row per node\), got shape \(4,\)"),
    (torch.randn(4, 2, 3), ValueError, r"x must be a tensor \[N, features\].*got shape \(4, 2, 3\)"),
])
def test_wrong_features_are_named(make, x, error, match):
    # were an AttributeError, torch's matmul error or PyG's IndexError about edge_index
    with pytest.raises(error, match=match):
        make()(x, EI)


def test_gcn_ops_name_features_of_another_width_or_dtype():
    with pytest.raises(ValueError, match=r"GCNConv: x must have 3 features \(in_channels\), got shape \(4, 5\)"):
        GCNConv(3, 2)(torch.randn(4, 5), EI)
    with pytest.raises(ValueError, match=r"GCNConv: x must have 3 features"):
        GCNConv(3, 2)(torch.randn(4, 5).to_sparse(), EI)
    with pytest.raises(TypeError, match=r"GCNConv: x has dtype torch.float64 but the op's parameters have dtype "
                                        r"torch.float32"):
        GCNConv(3, 2)(torch.randn(4, 3, dtype=torch.float64), EI)
    with pytest.raises(TypeError, match="GCNPropagate: x must hold floating-point features, got torch.int64"):
        GCNPropagate()(torch.ones(4, 3, dtype=torch.long), EI)  # blamed gcn_norm's dtype before
    x = torch.randn(4, 3)
    conv = GCNConv(3, 2)
    assert torch.allclose(conv(x, EI), conv(x.to_sparse(), EI), atol=1e-6)  # valid input unchanged
