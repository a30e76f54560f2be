"""Checks of public arguments, one rule everywhere; each returns the value as plain Python data or raises.

* an integer is any :class:`numbers.Integral` but a ``bool`` (Python and numpy integers), returned as an ``int``;
* a number is any :class:`numbers.Real` but a ``bool`` (Python and numpy integers and floats), never NaN, returned
  as a ``float``; ``finite=True`` (the default) refuses infinities too;
* a flag is a ``bool``, nothing else.

A failure raises ``error`` (``ValueError`` unless the caller names another, e.g. ``GraphSpecError``) with a message
saying what was expected, the argument's name (as the caller gives it, e.g. ``"EdgeRecorder: every"``) and the value
got: ``eval_every must be a positive integer, got 0``. ``why`` adds a reason in parentheses after what was expected;
``optional=True`` accepts ``None`` (and the message says so).
"""

from __future__ import annotations

import math
import numbers

__all__ = ["choice", "flag", "integer", "is_integer", "number", "positive_int"]


def _fail(error: type[Exception], name: str, what: str, why: str | None, value) -> None:
    raise error(f"{name} must be {what}{f' ({why})' if why else ''}, got {value!r}")


def is_integer(value) -> bool:
    """Whether ``value`` is an integer: a Python or numpy integer, not a ``bool``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(name: str, value, *, least: int | None = None, most: int | None = None, optional: bool = False,
            why: str | None = None, error: type[Exception] = ValueError) -> int | None:
    """``value`` as an ``int``, if it is an integer in ``[least, most]`` (either bound may be ``None``: none)."""
    if optional and value is None:
        return None
    if least is not None and most is not None:
        what = f"an integer in [{least}, {most}]"
    elif least is not None:
        what = {1: "a positive integer", 0: "a non-negative integer"}.get(least, f"an integer >= {least}")
    else:
        what = "an integer" if most is None else f"an integer <= {most}"
    if (not is_integer(value) or (least is not None and value < least)
            or (most is not None and value > most)):
        _fail(error, name, what + (" or None" if optional else ""), why, value)
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
    kind = "a finite number" if finite else "a number"
    if low is not None and high is not None:
        what = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        what = f"{kind} {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        what = f"{kind} {'<' if high_open else '<='} {high:g}"
    else:
        what = kind
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    ok = ok and not (finite and math.isinf(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        _fail(error, name, what + (" or None" if optional else ""), why, value)
    return float(value)


def flag(name: str, value, *, why: str | None = None, error: type[Exception] = ValueError) -> bool:
    """``value``, if it is a ``bool`` (not ``0``/``1``, not a numpy bool)."""
    if not isinstance(value, bool):
        _fail(error, name, "true or false", why, value)
    return value


def choice(name: str, value, options, *, error: type[Exception] = ValueError):
    """``value``, if it is one of ``options``."""
    if value not in options:
        raise error(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value
