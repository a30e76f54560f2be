"""Synthetic node-classification graphs: a stochastic block model with class-correlated features.

Sampling is vectorised over edges and never builds anything of size ``N x N``, so a graph with a million
nodes and ten million edges takes a few seconds and about as much memory as its ``edge_index``.
"""

from __future__ import annotations

import math

import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, remove_self_loops

from modgraph import checks
from modgraph.errors import DataError


def sbm_graph(
    num_nodes: int,
    num_classes: int = 5,
    avg_degree: float = 10.0,
    num_features: int = 32,
    p_in_ratio: float = 0.8,
    seed: int = 0,
    device: torch.device | str | None = None,
    feature_noise: float = 1.0,
    split: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> Data:
    r"""A stochastic-block-model graph for node classification.

    Each node gets a class (balanced: class sizes differ by at most one, in random order). Then
    ``M = round(num_nodes * avg_degree / 2)`` undirected edges are drawn: for each edge a source ``s``
    uniformly at random, then with probability ``p_in_ratio`` a target uniformly from the nodes of ``s``'s
    class, else a target uniformly from all nodes. Each edge is stored in both directions; self-loops and
    duplicates are removed, so ``E`` is slightly below ``num_nodes * avg_degree``. The expected edge
    homophily (fraction of edges joining nodes of the same class) is

    .. math::
        h = p_{in} + (1 - p_{in}) / C.

    Features are a class mean plus Gaussian noise, :math:`x_i = \mu_{y_i} + \sigma\,\epsilon_i` with
    :math:`\mu_c \sim \mathcal{N}(0, I/F)` (so two class means are about :math:`\sqrt{2}` apart) and
    :math:`\epsilon_i \sim \mathcal{N}(0, I)`: informative, but not enough on their own.

    Args:
        num_nodes: ``N``, at least ``num_classes``.
        num_classes: ``C`` (default 5).
        avg_degree: mean number of neighbours per node (default 10).
        num_features: ``F`` (default 32).
        p_in_ratio: probability that an edge's target is drawn from the source's own class (default 0.8);
            ``0`` gives an Erdos-Renyi-like graph with homophily ``1/C``.
        seed: the output is a function of the arguments and ``seed`` alone (sampled on the CPU).
        device: where the returned tensors live (default CPU).
        feature_noise: ``sigma`` (default 1.0).
        split: fractions of nodes in the train, validation and test masks (disjoint, random; they may sum
            to less than 1).

    Returns:
        ``Data`` with ``x [N, F]`` in the default dtype (float32 unless changed, like ``torch.randn``),
        ``edge_index [2, E]`` int64 (undirected, sorted, no self-loops or duplicates), ``y [N]`` int64,
        ``train_mask``/``val_mask``/``test_mask [N]`` bool, and ``num_classes`` (``int``).

    Raises:
        DataError: an argument out of range (the message names it, what was expected and what came).

    Example:
        >>> data = sbm_graph(1000, num_classes=4, avg_degree=8, seed=0)
        >>> data.num_nodes, data.x.shape[1], data.num_classes
        (1000, 32, 4)
    """
    num_nodes, num_classes, avg_degree, num_features, p_in_ratio, feature_noise, split = _check(
        num_nodes, num_classes, avg_degree, num_features, p_in_ratio, feature_noise, split)
    seed = checks.integer("sbm_graph: seed", seed, error=DataError)
    if not -(1 << 63) <= seed < 1 << 64:
        raise DataError(f"sbm_graph: seed must be an integer in [-2**63, 2**64) (what torch.Generator takes), got "
                        f"{seed}")
    try:
        device = None if device is None else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DataError(f"sbm_graph: device must be a torch.device such as 'cpu' or 'cuda:0' (or None), got "
                        f"{device!r}") from None
    g = torch.Generator().manual_seed(seed)
    N, C = num_nodes, num_classes

    # Balanced classes in random order; members of each class listed contiguously in `by_class`.
    y = torch.arange(N)[torch.randperm(N, generator=g)] % C  # (N,)
    by_class = torch.argsort(y, stable=True)  # (N,) node ids grouped by class
    class_size = torch.bincount(y, minlength=C)  # (C,)
    class_start = torch.cumsum(class_size, 0) - class_size  # (C,)

    # Edges: uniform source; target from the source's class with prob. p_in_ratio, else uniform.
    M = round(N * avg_degree / 2)
    src = torch.randint(N, (M,), generator=g)  # (M,)
    src_class = y[src]
    offset = (torch.rand(M, generator=g) * class_size[src_class]).long()  # (M,) in [0, class size)
    offset = torch.minimum(offset, class_size[src_class] - 1)  # guard against float rounding up
    same = by_class[class_start[src_class] + offset]  # (M,)
    del src_class, offset
    anywhere = torch.randint(N, (M,), generator=g)  # (M,)
    dst = torch.where(torch.rand(M, generator=g) < p_in_ratio, same, anywhere)
    del same, anywhere
    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # (2, 2M)
    del src, dst
    edge_index, _ = remove_self_loops(edge_index)
    edge_index = coalesce(edge_index, num_nodes=N)

    means = torch.randn(C, num_features, generator=g) / math.sqrt(num_features)  # (C, F)
    x = means[y] + feature_noise * torch.randn(N, num_features, generator=g)  # (N, F)

    perm = torch.randperm(N, generator=g)
    n_train, n_val = int(split[0] * N), int(split[1] * N)
    n_test = min(int(split[2] * N), N - n_train - n_val)
    masks = []
    for lo, hi in ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, n_train + n_val + n_test)):
        mask = torch.zeros(N, dtype=torch.bool)
        mask[perm[lo:hi]] = True
        masks.append(mask)

    data = Data(x=x, edge_index=edge_index, y=y, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2])
    data.num_classes = C
    return data.to(device) if device is not None else data


