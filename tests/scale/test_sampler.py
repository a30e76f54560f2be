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


def naive_expansion(edge_index, seeds: list, hops: int):
    """Reference, node by node in Python: hop ``l`` takes every in-edge of the nodes first reached at hop ``l - 1``
    (the seeds for hop 1); the nodes are the seeds, then each hop's new nodes in ascending id. Returns the node
    order, the new nodes per hop and each hop's edges ``(source, target)`` as a sorted list (a multiset)."""
    sources_of = {}
    for s, t in edge_index.t().tolist():
        sources_of.setdefault(t, []).append(s)
    order, seen, frontier = list(seeds), set(seeds), list(seeds)
    counts, hop_edges = [len(seeds)], []
    for _ in range(hops):
        edges = sorted((s, t) for t in frontier for s in sources_of.get(t, []))
        new = sorted({s for s, _ in edges} - seen)
        order += new
        seen |= set(new)
        counts.append(len(new))
        hop_edges.append(edges)
        frontier = new
    return order, counts, hop_edges


def test_three_hops_of_all_neighbours_equal_a_naive_expansion():
    """Node order (seeds, then each hop's new nodes ascending), counts per hop and the edges of every hop, exactly."""
    data = sbm_graph(400, avg_degree=3, seed=4)
    seeds = [7, 3, 250, 41]
    batch = next(iter(neighbor_loader(data, [-1, -1, -1], batch_size=4, input_nodes=torch.tensor(seeds))))
    order, counts, hop_edges = naive_expansion(data.edge_index, seeds, 3)
    assert batch.n_id.tolist() == order and list(batch.num_sampled_nodes) == counts
    assert list(batch.num_sampled_edges) == [len(e) for e in hop_edges]
    pairs = batch.n_id[batch.edge_index].t().tolist()
    bounds = [0, *torch.tensor(batch.num_sampled_edges).cumsum(0).tolist()]
    for hop, expected in enumerate(hop_edges):
        assert sorted(map(tuple, pairs[bounds[hop]:bounds[hop + 1]])) == expected, f"hop {hop + 1}"


def test_every_hop_respects_its_fan_out():
    """[3, 2, 2]: hop l targets exactly the nodes new at hop l - 1, each gets min(in-degree, k_l) distinct in-edges
    of the graph, and hop l's new nodes are the sources not seen before."""
    torch.manual_seed(1)
    data = sbm_graph(600, avg_degree=6, seed=5)
    degree = torch.bincount(data.edge_index[1], minlength=600)
    fanout = [3, 2, 2]
    batch = next(iter(neighbor_loader(data, fanout, batch_size=20, shuffle=True)))
    assert len(batch.num_sampled_nodes) == 4 and len(batch.num_sampled_edges) == 3
    assert torch.equal(data.edge_index[:, batch.e_id], batch.n_id[batch.edge_index])
    assert batch.edge_index.unique(dim=1).size(1) == batch.edge_index.size(1)
    node_bounds = [0, *torch.tensor(batch.num_sampled_nodes).cumsum(0).tolist()]
    edge_bounds = [0, *torch.tensor(batch.num_sampled_edges).cumsum(0).tolist()]
    for hop, k in enumerate(fanout):
        lo, hi = node_bounds[hop], node_bounds[hop + 1]
        src, dst = batch.edge_index[:, edge_bounds[hop]:edge_bounds[hop + 1]]
        assert ((dst >= lo) & (dst < hi)).all()
        assert torch.equal(torch.bincount(dst - lo, minlength=hi - lo), degree[batch.n_id[lo:hi]].clamp(max=k))
        new = src[src >= hi].unique()
        assert torch.equal(new, torch.arange(hi, node_bounds[hop + 2]))  # nothing reached twice, nothing skipped
        assert (batch.n_id[hi:node_bounds[hop + 2]].diff() > 0).all()  # ascending id within a hop


def test_with_replacement_is_uniform_over_the_in_edges():
    torch.manual_seed(0)
    sampler = TorchNeighborSampler(star(6), [3], replace=True)
    edge, target = sample_neighbors(sampler.colptr, sampler.row, torch.zeros(2000, dtype=torch.long), 3, replace=True)
    assert torch.equal(torch.bincount(target), torch.full((2000,), 3))
    counts = torch.bincount(sampler.row[edge], minlength=7)[1:].double()
    assert counts.sum() == 6000
    torch.testing.assert_close(counts / 6000, torch.full((6,), 1 / 6, dtype=torch.double), rtol=0, atol=0.02)


