"""sparse_dropout: dropout over the stored entries of a sparse tensor, with dense dropout's distribution."""

import networkx as nx
import pytest
import torch

import modgraph as mg
from modgraph.ops.sparse import sparse_dropout


def features(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(200, 50, generator=gen) * (torch.rand(200, 50, generator=gen) < 0.1)


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_drops_only_nonzeros_and_rescales(layout):
    x = features()
    xs = x.to_sparse_coo() if layout == "coo" else x.to_sparse_csr()
    torch.manual_seed(0)
    out = sparse_dropout(xs, p=0.25)
    assert out.layout == xs.layout and out.shape == x.shape
    dense = out.to_dense()
    assert (dense[x == 0] == 0).all()  # zeros stay zeros
    kept = dense[x != 0] != 0
    torch.testing.assert_close(dense[x != 0][kept], x[x != 0][kept] / 0.75)  # survivors scaled by 1 / (1 - p)
    assert 0.65 < kept.float().mean() < 0.85  # about 1 - p of the 1000 nonzeros kept
    assert out.values().numel() == xs.values().numel()  # the sparsity pattern is not rebuilt


def test_eval_and_dense_inputs():
    x = features()
    xs = x.to_sparse_csr()
    assert sparse_dropout(xs, 0.5, training=False) is xs
    assert sparse_dropout(xs, 0.0) is xs
    torch.manual_seed(0)
    d = sparse_dropout(x, 0.5)
    assert ((d == 0) | torch.isclose(d, 2 * x)).all()
    with pytest.raises(TypeError, match="unsupported layout"):
        sparse_dropout(x.to_sparse_csc(), 0.5)


def test_op_keeps_sparse_inputs_sparse():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=50)
    g.add_node("drop", op="sparse_dropout", p=0.5)
    g.add_node("y", op="gcn_conv", out_features=3)
    g.add_edges_from([("x", "drop"), ("drop", "y")])
    net = mg.ModuleGraph(g)
    ei = torch.randint(0, 200, (2, 400))
    out = net(features().to_sparse_csr(), edge_index=ei)
    assert out.shape == (200, 3)
    net.eval()
    torch.testing.assert_close(net(features().to_sparse_csr(), edge_index=ei), net(features(), edge_index=ei))
    g.nodes["drop"]["p"] = 1.0
    with pytest.raises(mg.GraphSpecError, match=r"node 'drop': bad arguments for op 'sparse_dropout': p must be"):
        mg.ModuleGraph(g)
