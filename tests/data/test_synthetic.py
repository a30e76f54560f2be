"""Synthetic SBM graphs: sizes, determinism, homophily against its closed form, no dense allocation."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch_geometric.utils import contains_self_loops, is_undirected

from modgraph.data import edge_homophily, sbm_graph
from modgraph.errors import DataError

from ..helpers import default_dtype


def test_sizes_and_invariants() -> None:
    data = sbm_graph(2000, num_classes=4, avg_degree=8, num_features=16, seed=3)
    assert data.num_nodes == 2000 and data.num_classes == 4
    assert data.x.shape == (2000, 16) and data.x.dtype == torch.float32
    assert data.y.dtype == torch.int64 and set(data.y.unique().tolist()) == {0, 1, 2, 3}
    assert torch.bincount(data.y).tolist() == [500] * 4  # balanced
    # 8000 undirected draws stored both ways, minus a few self-loops and repeats.
    assert 0.97 * 16000 <= data.num_edges <= 16000 and data.num_edges % 2 == 0
    assert is_undirected(data.edge_index) and not contains_self_loops(data.edge_index)
    key = data.edge_index[0] * 2000 + data.edge_index[1]
    assert key.unique().numel() == key.numel()  # no duplicate edges


def test_features_follow_the_default_dtype() -> None:
    with default_dtype(torch.float64):
        assert sbm_graph(300, avg_degree=4, num_features=8, seed=3).x.dtype == torch.float64


def test_masks_are_disjoint_with_the_requested_sizes() -> None:
    data = sbm_graph(1000, split=(0.5, 0.25, 0.125), seed=0)
    train, val, test = data.train_mask, data.val_mask, data.test_mask
    assert (int(train.sum()), int(val.sum()), int(test.sum())) == (500, 250, 125)
    assert not (train & val).any() and not (train & test).any() and not (val & test).any()


def test_deterministic_under_a_seed() -> None:
    a, b, c = sbm_graph(3000, seed=7), sbm_graph(3000, seed=7), sbm_graph(3000, seed=8)
    for key in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(a[key], b[key]), key
    assert not (a.num_edges == c.num_edges and torch.equal(a.edge_index, c.edge_index))
    assert not torch.equal(a.y, c.y)


@pytest.mark.parametrize("p_in, num_classes", [(0.0, 5), (0.5, 3), (0.9, 7)])
def test_homophily_matches_its_closed_form(p_in: float, num_classes: int) -> None:
    data = sbm_graph(20_000, num_classes=num_classes, avg_degree=10, p_in_ratio=p_in, seed=1)
    expected = p_in + (1 - p_in) / num_classes
    assert edge_homophily(data.edge_index, data.y) == pytest.approx(expected, abs=0.01)


def test_features_are_class_correlated() -> None:
    data = sbm_graph(20_000, num_classes=5, num_features=32, seed=2)
    means = torch.stack([data.x[data.y == c].mean(0) for c in range(5)])  # (C, F)
    nearest = torch.cdist(data.x, means).argmin(1)  # nearest-class-mean classifier
    accuracy = float((nearest == data.y).float().mean())
    assert 0.35 < accuracy < 0.95  # well above chance (0.2), but not separable on features alone


class _LargestTensor(TorchFunctionMode):
    """Records the largest tensor any torch function or tensor method returns while the mode is on (the public
    ``torch.overrides`` mode: it sees every call the generator and PyG's utilities make through torch's API)."""

    def __init__(self) -> None:
        super().__init__()
        self.numel, self.op = 0, None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.numel() > self.numel:
                self.numel, self.op = t.numel(), func
        return out


def test_100k_nodes_without_dense_allocation() -> None:
    # A dense 100k x 100k adjacency would need 10^10 entries; the edge-wise sampler needs O(N + E): no torch call may
    # return a tensor larger than the features [N, F] or the edges [2, E] (a count, not a timing: nothing noisy).
    with _LargestTensor() as largest:
        data = sbm_graph(100_000, avg_degree=10, num_features=32, seed=0)
    assert data.num_nodes == 100_000 and data.num_edges > 990_000
    assert largest.numel <= max(data.x.numel(), data.edge_index.numel()), (largest.numel, largest.op)


def test_device_argument() -> None:
    data = sbm_graph(100, device="cpu")
    assert data.x.device.type == "cpu" and data.edge_index.device.type == "cpu"


def test_edge_homophily_on_a_hand_made_graph() -> None:
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])  # path 0-1-2-3
    y = torch.tensor([0, 0, 1, 1])
    assert edge_homophily(edge_index, y) == pytest.approx(4 / 6)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"num_nodes": 3, "num_classes": 5}, r"num_nodes must be an integer >= 5 \(num_classes\), got 3"),
        ({"num_nodes": 10, "p_in_ratio": 1.5}, r"p_in_ratio must be a number in \[0, 1\] \(a probability\), got 1.5"),
        ({"num_nodes": 10, "avg_degree": -1}, r"avg_degree must be a finite number >= 0, got -1"),
        ({"num_nodes": 10, "split": (0.8, 0.2, 0.2)}, r"split must be 3 fractions .* got \(0.8, 0.2, 0.2\)"),
        ({"num_nodes": 10, "num_classes": 0}, r"num_classes must be a positive integer, got 0"),
        ({"num_nodes": 10, "num_classes": True}, r"num_classes must be a positive integer, got True"),
        ({"num_nodes": 10, "p_in_ratio": "0.5"}, r"p_in_ratio must be a number in \[0, 1\] .*, got '0.5'"),
        ({"num_nodes": 10, "split": (0.8, "0.1", 0.1)}, r"split must be 3 fractions .* got \(0.8, '0.1', 0.1\)"),
        ({"num_nodes": 10, "avg_degree": float("inf")}, r"avg_degree must be a finite number >= 0, got inf"),
        ({"num_nodes": 10, "feature_noise": -0.5}, r"feature_noise must be a finite number >= 0, got -0.5"),
        ({"num_nodes": 10, "feature_noise": float("nan")}, r"feature_noise must be a finite number >= 0, got nan"),
        ({"num_nodes": 10, "feature_noise": float("inf")}, r"feature_noise must be a finite number >= 0, got inf"),
        ({"num_nodes": 10, "seed": "a"}, r"seed must be an integer, got 'a'"),  # torch's RuntimeError before
        ({"num_nodes": 10, "seed": 1.5}, r"seed must be an integer, got 1\.5"),
    ],
)
def test_bad_arguments(kwargs: dict, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        sbm_graph(**kwargs)


@pytest.mark.parametrize("num_nodes, num_classes", [(7, 3), (11, 4), (103, 5)])
def test_p_in_one_joins_only_nodes_of_one_class(num_nodes: int, num_classes: int) -> None:
    """p_in_ratio=1: every target is drawn from the source's class, also when the class sizes differ (N % C != 0)."""
    data = sbm_graph(num_nodes, num_classes=num_classes, avg_degree=6, p_in_ratio=1.0, seed=4)
    assert data.num_edges > 0
    assert (data.y[data.edge_index[0]] == data.y[data.edge_index[1]]).all()


