"""Argument checks shared by op builders (those of :mod:`modgraph.checks`); they raise ``ValueError`` that
:func:`build_op` names the node in."""

from __future__ import annotations

from ..checks import choice, number, positive_int
from ..checks import flag as boolean

__all__ = ["boolean", "choice", "positive_float", "positive_int", "probability"]


def probability(name: str, value) -> float:
    """A number in ``[0, 1)``."""
    return number(name, value, low=0, high=1, high_open=True)


def positive_float(name: str, value) -> float:
    """A finite number > 0."""
    return number(name, value, low=0, low_open=True)
