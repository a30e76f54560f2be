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
    """
    check_amount(sparsity, threshold)
    check_scope(scope)
    scores = scores.detach().to("cpu", torch.float64)
    scored = [i for i in range(len(scores)) if not torch.isnan(scores[i])]
    if not scored:
        raise PruneError(f"there are no scored {what} to prune")
    by_bin: dict = {}
    for i in scored:
        by_bin.setdefault(bins[i], []).append(i)
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
