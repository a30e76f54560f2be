"""Structural checks of a declared DAG, before anything is built. Each failure names the fault."""

from __future__ import annotations

import networkx as nx
import torch.nn as nn

from . import checks
from .errors import GraphSpecError
from .spec import EDGE_KEYS

_RESERVED = set(dir(nn.ModuleDict()))


def _names(nodes) -> str:
    return ", ".join(repr(n) for n in nodes)


def check_structure(g) -> tuple[list, list, list]:
    """Validate the DAG's structure; return ``(inputs, outputs, topological order)``.

    Raises :class:`GraphSpecError` for: not a ``networkx.DiGraph``, an empty graph, bad node names (not a
    non-empty string, a reserved name, or one holding ``'.'`` or ``'->'``), an unknown edge setting, a node width
    (``in_features``, a module's ``out_features``) that is not a positive integer, a cycle (printing its edges), a
    node without ``op``/``module``, no input node, an input with in-edges, unknown outputs, a node no input reaches,
    and a node that reaches no output.
    """
    if not isinstance(g, nx.DiGraph) or g.is_multigraph():
        raise GraphSpecError(f"expected a networkx.DiGraph, got {type(g).__name__}")
    if g.number_of_nodes() == 0:
        raise GraphSpecError("the graph has no nodes; declare at least an input and an output")
    for n in g.nodes:
        if not isinstance(n, str) or not n:
            raise GraphSpecError(f"node {n!r}: names must be non-empty strings without '.' or '->' "
                                 f"(relabel with networkx.relabel_nodes(g, str))")
        if "." in n:
            raise GraphSpecError(f"node {n!r}: names cannot contain '.' (torch joins submodule names with it, as "
                                 f"in 'nodes.h.weight'); rename it")
        if "->" in n:
            raise GraphSpecError(f"node {n!r}: names cannot contain '->' (it joins the two ends of an edge in "
                                 f"parameter names such as 'a->b', so two edges could get one name); rename it")
        if n in _RESERVED:
            raise GraphSpecError(f"node {n!r}: the name is reserved (an attribute of torch.nn.ModuleDict); rename it")
    for u, v, attrs in g.edges(data=True):
        unknown = [k for k in attrs if k not in EDGE_KEYS]
        if unknown:
            raise GraphSpecError(f"edge {u!r} -> {v!r}: unknown setting(s) {', '.join(map(repr, unknown))}; "
                                 f"valid: {', '.join(EDGE_KEYS)}")
    for n, attrs in g.nodes(data=True):
        for key in ("in_features", "out_features") if "module" in attrs else ("in_features",):
            val = attrs.get(key)
            if val is not None:  # not given
                checks.positive_int(f"node {n!r}: {key}", val, why="a width", error=GraphSpecError)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join(repr(u) for u, _ in cycle) + f" -> {cycle[0][0]!r}"
        raise GraphSpecError(f"the graph has a cycle: {path} (edges {cycle}); a network must be a DAG")
    for n, attrs in g.nodes(data=True):
        if "op" not in attrs and "module" not in attrs:
            raise GraphSpecError(f"node {n!r} has no 'op' (or 'module'); give it e.g. op='linear'")
        if "op" in attrs and "module" in attrs:
            raise GraphSpecError(f"node {n!r} has both 'op' and 'module'; give one")
    inputs = [n for n, op in g.nodes(data="op") if op == "input"]
    if not inputs:
        raise GraphSpecError("the graph has no input node; add one with op='input' and features=<width>")
    for n in inputs:
        preds = list(g.predecessors(n))
        if preds:
            raise GraphSpecError(f"input node {n!r} has in-edges from {_names(preds)}; inputs are sources")
    outputs = g.graph.get("outputs")
    if outputs is None:
        outputs = [n for n in g.nodes if g.out_degree(n) == 0 and n not in inputs]
        if not outputs:
            raise GraphSpecError("the graph has no output: every sink is an input node")
    else:
        if isinstance(outputs, str):
            outputs = [outputs]
        if not isinstance(outputs, (list, tuple)) or not outputs:
            raise GraphSpecError(f"'outputs' must be a non-empty list of node names, got {outputs!r}")
        unknown = [o for o in outputs if o not in g]
        if unknown:
            raise GraphSpecError(f"'outputs' names unknown node(s) {_names(unknown)}")
        twice = [o for i, o in enumerate(outputs) if o in outputs[:i]]
        if twice:
            raise GraphSpecError(f"'outputs' names node(s) {_names(twice)} more than once")
        outputs = list(outputs)
    reached = set(inputs)
    for n in inputs:
        reached |= nx.descendants(g, n)
    orphans = [n for n in g.nodes if n not in reached]
    if orphans:
        raise GraphSpecError(f"node(s) {_names(orphans)} cannot be reached from any input ({_names(inputs)})")
    useful = set(outputs)
    for n in outputs:
        useful |= nx.ancestors(g, n)
    dead = [n for n in g.nodes if n not in useful]
    if dead:
        raise GraphSpecError(f"node(s) {_names(dead)} reach no output ({_names(outputs)}); remove them or connect them")
    return inputs, outputs, list(nx.topological_sort(g))
