r"""Normalisers for attention scores: sigmoid, softmax and sparsemax, densely or per segment.

Every "parallel inputs" mechanism in modgraph scores its incoming edges and normalises the scores per
target. Here the scores are normalised either densely along one dimension, or segment-wise: ``index``
(aligned with dim 0 of ``scores``, PyG style) names the group (target) of every score, and each group is
normalised on its own.

* ``sigmoid``: :math:`p_i = \sigma(z_i / T)`, elementwise; groups play no role.
* ``softmax``: :math:`p_i = \exp(z_i / T) / \sum_{j \in g(i)} \exp(z_j / T)`.
* ``sparsemax`` (Martins & Astudillo, 2016): the Euclidean projection of :math:`z / T` onto the simplex of
  each group, :math:`p = \operatorname{argmin}_{p \ge 0,\ \sum_g p = 1} \lVert p - z / T \rVert^2`,
  whose solution is :math:`p_i = [z_i / T - \tau_{g(i)}]_+`; it returns exact zeros.

The segment softmax is PyG's :func:`torch_geometric.utils.softmax`; the segment sparsemax is ours (PyG has
none), sort-based and vectorised over segments and heads, with the closed-form backward pass.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch_geometric.utils import scatter
from torch_geometric.utils import softmax as pyg_softmax

from .. import checks

__all__ = [
    "NORMALIZERS",
    "normalize",
    "segment_softmax",
    "segment_sparsemax",
    "sparsemax",
    "threshold",
]

NORMALIZERS = ("sigmoid", "softmax", "sparsemax")


# ----------------------------------------------------------------------------------------------------
# validation helpers


def threshold_problem(value) -> str | None:
    """Why ``value`` is not a threshold (a number in [0, 1]), or ``None`` when it is one: the one rule every gate,
    op, recorder and pruner applies (each names where the value came from)."""
    try:
        checks.number("threshold", value, low=0, high=1)
    except ValueError as err:
        return str(err)
    return None


def temperature_problem(value) -> str | None:
    """Why ``value`` is not a temperature (a finite number > 0), or ``None`` when it is one."""
    try:
        checks.number("temperature", value, low=0, low_open=True)
    except ValueError as err:
        return str(err)
    return None


def _check_scores(scores: Tensor, where: str) -> None:
    if not isinstance(scores, Tensor):
        raise TypeError(f"{where}: expected scores to be a torch.Tensor, got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise TypeError(f"{where}: expected floating-point scores, got dtype {scores.dtype}")


def _check_dim(scores: Tensor, dim: int, where: str) -> int:
    ndim = max(scores.dim(), 1)  # a 0-d tensor accepts dim 0 and -1, as in torch.softmax
    if not checks.is_integer(dim):
        raise ValueError(f"{where}: dim must be an integer (a dimension of the scores), got {dim!r}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{where}: dim={dim} is out of range for scores of shape {tuple(scores.shape)}")
    return int(dim) % ndim


def _check_segments(scores: Tensor, index: Tensor, num_segments: int | None, where: str) -> int:
    """Validate ``index`` against ``scores`` and return the number of segments."""
    _check_scores(scores, where)
    if not isinstance(index, Tensor):
        raise TypeError(f"{where}: expected index to be a torch.Tensor, got {type(index).__name__}")
    if index.dtype != torch.long:
        raise TypeError(f"{where}: expected index of dtype torch.long (int64), got {index.dtype}")
    if index.dim() != 1:
        raise ValueError(f"{where}: expected a 1-D index [E], got shape {tuple(index.shape)}")
    if scores.dim() == 0 or scores.size(0) != index.numel():
        raise ValueError(
            f"{where}: index has {index.numel()} entries but scores has shape {tuple(scores.shape)}; "
            f"expected scores of shape [E] or [E, H] with E = {index.numel()}"
        )
    if index.numel() == 0:
        low, high = 0, -1
    else:
        low, high = torch.stack(torch.aminmax(index)).tolist()  # one read from the device, not two
    if low < 0:
        raise ValueError(f"{where}: index must be non-negative, got minimum {low}")
    if num_segments is None:
        return high + 1
    num_segments = checks.integer(f"{where}: num_segments", num_segments, least=0)
    if high >= num_segments:
        raise ValueError(f"{where}: index holds segment {high} but num_segments={num_segments}")
    return num_segments


# ----------------------------------------------------------------------------------------------------
# dense sparsemax


def _sparsemax_last_dim(z: Tensor) -> Tensor:
    """Sparsemax along the last dimension of ``z`` (no autograd; ``z.size(-1) > 0``). Half precision is computed
    in float32 (the ranks and cumulative sums would round) and returned in its own dtype."""
    if z.dtype in (torch.float16, torch.bfloat16):
        return _sparsemax_last_dim(z.float()).to(z.dtype)
    n = z.size(-1)
    z = z - z.amax(dim=-1, keepdim=True)  # (..., n); the largest entry is 0
    z_sorted = z.sort(dim=-1, descending=True).values  # (..., n)
    cumsum = z_sorted.cumsum(dim=-1)  # (..., n)
    rank = torch.arange(1, n + 1, device=z.device, dtype=z.dtype)  # (n,)
    support = 1 + rank * z_sorted > cumsum  # (..., n); true for the first k entries
    # (..., 1): k >= 1 for a finite row (its largest entry is 0); 0 for a row holding a NaN or an infinity, which
    # comes out all NaN, as under softmax (the index k - 1 = -1 used to fail deep inside torch)
    k = support.sum(dim=-1, keepdim=True)
    tau = (cumsum.gather(-1, (k - 1).clamp(min=0)) - 1) / k.clamp(min=1).to(z.dtype)  # (..., 1)
    return (z - tau).clamp(min=0).masked_fill(k == 0, float("nan"))


class _Sparsemax(torch.autograd.Function):
    """Sparsemax along ``dim`` (non-negative); under ``torch.vmap``, one call on the stacked tensor (``dim + 1``)."""

    @staticmethod
    def forward(z: Tensor, dim: int) -> Tensor:
        if z.numel() == 0:
            return z.clone()
        return _sparsemax_last_dim(z.movedim(dim, -1)).movedim(-1, dim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.dim = inputs[1]
        ctx.save_for_backward(output)

    @staticmethod
    def vmap(info, in_dims, z, dim):
        return _Sparsemax.apply(z.movedim(in_dims[0], 0), dim + 1), 0

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (out,) = ctx.saved_tensors
        support = out > 0
        g = torch.where(support, grad, 0.0)
        k = support.sum(dim=ctx.dim, keepdim=True).clamp(min=1)
        v_hat = g.sum(dim=ctx.dim, keepdim=True) / k.to(g.dtype)
        return torch.where(support, g - v_hat, 0.0), None


def sparsemax(scores: Tensor, dim: int = -1) -> Tensor:
    r"""Sparsemax along ``dim`` (Martins & Astudillo, "From Softmax to Sparsemax", ICML 2016).

    Solves, independently for every slice along ``dim``, the Euclidean projection onto the simplex

    .. math::
        p = \operatorname{argmin}_{p} \lVert p - z \rVert_2^2 \quad \text{s.t.} \quad
        p \ge 0,\ \sum_i p_i = 1,

    whose solution is :math:`p_i = [z_i - \tau]_+`. With :math:`z_{(1)} \ge z_{(2)} \ge \dots` sorted,
    the support size is :math:`k = \max\{j : 1 + j z_{(j)} > \sum_{i \le j} z_{(i)}\}` and
    :math:`\tau = (\sum_{i \le k} z_{(i)} - 1) / k`. The Jacobian is
    :math:`\partial p / \partial z = \operatorname{diag}(s) - s s^\top / k` with :math:`s` the support
    indicator, so the backward pass is :math:`\bar z = s \odot (\bar p - \operatorname{mean}_{S}(\bar p))`.

    Args:
        scores (Tensor): floating-point scores :math:`z`.
        dim (int, optional): dimension to normalise along. (default: ``-1``)

    Shapes:
        - **input:** scores ``(*)``, any shape
        - **output:** ``(*)``, same shape, non-negative, sums to 1 along ``dim``, with exact zeros

    Example:
        >>> sparsemax(torch.tensor([2.0, 1.0, -1.0]))
        tensor([1., 0., 0.])
        >>> sparsemax(torch.tensor([0.5, 0.3, -1.0]))
        tensor([0.6000, 0.4000, 0.0000])
    """
    _check_scores(scores, "sparsemax")
    dim = _check_dim(scores, dim, "sparsemax")
    if scores.dim() == 0:
        return _Sparsemax.apply(scores.reshape(1), 0).reshape(())
    return _Sparsemax.apply(scores, dim)


# ----------------------------------------------------------------------------------------------------
# segment sparsemax


def _segment_sparsemax_2d(z: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Sparsemax over the segments of ``index`` for every column of ``z`` [E, F] (no autograd; E, F > 0)."""
    num_edges = z.size(0)
    # The cumulative sums below run over all segments at once, so they accumulate in float64 and on
    # values clamped to [-1, 0]: after subtracting the segment max, an entry below -1 can never be in the
    # support (tau >= max - 1 because p_max <= 1), and clamping it to -1 keeps it out (1 + j*(-1) > sum
    # fails, since the other j-1 entries are >= -1 and the first is 0). k and tau are therefore unchanged.
    work = torch.float64 if z.dtype in (torch.float16, torch.bfloat16, torch.float32) else z.dtype

    z_max = scatter(z, index, dim=0, dim_size=num_segments, reduce="max")  # (N, F)
    z = (z - z_max[index]).to(work)  # (E, F); the segment max is 0
    # NaN (from a NaN or +inf score, or a segment of -inf only) would spread through the global cumulative sums
    # into every later segment: it enters them as -1 (never in the support), and its own segment's tau is NaN below
    not_a_number = z.isnan()  # (E, F)
    z_clamped = z.clamp(min=-1).masked_fill_(not_a_number, -1.0)  # (E, F)

    # Sort by (segment ascending, score descending): a stable sort on the score, then a stable sort on
    # the segment of each entry in that order. Every column gets its own permutation (heads are independent).
    z_sorted, perm = z_clamped.sort(dim=0, descending=True, stable=True)  # (E, F)
    seg_of_sorted, perm_seg = index[perm].sort(dim=0, stable=True)  # (E, F)
    z_sorted = z_sorted.gather(0, perm_seg)  # (E, F)
    seg = seg_of_sorted[:, 0]  # (E,); the sorted index, the same in every column

    count = torch.bincount(index, minlength=num_segments)  # (N,)
    start = count.cumsum(0) - count  # (N,); first sorted position of each segment
    rank = torch.arange(1, num_edges + 1, device=z.device) - start[seg]  # (E,); 1-based rank in segment

    cumsum = z_sorted.cumsum(dim=0)  # (E, F)
    exclusive = torch.cat([cumsum.new_zeros(1, cumsum.size(1)), cumsum[:-1]])  # (E, F)
    seg_cumsum = cumsum - exclusive[start[seg]]  # (E, F); cumulative sum restarted at every segment

    support = 1 + rank.to(work).unsqueeze(1) * z_sorted > seg_cumsum  # (E, F)
    k = scatter(support.to(work), seg, dim=0, dim_size=num_segments, reduce="sum")  # (N, F)
    support_sum = scatter(torch.where(support, z_sorted, 0.0), seg, dim=0, dim_size=num_segments)  # (N, F)
    tau = (support_sum - 1) / k.clamp(min=1)  # (N, F); empty segments get an unused value
    if not_a_number.any():  # a segment holding a NaN is NaN throughout, as under softmax; the others are untouched
        bad = scatter(not_a_number.to(work), index, dim=0, dim_size=num_segments, reduce="sum") > 0  # (N, F)
        tau = tau.masked_fill(bad, float("nan"))

    return (z - tau[index]).clamp(min=0).to(z_max.dtype)  # (E, F)


