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
    kept = d[x != 0] != 0
    assert kept.numel() > 900  # about 1000 nonzeros: the kept share has a standard deviation of 0.016
    assert 0.4 < kept.float().mean() < 0.6  # about 1 - p of them kept (not all dropped, not all kept)
    assert (d[x == 0] == 0).all()
    with pytest.raises(TypeError, match="unsupported layout"):
        sparse_dropout(x.to_sparse_csc(), 0.5)


def test_op_keeps_sparse_inputs_sparse():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=50)
    g.add_node("drop", op="sparse_dropout", p=0.5)
    g.add_node("y", op="gcn_conv", out_features=3)
    g.add_edges_from([("x", "drop"), ("drop", "y")])
    net = mg.ModuleGraph(g)
    seen = []
    net.nodes["drop"].register_forward_hook(lambda module, args, output: seen.append((args[0], output)))
    ei = torch.randint(0, 200, (2, 400))
    xs = features().to_sparse_csr()
    torch.manual_seed(0)
    out = net(xs, edge_index=ei)
    assert out.shape == (200, 3)
    assert net.training and len(seen) == 1
    given, dropped = seen[0]
    assert given is xs and dropped is not xs  # dropout ran on the sparse input itself, no densified copy
    assert dropped.layout == torch.sparse_csr and dropped.shape == (200, 50)  # what the GCN received
    torch.testing.assert_close(dropped.crow_indices(), xs.crow_indices())  # same stored pattern
    torch.testing.assert_close(dropped.col_indices(), xs.col_indices())
    kept = dropped.values() != 0
    assert 0.4 < kept.float().mean() < 0.6  # p = 0.5 of the ~1000 stored values zeroed, the rest doubled
    torch.testing.assert_close(dropped.values()[kept], 2 * xs.values()[kept])
    net.eval()
    torch.testing.assert_close(net(features().to_sparse_csr(), edge_index=ei), net(features(), edge_index=ei))
    g.nodes["drop"]["p"] = 1.0
    with pytest.raises(mg.GraphSpecError, match=r"node 'drop': bad arguments for op 'sparse_dropout': p must be"):
        mg.ModuleGraph(g)


def test_uncoalesced_coo_duplicates_are_summed_before_dropout():
    """An uncoalesced COO tensor stores one entry twice or more: it is one entry of the matrix, so it is dropped or
    kept (and scaled by 1 / (1 - p)) as a whole, never partly."""
    gen = torch.Generator().manual_seed(0)
    rows, cols = torch.randint(0, 20, (300,), generator=gen), torch.randint(0, 10, (300,), generator=gen)
    index = torch.cat([torch.stack([rows, cols])] * 3, 1)  # every entry stored three times
    values = torch.rand(900, generator=gen) + 0.5
    xs = torch.sparse_coo_tensor(index, values, (20, 10))
    assert not xs.is_coalesced()
    x = xs.to_dense()
    torch.manual_seed(0)
    out = sparse_dropout(xs, p=0.5).to_dense()
    nonzero = x != 0
    kept = out[nonzero] != 0
    torch.testing.assert_close(out[nonzero][kept], 2 * x[nonzero][kept])  # a kept entry is doubled as a whole
    assert (out[~nonzero] == 0).all()
    assert 0.2 < kept.float().mean() < 0.8  # about half of the ~150 distinct entries


@pytest.mark.parametrize("p", [2, -1, float("nan"), "0.5", True])
def test_sparse_dropout_refuses_bad_p(p):
    from modgraph.ops.sparse import SparseDropout

    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"sparse_dropout: p must be a number in \[0, 1\], got"):
        sparse_dropout(x.to_sparse(), p)  # torch's "dropout probability" error, a TypeError for '0.5', True accepted
    with pytest.raises(ValueError, match=r"SparseDropout: p must be a number in \[0, 1\], got"):
        SparseDropout(p)  # accepted until the first forward before


def test_sparse_dropout_refuses_bad_training_and_x():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="sparse_dropout: training must be true or false, got 'no'"):
        sparse_dropout(x, 0.5, training="no")  # 'no' is truthy: dropout ran
    with pytest.raises(TypeError, match="sparse_dropout: x must be a torch.Tensor .* got list"):
        sparse_dropout(x.tolist(), 0.5)
    assert sparse_dropout(x, 0.5, training=False) is x and sparse_dropout(x, 0) is x