def test_with_replacement_reaches_every_in_edge_of_a_node_with_more_than_2_to_the_24():
    """A float32 draw scaled by the degree rounds to even offsets above 2^24: half the in-edges of such a node could
    never be drawn. Only ``colptr`` matters to the draw (``row`` is read by the caller), so the node is cheap."""
    degree = (1 << 24) + (1 << 23)
    colptr, row = torch.tensor([0, degree]), torch.zeros(1, dtype=torch.long)
    edge, _ = sample_neighbors(colptr, row, torch.zeros(1, dtype=torch.long), 20_000, replace=True,
                               generator=torch.Generator().manual_seed(0))
    assert edge.min() >= 0 and edge.max() < degree
    high = edge[edge >= 1 << 24]
    assert high.numel() > 5_000  # a third of the draws land there
    assert 0.4 < (high % 2).double().mean() < 0.6  # odd offsets as often as even ones


def test_the_loader_samples_with_replacement_when_asked():
    """Node 0 has three in-edges; with replacement a fan-out of 5 draws 5 of them (some twice), without it 3."""
    torch.manual_seed(0)
    data = star(3)
    for replace, drawn in ((True, 5), (False, 3)):
        batch = next(iter(neighbor_loader(data, [5], batch_size=1, input_nodes=torch.tensor([0]), replace=replace)))
        assert list(batch.num_sampled_edges) == [drawn] and (batch.edge_index[1] == 0).all()
        assert torch.equal(data.edge_index[:, batch.e_id], batch.n_id[batch.edge_index])
        assert set(batch.n_id[batch.edge_index[0]].tolist()) <= {1, 2, 3}


def test_minus_one_with_replacement_takes_every_in_edge_once():
    data = star(4)
    out = TorchNeighborSampler(data, [-1], replace=True)._sample(torch.tensor([0, 1]))
    pairs = sorted(zip(out.node[out.row].tolist(), out.node[out.col].tolist()))
    assert pairs == [(1, 0), (2, 0), (3, 0), (4, 0), (5, 1), (6, 1)]


def test_a_large_frontier_keeps_each_node_to_its_own_in_edges():
    """A million nodes expanded at once (a hop of a large batch): the ranking key (node index + a random number)
    must keep the nodes apart, so every node gets exactly k of its own in-edges, none twice (float32 keys do not)."""
    torch.manual_seed(0)
    n, deg, k = 1 << 20, 2, 1
    colptr = torch.arange(0, n * deg + 1, deg)
    edge, target = sample_neighbors(colptr, torch.zeros(n * deg, dtype=torch.long), torch.arange(n), k)
    assert torch.equal(torch.bincount(target, minlength=n), torch.full((n,), k))
    assert ((edge >= colptr[target]) & (edge < colptr[target + 1])).all()
    assert edge.unique().numel() == edge.numel()


def test_bad_fan_outs_are_refused():
    data = star(3)
    for bad in ([-2], [True], [2, 0], [2.0]):
        with pytest.raises(ValueError, match="num_neighbors must be"):
            TorchNeighborSampler(data, bad)


def test_temporal_weighted_and_induced_sampling_are_refused():
    """Silently sampling uniformly and directionally instead would give a wrong batch without a word."""
    from torch_geometric.sampler.base import SubgraphType

    data = star(3)
    sampler = TorchNeighborSampler(data, [2])
    with pytest.raises(NotImplementedError, match="temporal"):
        sampler._sample(torch.tensor([0]), seed_time=torch.tensor([1.0]))
    sampler.edge_weight = torch.ones(data.num_edges)
    with pytest.raises(NotImplementedError, match="weighted"):
        sampler._sample(torch.tensor([0]))
    sampler = TorchNeighborSampler(data, [2])
    sampler.subgraph_type = SubgraphType.induced
    with pytest.raises(NotImplementedError, match="subgraph_type 'induced'"):
        sampler._sample(torch.tensor([0]))


def test_the_loader_shuffles_and_takes_a_seed_sampler_when_asked():
    data = sbm_graph(200, avg_degree=4, seed=6)
    torch.manual_seed(0)
    shuffled = next(iter(neighbor_loader(data, [2], batch_size=200, shuffle=True))).n_id[:200]
    assert sorted(shuffled.tolist()) == list(range(200)) and shuffled.tolist() != list(range(200))
    in_order = next(iter(neighbor_loader(data, [2], batch_size=200))).n_id[:200]
    assert in_order.tolist() == list(range(200))
    # a sampler (e.g. a DistributedSampler share) picks positions in input_nodes, in its order
    seeds = torch.tensor([10, 20, 30, 40, 50])
    loader = neighbor_loader(data, [2], batch_size=2, input_nodes=seeds, sampler=[4, 1, 3])
    assert [b.n_id[:b.batch_size].tolist() for b in loader] == [[50, 20], [40]]


