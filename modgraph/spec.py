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
import re
from pathlib import Path

import networkx as nx
import yaml

from .errors import GraphSpecError
from .io import atomic_write_text
from .plaindata import Policy, first_fault

FORMAT = "modgraph/1"
TOP_KEYS = ("format", "name", "outputs", "nodes", "edges")
EDGE_KEYS = ("attention", "threshold", "score", "learnable", "weight", "temperature", "heads", "hidden", "level")
SCALARS = (str, int, float, bool, type(None))


MAX_DEPTH = 64  # a spec nests a few levels; deeper data is refused rather than recursed into
MAX_ITEMS = 1_000_000  # items of one value with YAML aliases expanded (an alias bomb expands to billions)


LOOP_FROM_FILE = " (a YAML alias inside its own anchor, such as '&a {y: *a}')"


def _check_data(value, where: str, loop_hint: str = LOOP_FROM_FILE, finite: bool = False) -> None:
    """Spec values are plain data: scalars, lists and string-keyed dicts, without loops, at most ``MAX_DEPTH`` deep
    and ``MAX_ITEMS`` large (shared parts, YAML aliases, counted each time they appear; each is walked once, so an
    alias bomb is refused in linear time); with ``finite``, no NaN or infinity (a JSON file has neither)."""
    fault = first_fault(value, Policy(leaf=lambda v: isinstance(v, SCALARS), key=lambda k: isinstance(k, str),
                                      finite=finite, max_depth=MAX_DEPTH, max_items=MAX_ITEMS))
    if fault is None:
        return
    at = fault.where(where, dotted=True)
    if fault.kind == "key":
        raise GraphSpecError(f"{at}: keys must be strings, got {fault.value!r}")
    if fault.kind == "loop":
        raise GraphSpecError(f"{at}: the value contains itself{loop_hint}; spec data cannot loop")
    if fault.kind == "depth":
        raise GraphSpecError(f"{at}: the value is nested more than {MAX_DEPTH} levels deep")
    if fault.kind == "size":
        raise GraphSpecError(f"{at}: the value holds {fault.size:,} items once YAML aliases are expanded; a spec "
                             f"value holds at most {MAX_ITEMS:,}")
    if fault.kind == "nonfinite":
        raise GraphSpecError(f"{at}: expected a finite number, got {fault.value!r} (JSON has no NaN or infinity; "
                             f"YAML writes .nan and .inf)")
    raise GraphSpecError(f"{at}: expected plain data (number, string, bool, list, dict), got "
                         f"{type(fault.value).__name__}")


def _is_numpy_scalar(value) -> bool:
    return type(value).__module__ == "numpy" and getattr(value, "shape", None) == () and hasattr(value, "item")


def plain(value, _memo: dict | None = None, _depth: int = 0, lists: bool = False):
    """``value`` with numpy scalars (``np.int64(4)``, ``np.float32(0.5)``, ``np.bool_``, ...) made Python ones, in
    lists, tuples and dicts (keys too); anything else is returned as it is (plain data is checked elsewhere). Shared
    parts are converted once and stay shared; a loop or absurd nesting is left as it is, for the checks to name.
    ``lists``: tuples become lists too, as a YAML or JSON file gives them back."""
    if _is_numpy_scalar(value):
        return value.item()
    if not isinstance(value, (dict, list, tuple)) or _depth >= MAX_DEPTH:
        return value
    memo = {} if _memo is None else _memo
    if id(value) in memo:
        return memo[id(value)]
    memo[id(value)] = value  # while converting: a loop back here keeps the original
    if isinstance(value, dict):  # keys too: a node named np.str_("y") is a dict key of the spec
        result = {plain(k, memo, _depth + 1): plain(v, memo, _depth + 1, lists) for k, v in value.items()}
    elif isinstance(value, list) or lists:
        result = [plain(v, memo, _depth + 1, lists) for v in value]
    else:
        result = tuple(plain(v, memo, _depth + 1) for v in value)
    memo[id(value)] = result
    return result


def plain_attributes(g: nx.DiGraph) -> None:
    """Make the numpy scalars among ``g``'s graph, node and edge attributes Python ones, in place."""
    for attrs in [g.graph, *(a for _, a in g.nodes(data=True)), *(a for _, _, a in g.edges(data=True))]:
        for k, v in attrs.items():
            if _is_numpy_scalar(v) or isinstance(v, (list, tuple, dict)):
                attrs[k] = plain(v)


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
            if not isinstance(end, str):
                raise GraphSpecError(f"{where}: source and target must be node names (strings), got {u!r} -> {v!r}")
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
    if not isinstance(g, nx.DiGraph) or g.is_multigraph():  # an undirected graph would lose its edges' direction
        hint = "; for a network use net.to_dict()" if hasattr(g, "to_dict") and hasattr(g, "graph") else ""
        raise GraphSpecError(f"graph_to_dict: expected a networkx.DiGraph, got {type(g).__name__}{hint}")
    spec: dict = {"format": FORMAT}
    extra = [k for k in g.graph if k not in ("name", "outputs")]
    if extra:  # a spec has no place for them: refused, not silently left out of the file
        raise GraphSpecError(f"graph attribute(s) {', '.join(map(repr, extra))} cannot be saved in a spec (it keeps "
                             f"'name' and 'outputs'); remove them from the graph, or keep them elsewhere")
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
    return plain(spec, lists=True)  # what a file gives back: Python scalars, lists for tuples