class _SegmentSparsemax(torch.autograd.Function):
    """Sparsemax per segment of ``index``. Under ``torch.vmap`` (``K`` stacked score tensors over one index, e.g. the
    members of an ensemble on one graph) one call on all of them: member ``k``'s segments are renumbered
    ``k * num_segments + g``."""

    @staticmethod
    def forward(z: Tensor, index: Tensor, num_segments: int) -> Tensor:
        if z.numel() == 0:
            return z.clone()
        return _segment_sparsemax_2d(z.reshape(z.size(0), -1), index, num_segments).view_as(z)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, index, num_segments = inputs
        ctx.num_segments = num_segments
        ctx.save_for_backward(output, index)

    @staticmethod
    def vmap(info, in_dims, z, index, num_segments):
        # the index is shared (segment_sparsemax validates its values first, which a batched index cannot pass)
        k = info.batch_size
        z = z.movedim(in_dims[0], 0)  # (K, E, *)
        offset = torch.arange(k, device=index.device).unsqueeze(1) * num_segments  # (K, 1)
        out = _SegmentSparsemax.apply(z.reshape(-1, *z.shape[2:]), (index + offset).reshape(-1), k * num_segments)
        return out.view(z.shape), 0

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        out, index = ctx.saved_tensors
        n = ctx.num_segments
        support = out > 0  # (E, *)
        g = torch.where(support, grad, 0.0)  # (E, *)
        k = scatter(support.to(g.dtype), index, dim=0, dim_size=n, reduce="sum").clamp(min=1)  # (N, *)
        v_hat = scatter(g, index, dim=0, dim_size=n, reduce="sum") / k  # (N, *); mean over the support
        return torch.where(support, g - v_hat[index], 0.0), None, None


