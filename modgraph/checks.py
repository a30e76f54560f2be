"""Checks of public arguments, one rule everywhere; each returns the value as plain Python data or raises.

* an integer is any :class:`numbers.Integral` but a ``bool`` (Python and numpy integers), returned as an ``int``;
* a number is any :class:`numbers.Real` but a ``bool`` (Python and numpy integers and floats), never NaN, returned
  as a ``float``; ``finite=True`` (the default) refuses infinities too;
* a flag is a ``bool``, nothing else;
* a path is a ``str`` or an :class:`os.PathLike` (not ``bytes``, not ``None``), returned as a :class:`~pathlib.Path`;
* an ``edge_index`` is a tensor ``[2, E]`` of integer node ids (``torch.long`` where the caller needs it) in
  ``[0, num_nodes)``, or ``>= 0`` without a node count (:func:`edge_index`, returned as it is).

A failure raises ``error`` (``ValueError`` unless the caller names another, e.g. ``GraphSpecError``) with a message
saying what was expected, the argument's name (as the caller gives it, e.g. ``"EdgeRecorder: every"``) and the value
got: ``eval_every must be a positive integer, got 0``. ``why`` adds a reason in parentheses after what was expected;
``optional=True`` accepts ``None`` (and the message says so).
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

import torch

__all__ = ["choice", "edge_index", "flag", "integer", "is_integer", "is_real", "number", "path", "positive_int"]


def _fail(error: type[Exception], name: str, what: str, why: str | None, value) -> None:
    raise error(f"{name} must be {what}{f' ({why})' if why else ''}, got {value!r}")


def _integer_kind(least: int | None, most: int | None) -> str:
    """What :func:`integer` expected, for its message (composed only on a failure: checks run on hot paths)."""
    if least is not None and most is not None:
        return f"an integer in [{least}, {most}]"
    if least is not None:
        return {1: "a positive integer", 0: "a non-negative integer"}.get(least, f"an integer >= {least}")
    return "an integer" if most is None else f"an integer <= {most}"


def _number_kind(low: float | None, high: float | None, low_open: bool, high_open: bool, finite: bool) -> str:
    """What :func:`number` expected, for its message (composed only on a failure)."""
    kind = "a finite number" if finite else "a number"
    if low is not None and high is not None:
        return f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {high:g}"
    return kind


def is_integer(value) -> bool:
    """Whether ``value`` is an integer: a Python or numpy integer, not a ``bool``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """Whether ``value`` is a real number: a Python or numpy integer or float, not a ``bool`` (NaN included)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(name: str, value, *, least: int | None = None, most: int | None = None, optional: bool = False,
            why: str | None = None, error: type[Exception] = ValueError) -> int | None:
    """``value`` as an ``int``, if it is an integer in ``[least, most]`` (either bound may be ``None``: none)."""
    if optional and value is None:
        return None
    if (not is_integer(value) or (least is not None and value < least)
            or (most is not None and value > most)):
        _fail(error, name, _integer_kind(least, most) + (" or None" if optional else ""), why, value)
    return int(value)


def positive_int(name: str, value, **kwargs) -> int | None:
    """``value`` as an ``int``, if it is an integer >= 1 (``kwargs``: as for :func:`integer`)."""
    return integer(name, value, least=1, **kwargs)


def number(name: str, value, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False, finite: bool = True, optional: bool = False, why: str | None = None,
           error: type[Exception] = ValueError) -> float | None:
    """``value`` as a ``float``, if it is a number (never NaN; never infinite with ``finite``) within ``low``..``high``
    (either may be ``None``: no bound), open at an end where asked."""
    if optional and value is None:
        return None
    ok = is_real(value) and not math.isnan(value)
    ok = ok and not (finite and math.isinf(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        _fail(error, name, _number_kind(low, high, low_open, high_open, finite) + (" or None" if optional else ""),
              why, value)
    return float(value)


def flag(name: str, value, *, why: str | None = None, error: type[Exception] = ValueError) -> bool:
    """``value``, if it is a ``bool`` (not ``0``/``1``, not a numpy bool)."""
    if not isinstance(value, bool):
        _fail(error, name, "true or false", why, value)
    return value


def path(name: str, value, *, what: str = "a file path") -> Path:
    """``value`` as a :class:`~pathlib.Path`, if it is a ``str`` or an :class:`os.PathLike`; else ``TypeError``
    (``what`` says what kind of path, e.g. ``"a folder path"``)."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be {what} (a str or a Path), got {type(value).__name__} {value!r:.80}")
    return Path(value)


def choice(name: str, value, options, *, error: type[Exception] = ValueError):
    """``value``, if it is one of ``options``."""
    if value not in options:
        raise error(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def edge_index(name: str, value, num_nodes: int | None = None, *, dtype: torch.dtype | None = None, ids: bool = True,
               nodes: str | None = None, error: type[Exception] = ValueError) -> torch.Tensor:
    """``value``, if it is a graph's ``edge_index``: a ``torch.Tensor [2, E]`` of node ids.

    Args:
        name: the argument as the message names it, e.g. ``"gcn_norm: edge_index"``.
        value: the ``edge_index``.
        num_nodes: node ids must lie in ``[0, num_nodes)``; ``None``: they must be ``>= 0``.
        dtype: the dtype required (``torch.long`` where PyG's kernels need it); ``None``: any integer dtype.
        ids: check the node ids, one device->host read of the ids' minimum and maximum (on a failure more, to name
            the first edge at fault); ``False``: only the type, shape and dtype, nothing read from the device.
        nodes: the node count as the message explains it (default ``"the graph has N nodes"``).
        error: the class raised for a wrong shape or node id (the default ``ValueError``, or e.g. ``PruneError``);
            a value that is not a tensor, or of another dtype, is a ``TypeError``.

    Example: ``gcn_norm: edge_index has the edge 0 -> 5 (column 3), which names a node outside [0, 5) (the graph
    has 5 nodes; node ids span [0, 5])``.
    """
    kind = ("integer node ids (torch.long)" if dtype is None
            else f"dtype {'torch.long' if dtype == torch.long else dtype}")
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [2, E] of {kind}, got {type(value).__name__}")
    if value.dim() != 2 or value.shape[0] != 2:
        raise error(f"{name} must be a tensor [2, E], got shape {tuple(value.shape)}")
    if dtype is None:
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold {kind}, got {value.dtype}")
    elif value.dtype != dtype:
        raise TypeError(f"{name} must hold node ids of {kind}, got {value.dtype}")
    if not ids or not value.numel():
        return value
    if num_nodes is None:
        low = int(value.min())  # the one read
        if low < 0:
            e = int((value < 0).any(0).nonzero()[0])
            raise error(f"{name} has the edge {value[0, e].item()} -> {value[1, e].item()} (column {e}), which names "
                        f"a negative node id (node ids must be >= 0; the lowest is {low})")
        return value
    num_nodes = int(num_nodes)
    low, high = torch.stack(torch.aminmax(value)).tolist()  # the one read
    if low < 0 or high >= num_nodes:
        e = int(((value < 0) | (value >= num_nodes)).any(0).nonzero()[0])
        if nodes is None:
            nodes = f"the graph has {num_nodes} node{'' if num_nodes == 1 else 's'}"
        raise error(f"{name} has the edge {value[0, e].item()} -> {value[1, e].item()} (column {e}), which names a "
                    f"node outside [0, {num_nodes}) ({nodes}; node ids span [{low}, {high}])")
    return value
