"""The op registry: names in a spec map to builder functions registered with :func:`register_op`.

A builder takes the width of its (merged) input and the node's keyword arguments, and returns the module that
computes the node together with its output width::

    @mg.register_op("scale")
    def scale(in_features: int, factor: float = 2.0) -> mg.Built:
        return mg.Built(ScaleModule(factor), in_features)

The width is checked once, when a network is built: the module runs on a ``[2, in_features]`` zero tensor (no
grad, eval mode, restored after), and a width other than its output's is a :class:`GraphSpecError` naming the node
and the op (a module that cannot run on such a tensor is trusted).

Specs name ops by string only; nothing is ever imported or evaluated from a name.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from . import checks
from .errors import GraphSpecError


@dataclass
class Built:
    """What a builder returns: the node's module (``None`` for pass-through) and its output width."""

    module: nn.Module | None
    out_features: int


@dataclass(frozen=True)
class OpDef:
    name: str
    builder: Callable[..., Built]
    merge: str = "sum"  # how several in-edges are merged unless the node says otherwise
    takes_input: bool = True  # False for sources (the input op)
    doc: str = ""

    def arguments(self) -> list[str]:
        params = list(inspect.signature(self.builder).parameters.values())
        skip = 1 if self.takes_input else 0
        return [p.name for p in params[skip:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def required(self) -> list[str]:
        params = list(inspect.signature(self.builder).parameters.values())
        skip = 1 if self.takes_input else 0
        return [p.name for p in params[skip:] if p.default is p.empty and p.kind != p.VAR_KEYWORD]


_OPS: dict[str, OpDef] = {}


def register_op(name: str, *, merge: str = "sum", takes_input: bool = True, replace: bool = False):
    """Decorator registering ``builder`` under ``name`` so that specs can say ``op: name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"op names are non-empty strings, got {name!r}")
    if merge not in ("sum", "concat"):
        raise ValueError(f"op {name!r}: merge must be 'sum' or 'concat', got {merge!r}")
    takes_input = checks.flag(f"op {name!r}: takes_input", takes_input)
    replace = checks.flag(f"op {name!r}: replace", replace)

    def decorate(builder):
        if not callable(builder):
            raise TypeError(f"op {name!r}: register_op decorates a builder function (in_features, **arguments) -> "
                            f"modgraph.Built, got {builder!r}")
        if name in _OPS and not replace:
            raise ValueError(f"op {name!r} is already registered (pass replace=True to override it)")
        _OPS[name] = OpDef(name, builder, merge, takes_input, inspect.getdoc(builder) or "")
        return builder

    return decorate


def available_ops() -> list[str]:
    """The names of every registered op, sorted (the built-ins and those added with :func:`register_op`)."""
    return sorted(_OPS)


def get_op(name, where: str = "") -> OpDef:
    """Return the registered op ``name``; an unknown name raises :class:`GraphSpecError` listing the valid ones."""
    if not isinstance(name, str) or name not in _OPS:
        prefix = f"{where}: " if where else ""
        raise GraphSpecError(f"{prefix}unknown op {name!r}; valid ops: {', '.join(available_ops())}")
    return _OPS[name]


def build_op(opdef: OpDef, in_features: int | None, kwargs: dict, where: str) -> Built:
    """Call the builder with the node's arguments, turning every failure into a :class:`GraphSpecError`."""
    valid = opdef.arguments()
    unknown = [k for k in kwargs if k not in valid]
    if unknown:
        raise GraphSpecError(
            f"{where}: unexpected argument(s) {', '.join(map(repr, unknown))} for op {opdef.name!r}; "
            f"expected: {', '.join(valid) if valid else 'no arguments'}"
        )
    missing = [k for k in opdef.required() if k not in kwargs]
    if missing:
        raise GraphSpecError(f"{where}: op {opdef.name!r} needs argument(s) {', '.join(map(repr, missing))}")
    args = (in_features,) if opdef.takes_input else ()
    try:
        built = opdef.builder(*args, **kwargs)
    except Exception as err:  # builder-level checks, torch's own argument errors, a sub-network's spec error
        raise GraphSpecError(f"{where}: bad arguments for op {opdef.name!r}: {err}") from None
    if not isinstance(built, Built):
        raise GraphSpecError(f"{where}: builder of op {opdef.name!r} must return modgraph.Built, got {built!r}")
    built.out_features = checks.positive_int(f"{where}: the width the builder of op {opdef.name!r} returned "
                                             f"(Built.out_features)", built.out_features, error=GraphSpecError)
    return built