def segment_sparsemax(scores: Tensor, index: Tensor, num_segments: int | None = None) -> Tensor:
    r"""Sparsemax over the segments (groups) given by ``index``, independently for every head.

    For every segment :math:`g` and head :math:`h`, with :math:`z_g = \{z_{ih} : \mathrm{index}_i = g\}`,

    .. math::
        p_g = \operatorname{argmin}_{p} \lVert p - z_g \rVert_2^2 \quad \text{s.t.} \quad p \ge 0,\
        \sum_{i \in g} p_i = 1, \qquad p_{ih} = [z_{ih} - \tau_{gh}]_+,

    with :math:`\tau_{gh} = (\sum_{j \le k} z_{(j)} - 1) / k` over the :math:`k` largest scores of the
    segment, :math:`k = \max\{j : 1 + j z_{(j)} > \sum_{i \le j} z_{(i)}\}` (Martins & Astudillo, 2016).

    All segments are solved at once: entries are sorted by (segment, descending score) with two stable
    sorts, the per-segment cumulative sums are a global cumulative sum minus its value at each segment's
    start, and :math:`k` and :math:`\tau` are segment sums. The backward pass is the closed form
    :math:`\bar z_i = s_i (\bar p_i - \operatorname{mean}_{j \in S_g} \bar p_j)` over the support
    :math:`S_g` of the segment. A segment whose scores hold a NaN or ``+inf``, or are all ``-inf``, is NaN
    throughout (as under softmax); every other segment is computed as if it were absent. Under ``torch.vmap``
    (scores stacked over one ``index``) all members are solved in one call.

    Args:
        scores (Tensor): floating-point scores :math:`z`, one row per element (edge).
        index (LongTensor): segment of every row of ``scores``, values in ``[0, num_segments)``.
        num_segments (int, optional): number of segments :math:`N`; ``index.max() + 1`` (0 if empty)
            when ``None``. (default: ``None``)

    Shapes:
        - **input:** scores ``(E)`` or ``(E, H, *)``, index ``(E)``
        - **output:** ``(E)`` or ``(E, H, *)``; each non-empty segment sums to 1 per head

    Example:
        >>> scores = torch.tensor([0.5, 0.3, -1.0, 7.0])
        >>> segment_sparsemax(scores, torch.tensor([0, 0, 0, 1]))
        tensor([0.6000, 0.4000, 0.0000, 1.0000])
    """
    num_segments = _check_segments(scores, index, num_segments, "segment_sparsemax")
    return _SegmentSparsemax.apply(scores, index, num_segments)


