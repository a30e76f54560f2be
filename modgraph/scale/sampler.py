r"""Neighbour sampling for :class:`torch_geometric.loader.NeighborLoader` without compiled extensions.

PyG's ``NeighborSampler`` samples with ``pyg-lib`` or ``torch-sparse``; without either it raises ``ImportError``.
:class:`TorchNeighborSampler` is a drop-in subclass whose ``_sample`` is written in plain, vectorised torch, so a
``NeighborLoader`` works on any install, on CPU or CUDA tensors alike. :func:`neighbor_loader` builds a
``NeighborLoader`` with PyG's own sampler when an extension is installed and with this one otherwise.

The sampling is GraphSAGE's (Hamilton et al., 2017), the same as PyG's ``subgraph_type="directional"``: starting
from the seed nodes, hop ``l`` draws up to ``num_neighbors[l]`` in-neighbours of every node reached at hop
``l - 1`` (``-1``: all of them), uniformly **without** replacement (``replace=True``: with replacement). The batch
holds exactly the sampled edges ``j -> i``; nodes are numbered seeds first, then the new nodes of hop 1, hop 2, ...
(ascending node id within a hop), so ``batch.n_id[:batch.batch_size]`` are the seeds.

Cost per batch: ``O(T log T)`` with ``T`` the number of in-edges of the nodes expanded at each hop (the
candidates are ranked by a random key per segment with one sort), plus an ``[N]`` int64 map from node ids to batch
positions, allocated once per sampler. Nothing of size ``N x N`` is ever built.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch_geometric.typing as pyg_typing
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.loader import NeighborLoader
from torch_geometric.sampler import NeighborSampler, SamplerOutput
from torch_geometric.sampler.base import SubgraphType

from .. import checks

__all__ = ["TorchNeighborSampler", "has_compiled_sampler", "neighbor_loader", "sample_neighbors"]


def has_compiled_sampler() -> bool:
    """Whether PyG can sample with ``pyg-lib`` or ``torch-sparse`` (then :func:`neighbor_loader` uses PyG's)."""
    return bool(pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE)


def sample_neighbors(colptr: Tensor, row: Tensor, nodes: Tensor, k: int, replace: bool = False,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Up to ``k`` in-edges of each of ``nodes`` in a CSC graph, uniformly (``k < 0``: all in-edges).

    Args:
        colptr: ``[N + 1]`` CSC pointers; the in-edges of node ``i`` are positions ``colptr[i]:colptr[i + 1]``.
        row: ``[E]`` source node of every position.
        nodes: ``[F]`` the nodes whose in-edges are drawn.
        k: edges per node; nodes with at most ``k`` in-edges keep all of them (without replacement).
        replace: draw with replacement (exactly ``k`` per node with at least one in-edge).
        generator: random source (default: torch's global generator).

    Returns:
        ``(edge, target)``: CSC positions ``[S]`` of the drawn edges and, for each, the index into ``nodes`` of
        its target. The source nodes are ``row[edge]``.
    """
    k = checks.integer("sample_neighbors: k", k, why="edges per node; -1: all")
    for name, t in (("colptr", colptr), ("row", row), ("nodes", nodes)):
        if not isinstance(t, Tensor):
            raise TypeError(f"sample_neighbors: {name} must be a tensor of node ids or positions, got "
                            f"{type(t).__name__}")
    device = colptr.device
    start = colptr[nodes]  # (F,)
    deg = colptr[nodes + 1] - start  # (F,)
    if replace and k >= 0:
        target = torch.repeat_interleave(torch.arange(nodes.numel(), device=device), (deg > 0).long() * k)  # (F*k,)
        # float64: a float32 draw times a degree above 2^24 rounds to even offsets, half the in-edges never drawn
        draw = torch.rand(target.numel(), device=device, dtype=torch.float64, generator=generator)
        offset = (draw * deg[target]).long().clamp_max_(deg[target] - 1)
        return start[target] + offset, target
    total = int(deg.sum())
    target = torch.repeat_interleave(torch.arange(nodes.numel(), device=device), deg, output_size=total)  # (T,)
    first = torch.cumsum(deg, 0) - deg  # (F,) position of each node's first candidate
    offset = torch.arange(total, device=device) - first[target]  # (T,) rank of the in-edge within its node
    if k < 0 or total == 0:
        return start[target] + offset, target
    # a random order within every node: sort by (node, random key), keep each node's first k
    key = target.to(torch.float64) + torch.rand(total, device=device, dtype=torch.float64, generator=generator)
    order = torch.argsort(key)
    target, offset = target[order], offset[order]
    keep = (torch.arange(total, device=device) - first[target]) < k
    return start[target[keep]] + offset[keep], target[keep]


def check_graph(data, who: str) -> None:
    """ValueError/TypeError unless ``data`` is a ``Data`` graph a sampler can read: an integer ``edge_index [2, E]``
    whose node ids lie in ``[0, num_nodes)`` (an id beyond corrupts memory in the CSC conversion), and node
    features ``x`` with one row per node when present. One pass over the edges (:func:`modgraph.checks.edge_index`)."""
    edge_index = getattr(data, "edge_index", None)
    if edge_index is None:
        raise ValueError(f"{who}: the graph has no edge_index (Data(x=..., edge_index=..., y=...)); without it "
                         f"there are no neighbours to sample")
    name = f"{who}: edge_index"
    checks.edge_index(name, edge_index, ids=False)  # a tensor [2, E] of integers before data.num_nodes reads it
    n = data.num_nodes
    x = getattr(data, "x", None)
    if isinstance(x, Tensor) and x.dim() >= 1 and x.shape[0] != n:
        raise ValueError(f"{who}: x has {x.shape[0]} rows, but the graph has {n} nodes (num_nodes); one row per node")
    rows = f", x has {x.shape[0]} rows" if isinstance(x, Tensor) and x.dim() >= 1 else ""
    checks.edge_index(name, edge_index, n, nodes=f"the graph has {n} nodes{rows}")


def _check_input_nodes(input_nodes, num_nodes: int) -> None:
    """ValueError/TypeError for seed nodes that are not node ids in ``[0, num_nodes)`` or a mask of ``num_nodes``."""
    if not isinstance(input_nodes, Tensor):
        return  # None (all), or a form PyG checks (a node type of a heterogeneous graph)
    if input_nodes.dtype == torch.bool:
        if input_nodes.shape != (num_nodes,):
            raise ValueError(f"neighbor_loader: input_nodes is a mask of shape {tuple(input_nodes.shape)}, but the "
                             f"graph has {num_nodes} nodes; a mask needs one entry per node")
        return
    if input_nodes.is_floating_point() or input_nodes.is_complex():
        raise TypeError(f"neighbor_loader: input_nodes must be node ids (torch.long) or a bool mask, got "
                        f"{input_nodes.dtype}")
    if input_nodes.numel() and (int(input_nodes.min()) < 0 or int(input_nodes.max()) >= num_nodes):
        bad = input_nodes[(input_nodes < 0) | (input_nodes >= num_nodes)]
        raise ValueError(f"neighbor_loader: input_nodes holds node {bad[0].item()} ({bad.numel()} out of range); "
                         f"the graph's nodes are 0..{num_nodes - 1}")


def _check_num_neighbors(num_neighbors) -> list[int]:
    if isinstance(num_neighbors, (str, bytes)) or not hasattr(num_neighbors, "__len__"):
        raise TypeError(f"num_neighbors must be a list with one count per hop, e.g. [10, 10] (-1: all), got "
                        f"{num_neighbors!r}")
    bad = [k for k in num_neighbors if not checks.is_integer(k) or k == 0 or k < -1]
    if not len(num_neighbors) or bad:
        raise ValueError(f"num_neighbors must be a non-empty list of positive ints or -1 (all), got "
                         f"{list(num_neighbors)!r}")
    return [int(k) for k in num_neighbors]


class TorchNeighborSampler(NeighborSampler):
    """PyG's ``NeighborSampler`` with the sampling step in plain torch (homogeneous graphs, directional subgraphs).

    Pass it to ``NeighborLoader(..., neighbor_sampler=sampler)`` or use :func:`neighbor_loader`. The graph is held
    in CSC form (PyG's ``to_csc``, computed once); every batch draws from torch's global random generator, so
    ``torch.manual_seed`` makes the batches reproducible.

    Args:
        data: a homogeneous ``torch_geometric.data.Data``.
        num_neighbors: neighbours drawn per node at each hop, e.g. ``[10, 10]`` (``-1``: all).
        replace: draw with replacement.

    Raises:
        NotImplementedError: heterogeneous, temporal, weighted or disjoint sampling, or another subgraph type
            (install ``pyg-lib`` for those).
        ValueError: no ``edge_index``, or one that is not ``[2, E]``, a node id outside ``[0, num_nodes)``, ``x``
            with another number of rows than the graph has nodes (TypeError: ``edge_index`` not a tensor of
            integers).
    """

    def __init__(self, data: Data, num_neighbors: Sequence[int], replace: bool = False):
        if not isinstance(data, Data):
            raise NotImplementedError(f"TorchNeighborSampler samples homogeneous Data graphs, got "
                                      f"{type(data).__name__}; install pyg-lib for heterogeneous graphs")
        num_neighbors = _check_num_neighbors(num_neighbors)
        replace = checks.flag("TorchNeighborSampler: replace", replace, error=TypeError)
        check_graph(data, "TorchNeighborSampler")
        with warnings.catch_warnings():  # "NeighborSampler without pyg-lib is deprecated": this class is the fix
            warnings.filterwarnings("ignore", message=".*without a 'pyg-lib' installation.*")
            super().__init__(data, num_neighbors, replace=replace)
        self._position: Tensor | None = None  # (N,) node id -> position in the batch being built, -1 elsewhere

    def _sample(self, seed, seed_time=None, **kwargs) -> SamplerOutput:
        if isinstance(seed, dict) or seed_time is not None or self.disjoint or self.edge_weight is not None:
            raise NotImplementedError("TorchNeighborSampler: heterogeneous, temporal, weighted and disjoint sampling "
                                      "need pyg-lib")
        if self.subgraph_type != SubgraphType.directional:
            raise NotImplementedError(f"TorchNeighborSampler: subgraph_type {self.subgraph_type.value!r} needs "
                                      f"pyg-lib; only 'directional' is implemented")
        colptr, row = self.colptr, self.row
        seed = seed.to(device=colptr.device, dtype=torch.long)
        if self._position is None or self._position.device != colptr.device:
            self._position = torch.full((self.num_nodes,), -1, dtype=torch.long, device=colptr.device)
        position = self._position
        nodes, rows, cols, edges = [seed], [], [], []
        position[seed] = torch.arange(seed.numel(), device=seed.device)
        count, frontier, start = seed.numel(), seed, 0  # the frontier holds positions start, start + 1, ...
        try:
            for k in self.num_neighbors.get_mapped_values():
                edge, target = sample_neighbors(colptr, row, frontier, k, self.replace)
                source = row[edge]  # (S,) global ids
                new = torch.unique(source[position[source] < 0])  # (n,) first reached at this hop, ascending
                position[new] = torch.arange(count, count + new.numel(), device=new.device)
                rows.append(position[source])
                # by index, not through the map: a seed given twice (a padded DistributedSampler share) has one
                # entry in the map but two positions, and each gets its own in-edges
                cols.append(target + start)
                edges.append(edge)
                nodes.append(new)
                count, frontier, start = count + new.numel(), new, count
            node = torch.cat(nodes)
        finally:
            for n in nodes:  # leave the map clean for the next batch
                position[n] = -1
        return SamplerOutput(node=node, row=torch.cat(rows), col=torch.cat(cols), edge=torch.cat(edges),
                             batch=None, num_sampled_nodes=[n.numel() for n in nodes],
                             num_sampled_edges=[e.numel() for e in edges])


def neighbor_loader(data: Data, num_neighbors: Sequence[int], batch_size: int, input_nodes=None,
                    shuffle: bool = False, replace: bool = False, neighbor_sampler: NeighborSampler | None = None,
                    **kwargs) -> NeighborLoader:
    """A ``torch_geometric.loader.NeighborLoader``, sampling with PyG's extensions when installed, else in torch.

    Args:
        data: the whole graph (``Data`` with ``x``, ``edge_index``, ``y``, masks ...).
        num_neighbors: neighbours per hop, e.g. ``[10, 10]`` for a two-layer network (``-1``: all).
        batch_size: seed nodes per batch; a batch's first ``batch.batch_size`` nodes are its seeds.
        input_nodes: the seed nodes (indices or a boolean mask; default all nodes).
        shuffle: a new order of the seeds every epoch.
        replace: sample with replacement.
        neighbor_sampler: reuse a neighbour sampler already built for ``data`` (its CSC form is computed once,
            which takes seconds for ten million edges); ``num_neighbors`` and ``replace`` are then the sampler's.
        **kwargs: further ``NeighborLoader`` / ``DataLoader`` arguments (``num_workers``, ``drop_last``, ``sampler``
            (which seeds, e.g. a ``DistributedSampler``; then ``shuffle=False``) ...).
    """
    num_neighbors = _check_num_neighbors(num_neighbors)
    replace = checks.flag("neighbor_loader: replace", replace, error=TypeError)
    shuffle = checks.flag("neighbor_loader: shuffle", shuffle, error=TypeError)
    if neighbor_sampler is None and not has_compiled_sampler():
        neighbor_sampler = TorchNeighborSampler(data, num_neighbors, replace=replace)  # checks the graph
    elif isinstance(data, Data):
        check_graph(data, "neighbor_loader")
    if isinstance(data, Data):
        _check_input_nodes(input_nodes, data.num_nodes)
    return NeighborLoader(data, list(num_neighbors), input_nodes=input_nodes, batch_size=batch_size,
                          shuffle=shuffle, replace=replace, neighbor_sampler=neighbor_sampler, **kwargs)
