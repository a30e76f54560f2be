"""Graph sparsification: drop the columns of an ``edge_index`` with the lowest scores.

A pure function on ``edge_index [2, E]`` and one score per column. Self-loops are handled explicitly, because graph
convolutions usually add their own (GCN's ``A + I``), and a self-loop is not a connection between two nodes:

* ``"keep"`` (default): self-loops are never removed and do not count towards the sparsity;
* ``"drop"``: every self-loop is removed, and they do not count either;
* ``"prune"``: self-loops are ranked like every other edge.

With ``symmetric=True`` an undirected graph stays undirected: the two directions of an edge get the mean of their
scores and go together (an edge without its reverse is ranked alone).
"""

from __future__ import annotations

import torch

from .. import checks
from ..errors import PruneError
from .select import check_amount

SELF_LOOPS = ("keep", "drop", "prune")


def sparsify_edges(edge_index: torch.Tensor, scores: torch.Tensor, *, sparsity: float | None = None,
                   threshold: float | None = None, self_loops: str = "keep",
                   symmetric: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the highest-scoring edges of ``edge_index``.

    Args:
        edge_index: ``[2, E]`` long tensor.
        scores: ``[E]``, higher = keep.
        sparsity: fraction in ``[0, 1)`` of the counted edges to remove (rounded to the nearest edge; with
            ``symmetric`` to the nearest pair), or
        threshold: in ``[0, 1]``: remove the counted edges whose score, divided by the largest counted score, is
            below it.
        self_loops: ``"keep"``, ``"drop"`` or ``"prune"`` (see the module docstring).
        symmetric: remove both directions of an edge together, ranked by their mean score.

    Returns:
        ``(edge_index[:, keep], keep)`` with ``keep`` a ``[E]`` bool mask.

    Raises:
        PruneError: neither or both of sparsity/threshold, a value out of range, a self-loop policy not in
            ``keep, drop, prune``, scores of the wrong shape, NaN or infinite (of a ranked edge), an ``edge_index``
            not ``[2, E]`` or with a negative node id (TypeError: not a tensor of integers).

    Example:
        >>> ei = torch.tensor([[0, 1, 1, 2, 0], [1, 0, 2, 1, 0]])
        >>> sparsify_edges(ei, torch.tensor([0.9, 0.7, 0.1, 0.3, 0.5]), sparsity=0.5, symmetric=True)[0]
        tensor([[0, 1, 0],
                [1, 0, 0]])
    """
    check_amount(sparsity, threshold)
    if self_loops not in SELF_LOOPS:
        raise PruneError(f"self_loops must be one of {', '.join(SELF_LOOPS)}, got {self_loops!r}")
    checks.flag("symmetric", symmetric, error=TypeError)
    checks.edge_index("edge_index", edge_index, error=PruneError)
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a tensor [E], one per column of edge_index, got {type(scores).__name__}")
    if scores.shape != (edge_index.shape[1],):
        raise PruneError(f"expected one score per edge, [{edge_index.shape[1]}], got {tuple(scores.shape)}")
    E = edge_index.shape[1]
    scores = scores.detach().to("cpu", torch.float64)
    ei = edge_index.detach().cpu()
    loop = ei[0] == ei[1]
    counted = ~loop if self_loops != "prune" else torch.ones(E, dtype=torch.bool)
    nan = torch.isnan(scores) & counted
    if bool(nan.any()):  # argsort would rank a NaN above every number: kept, silently
        e = int(nan.nonzero()[0])
        raise PruneError(f"scores: NaN for edge {ei[0, e].item()} -> {ei[1, e].item()} (column {e}, "
                         f"{int(nan.sum())} NaN in all); every edge that is ranked needs a score")
    infinite = torch.isinf(scores) & counted
    if bool(infinite.any()):  # an infinite largest score makes every other normalised score 0 (or NaN)
        e = int(infinite.nonzero()[0])
        raise PruneError(f"scores: {scores[e].item()} for edge {ei[0, e].item()} -> {ei[1, e].item()} (column {e}, "
                         f"{int(infinite.sum())} infinite in all); scores must be finite numbers")
    keep = torch.ones(E, dtype=torch.bool)
    if self_loops == "drop":
        keep &= ~loop
    # units: an edge, or with `symmetric` the pair {(i, j), (j, i)} (the lower endpoint first)
    if symmetric:
        lo, hi = torch.minimum(ei[0], ei[1]), torch.maximum(ei[0], ei[1])
        n = int(ei.max()) + 1 if E else 1
        _, unit = torch.unique(lo * n + hi, return_inverse=True)
    else:
        unit = torch.arange(E)
    units = int(unit.max()) + 1 if E else 0
    unit_counted = torch.zeros(units, dtype=torch.bool).index_fill_(0, unit[counted], True)
    unit_score = torch.zeros(units, dtype=torch.float64).index_add_(0, unit, scores)
    unit_size = torch.zeros(units, dtype=torch.float64).index_add_(0, unit, torch.ones(E, dtype=torch.float64))
    unit_score = unit_score / unit_size.clamp(min=1)
    candidates = unit_counted.nonzero().squeeze(1)
    if threshold is not None:
        top = unit_score[candidates].max() if len(candidates) else torch.tensor(1.0)
        norm = unit_score[candidates] / top if top > 0 else torch.ones(len(candidates), dtype=torch.float64)
        drop_units = candidates[norm < threshold]
    else:
        total = int(unit_size[candidates].sum())
        want = round(sparsity * total)
        order = candidates[torch.argsort(unit_score[candidates], stable=True)]
        sizes = torch.cumsum(unit_size[order], 0)
        k = int(torch.searchsorted(sizes, torch.tensor(float(want), dtype=torch.float64), right=True))
        # the nearest achievable count (pairs remove two edges at a time)
        if k < len(order) and want - (sizes[k - 1] if k else 0) > sizes[k] - want:
            k += 1
        drop_units = order[:k]
    drop = torch.zeros(units, dtype=torch.bool)
    drop[drop_units] = True
    keep &= ~(drop[unit] & counted)
    keep = keep.to(edge_index.device)
    return edge_index[:, keep], keep
