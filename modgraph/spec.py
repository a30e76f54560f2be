"""The declaration as data: a network spec as a plain dict, a NetworkX DAG, or a YAML/JSON file.

Format (``format: modgraph/1``)::

    format: modgraph/1
    outputs: [y]                 # optional; default: the sinks
    nodes:                       # name -> op and its arguments (insertion order is kept)
      x: {op: input, features: 5}
      h: {op: linear, out_features: 18, activation: sigmoid}
      y: {op: linear, out_features: 3}
    edges:                       # each {source, target, gate settings...}; [source, target] also accepted
      - {source: x, target: h}
      - {source: h, target: y, attention: sigmoid}

YAML is read with ``yaml.safe_load`` only (python tags are refused); files are written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import networkx as nx
import yaml

from .errors import GraphSpecError
from .io import atomic_write_text

FORMAT = "modgraph/1"
TOP_KEYS = ("format", "name", "outputs", "nodes", "edges")
EDGE_KEYS = ("attention", "threshold", "score", "learnable", "weight", "temperature", "heads", "hidden", "level")
SCALARS = (str, int, float, bool, type(None))


def _check_data(value, where: str):
    """Spec values are plain data: scalars, lists and string-keyed dicts."""
    if isinstance(value, SCALARS):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_data(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise GraphSpecError(f"{where}: keys must be strings, got {k!r}")
            _check_data(item, f"{where}.{k}")
        return
    raise GraphSpecError(f"{where}: expected plain data (number, string, bool, list, dict), got {type(value).__name__}")


def graph_from_dict(spec, source: str = "spec") -> nx.DiGraph:
    """Build the NetworkX DAG a spec dict describes (structure only; ``ModuleGraph`` validates the rest)."""
    if not isinstance(spec, dict):
        raise GraphSpecError(f"{source}: a spec is a mapping with keys {', '.join(TOP_KEYS)}, got "
                             f"{type(spec).__name__}")
    unknown = [k for k in spec if k not in TOP_KEYS]
    if unknown:
        raise GraphSpecError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(TOP_KEYS)}")
    fmt = spec.get("format", FORMAT)
    if fmt != FORMAT:
        raise GraphSpecError(f"{source}: format {fmt!r} is not supported; expected {FORMAT!r}")
    nodes, edges = spec.get("nodes"), spec.get("edges", [])
    if not isinstance(nodes, dict) or not nodes:
        raise GraphSpecError(f"{source}: 'nodes' must be a non-empty mapping of node name -> attributes")
    if not isinstance(edges, list):
        raise GraphSpecError(f"{source}: 'edges' must be a list, got {type(edges).__name__}")
    g = nx.DiGraph()
    for key in ("name", "outputs"):
        if key in spec:
            _check_data(spec[key], f"{source}.{key}")
            g.graph[key] = spec[key]
    for name, attrs in nodes.items():
        where = f"{source}: node {name!r}"
        if not isinstance(name, str):
            raise GraphSpecError(f"{where}: node names must be strings")
        if not isinstance(attrs, dict):
            raise GraphSpecError(f"{where}: attributes must be a mapping like {{op: linear, out_features: 8}}, "
                                 f"got {attrs!r}")
        if "module" in attrs:
            raise GraphSpecError(f"{where}: 'module' cannot come from a file; register an op with "
                                 f"@modgraph.register_op and name it with 'op'")
        _check_data(attrs, where)
        g.add_node(name, **attrs)
    for i, edge in enumerate(edges):
        where = f"{source}: edges[{i}]"
        if isinstance(edge, (list, tuple)) and len(edge) == 2:
            edge = {"source": edge[0], "target": edge[1]}
        if not isinstance(edge, dict) or "source" not in edge or "target" not in edge:
            raise GraphSpecError(f"{where}: an edge is {{source: a, target: b, ...}} or [a, b], got {edge!r}")
        u, v = edge["source"], edge["target"]
        for end in (u, v):
            if end not in nodes:
                raise GraphSpecError(f"{where}: edge {u!r} -> {v!r} names unknown node {end!r}")
        if g.has_edge(u, v):
            raise GraphSpecError(f"{where}: duplicate edge {u!r} -> {v!r}")
        attrs = {k: val for k, val in edge.items() if k not in ("source", "target")}
        unknown = [k for k in attrs if k not in EDGE_KEYS]
        if unknown:
            raise GraphSpecError(f"{where}: edge {u!r} -> {v!r}: unknown setting(s) {', '.join(map(repr, unknown))}; "
                                 f"valid: {', '.join(EDGE_KEYS)}")
        _check_data(attrs, where)
        g.add_edge(u, v, **attrs)
    return g


def graph_to_dict(g: nx.DiGraph) -> dict:
    """The spec dict of a DAG: the inverse of :func:`graph_from_dict`."""
    spec: dict = {"format": FORMAT}
    for key in ("name", "outputs"):
        if key in g.graph:
            spec[key] = g.graph[key]
    spec["nodes"] = {}
    for name, attrs in g.nodes(data=True):
        if "module" in attrs:
            raise GraphSpecError(f"node {name!r} holds a ready torch.nn.Module, which is not data; register an op "
                                 f"with @modgraph.register_op to serialise it")
        spec["nodes"][name] = dict(attrs)
    spec["edges"] = [{"source": u, "target": v, **attrs} for u, v, attrs in g.edges(data=True)]
    return spec


def _fmt(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "json"
    raise GraphSpecError(f"{path}: unknown spec file type {suffix or '(none)'!r}; use .yaml, .yml or .json")


def load_spec(path: str | os.PathLike) -> dict:
    """Read a spec dict from a YAML (``safe_load``) or JSON file; errors name the file, line and column."""
    path = Path(path)
    kind = _fmt(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphSpecError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise GraphSpecError(f"{path}: cannot read spec file: {err}") from None
    if kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise GraphSpecError(f"{path}:{err.lineno}:{err.colno}: malformed JSON: {err.msg}") from None
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as err:
        mark = err.problem_mark
        raise GraphSpecError(f"{path}:{mark.line + 1}:{mark.column + 1}: refused: {err.problem} (specs are plain "
                             f"data; tags that build Python objects are never executed)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        loc = f"{mark.line + 1}:{mark.column + 1}:" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise GraphSpecError(f"{path}:{loc} malformed YAML: {problem}") from None


def save_spec(spec: dict, path: str | os.PathLike) -> Path:
    """Write ``spec`` as YAML or JSON (by extension) atomically: a temporary file, then a rename."""
    path = Path(path)
    kind = _fmt(path)
    if kind == "json":
        text = json.dumps(spec, indent=2) + "\n"
    else:
        text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None)
    atomic_write_text(path, text)
    return path
