"""Which scored items go: the pruning policy (target sparsity or threshold, global or per layer).

Pure functions on scores. Items come in *bins* (the units of one layer, the connections of one gate); a bin never
loses its last item, so a request that would empty one raises :class:`~modgraph.errors.PruneError` naming it and
the valid range.

* ``sparsity`` in ``[0, 1)``: remove ``round(sparsity * n)`` items with the lowest scores, of all scored items
  (``scope="global"``) or of each bin (``scope="local"``).
* ``threshold`` in ``[0, 1]``: remove the items whose score divided by the largest score (of all items, or of
  their bin) is below ``threshold``.

Ties are broken by position (a stable sort), so the choice is deterministic.
"""

from __future__ import annotations

import torch

from .. import checks
from ..errors import PruneError
from ..functional.normalize import threshold_problem

SCOPES = ("global", "local")


def check_amount(sparsity, threshold) -> None:
    """Exactly one of ``sparsity`` in ``[0, 1)`` and ``threshold`` in ``[0, 1]``, else PruneError."""
    if (sparsity is None) == (threshold is None):
        raise PruneError(f"give exactly one of sparsity (in [0, 1)) and threshold (in [0, 1]); got "
                         f"sparsity={sparsity!r}, threshold={threshold!r}")
    if sparsity is not None:  # else threshold is given
        checks.number("sparsity", sparsity, low=0, high=1, high_open=True, error=PruneError)
    if threshold is not None and (problem := threshold_problem(threshold)) is not None:
        raise PruneError(problem)


def check_scope(scope) -> None:
    if scope not in SCOPES:
        raise PruneError(f"scope must be 'global' or 'local' (per layer or gate), got {scope!r}")


def select_lowest(scores: torch.Tensor, bins: list, sizes: dict, *, sparsity: float | None = None,
                  threshold: float | None = None, scope: str = "global", what: str = "units",
                  bin_kind: str = "layer") -> list[int]:
    """Positions of ``scores`` to remove.

    Args:
        scores: ``[N]``; ``NaN`` marks an item that is not scored (kept, and not counted).
        bins: the bin (layer or gate name) of each item.
        sizes: ``{bin: number of items}``, counting unscored items too; each bin keeps at least one.
        what, bin_kind: words for error messages (``"hidden units"`` of a ``"layer"``).

    Raises:
        TypeError: ``scores`` is not a tensor, ``bins`` not a list of bins (hashable), ``sizes`` not a dict.
        PruneError: the amount or scope out of range; ``scores`` not ``[N]`` or with an infinite score; ``bins`` not
            one per score; a bin without its size in ``sizes``, or a size that is not an integer at least the number
            of its items; a request that would empty a bin.
    """
    check_amount(sparsity, threshold)
    check_scope(scope)
    _check_items(scores, bins, sizes)
    scores = scores.detach().to("cpu", torch.float64)
    scored = [i for i in range(len(scores)) if not torch.isnan(scores[i])]
    if not scored:
        raise PruneError(f"there are no scored {what} to prune")
    by_bin: dict = {}
    try:
        for i in scored:
            by_bin.setdefault(bins[i], []).append(i)
    except TypeError:  # an unhashable bin
        raise TypeError(f"select_lowest: bins[{i}] is {type(bins[i]).__name__} {bins[i]!r}; a bin is a name "
                        f"(hashable)") from None
    for b, items in by_bin.items():
        if b not in sizes:
            raise PruneError(f"select_lowest: sizes has no entry for bin {b!r} (of item {items[0]}); it needs the "
                             f"number of items of every bin")
        checks.integer(f"select_lowest: sizes[{b!r}]", sizes[b], least=len(items),
                       why=f"the bin's number of items; {len(items)} of them are scored", error=PruneError)
    if threshold is not None:
        return _by_threshold(scores, by_bin, sizes, threshold, scope, what, bin_kind)
    if scope == "local":
        removed = []
        for b, items in by_bin.items():
            want = round(sparsity * len(items))
            if want >= sizes[b]:
                raise PruneError(f"sparsity {sparsity} would remove all {sizes[b]} {what} of {bin_kind} {b!r}; "
                                 f"per {bin_kind}, sparsity must stay below {(sizes[b] - 0.5) / len(items):.3f}")
            order = sorted(items, key=lambda i: (scores[i].item(), i))
            removed += order[:want]
        return sorted(removed)
    want = round(sparsity * len(scored))
    left = dict(sizes)
    removed = []
    for i in sorted(scored, key=lambda i: (scores[i].item(), i)):
        if len(removed) == want:
            break
        if left[bins[i]] > 1:
            left[bins[i]] -= 1
            removed.append(i)
    if len(removed) < want:
        most = sum(min(len(items), sizes[b] - 1) for b, items in by_bin.items())
        raise PruneError(f"sparsity {sparsity} asks to remove {want} of {len(scored)} {what}, but at most {most} "
                         f"can go (every {bin_kind} keeps one); valid sparsity: [0, {most / len(scored):.3f}]")
    return sorted(removed)


def _check_items(scores, bins, sizes) -> None:
    """The checks of :func:`select_lowest`'s items before they are read (see its Raises): no pass over them in
    Python (the bins and sizes are checked as they are grouped)."""
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"select_lowest: scores must be a tensor [N], one score per item, got {type(scores).__name__}")
    if scores.dim() != 1:
        raise PruneError(f"select_lowest: scores must be a tensor [N], one score per item, got shape "
                         f"{tuple(scores.shape)}")
    if isinstance(bins, (str, bytes, dict)) or not hasattr(bins, "__len__"):
        raise TypeError(f"select_lowest: bins must be a list, the bin of every score, got {type(bins).__name__}")
    if not isinstance(sizes, dict):
        raise TypeError(f"select_lowest: sizes must be a dict bin -> number of items, got {type(sizes).__name__}")
    if len(bins) != len(scores):
        raise PruneError(f"select_lowest: bins must give the bin of every score, one per item: got {len(bins)} bins "
                         f"for {len(scores)} scores")
    infinite = torch.isinf(scores) if scores.is_floating_point() else None
    if infinite is not None and bool(infinite.any()):
        i = int(infinite.nonzero()[0])
        raise PruneError(f"select_lowest: scores must be finite numbers (NaN: not scored), got {scores[i].item()} at "
                         f"position {i} ({int(infinite.sum())} infinite in all)")


def _by_threshold(scores, by_bin, sizes, threshold, scope, what, bin_kind) -> list[int]:
    def normalised(items, top):
        return [(i, scores[i].item() / top if top > 0 else 1.0) for i in items]

    top_all = max(scores[i].item() for items in by_bin.values() for i in items)
    removed = []
    for b, items in by_bin.items():
        top = max(scores[i].item() for i in items) if scope == "local" else top_all
        gone = [i for i, s in normalised(items, top) if s < threshold]
        if len(gone) >= sizes[b]:
            best = max(s for _, s in normalised(items, top))
            raise PruneError(f"threshold {threshold} would remove all {sizes[b]} {what} of {bin_kind} {b!r} (its "
                             f"highest normalised score is {best:.4g}); use a threshold of at most {best:.4g}")
        removed += gone
    return sorted(removed)
