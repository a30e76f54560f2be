"""The first value in nested data that a file format cannot hold, and where it sits.

One walk serves every writer of plain data: network specs (YAML and JSON files, ``modgraph.spec``), a run's config
and unit results (JSON, ``modgraph.train.rundir``) and a checkpoint's extras (``torch.load(weights_only=True)``,
``modgraph.train.checkpoint``). What differs between them is a :class:`Policy`; the walk is the same: depth first,
in each container's own order, every shared part walked once (so a YAML alias bomb costs what its text costs), a
container inside itself named (or, when the format keeps loops, not walked again) rather than recursed into forever.
The walk keeps its own stack: data nested deeper than Python's recursion limit is walked too.

Each writer turns the :class:`Fault` into its own message and exception; :meth:`Fault.where` names the place
(``config['runs'][1]['acc']``, ``a.yaml.nodes.x.extra[0]``, ``extra key ('a', 1)[1]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

__all__ = ["Fault", "Policy", "first_fault"]

#: the steps of a :attr:`Fault.path`: ``(INDEX, i)`` the i-th item of a sequence, ``(VALUE, k)`` the item of a
#: mapping at key ``k``, ``(KEY, k)`` the key ``k`` itself (walked when :attr:`Policy.key` is ``None``)
INDEX, VALUE, KEY = "index", "value", "key"

#: the kinds of :class:`Fault`
KINDS = ("type", "key", "nonfinite", "loop", "depth", "size")


def _list_or_tuple(value) -> bool:
    return isinstance(value, (list, tuple))


def _dict(value) -> bool:
    return isinstance(value, dict)


@dataclass(frozen=True)
class Policy:
    """What one format holds.

    Args:
        leaf: ``leaf(value)``: the value is held as it is (a number, a string, a tensor...). Asked only of values
            that are neither a sequence nor a mapping.
        sequence: ``sequence(value)``: the value is a container whose items are walked by position.
        mapping: ``mapping(value)``: the value is a container of ``key -> item``, walked in its order.
        key: ``key(k)``: a key the format keeps; a key it refuses is a ``"key"`` fault. ``None``: any key the format
            can hold as a value, so keys are walked like items (before their item).
        finite: NaN and infinite floats are ``"nonfinite"`` faults (JSON has neither).
        loops: a container inside itself is data (pickle keeps it) and is not walked again; else a ``"loop"`` fault.
        max_depth: at most this many containers one inside the other (``None``: no limit); a shared part counts
            where it appears deepest.
        max_items: at most this many items in all, containers and leaves, a shared part counted each time it
            appears (``None``: no limit).
    """

    leaf: Callable[[object], bool]
    sequence: Callable[[object], bool] = _list_or_tuple
    mapping: Callable[[object], bool] = _dict
    key: Callable[[object], bool] | None = None
    finite: bool = False
    loops: bool = False
    max_depth: int | None = None
    max_items: int | None = None


@dataclass(frozen=True)
class Fault:
    """The first value a :class:`Policy` refuses.

    ``kind`` (one of :data:`KINDS`) and ``value``:

    - ``"type"``: ``value`` is neither a leaf nor a container of the format;
    - ``"key"``: ``value`` is a key the format refuses, of the mapping at ``path``;
    - ``"nonfinite"``: ``value`` is a NaN or infinite float;
    - ``"loop"``: ``value`` is a container met again inside itself, ``path`` being where;
    - ``"depth"``: ``value`` is a container that is (or holds containers) more than ``max_depth`` deep;
    - ``"size"``: ``value`` is the whole value, which holds ``size`` items, more than ``max_items``.

    ``path``: the steps from the root to ``value`` (``(INDEX, i)``, ``(VALUE, key)``, ``(KEY, key)``).
    """

    kind: str
    path: tuple
    value: object
    size: int = 0

    def where(self, root: str, dotted: bool = False) -> str:
        """The place: ``root['a'][2]``, or with ``dotted`` (spec style) ``root.a[2]``; a key itself is
        ``root key 'k'``."""
        parts = [root]
        for step, k in self.path:
            if step == INDEX:
                parts.append(f"[{k}]")
            elif step == KEY:
                parts.append(f" key {k!r}")
            elif dotted and isinstance(k, str):
                parts.append(f".{k}")
            else:
                parts.append(f"[{k!r}]")
        return "".join(parts)


def _steps(path) -> tuple:
    """The steps of a linked path ``(parent, step)`` (``None`` at the root), root first."""
    steps = []
    while path is not None:
        path, step = path
        steps.append(step)
    return tuple(reversed(steps))


def _members(container, is_mapping: bool, path, key_ok):
    """``(path, item)`` for each member of ``container`` in its order; a :class:`Fault` for a refused key."""
    if not is_mapping:
        for i, item in enumerate(container):
            yield (path, (INDEX, i)), item
        return
    for k, item in container.items():
        if key_ok is None:
            yield (path, (KEY, k)), k
        elif not key_ok(k):
            yield Fault("key", _steps(path), k)
            return
        yield (path, (VALUE, k)), item


def first_fault(value, policy: Policy) -> Fault | None:
    """The first part of ``value`` that ``policy`` refuses, depth first in each container's order, or ``None``.

    Pure: ``value`` is only read. Each shared part is walked once, so the cost is that of the distinct parts, not of
    the value with its shared parts expanded.
    """
    done: dict[int, tuple] = {}  # id -> (container, size, height) of the containers walked already
    open_ids: set[int] = set()  # the containers on the way to the current one
    stack: list[list] = []  # [container, its members, its path, size so far, height so far]

    def visit(v, path):
        """A Fault; ``(size, height)`` of a value finished with; ``None`` when ``v`` was opened (pushed)."""
        is_mapping = policy.mapping(v)
        if is_mapping or policy.sequence(v):
            if id(v) in open_ids:
                return (1, 0) if policy.loops else Fault("loop", _steps(path), v)
            size_height = done[id(v)][1:] if id(v) in done else None
            height = 1 if size_height is None else size_height[1]
            if policy.max_depth is not None and len(stack) + height > policy.max_depth:
                return Fault("depth", _steps(path), v)
            if size_height is not None:
                return size_height
            open_ids.add(id(v))
            stack.append([v, _members(v, is_mapping, path, policy.key), path, 1, 1])
            return None
        if not policy.leaf(v):
            return Fault("type", _steps(path), v)
        if policy.finite and isinstance(v, float) and not math.isfinite(v):
            return Fault("nonfinite", _steps(path), v)
        return (1, 0)

    result = visit(value, None)
    while stack:
        if isinstance(result, Fault):
            return result
        frame = stack[-1]
        member = next(frame[1], None)
        if member is None:  # the container is finished
            stack.pop()
            open_ids.discard(id(frame[0]))
            done[id(frame[0])] = (frame[0], frame[3], frame[4])
            result = (frame[3], frame[4])
        elif isinstance(member, Fault):
            return member
        else:
            result = visit(member[1], member[0])
        if isinstance(result, tuple) and stack:  # a member finished: count it in its container
            stack[-1][3] += result[0]
            stack[-1][4] = max(stack[-1][4], result[1] + 1)
    if isinstance(result, Fault):
        return result
    if policy.max_items is not None and result[0] > policy.max_items:
        return Fault("size", (), value, result[0])
    return None