def _fmt(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "json"
    raise GraphSpecError(f"{path}: unknown spec file type {suffix or '(none)'!r}; use .yaml, .yml or .json")


class _DuplicateKey(Exception):
    def __init__(self, key, line: int | None = None, column: int | None = None, first: int | None = None,
                 where: str = ""):
        super().__init__(key)
        self.key, self.line, self.column, self.first, self.where = key, line, column, first, where


class _SpecDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that quotes what :class:`_SpecLoader` would not read back as a string."""


class _SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no python tags) that refuses a key given twice in one mapping instead of keeping the last.

    Keys brought in by a merge (``<<: *base``) may be overridden, as YAML intends."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                mark = key_node.start_mark
                if first is not None:
                    raise _DuplicateKey(key, mark.line + 1, mark.column + 1, first)
                seen[key] = mark.line + 1
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads a number like 1e-2 (no dot) as the string '1e-2'; JSON and YAML 1.2 read a float. Spec
# files read it as a float, and write a string that looks like one quoted, so a node named "1e3" stays a string.
_FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")
for _cls in (_SpecLoader, _SpecDumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_WITHOUT_DOT, list("-+0123456789"))


def _refuse_duplicates(pairs):
    """``object_pairs_hook`` of :func:`json.loads`: a key given twice in one object is an error, not 'last wins'."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key, where=f"an object with keys {', '.join(repr(k) for k, _ in pairs)}")
        seen.add(key)
    return dict(pairs)


_JSON_WS = " \t\n\r"


def _json_containers(text: str) -> list:
    """Every object and array of (valid) JSON ``text``, in document order: ``(path, [(key or index, start), ...])``
    with the index in ``text`` where each member starts (its key's quote, or the item).

    Walks the text with the decoder's own string and value scanners, so positions are exact."""
    decoder = json.JSONDecoder()
    containers: list = []

    def skip(i):
        while i < len(text) and text[i] in _JSON_WS:
            i += 1
        return i

    def walk(i, path):
        i = skip(i)
        if text[i] not in "{[":
            return decoder.scan_once(text, i)[1]
        members: list = []
        containers.append((path, members))
        close = "}" if text[i] == "{" else "]"
        i = skip(i + 1)
        if text[i] == close:
            return i + 1
        n = 0
        while True:
            if close == "}":
                start = i
                key, i = json.decoder.scanstring(text, i + 1)
                members.append((key, start))
                i = walk(skip(i) + 1, f"{path}.{key}" if path else key)  # past the ':'
            else:
                members.append((n, i))
                i, n = walk(i, f"{path}[{n}]"), n + 1
            i = skip(i)
            if text[i] == close:
                return i + 1
            i = skip(i + 1)  # past the ','

    walk(0, "")
    return containers


def _locate_json_duplicate(text: str):
    """The first key given twice in one object of (valid) JSON ``text``: ``(key, index, index of the first, path)``."""
    found = []
    for path, members in _json_containers(text):
        seen: dict = {}
        for key, start in members:
            if isinstance(key, str) and key in seen:
                found.append((key, start, seen[key], path))
                break
            seen[key] = start
    return min(found, key=lambda f: f[1]) if found else None


def _member_lines(text: str, kind: str) -> tuple[list, list]:
    """The lines (1-based) where the spec's nodes and its edges start, in file order (error path only)."""
    if kind == "json":
        containers = dict(reversed(_json_containers(text)))  # the first container of each path
        return ([_line_col(text, start)[0] for _, start in containers.get("nodes", [])],
                [_line_col(text, start)[0] for _, start in containers.get("edges", [])])
    root = yaml.compose(text, Loader=_SpecLoader)
    nodes, edges = [], []
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "nodes" and isinstance(value, yaml.MappingNode) and not nodes:
                nodes = [k.start_mark.line + 1 for k, _ in value.value]
            if key.value == "edges" and isinstance(value, yaml.SequenceNode) and not edges:
                edges = [item.start_mark.line + 1 for item in value.value]
    return nodes, edges


def locate(path, spec, message: str) -> str:
    """``message`` (an error about ``spec``, read from ``path``) with the line of the node or edge it names: ``node
    'h': ...``, ``edge 'u' -> 'v': ...`` or ``edges[3]: ...`` become ``path:LINE: ...``; else ``path: ...``."""
    rest = message[len(f"{path}: "):] if message.startswith(f"{path}: ") else message
    try:
        text = Path(path).read_text(encoding="utf-8")
        node_lines, edge_lines = _member_lines(text, _fmt(Path(path)))
    except Exception:  # noqa: BLE001 - only a better message is at stake; the error itself is raised anyway
        return f"{path}: {rest}"
    where = {}
    names = list(spec.get("nodes") or {}) if isinstance(spec, dict) and isinstance(spec.get("nodes"), dict) else []
    if len(names) == len(node_lines):
        where.update({f"node {name!r}": line for name, line in zip(names, node_lines)})
    edges = spec.get("edges") if isinstance(spec, dict) and isinstance(spec.get("edges"), list) else []
    if len(edges) == len(edge_lines):
        for i, (edge, line) in enumerate(zip(edges, edge_lines)):
            where[f"edges[{i}]"] = line
            ends = (edge.get("source"), edge.get("target")) if isinstance(edge, dict) else (
                tuple(edge[:2]) if isinstance(edge, (list, tuple)) and len(edge) >= 2 else None)
            if ends is not None:
                where.setdefault(f"edge {ends[0]!r} -> {ends[1]!r}", line)
    for name, line in where.items():
        if rest.startswith(name) and rest[len(name):len(name) + 1] in (":", " ", ""):
            return f"{path}:{line}: {rest}"
    return f"{path}: {rest}"


def _line_col(text: str, index: int) -> tuple[int, int]:
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def load_spec(path: str | os.PathLike) -> dict:
    """Read a spec dict from a YAML (``safe_load``) or JSON file; errors name the file, line and column.

    A key given twice in one mapping (two ``h:`` nodes, two ``edges:`` blocks) is an error, not 'the last wins'; so is
    a file that holds no mapping (empty, a list, a number)."""
    path = Path(path)
    spec = _read_spec(path)
    if not isinstance(spec, dict):
        got = "nothing (an empty file)" if spec is None else f"{type(spec).__name__} {spec!r:.40}"
        raise GraphSpecError(f"{path}: a spec is a mapping with keys {', '.join(TOP_KEYS)}, got {got}")
    return spec


def _read_spec(path: Path):
    """The data of a YAML or JSON spec file, whatever it is (see :func:`load_spec`)."""
    kind = _fmt(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphSpecError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise GraphSpecError(f"{path}: cannot read spec file: {err}") from None
    if kind == "json":
        try:
            return json.loads(text, object_pairs_hook=_refuse_duplicates)
        except json.JSONDecodeError as err:
            raise GraphSpecError(f"{path}:{err.lineno}:{err.colno}: malformed JSON: {err.msg}") from None
        except RecursionError:
            raise GraphSpecError(f"{path}: the JSON is nested too deeply to be a spec") from None
        except _DuplicateKey as dup:
            try:
                found = _locate_json_duplicate(text)
            except (RecursionError, ValueError, IndexError):  # cannot happen for text json.loads read; be safe
                found = None
            if found is None:
                raise GraphSpecError(f"{path}: duplicate key {dup.key!r} in {dup.where}") from None
            key, index, first, where = found
            line, col = _line_col(text, index)
            inside = f" in {where!r}" if where else " at the top level"
            raise GraphSpecError(f"{path}:{line}:{col}: duplicate key {key!r}{inside} (first at line "
                                 f"{_line_col(text, first)[0]}); a key may appear once in an object") from None
    try:
        return yaml.load(text, Loader=_SpecLoader)
    except _DuplicateKey as dup:
        raise GraphSpecError(f"{path}:{dup.line}:{dup.column}: duplicate key {dup.key!r} (first at line {dup.first}); "
                             f"a key may appear once in a mapping") from None
    except RecursionError:
        raise GraphSpecError(f"{path}: the YAML is nested too deeply to be a spec") from None
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
    """Write ``spec`` as YAML or JSON (by extension) atomically: a temporary file, then a rename.

    Numpy scalars (``np.int64(4)``) are written as the Python numbers they hold; any other value that is not plain
    data (an object, a key that is not a string, a value that contains itself; in JSON also NaN or infinity) raises
    :class:`GraphSpecError` naming it, and nothing is written; so does a spec whose structure
    :func:`graph_from_dict` refuses (no ``nodes`` mapping, unknown top-level keys, an edge that is not two names).
    """
    path = Path(path)
    kind = _fmt(path)
    spec = plain(spec)
    # names a value that is not data: json would write the key 1 as "1", yaml a loop as an anchor inside itself,
    # and json.dumps would say "Out of range float values" without saying where
    _check_data(spec, str(path), loop_hint=" (a list or dict inside itself)", finite=kind == "json")
    graph_from_dict(spec, str(path))  # a spec that load_spec + from_dict would refuse is not written either
    try:
        if kind == "json":
            text = json.dumps(spec, indent=2, allow_nan=False) + "\n"
        else:
            text = yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, default_flow_style=None)
    except ValueError as err:  # JSON's NaN and infinity, which _check_data names first
        raise GraphSpecError(f"{path}: cannot write the spec: {err} (JSON has no NaN or infinity; YAML writes "
                             f".nan and .inf)") from None
    except (TypeError, RecursionError, yaml.YAMLError) as err:
        raise GraphSpecError(f"{path}: cannot write the spec: {err}") from None
    atomic_write_text(path, text)
    return path
