"""The gcn_conv op is PyG's GCNConv; its normalisation is cached per edge_index and recomputed for another graph."""

import networkx as nx
import pytest
import torch
from torch_geometric.nn import GCNConv as PyGGCNConv

import modgraph as mg
from modgraph.ops.gcn import GCNConv

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
    assert conv.conv.lin.weight.grad is not None
    ref = pyg_twin(conv)  # PyG's GCNConv, normalising itself, with the same weights: the same gradients
    ref(x, EDGE_INDEX).sum().backward()
    torch.testing.assert_close(conv.conv.lin.weight.grad, ref.lin.weight.grad)
    torch.testing.assert_close(conv.conv.bias.grad, ref.bias.grad)
