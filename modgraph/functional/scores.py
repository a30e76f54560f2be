"""Scoring functions: one unnormalised attention score per (key, query) pair.

Every level of attention scores its parallel inputs with these. Keys are what competes (a branch's projected
output, a neighbour's projected features); queries are what asks (a learned vector, the target node's features).

=============  ==============================================  ================================
kind           score                                           reference
=============  ==============================================  ================================
additive       ``v . tanh(k + q)``                             Bahdanau et al. 2015
mlp            ``v . relu(k + q)``                             a one-hidden-layer scorer
dot            ``k . q``                                       Luong et al. 2015
scaled_dot     ``k . q / sqrt(D)``                             Vaswani et al. 2017
cosine         ``k . q / (|k| |q|)``                           Graves et al. 2014
gat            ``leaky_relu(v . (k + q), 0.2)``                Velickovic et al. 2018 (with k, q
                                                               projected separately, ``a^T[Wh_i||Wh_j]``)
=============  ==============================================  ================================

Shapes:
    keys, queries ``[..., H, D]`` (broadcastable; ``H`` heads of width ``D``), ``v`` ``[H, D]``;
    output ``[..., H]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import checks

SCORES = ("additive", "mlp", "dot", "scaled_dot", "cosine", "gat")
NEEDS_VECTOR = ("additive", "mlp", "gat")


def pair_scores(kind: str, keys: torch.Tensor, queries: torch.Tensor, v: torch.Tensor | None = None,
                negative_slope: float = 0.2) -> torch.Tensor:
    """Score every key against its query; see the module docstring for the formulas."""
    if kind in NEEDS_VECTOR and v is None:
        raise ValueError(f"score {kind!r} needs the vector v of shape [heads, dim]")
    if kind in NEEDS_VECTOR and not (isinstance(v, torch.Tensor) and v.dim() == 2 and isinstance(keys, torch.Tensor)
                                     and keys.dim() >= 2 and v.shape[-1] == keys.shape[-1]):
        _fault(kind, keys, queries, v)  # metadata only: a v of another shape would broadcast silently
    if kind == "gat" and negative_slope != 0.2:
        checks.number("pair_scores: negative_slope", negative_slope)
    try:
        return _pair_scores(kind, keys, queries, v, negative_slope)
    except (RuntimeError, TypeError, IndexError):
        _fault(kind, keys, queries, v)  # named only after torch failed: no cost on the success path
        raise


def _fault(kind, keys, queries, v) -> None:
    """Raise the error that names what is wrong with :func:`pair_scores`' tensors (or return if nothing is)."""
    for name, t in (("keys", keys), ("queries", queries)) + ((("v", v),) if kind in NEEDS_VECTOR else ()):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"pair_scores: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"pair_scores: {name} must be a tensor [..., heads, dim], got shape {tuple(t.shape)}")
    if keys.shape[-1] != queries.shape[-1]:
        raise ValueError(f"pair_scores: keys and queries must have one width dim, got keys {tuple(keys.shape)} and "
                         f"queries {tuple(queries.shape)}")
    try:
        shape = torch.broadcast_shapes(keys.shape, queries.shape)
    except RuntimeError:
        raise ValueError(f"pair_scores: keys {tuple(keys.shape)} and queries {tuple(queries.shape)} do not broadcast "
                         f"(shapes [..., heads, dim])") from None
    if kind in NEEDS_VECTOR and (v.dim() != 2 or v.shape[-1] != shape[-1] or v.shape[0] not in (1, shape[-2])):
        raise ValueError(f"pair_scores: v must be a tensor [heads, dim] = [{shape[-2]}, {shape[-1]}] (score "
                         f"{kind!r}), got shape {tuple(v.shape)}")


def _pair_scores(kind, keys, queries, v, negative_slope):
    if kind == "additive":
        return (torch.tanh(keys + queries) * v).sum(-1)
    if kind == "mlp":
        return (torch.relu(keys + queries) * v).sum(-1)
    if kind == "gat":
        return F.leaky_relu(((keys + queries) * v).sum(-1), negative_slope)
    if kind == "dot":
        return (keys * queries).sum(-1)
    if kind == "scaled_dot":
        return (keys * queries).sum(-1) / math.sqrt(keys.shape[-1])
    if kind == "cosine":
        return F.cosine_similarity(keys, queries, dim=-1, eps=1e-8)
    raise ValueError(f"unknown score {kind!r}; valid scores: {', '.join(SCORES)}")
