import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import NeighborLoader

from modgraph.data import sbm_graph
from modgraph.scale.sampler import TorchNeighborSampler, has_compiled_sampler, neighbor_loader, sample_neighbors


def star(n_in: int) -> Data:
    """Node 0 with in-edges from nodes 1..n_in; node 1 with in-edges from n_in+1, n_in+2."""
    src = list(range(1, n_in + 1)) + [n_in + 1, n_in + 2]
    dst = [0] * n_in + [1, 1]
    return Data(x=torch.arange(n_in + 3, dtype=torch.float).unsqueeze(1), edge_index=torch.tensor([src, dst]),
                y=torch.zeros(n_in + 3, dtype=torch.long))


def edges_of(batch) -> set:
    return set(map(tuple, batch.n_id[batch.edge_index].t().tolist()))


def test_a_batch_is_a_subgraph_with_the_seeds_first():
    torch.manual_seed(0)
    data = sbm_graph(500, avg_degree=8, seed=1)
    loader = neighbor_loader(data, [4, 3], batch_size=32, input_nodes=data.train_mask, shuffle=True)
    assert isinstance(loader, NeighborLoader)
    if not has_compiled_sampler():
        assert isinstance(loader.node_sampler, TorchNeighborSampler)
    batch = next(iter(loader))
    assert batch.batch_size == 32 and batch.n_id.unique().numel() == batch.num_nodes
    assert data.train_mask[batch.n_id[:32]].all()
    assert torch.equal(batch.x, data.x[batch.n_id]) and torch.equal(batch.y, data.y[batch.n_id])
    # every batch edge is a graph edge, found again through e_id
    assert torch.equal(data.edge_index[:, batch.e_id], batch.n_id[batch.edge_index])
    assert batch.edge_index.unique(dim=1).size(1) == batch.edge_index.size(1)  # no edge twice
    assert batch.num_sampled_nodes[0] == 32 and sum(batch.num_sampled_nodes) == batch.num_nodes
    # hop 1 targets the seeds, hop 2 the nodes reached at hop 1; at most k in-edges per node and hop
    k1 = batch.num_sampled_edges[0]
    targets1, targets2 = batch.edge_index[1, :k1], batch.edge_index[1, k1:]
    assert (targets1 < 32).all() and (targets2 >= 32).all()
    assert torch.bincount(targets1).max() <= 4 and torch.bincount(targets2).max() <= 3
    degree = torch.bincount(data.edge_index[1], minlength=500)
    assert torch.equal(torch.bincount(targets1, minlength=32)[:32], degree[batch.n_id[:32]].clamp(max=4))


def test_minus_one_takes_every_in_edge():
    data = sbm_graph(300, avg_degree=6, seed=2)
    batch = next(iter(neighbor_loader(data, [-1, -1], batch_size=10, input_nodes=torch.arange(10))))
    sub = edges_of(batch)
    hop1 = set(batch.n_id[:batch.num_sampled_nodes[0] + batch.num_sampled_nodes[1]].tolist())
    full = set(map(tuple, data.edge_index.t().tolist()))
    assert {e for e in full if e[1] in hop1} <= sub  # all in-edges of the seeds and of the hop-1 nodes


def test_sampling_is_uniform_without_replacement():
    torch.manual_seed(0)
    data = star(6)
    sampler = TorchNeighborSampler(data, [2])
    counts = torch.zeros(7)
    for _ in range(3000):
        edge, target = sample_neighbors(sampler.colptr, sampler.row, torch.tensor([0]), 2)
        sources = sampler.row[edge]
        assert sources.numel() == 2 and sources.unique().numel() == 2 and (target == 0).all()
        counts[sources] += 1
    freq = counts[1:] / 3000  # each in-edge is drawn with probability 2/6
    assert torch.allclose(freq, torch.full((6,), 1 / 3), atol=0.04)


def test_with_replacement_draws_exactly_k():
    torch.manual_seed(0)
    data = star(3)
    sampler = TorchNeighborSampler(data, [5], replace=True)
    edge, target = sample_neighbors(sampler.colptr, sampler.row, torch.tensor([0, 1, 4]), 5, replace=True)
    assert torch.equal(torch.bincount(target, minlength=3), torch.tensor([5, 5, 0]))  # node 4 has no in-edge
    assert set(sampler.row[edge[target == 1]].tolist()) <= {4, 5}


def test_errors_name_the_problem():
    data = star(3)
    with pytest.raises(ValueError, match=r"num_neighbors must be .* positive ints or -1 \(all\), got \[0\]"):
        TorchNeighborSampler(data, [0])
    with pytest.raises(ValueError, match="num_neighbors"):
        TorchNeighborSampler(data, [])
    sampler = TorchNeighborSampler(data, [2])
    sampler.disjoint = True
    with pytest.raises(NotImplementedError, match="disjoint"):
        sampler._sample(torch.tensor([0]))


def test_a_seed_given_twice_gets_its_in_edges_at_both_positions():
    """A padded DistributedSampler share can repeat a seed: each copy is a seed row with all of its in-edges (the
    map from node to position kept one copy, which got both copies' edges while the other got none)."""
    data = star(4)
    sampler = TorchNeighborSampler(data, [-1])
    out = sampler._sample(torch.tensor([0, 1, 0]))
    assert out.node[:3].tolist() == [0, 1, 0]
    targets = out.col.tolist()
    assert [targets.count(p) for p in range(3)] == [4, 2, 4]  # node 0's four in-edges at positions 0 and 2
    for p in (0, 2):
        assert sorted(out.node[out.row[out.col == p]].tolist()) == [1, 2, 3, 4]