def test_either_extension_makes_the_compiled_sampler_available(monkeypatch):
    import torch_geometric.typing as pyg_typing

    for pyg_lib, torch_sparse in ((False, False), (True, False), (False, True), (True, True)):
        monkeypatch.setattr(pyg_typing, "WITH_PYG_LIB", pyg_lib)
        monkeypatch.setattr(pyg_typing, "WITH_TORCH_SPARSE", torch_sparse)
        assert has_compiled_sampler() == (pyg_lib or torch_sparse)


def test_a_graph_the_sampler_cannot_read_is_named():
    """A node id past num_nodes in edge_index (or x with fewer rows than the ids reach) corrupted the heap in the CSC
    conversion (``malloc(): unaligned tcache chunk detected``, the process aborted); a source id past it or a negative
    one was an IndexError or a negative-size RuntimeError at the first batch; no edge_index sampled no edges."""
    data = sbm_graph(50, num_classes=3, num_features=4, seed=0)
    x, y, ei = data.x, data.y, data.edge_index
    for bad, (s, t) in (((0, 0), (999, 4)), ((1, 0), (0, 999)), ((0, 0), (-1, 4))):
        edges = ei.clone()
        edges[bad] = s if bad[0] == 0 else t
        with pytest.raises(ValueError, match=rf"^(neighbor_loader|TorchNeighborSampler): edge_index has the edge {s} "
                                             rf"-> {t} \(column 0\), which names a node outside \[0, 50\) \(the graph "
                                             rf"has 50 nodes, x has 50 rows; node ids span \[{min(s, t, 0)}, "
                                             rf"{max(s, t, 49)}\]\)$"):
            neighbor_loader(Data(x=x, y=y, edge_index=edges), [5], batch_size=8)
    with pytest.raises(ValueError, match=r"edge_index has the edge \d+ -> \d+ \(column \d+\), which names a node "
                                         r"outside \[0, 20\) \(the graph has 20 nodes, x has 20 rows; node ids span "
                                         r"\[0, 49\]\)$"):
        neighbor_loader(Data(x=x[:20], y=y, edge_index=ei), [5], batch_size=8)
    with pytest.raises(ValueError, match=r": the graph has no edge_index .*; without it there are no neighbours"):
        neighbor_loader(Data(x=x, y=y), [5], batch_size=8)
    with pytest.raises(TypeError, match=r": edge_index must hold integer node ids \(torch\.long\), got "
                                        r"torch\.float32$"):
        neighbor_loader(Data(x=x, y=y, edge_index=ei.float()), [5], batch_size=8)
    with pytest.raises(ValueError, match=r": edge_index must be a tensor \[2, E\], got shape \(\d+, 2\)$"):
        neighbor_loader(Data(x=x, y=y, edge_index=ei.t().contiguous()), [5], batch_size=8)


def test_seeds_and_hops_of_the_wrong_kind_are_named():
    data = sbm_graph(50, num_classes=3, num_features=4, seed=0)
    with pytest.raises(TypeError, match=r"^num_neighbors must be a list with one count per hop, e\.g\. \[10, 10\] "
                                        r"\(-1: all\), got 5$"):
        neighbor_loader(data, 5, batch_size=8)  # 'int' object is not iterable before
    with pytest.raises(ValueError, match=r"^neighbor_loader: input_nodes is a mask of shape \(10,\), but the graph has "
                                         r"50 nodes; a mask needs one entry per node$"):
        neighbor_loader(data, [5], batch_size=8, input_nodes=torch.ones(10, dtype=torch.bool))  # seeds 0..9 before
    with pytest.raises(ValueError, match=r"^neighbor_loader: input_nodes holds node 100 \(1 out of range\); the "
                                         r"graph's nodes are 0\.\.49$"):
        neighbor_loader(data, [5], batch_size=8, input_nodes=torch.tensor([0, 100]))
    with pytest.raises(TypeError, match=r"^neighbor_loader: input_nodes must be node ids \(torch\.long\) or a bool "
                                        r"mask, got torch\.float32$"):
        neighbor_loader(data, [5], batch_size=8, input_nodes=torch.tensor([0.0, 1.0]))  # cast silently before
