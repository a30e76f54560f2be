"""gcn_norm is PyG's symmetric normalisation (checked against the dense D^-1/2 (A + I) D^-1/2) plus the degrees."""

import pytest
import torch

from modgraph.functional.gcn_norm import EdgeIndexCache, gcn_norm


def test_against_dense_matrix():
    ei = torch.tensor([[0, 1, 1, 2, 3, 3], [1, 0, 2, 1, 3, 0]])  # 3 -> 3 is a self-loop already
    norm = gcn_norm(ei, num_nodes=4)
    a = torch.zeros(4, 4)
    a[ei[1], ei[0]] = 1.0
    a.fill_diagonal_(1.0)
    deg = a.sum(1)
    expected = a / torch.sqrt(deg[:, None] * deg[None, :])
    dense = torch.zeros(4, 4)
    dense[norm.edge_index[1], norm.edge_index[0]] = norm.edge_weight
    torch.testing.assert_close(dense, expected)
    torch.testing.assert_close(norm.degree, deg)
    assert norm.edge_index.size(1) == 5 + 4  # the existing self-loop is not doubled


def test_without_self_loops_and_errors():
    ei = torch.tensor([[0, 1], [1, 0]])
    norm = gcn_norm(ei, num_nodes=3, add_self_loops=False)
    assert torch.equal(norm.edge_index, ei) and norm.degree.tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match=r"^gcn_norm: edge_index has the edge 0 -> 1 \(column 0\), which names a node "
                                         r"outside \[0, 1\) \(the graph has 1 node; node ids span \[0, 1\]\)$"):
        gcn_norm(ei, num_nodes=1)
    with pytest.raises(ValueError, match=r"^gcn_norm: edge_index must be a tensor \[2, E\], got shape \(3, 2\)$"):
        gcn_norm(torch.zeros(3, 2, dtype=torch.long), num_nodes=3)
    # PyG's kernels index with torch.long: another integer dtype is refused (a TypeError, as everywhere)
    with pytest.raises(TypeError, match=r"^gcn_norm: edge_index must hold node ids of dtype torch\.long, got "
                                        r"torch\.int32$"):
        gcn_norm(ei.int(), num_nodes=3)


def test_without_self_loops_weights_against_dense_matrix():
    """Without self-loops the weights are those of ``D^-1/2 A D^-1/2`` (in-degrees, no loop counted), with PyG's
    ``0^-1/2 = 0``: an edge out of a node without in-edges weighs 0; the edges stay the input's, in order."""
    ei = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 0, 1]])  # 3 and 4 only send; 5 is isolated
    norm = gcn_norm(ei, num_nodes=6, add_self_loops=False)
    assert torch.equal(norm.edge_index, ei)
    a = torch.zeros(6, 6)
    a[ei[1], ei[0]] = 1.0
    deg = a.sum(1)  # in-degrees 2, 3, 1, 0, 0, 0
    inv_sqrt = torch.where(deg > 0, deg.clamp(min=1).rsqrt(), 0.0)
    expected = (inv_sqrt[:, None] * a * inv_sqrt[None, :])[ei[1], ei[0]]
    torch.testing.assert_close(norm.edge_weight, expected)
    # by hand: 0 -> 1 is 1/sqrt(d_1 d_0) = 1/sqrt(6), 1 -> 2 is 1/sqrt(3), 3 -> 0 and 4 -> 1 are 0
    torch.testing.assert_close(norm.edge_weight, torch.tensor([6, 6, 3, 3, float("inf"), float("inf")]).rsqrt())
    torch.testing.assert_close(norm.degree, deg)


def test_cache_is_keyed_on_the_tensor():
    cache, ei, calls = EdgeIndexCache(), torch.tensor([[0], [1]]), []
    compute = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert cache.get(ei, 2, compute) == 1 and cache.get(ei, 2, compute) == 1
    assert cache.get(ei, 3, compute) == 2  # another node count
    assert cache.get(ei.clone(), 3, compute) == 3  # another tensor with the same values
    assert cache.get(ei, 2, compute) == 4 and cache.get(ei, 2, compute, torch.float64) == 5  # another tag
    assert cache.get(ei, 2, compute, torch.float64) == 5
    import copy
    import pickle

    assert copy.deepcopy(cache)._value is None and pickle.loads(pickle.dumps(cache))._value is None


def test_negative_node_ids_are_rejected():
    """A negative node id is an error (without the check PyG's normalisation runs on it without raising)."""
    with pytest.raises(ValueError, match=r"^gcn_norm: edge_index has the edge -1 -> 0 \(column 0\), which names a "
                                         r"node outside \[0, 2\) \(the graph has 2 nodes; node ids span \[-1, 1\]\)$"):
        gcn_norm(torch.tensor([[-1, 0], [0, 1]]), num_nodes=2)


def test_cache_on_an_inference_tensor_recomputes_every_call():
    # an inference tensor has no version counter: an in-place change could not be seen, so nothing is reused
    with torch.inference_mode():
        edge_index = torch.tensor([[0, 1], [1, 0]])
    cache, calls = EdgeIndexCache(), []
    for _ in range(2):
        assert cache.get(edge_index, 2, lambda: calls.append(1) or len(calls)) == len(calls)
    assert len(calls) == 2


@pytest.mark.parametrize("num_nodes", [None, 3.5, "3", -1, True])
def test_a_node_count_that_is_not_a_count_is_named(num_nodes):
    # before: TypeError "'>=' not supported between ..." or a RuntimeError deep in PyG
    with pytest.raises(ValueError, match=r"gcn_norm: num_nodes must be a non-negative integer, got "):
        gcn_norm(torch.zeros(2, 0, dtype=torch.long), num_nodes)


@pytest.mark.parametrize("dtype", [torch.long, torch.bool, "float32"])
def test_weights_of_a_dtype_that_is_not_floating_are_refused(dtype):
    # before: PyG's "result type Float can't be cast to the desired output type Long", or "ones(): argument 'dtype'"
    with pytest.raises(TypeError, match=r"gcn_norm: dtype must be a floating-point torch.dtype \(such as "
                                        r"torch.float32\), got "):
        gcn_norm(torch.tensor([[0, 1], [1, 2]]), 3, dtype=dtype)


def test_add_self_loops_is_a_bool():
    with pytest.raises(ValueError, match="gcn_norm: add_self_loops must be true or false, got 'no'"):
        gcn_norm(torch.tensor([[0, 1], [1, 2]]), 3, add_self_loops="no")  # before: taken as True


def test_cache_refuses_a_non_tensor():
    with pytest.raises(TypeError, match="EdgeIndexCache: edge_index must be a torch.Tensor, got list"):
        EdgeIndexCache().get([[0, 1], [1, 0]], 2, lambda: 1)  # an AttributeError before
    ei = torch.tensor([[0, 1], [1, 0]])
    cache = EdgeIndexCache()
    assert cache.get(ei, 2, lambda: 1) == 1 and cache.get(ei, 2, lambda: 2) == 1
