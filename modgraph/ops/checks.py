"""Argument checks shared by op builders (those of :mod:`modgraph.checks`); they raise ``ValueError`` that
:func:`build_op` names the node in."""

from __future__ import annotations

import torch

from ..checks import choice, number, positive_int
from ..checks import flag as boolean

__all__ = ["boolean", "choice", "dtype_fault", "features_fault", "positive_float", "positive_int", "probability"]


def probability(name: str, value) -> float:
    """A number in ``[0, 1)``."""
    return number(name, value, low=0, high=1, high_open=True)


def positive_float(name: str, value) -> float:
    """A finite number > 0."""
    return number(name, value, low=0, low_open=True)


def features_fault(where: str, x, width: int | None) -> None:
    """Raise the error naming what is wrong with the node features ``x`` of a graph op (a tensor ``[N, width]``,
    floating-point; ``width`` ``None``: any); called only when the op's own cheap test failed."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: x must be a torch.Tensor [N, features], got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{where}: x must be a tensor [N, features] (one row per node), got shape {tuple(x.shape)}")
    if width is not None and x.size(1) != width:
        raise ValueError(f"{where}: x must have {width} features (in_channels), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{where}: x must hold floating-point features, got {x.dtype}")


def dtype_fault(where: str, x: torch.Tensor, dtype: torch.dtype) -> None:
    """After a forward failed: raise if ``x``'s dtype is not the parameters' ``dtype`` (else return)."""
    if x.dtype != dtype:
        raise TypeError(f"{where}: x has dtype {x.dtype} but the op's parameters have dtype {dtype}; convert one of "
                        f"them (x.to({dtype}) or module.to({x.dtype}))")