def test_feature_noise_is_the_spread_around_the_class_mean() -> None:
    clean = sbm_graph(500, num_classes=4, num_features=16, feature_noise=0.0, seed=5)
    for c in range(4):  # without noise every node of a class sits on the class mean
        rows = clean.x[clean.y == c]
        assert torch.equal(rows, rows[:1].expand_as(rows))
    noisy = sbm_graph(4000, num_classes=4, num_features=16, feature_noise=0.5, seed=5)
    means = torch.stack([noisy.x[noisy.y == c].mean(0) for c in range(4)])
    residual = noisy.x - means[noisy.y]
    assert float(residual.std()) == pytest.approx(0.5, rel=0.03)


def test_device_argument_moves_every_tensor() -> None:
    data = sbm_graph(50, device="meta")  # a device other than the CPU the graph is sampled on
    assert {t.device.type for t in (data.x, data.edge_index, data.y, data.train_mask)} == {"meta"}


def test_edge_homophily_names_a_graph_it_cannot_read():
    y = torch.tensor([0, 0, 1])
    edge_index = torch.tensor([[0, 1], [1, 2]])
    assert edge_homophily(edge_index, y) == 0.5
    for ei, error, message in [
        ([[0, 1], [1, 2]], TypeError, r"edge_homophily: edge_index must be a torch\.Tensor \[2, E\] .*got list"),
        (torch.tensor([0, 1]), ValueError, r"edge_homophily: edge_index must be a tensor \[2, E\], got shape \(2,\)"),
        (torch.tensor([[-1], [0]]), ValueError,  # before: node -1, the last, silently
         r"edge_homophily: edge_index has the edge -1 -> 0 \(column 0\), which names a node outside \[0, 3\) "
         r"\(y has 3 labels"),
        (torch.tensor([[0, 1], [1, 3]]), ValueError, r"edge 1 -> 3 \(column 1\), which names a node outside \[0, 3\)"),
        (edge_index.float(), TypeError, r"edge_homophily: edge_index must hold integer node ids"),
    ]:
        with pytest.raises(error, match=message):
            edge_homophily(ei, y)
    with pytest.raises(TypeError, match=r"edge_homophily: y must be a tensor \[N\] of labels, one per node, got list"):
        edge_homophily(edge_index, [0, 0, 1])
    with pytest.raises(ValueError, match=r"edge_homophily: y must be a tensor \[N\] .*got shape \(2, 3\)"):
        edge_homophily(edge_index, torch.zeros(2, 3))


def test_sbm_graph_names_a_device_or_seed_it_cannot_take():
    with pytest.raises(DataError, match=r"sbm_graph: device must be a torch\.device such as 'cpu' .*got 'gpu'"):
        sbm_graph(10, 2, device="gpu")
    with pytest.raises(DataError, match=r"sbm_graph: seed must be an integer in \[-2\*\*63, 2\*\*64\) \(what "
                                        r"torch\.Generator takes\), got 1180591620717411303424"):
        sbm_graph(10, 2, seed=2 ** 70)
    assert torch.equal(sbm_graph(10, 2, seed=-1, device="cpu").edge_index, sbm_graph(10, 2, seed=-1).edge_index)