def segment_softmax(scores: Tensor, index: Tensor, num_segments: int | None = None) -> Tensor:
    r"""Softmax over the segments (groups) given by ``index``; PyG's :func:`torch_geometric.utils.softmax`.

    .. math::
        p_{ih} = \frac{\exp(z_{ih})}{\sum_{j : \mathrm{index}_j = \mathrm{index}_i} \exp(z_{jh})}

    Args:
        scores (Tensor): floating-point scores :math:`z`, one row per element (edge).
        index (LongTensor): segment of every row of ``scores``, values in ``[0, num_segments)``.
        num_segments (int, optional): number of segments; ``index.max() + 1`` (0 if empty) when ``None``.
            (default: ``None``)

    Shapes:
        - **input:** scores ``(E)`` or ``(E, H, *)``, index ``(E)``
        - **output:** ``(E)`` or ``(E, H, *)``; each non-empty segment sums to 1 per head

    Example:
        >>> segment_softmax(torch.tensor([1.0, 1.0, 5.0]), torch.tensor([0, 0, 1]))
        tensor([0.5000, 0.5000, 1.0000])
    """
    num_segments = _check_segments(scores, index, num_segments, "segment_softmax")
    return pyg_softmax(scores, index, num_nodes=num_segments, dim=0)


# ----------------------------------------------------------------------------------------------------
# one entry point