def edge_homophily(edge_index: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of edges whose two end nodes have the same label (``nan`` for a graph without edges).

    ``edge_index``: ``[2, E]`` node ids in ``[0, N)``; ``y``: ``[N]`` labels, one per node.
    """
    if not isinstance(y, torch.Tensor) or y.dim() != 1:
        got = f"shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise (ValueError if isinstance(y, torch.Tensor) else TypeError)(
            f"edge_homophily: y must be a tensor [N] of labels, one per node, got {got}")
    checks.edge_index("edge_homophily: edge_index", edge_index, y.shape[0], nodes=f"y has {y.shape[0]} labels")
    if edge_index.numel() == 0:
        return float("nan")
    return float((y[edge_index[0]] == y[edge_index[1]]).float().mean())


def _check(
    num_nodes: int,
    num_classes: int,
    avg_degree: float,
    num_features: int,
    p_in_ratio: float,
    feature_noise: float,
    split: tuple[float, float, float],
) -> tuple:
    """The arguments as plain Python numbers (numpy scalars accepted), or a :class:`DataError` naming the bad one."""
    num_classes = checks.positive_int("sbm_graph: num_classes", num_classes, error=DataError)
    num_nodes = checks.integer("sbm_graph: num_nodes", num_nodes, least=num_classes, why="num_classes",
                               error=DataError)
    num_features = checks.positive_int("sbm_graph: num_features", num_features, error=DataError)
    avg_degree = checks.number("sbm_graph: avg_degree", avg_degree, low=0, error=DataError)
    p_in_ratio = checks.number("sbm_graph: p_in_ratio", p_in_ratio, low=0, high=1, why="a probability",
                               error=DataError)
    feature_noise = checks.number("sbm_graph: feature_noise", feature_noise, low=0, error=DataError)
    fractions = isinstance(split, (tuple, list)) and len(split) == 3 and all(
        checks.is_real(f) and 0.0 <= f <= 1.0 for f in split)
    if not fractions or sum(split) > 1.0 + 1e-9:
        raise DataError(f"sbm_graph: split must be 3 fractions (train, val, test) in [0, 1] summing to at most 1, "
                        f"got {split!r}")
    return num_nodes, num_classes, float(avg_degree), num_features, p_in_ratio, feature_noise, tuple(map(float, split))