def normalize(
    scores: Tensor,
    kind: str,
    index: Tensor | None = None,
    num_segments: int | None = None,
    dim: int = -1,
    temperature: float = 1.0,
) -> Tensor:
    r"""Normalise attention scores with ``kind`` in :data:`NORMALIZERS`, densely or per segment.

    The scores are first divided by the temperature :math:`T`, then

    * ``"sigmoid"``: :math:`p = \sigma(z / T)` elementwise (``index`` is validated but plays no role);
    * ``"softmax"``: :math:`p = \operatorname{softmax}(z / T)` per slice / segment;
    * ``"sparsemax"``: :math:`p = \operatorname{argmin}_{p \ge 0, \sum p = 1} \lVert p - z / T \rVert^2`
      per slice / segment (see :func:`sparsemax`, :func:`segment_sparsemax`).

    Dense path (``index is None``): normalise along ``dim``. Segment path: normalise each group of rows
    sharing a value of ``index``; segments always run along dim 0 (PyG style) and every trailing
    dimension (heads) is normalised independently, so ``dim`` is not used.

    Args:
        scores (Tensor): floating-point scores :math:`z`.
        kind (str): one of ``"sigmoid"``, ``"softmax"``, ``"sparsemax"``.
        index (LongTensor, optional): segment of every row of ``scores``. (default: ``None``)
        num_segments (int, optional): number of segments; ``index.max() + 1`` when ``None``.
            (default: ``None``)
        dim (int, optional): dense path only: the dimension to normalise along; not used when ``index``
            is given. (default: ``-1``)
        temperature (float, optional): :math:`T > 0`; lower is sharper. (default: ``1.0``)

    Shapes:
        - **input:** dense: scores ``(*)``; segment: scores ``(E)`` or ``(E, H, *)``, index ``(E)``
        - **output:** same shape as ``scores``

    Raises:
        ValueError: unknown ``kind``, ``temperature <= 0``, a dense ``dim`` out of range, or an ``index``
            that does not fit ``scores`` / ``num_segments``.

    Example:
        >>> normalize(torch.tensor([1.0, 1.0, 5.0]), "softmax", index=torch.tensor([0, 0, 1]))
        tensor([0.5000, 0.5000, 1.0000])
    """
    if kind not in NORMALIZERS:
        raise ValueError(f"normalize: unknown kind {kind!r}; expected one of {', '.join(NORMALIZERS)}")
    if (problem := temperature_problem(temperature)) is not None:
        raise ValueError(f"normalize: {problem}")
    _check_scores(scores, "normalize")

    if index is None:
        if num_segments is not None:
            raise ValueError("normalize: num_segments was given without an index")
        dim = _check_dim(scores, dim, "normalize")
    else:
        num_segments = _check_segments(scores, index, num_segments, "normalize")

    z = scores / temperature if temperature != 1.0 else scores
    if kind == "sigmoid":
        if z.dim() > 1 and z.is_contiguous():
            # elementwise, so computed on the flat view: its backward pass then runs on a gradient made contiguous
            # first (one copy), not on the strided gradient a consumer such as einsum hands back (2-3x slower)
            return torch.sigmoid(z.reshape(-1)).view(z.shape)
        return torch.sigmoid(z)
    if index is None:
        return torch.softmax(z, dim=dim) if kind == "softmax" else sparsemax(z, dim=dim)
    if kind == "softmax":
        return pyg_softmax(z, index, num_nodes=num_segments, dim=0)
    return _SegmentSparsemax.apply(z, index, num_segments)


def threshold(weights: Tensor, threshold: float | None) -> Tensor:
    r"""Zero the weights below ``threshold``: :math:`w'_i = w_i \cdot [w_i \ge t]`.

    Implemented with :meth:`torch.Tensor.masked_fill`, so a zeroed entry is exactly 0 and receives exactly zero
    gradient; kept entries pass their value and gradient unchanged, and a NaN weight stays NaN (it is not below
    :math:`t`: a NaN segment of the normaliser is not hidden as zeros). ``threshold`` of ``None`` or 0 returns
    ``weights`` itself (normalised weights are non-negative, so nothing would be cut).

    Args:
        weights (Tensor): normalised weights, typically in :math:`[0, 1]`.
        threshold (float, optional): :math:`t \in [0, 1]`, or ``None`` for no thresholding.

    Shapes:
        - **input:** weights ``(*)``
        - **output:** ``(*)``, same shape

    Example:
        >>> threshold(torch.tensor([0.05, 0.25, 0.7]), 0.1)
        tensor([0.0000, 0.2500, 0.7000])
    """
    if not isinstance(weights, Tensor):
        raise TypeError(f"threshold(): expected weights to be a torch.Tensor, got {type(weights).__name__}")
    if threshold is None:
        return weights
    if (problem := threshold_problem(threshold)) is not None:
        raise ValueError(f"threshold(): {problem} (None for no threshold)")
    if threshold == 0:
        return weights
    return weights.masked_fill(weights < threshold, 0.0)  # a NaN stays NaN: it is not under the threshold
