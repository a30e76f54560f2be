import json

import networkx as nx
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modgraph as mg

from .helpers import mlp_graph, random_dag


def test_dict_round_trip():
    for g in (mlp_graph(), random_dag(10, 0.3, 1)):
        d = mg.ModuleGraph(g).to_dict()
        assert mg.ModuleGraph.from_dict(d).to_dict() == d
        assert json.loads(json.dumps(d)) == d  # plain data


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_file_round_trip_keeps_the_network(tmp_path, suffix):
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph())
    path = net.save_spec(tmp_path / f"arch{suffix}")
    other = mg.ModuleGraph.from_file(path)
    assert other.to_dict() == net.to_dict()
    other.load_state_dict(net.state_dict())
    x = torch.randn(3, 5)
    assert torch.equal(net(x), other(x))
    assert [p.name for p in tmp_path.iterdir()] == [f"arch{suffix}"]  # no temporary file left behind


def test_yaml_spec_as_users_write_it(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_text(
        "nodes:\n"
        "  x: {op: input, features: 4}\n"
        "  a: {op: linear, out_features: 8, activation: relu}\n"
        "  b: {op: linear, out_features: 8, activation: tanh}\n"
        "  m: {op: identity}\n"
        "  y: {op: linear, out_features: 2}\n"
        "edges:\n"
        "  - [x, a]\n"
        "  - [x, b]\n"
        "  - {source: a, target: m, attention: softmax}\n"
        "  - {source: b, target: m, attention: softmax}\n"
        "  - [m, y]\n")
    net = mg.ModuleGraph.from_file(path)
    assert net(torch.randn(6, 4)).shape == (6, 2)
    assert set(net.edge_weights()) == {("a", "m"), ("b", "m")}


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("nodes:\n  x: {op: input, features: 4\n  y: [\n")
    with pytest.raises(mg.GraphSpecError, match=r"bad\.yaml:\d+:\d+: malformed YAML"):
        mg.ModuleGraph.from_file(path)


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"nodes": {\n  "x": {"op": "input",, }\n}')
    with pytest.raises(mg.GraphSpecError, match=r"bad\.json:2:\d+: malformed JSON"):
        mg.ModuleGraph.from_file(path)


def test_yaml_python_tags_are_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"nodes: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(mg.GraphSpecError, match=r"evil\.yaml:1:\d+: refused"):
        mg.ModuleGraph.from_file(path)
    assert not marker.exists()


def test_spec_errors_name_the_file(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_text("nodes:\n  x: {op: input, features: 4}\n  y: {op: linaer}\nedges: [[x, y]]\n")
    with pytest.raises(mg.GraphSpecError, match=r"arch\.yaml.*unknown op 'linaer'"):
        mg.ModuleGraph.from_file(path)
    with pytest.raises(mg.GraphSpecError, match="no such spec file"):
        mg.ModuleGraph.from_file(tmp_path / "missing.yaml")
    with pytest.raises(mg.GraphSpecError, match="unknown spec file type '.txt'"):
        mg.ModuleGraph.from_file(tmp_path / "arch.txt")


@pytest.mark.parametrize("spec, message", [
    ([], "a spec is a mapping"),
    ({"nodes": {}}, "'nodes' must be a non-empty mapping"),
    ({"nodes": {"x": {"op": "input", "features": 2}}, "edges": {}}, "'edges' must be a list"),
    ({"nodes": {"x": 3}}, r"node 'x': attributes must be a mapping"),
    ({"nodes": {"x": {"op": "input", "features": 2}}, "edges": [["x", "q"]]}, "names unknown node 'q'"),
    ({"nodes": {"x": {"op": "input", "features": 2}}, "edges": [{"source": "x"}]}, r"edges\[0\]: an edge is"),
    ({"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}},
      "edges": [{"source": "x", "target": "y", "atention": "softmax"}]}, r"unknown setting\(s\) 'atention'"),
    ({"nodes": {"x": {"op": "input", "features": 2}}, "extra": 1}, r"unknown key\(s\) 'extra'"),
    ({"format": "modgraph/9", "nodes": {"x": {"op": "input"}}}, "format 'modgraph/9' is not supported"),
    ({"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}}, "edges": [["x", "y"]],
      "outputs": ["y", "y"]},
     r"'outputs' names node\(s\) 'y' more than once"),
    ({"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}},
      "edges": [{"source": "x", "target": "y", "attention": "softmax"}]},
     r"edge 'x' -> 'y': softmax over a single attended in-edge is always 1"),
    ({"nodes": {"x": {"op": "input", "features": 2}, "z": {"op": "relu"}, "y": {"op": "linear", "out_features": 2}},
      "edges": [["x", "z"], {"source": "x", "target": "y", "attention": "sparsemax"}, ["z", "y"]]},
     r"edge 'x' -> 'y': sparsemax over a single attended in-edge is always 1"),
])
def test_bad_spec_dicts(spec, message):
    with pytest.raises(mg.GraphSpecError, match=message):
        mg.ModuleGraph.from_dict(spec)


# --- property: any dict either builds a network or raises GraphSpecError, never another exception type ----------
_names = st.sampled_from(["x", "h", "y", "z", "m"])
_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(-2, 2), st.just(float("nan")),
                    st.sampled_from(["input", "linear", "relu", "concat", "softmax", "sigmoid", "sparsemax",
                                     "dropout", "layer_norm", "batch_norm", "sum", "neuron", "branch", "dot"]))
_node = st.dictionaries(st.sampled_from(["op", "features", "out_features", "activation", "p", "merge",
                                         "in_features", "bias", "eps"]), _values, max_size=4)
_edge = st.one_of(
    st.tuples(_names, _names).map(list),
    st.fixed_dictionaries({"source": _names, "target": _names},
                          optional={k: _values for k in ("attention", "threshold", "score", "learnable", "weight",
                                                         "temperature", "heads", "hidden", "level")}),
    _values,
)
_spec = st.fixed_dictionaries(
    {"nodes": st.one_of(st.dictionaries(_names, _node, max_size=5), _values)},
    optional={"edges": st.one_of(st.lists(_edge, max_size=6), _values), "outputs": st.one_of(
        st.lists(_names, max_size=2), _values)},
)


@st.composite
def _mutated_valid_spec(draw, mutate=True):
    """A valid chain with merges (one attention kind per node's in-edges, a concat merge where their widths
    differ), then, with ``mutate``, maybe one attribute replaced by an arbitrary value."""
    width = draw(st.integers(1, 6))
    nodes = {"x": {"op": "input", "features": width}}
    edges = []
    widths = {"x": width}
    for i in range(draw(st.integers(1, 4))):
        name = f"n{i}"
        op = draw(st.sampled_from(["linear", "relu", "tanh", "dropout", "layer_norm", "concat", "identity"]))
        nodes[name] = {"op": op, **({"out_features": draw(st.integers(1, 6))} if op == "linear" else {})}
        sources = draw(st.lists(st.sampled_from(list(widths)), min_size=1, max_size=2, unique=True))
        kind = draw(st.sampled_from(["sigmoid", "softmax", "sparsemax"]))  # attended in-edges must agree on it
        attended = [src for src in sources if draw(st.booleans())]
        if len(attended) == 1 and not (op == "linear" and len(sources) == 1):
            kind = "sigmoid"  # one attended branch: softmax or sparsemax over it would always be 1 (refused)
        for src in sources:
            edges.append({"source": src, "target": name, **({"attention": kind} if src in attended else {})})
        in_widths = [widths[u] for u in sources]
        concat = op == "concat" or len(set(in_widths)) > 1
        if concat and op != "concat":
            nodes[name]["merge"] = "concat"  # a sum merge needs equal widths
        widths[name] = nodes[name].get("out_features", sum(in_widths) if concat else in_widths[0])
    spec = {"nodes": nodes, "edges": edges}
    if mutate and draw(st.booleans()):
        target = draw(st.sampled_from([nodes[n] for n in nodes] + edges))
        target[draw(st.sampled_from(["op", "features", "out_features", "attention", "threshold", "merge", "heads",
                                     "score", "level", "in_features", "p"]))] = draw(_values)
    return spec


def _expected_widths(spec) -> dict:
    """Each node's output width worked out by hand from an unmutated spec: inputs their features, linear its
    out_features, concat (op or merge) the sum of the in-widths, any other op its (common) in-width."""
    widths = {}
    for name, attrs in spec["nodes"].items():
        ins = [widths[e["source"]] for e in spec["edges"] if e["target"] == name]
        if attrs["op"] == "input":
            widths[name] = attrs["features"]
        elif attrs["op"] == "linear":
            widths[name] = attrs["out_features"]
        elif attrs["op"] == "concat" or attrs.get("merge") == "concat":
            widths[name] = sum(ins)
        else:
            widths[name] = ins[0]
    return widths


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_spec, _mutated_valid_spec()))
def test_any_dict_builds_or_raises_spec_error(spec):
    try:
        net = mg.ModuleGraph.from_dict(spec)
    except mg.GraphSpecError:
        return
    assert mg.ModuleGraph.from_dict(net.to_dict()).to_dict() == net.to_dict()
    feeds = {n: torch.randn(3, net.plan.widths[n]) for n in net.inputs}
    out = net(feeds)
    for y in (out.values() if isinstance(out, dict) else [out]):
        assert y.shape[0] == 3


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_valid_spec(mutate=False))
def test_unmutated_specs_build(spec):
    """The base specs of ``_mutated_valid_spec`` are valid, so the property above also meets networks that build
    and run (it would pass vacuously if every generated dict raised GraphSpecError)."""
    net = mg.ModuleGraph.from_dict(spec)
    assert list(net.graph.nodes) == list(spec["nodes"])
    assert sorted(net.graph.edges) == sorted((e["source"], e["target"]) for e in spec["edges"])
    widths = _expected_widths(spec)
    assert {n: net.plan.widths[n] for n in widths} == widths
    out = net(torch.randn(3, spec["nodes"]["x"]["features"]))
    outs = out if isinstance(out, dict) else {net.outputs[0]: out}
    assert list(outs) == net.outputs and net.outputs
    for name, y in outs.items():
        assert y.shape == (3, widths[name])


def test_yaml_dump_of_spec_is_plain(tmp_path):
    """The spec dumps with ``yaml.safe_dump`` (plain data only: it raises on anything else), and the plain YAML
    loads back to the same dict and builds the same network."""
    torch.manual_seed(0)
    for g in (mlp_graph(), random_dag(10, 0.3, 1)):
        net = mg.ModuleGraph(g)
        text = yaml.safe_dump(net.to_dict(), sort_keys=False)
        loaded = yaml.safe_load(text)
        assert loaded == net.to_dict()
        other = mg.ModuleGraph.from_dict(loaded)
        assert list(other.graph.nodes(data=True)) == list(net.graph.nodes(data=True))
        assert list(other.graph.edges(data=True)) == list(net.graph.edges(data=True))
        assert other.plan.widths == net.plan.widths and other.outputs == net.outputs
        other.load_state_dict(net.state_dict())  # the same parameters, by name and shape
        net.eval(), other.eval()
        feeds = {n: torch.randn(4, net.plan.widths[n]) for n in net.inputs}
        torch.testing.assert_close(other(feeds), net(feeds))


def test_shipped_example_specs_build():
    from pathlib import Path

    specs = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
    assert specs
    for path in specs:
        net = mg.ModuleGraph.from_file(path)
        assert mg.ModuleGraph.from_dict(net.to_dict()).to_dict() == net.to_dict()


# --- duplicate keys, loops and odd values in spec files -----------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("nodes:\n  x: {op: input, features: 4}\n  h: {op: linear, out_features: 8}\n  h: {op: linear, out_features: 9}\n"
     "  y: {op: linear, out_features: 2}\nedges: [[x, h], [h, y]]\n",
     r"dup\.yaml:4:3: duplicate key 'h' \(first at line 3\)"),
    ("nodes:\n  x: {op: input, features: 4}\n  y: {op: linear, out_features: 3, out_features: 7}\nedges: [[x, y]]\n",
     r"dup\.yaml:3:36: duplicate key 'out_features'"),
    ("nodes:\n  x: {op: input, features: 4}\n  y: {op: linear, out_features: 2}\nedges: [[x, y]]\nedges: []\n",
     r"dup\.yaml:5:1: duplicate key 'edges' \(first at line 4\)"),
])
def test_duplicate_yaml_keys_are_refused_with_file_line_and_column(tmp_path, text, message):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(mg.GraphSpecError, match=message):
        mg.ModuleGraph.from_file(path)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("nodes:\n  x: {op: input, features: 4}\n  h: &h {op: linear, out_features: 8, activation: relu}\n"
                    "  y: {<<: *h, out_features: 2}\nedges: [[x, h], [h, y]]\n")
    net = mg.ModuleGraph.from_file(path)
    assert net.graph.nodes["y"] == {"op": "linear", "out_features": 2, "activation": "relu"}


@pytest.mark.parametrize("text, message", [
    ('{"nodes": {\n  "x": {"op": "input", "features": 4},\n  "y": {"op": "linear", "out_features": 3,\n'
     '        "out_features": 7}},\n "edges": [["x", "y"]]}\n',
     r"dup\.json:4:9: duplicate key 'out_features' in 'nodes\.y' \(first at line 3\)"),
    ('{"nodes": {"x": {"op": "input", "features": 4}, "y": {"op": "linear", "out_features": 3}},\n'
     ' "edges": [["x", "y"]],\n "edges": []}\n', r"dup\.json:3:2: duplicate key 'edges' at the top level"),
    ('{"nodes": {"x": {"op": "input", "features": 4}, "y": {"op": "relu"}},\n'
     ' "edges": [{"source": "x", "target": "y"}, {"source": "x", "target": "y", "weight": 1, "weight": 2}]}\n',
     r"dup\.json:2:88: duplicate key 'weight' in 'edges\[1\]'"),
])
def test_duplicate_json_keys_are_refused_with_file_line_and_column(tmp_path, text, message):
    path = tmp_path / "dup.json"
    path.write_text(text)
    with pytest.raises(mg.GraphSpecError, match=message):
        mg.ModuleGraph.from_file(path)


def test_a_self_referencing_yaml_alias_is_named(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("nodes: &a\n  x: {op: input, features: 2}\n  y: *a\n")
    with pytest.raises(mg.GraphSpecError, match=r"loop\.yaml: node 'y'.*contains itself"):
        mg.ModuleGraph.from_file(path)
    spec = {"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}}, "edges": [["x", "y"]]}
    spec["nodes"]["y"]["extra"] = [spec["nodes"]["y"]]  # the same loop built in Python
    with pytest.raises(mg.GraphSpecError, match=r"node 'y'.extra\[0\]: the value contains itself"):
        mg.ModuleGraph.from_dict(spec)


@pytest.mark.parametrize("suffix, text", [(".json", "[" * 100_000 + "]" * 100_000),
                                          (".yaml", "nodes: " + "[" * 100_000 + "]" * 100_000)])
def test_absurdly_nested_files_are_named(tmp_path, suffix, text):
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(mg.GraphSpecError, match=r"deep\.(json|yaml): the (JSON|YAML) is nested too deeply"):
        mg.ModuleGraph.from_file(path)


@pytest.mark.parametrize("edge", [{"source": ["x"], "target": "y"}, {"source": "x", "target": {"y": 1}}, [["x"], "y"]])
def test_edge_ends_that_are_not_names(edge):
    spec = {"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}}, "edges": [["x", "y"], edge]}
    with pytest.raises(mg.GraphSpecError, match=r"spec: edges\[1\]: source and target must be node names \(strings\)"):
        mg.ModuleGraph.from_dict(spec)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_numpy_scalar_attributes_are_written_as_numbers(tmp_path, suffix):
    import networkx as nx
    import numpy as np

    g = nx.DiGraph()
    g.add_node("x", op="input", features=np.int64(4))
    g.add_node("h", op="linear", out_features=np.int64(4), activation=np.str_("relu"))
    g.add_node("d", op="dropout", p=np.float64(0.25))
    g.add_node("y", op="linear", out_features=np.int32(2), bias=np.bool_(True))
    g.add_edge("x", "h", learnable=np.bool_(True), weight=np.float64(0.5))
    g.add_edges_from([("h", "d")])
    g.add_edge("d", "y", attention="sigmoid", threshold=np.float64(0.125))
    g.graph["outputs"] = [np.str_("y")]
    net = mg.ModuleGraph(g)
    path = net.save_spec(tmp_path / f"arch{suffix}")
    other = mg.ModuleGraph.from_file(path)
    assert other.to_dict() == net.to_dict()
    assert other.graph.nodes["h"]["out_features"] == 4 and type(other.graph.nodes["h"]["out_features"]) is int
    assert type(g.nodes["h"]["out_features"]) is np.int64  # the caller's graph is left as it was
    mg.save_spec({"nodes": {"x": {"op": "input", "features": np.int64(3)}}}, tmp_path / f"direct{suffix}")
    assert mg.load_spec(tmp_path / f"direct{suffix}")["nodes"]["x"]["features"] == 3


def test_saving_a_value_that_is_not_data_names_it(tmp_path):
    with pytest.raises(mg.GraphSpecError, match=r"a\.yaml\.nodes\.x\.features: expected plain data"):
        mg.save_spec({"nodes": {"x": {"op": "input", "features": torch.tensor(3)}}}, tmp_path / "a.yaml")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("spec, pattern", [
    ({"nodes": 5}, r"'nodes' must be a non-empty mapping"),
    ({"nodes": {"x": {"op": "input", "features": 2}}, "edge": []}, r"unknown key\(s\) 'edge'"),
    ([{"x": 1}], r"a spec is a mapping"),
])
def test_saving_a_spec_that_could_not_be_loaded_writes_nothing(tmp_path, spec, pattern):
    with pytest.raises(mg.GraphSpecError, match=r"a\.json: " + pattern):
        mg.save_spec(spec, tmp_path / "a.json")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, text, got", [
    ("empty.yaml", "", r"nothing \(an empty file\)"),
    ("comment.yaml", "# only a comment\n", r"nothing \(an empty file\)"),
    ("list.yaml", "- x\n- y\n", r"list \['x', 'y'\]"),
    ("number.json", "5", "int 5"),
])
def test_load_spec_of_a_file_that_holds_no_mapping_names_it(tmp_path, name, text, got):
    """load_spec is typed -> dict: it returned None for an empty file and a list for a list."""
    (tmp_path / name).write_text(text)
    with pytest.raises(mg.GraphSpecError, match=rf"{name}: a spec is a mapping with keys format, .*, got {got}$"):
        mg.load_spec(tmp_path / name)


def test_a_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path):
    """Nine levels of ten aliases each are 10**9 items once expanded; the check visits each shared part once."""
    levels = ["&j1 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(2, 10):
        levels.append(f"&j{i} [{levels[-1]}" + f", *j{i - 1}" * 9 + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("nodes:\n  x: {op: input, features: 2}\n  y:\n    op: relu\n    junk: " + levels[-1] +
                    "\nedges: [[x, y]]\n")
    with pytest.raises(mg.GraphSpecError, match=r"bomb\.yaml:3: node 'y'.*holds 1,111,111,\d+ items once YAML aliases "
                                                r"are expanded"):
        mg.ModuleGraph.from_file(path)
    shared = [1, 2]  # sharing itself is fine: a part used twice is data, not a loop
    spec = {"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}}, "edges": [["x", "y"]],
            "name": [shared, shared]}
    assert mg.ModuleGraph.from_dict(spec).graph.graph["name"] == [[1, 2], [1, 2]]


def test_yaml_numbers_in_exponent_form_without_a_dot_are_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads 1e-2 as the string '1e-2'; a spec file reads it as JSON does, a float. A name that
    looks like such a number is written quoted, so it stays a string."""
    path = tmp_path / "sci.yaml"
    path.write_text("nodes:\n  x: {op: input, features: 3}\n  y: {op: linear, out_features: 2}\n"
                    "edges:\n  - {source: x, target: y, attention: sigmoid, threshold: 1e-2, temperature: 2E0}\n")
    net = mg.ModuleGraph.from_file(path)
    (edge,) = net.to_dict()["edges"]
    assert edge["threshold"] == 0.01 and edge["temperature"] == 2.0
    g = mlp_graph()
    g = nx.relabel_nodes(g, {"h": "1e3"})
    net = mg.ModuleGraph(g)
    net.save_spec(tmp_path / "named.yaml")
    assert "'1e3'" in (tmp_path / "named.yaml").read_text()
    assert mg.ModuleGraph.from_file(tmp_path / "named.yaml").to_dict() == net.to_dict()


def test_numpy_string_names_and_tuples_come_back_from_a_file_as_they_went_in(tmp_path):
    """to_dict gives what a file gives back: a node named np.str_ is a str key (it could not be written as YAML),
    a tuple of outputs a list (the dicts before and after a file differed)."""
    import numpy as np

    g = nx.DiGraph(outputs=("y",))
    g.add_node("x", op="input", features=3)
    g.add_node(np.str_("y"), op="linear", out_features=2)
    g.add_edge("x", np.str_("y"))
    spec = mg.ModuleGraph(g).to_dict()
    assert spec["outputs"] == ["y"] and all(type(k) is str for k in spec["nodes"])
    for suffix in (".yaml", ".json"):
        mg.ModuleGraph(g).save_spec(tmp_path / f"a{suffix}")
        assert mg.ModuleGraph.from_file(tmp_path / f"a{suffix}").to_dict() == spec


def test_building_errors_name_the_source_too():
    """Not only the spec's data: an unknown op (e.g. a custom op not registered in this process) names the file."""
    spec = {"nodes": {"x": {"op": "input", "features": 3}, "y": {"op": "linaer"}}, "edges": [["x", "y"]]}
    with pytest.raises(mg.GraphSpecError, match=r"^arch\.yaml: node 'y': unknown op 'linaer'"):
        mg.ModuleGraph.from_dict(spec, source="arch.yaml")
    with pytest.raises(mg.GraphSpecError, match=r"^node 'y': unknown op 'linaer'"):  # no source given: none shown
        mg.ModuleGraph.from_dict(spec)


@pytest.mark.parametrize("temperature", [float("inf"), float("nan")])
def test_a_temperature_must_be_finite(temperature):
    g = mlp_graph()
    g.edges["h", "y"].update(attention="sparsemax", temperature=temperature)
    with pytest.raises(mg.GraphSpecError, match=r"edge 'h' -> 'y': temperature must be a finite number > 0, got"):
        mg.ModuleGraph(g)
    with pytest.raises(ValueError, match=r"temperature must be a finite number > 0, got"):
        mg.Gate("softmax", temperature=temperature)


YAML_SPEC = """\
nodes:
  x: {op: input, features: 3}
  h: {op: linaer, out_features: 4}
  y:
    op: linear
    out_features: 2
edges:
  - {source: x, target: h}
  - [h, y]
"""


def test_a_fault_in_a_spec_file_names_the_line_of_its_node_or_edge(tmp_path):
    """Faults found after the file is read (when the spec is built) name the line of the node or edge at fault."""
    path = tmp_path / "arch.yaml"
    path.write_text(YAML_SPEC)
    with pytest.raises(mg.GraphSpecError, match=rf"^{path}:3: node 'h': unknown op 'linaer'"):
        mg.ModuleGraph.from_file(path)
    fixed = YAML_SPEC.replace("linaer", "linear")
    path.write_text(fixed.replace("[h, y]", "{source: h, target: y, attention: sigmoid, threshold: 2}"))
    with pytest.raises(mg.GraphSpecError, match=rf"^{path}:9: edge 'h' -> 'y': threshold must be"):
        mg.ModuleGraph.from_file(path)
    path.write_text(fixed.replace("[h, y]", "[h]"))
    with pytest.raises(mg.GraphSpecError, match=rf"^{path}:9: edges\[1\]: "):
        mg.ModuleGraph.from_file(path)
    path.write_text(fixed + "outputs: [nowhere]\n")  # names no node or edge of the file: the file alone
    with pytest.raises(mg.GraphSpecError, match=rf"^{path}: [^0-9]"):
        mg.ModuleGraph.from_file(path)


def test_a_fault_in_a_json_spec_file_names_the_line_of_its_node_or_edge(tmp_path):
    spec = yaml.safe_load(YAML_SPEC.replace("linaer", "linear"))
    spec["edges"][1] = {"source": "h", "target": "y", "attention": "softmax", "temperature": -1}
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(spec, indent=2))
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if '"temperature": -1' in t)
    start = max(i for i, t in enumerate(path.read_text().splitlines()[:line], 1) if t.strip() == "{")
    with pytest.raises(mg.GraphSpecError, match=rf"^{path}:{start}: edge 'h' -> 'y': temperature must be"):
        mg.ModuleGraph.from_file(path)
    spec["edges"][1] = ["h", "y"]
    spec["nodes"]["y"]["out_features"] = "two"
    path.write_text(json.dumps(spec, indent=2))
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.strip().startswith('"y": {'))
    with pytest.raises(mg.GraphSpecError, match=rf"^{path}:{line}: node 'y': "):
        mg.ModuleGraph.from_file(path)


def test_a_graph_attribute_a_spec_cannot_hold_is_refused_not_dropped():
    g = mlp_graph()
    g.graph.update(name="mlp", notes="tuned on fold 3")
    net = mg.ModuleGraph(g)  # it builds and runs; only saving it would lose the attribute
    with pytest.raises(mg.GraphSpecError, match=r"graph attribute\(s\) 'notes' cannot be saved in a spec"):
        net.to_dict()
    del g.graph["notes"]
    assert mg.ModuleGraph(g).to_dict()["name"] == "mlp"


# --- limits, edges and file names: cases the checks above did not reach ----------------------------------------------
def _nested(levels: int):
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_a_value_nested_exactly_max_depth_levels_deep_is_accepted_one_more_is_refused():
    """MAX_DEPTH counts containers: 64 lists one inside the other are data, 65 are refused."""
    base = {"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}}, "edges": [["x", "y"]]}
    assert mg.spec.MAX_DEPTH == 64
    assert mg.graph_from_dict({**base, "name": _nested(64)}).graph["name"] == _nested(64)
    with pytest.raises(mg.GraphSpecError, match=r"spec\.name(\[0\])*: the value is nested more than 64 levels deep"):
        mg.graph_from_dict({**base, "name": _nested(65)})


def test_the_item_limit_counts_every_container_and_scalar(monkeypatch):
    """A list of n scalars is n + 1 items; a value of exactly MAX_ITEMS items is accepted, one more is refused."""
    monkeypatch.setattr(mg.spec, "MAX_ITEMS", 10)
    base = {"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}}, "edges": [["x", "y"]]}
    assert mg.graph_from_dict({**base, "name": [1] * 9}).graph["name"] == [1] * 9
    with pytest.raises(mg.GraphSpecError, match=r"spec\.name: the value holds 11 items once YAML aliases are expanded"):
        mg.graph_from_dict({**base, "name": [1] * 10})


@pytest.mark.parametrize("attrs, message", [
    ({"op": "relu", 1: 2}, r"spec: node 'y': keys must be strings, got 1"),
    ({"op": "relu", "junk": {"a": {2: 3}}}, r"spec: node 'y'\.junk\.a: keys must be strings, got 2"),
])
def test_non_string_keys_inside_a_node_are_refused(attrs, message):
    """JSON has only string keys: {2: 3} would come back from a file as {'2': 3}, another value."""
    spec = {"nodes": {"x": {"op": "input", "features": 2}, "y": attrs}, "edges": [["x", "y"]]}
    with pytest.raises(mg.GraphSpecError, match=message):
        mg.ModuleGraph.from_dict(spec)


def test_a_yaml_file_with_a_number_as_a_key_names_the_line(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_text("nodes:\n  x: {op: input, features: 2}\n  y: {op: relu, 1: 2}\nedges: [[x, y]]\n")
    with pytest.raises(mg.GraphSpecError, match=rf"^{path}:3: node 'y': keys must be strings, got 1"):
        mg.ModuleGraph.from_file(path)


def test_tuples_nested_anywhere_come_back_as_lists_as_from_a_file():
    g = mlp_graph()
    g.graph["name"] = ["mlp", ("a", ("b", 1))]
    g.edges["x", "h"]["weight"] = 0.5
    d = mg.ModuleGraph(g).to_dict()
    assert d["name"] == ["mlp", ["a", ["b", 1]]]
    assert json.loads(json.dumps(d)) == d


def test_a_module_named_in_a_spec_is_refused_with_the_reason():
    spec = {"nodes": {"x": {"op": "input", "features": 2}, "y": {"module": "torch.nn.ReLU"}}, "edges": [["x", "y"]]}
    with pytest.raises(mg.GraphSpecError, match=r"spec: node 'y': 'module' cannot come from a file; register an op"):
        mg.ModuleGraph.from_dict(spec)


@pytest.mark.parametrize("edge", [["x", "y", "z"], ["x"], []])
def test_an_edge_list_of_other_than_two_names_is_refused(edge):
    """[x, y, z] is not the edge x -> y with something dropped: it is refused."""
    spec = {"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}, "z": {"op": "relu"}},
            "edges": [["x", "z"], edge]}
    with pytest.raises(mg.GraphSpecError, match=r"spec: edges\[1\]: an edge is \{source: a, target: b, \.\.\.\} or "
                                                r"\[a, b\]"):
        mg.ModuleGraph.from_dict(spec)


def test_edges_given_as_tuples_are_edges_as_lists_are():
    nodes = {"x": {"op": "input", "features": 2}, "h": {"op": "relu"}, "y": {"op": "tanh"}}
    as_lists = mg.ModuleGraph.from_dict({"nodes": nodes, "edges": [["x", "h"], ["h", "y"]]})
    as_tuples = mg.ModuleGraph.from_dict({"nodes": nodes, "edges": [("x", "h"), ("h", "y")]})
    assert list(as_tuples.graph.edges) == [("x", "h"), ("h", "y")]
    assert as_tuples.to_dict() == as_lists.to_dict()


def test_an_edge_given_twice_is_refused_not_merged(tmp_path):
    """A second x -> y would otherwise overwrite the first one's settings without a word."""
    spec = {"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}},
            "edges": [{"source": "x", "target": "y", "weight": 0.5}, ["x", "y"]]}
    with pytest.raises(mg.GraphSpecError, match=r"spec: edges\[1\]: duplicate edge 'x' -> 'y'"):
        mg.ModuleGraph.from_dict(spec)
    path = tmp_path / "arch.yaml"
    path.write_text("nodes:\n  x: {op: input, features: 2}\n  y: {op: relu}\nedges:\n  - {source: x, target: y, "
                    "weight: 0.5}\n  - [x, y]\n")
    with pytest.raises(mg.GraphSpecError, match=rf"^{path}:6: edges\[1\]: duplicate edge 'x' -> 'y'"):
        mg.ModuleGraph.from_file(path)


def test_an_unknown_edge_setting_in_a_spec_names_the_edge_by_position():
    spec = {"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}},
            "edges": [{"source": "x", "target": "y", "atention": "softmax"}]}
    with pytest.raises(mg.GraphSpecError, match=r"^spec: edges\[0\]: edge 'x' -> 'y': unknown setting\(s\) "
                                                r"'atention'"):
        mg.ModuleGraph.from_dict(spec)


def test_a_yaml_alias_bomb_in_an_edge_setting_is_refused_by_its_size(tmp_path):
    """Seven levels of ten aliases: 10**7 ones in 1 + 10 + ... + 10**6 lists, in the edge's settings dict, are
    11,111,112 items."""
    levels = ["&j1 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(2, 8):
        levels.append(f"&j{i} [{levels[-1]}" + f", *j{i - 1}" * 9 + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("nodes:\n  x: {op: input, features: 2}\n  y: {op: relu}\nedges:\n  - {source: x, target: y, "
                    "level: " + levels[-1] + "}\n")
    with pytest.raises(mg.GraphSpecError, match=rf"^{path}:5: edges\[0\]: the value holds 11,111,112 items once YAML "
                                                r"aliases are expanded"):
        mg.ModuleGraph.from_file(path)


@pytest.mark.parametrize("name", ["arch.yml", "ARCH.YAML", "Arch.Json"])
def test_spec_file_suffixes_are_recognised_in_any_case_and_yml(tmp_path, name):
    net = mg.ModuleGraph(mlp_graph())
    path = net.save_spec(tmp_path / name)
    text = path.read_text()
    assert (json.loads(text) if name.lower().endswith(".json") else yaml.safe_load(text)) == net.to_dict()
    assert mg.ModuleGraph.from_file(path).to_dict() == net.to_dict()


def test_a_json_duplicate_is_reported_where_json_found_it_first(tmp_path):
    """An inner object closes (and json.loads meets its duplicate) before a later duplicate of the top level: the
    error names the inner one, at its own line and column."""
    path = tmp_path / "dup.json"
    path.write_text('{"nodes": {"x": {"op": "input",\n  "op": "relu", "features": 4}},\n'
                    ' "edges": [],\n "edges": []}\n')
    with pytest.raises(mg.GraphSpecError, match=r"dup\.json:2:3: duplicate key 'op' in 'nodes\.x' \(first at line 1\)"):
        mg.ModuleGraph.from_file(path)


def test_saving_a_spec_is_atomic_when_the_final_rename_fails(tmp_path, monkeypatch):
    """The new text goes to a temporary file first; if the last step fails, the old file is whole and no temporary
    file is left."""
    import os

    path = mg.ModuleGraph(mlp_graph()).save_spec(tmp_path / "arch.yaml")
    old = path.read_text()

    def refuse(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="rename failed"):
        mg.ModuleGraph(mlp_graph(hidden=7)).save_spec(path)
    monkeypatch.undo()
    assert path.read_text() == old and [p.name for p in tmp_path.iterdir()] == ["arch.yaml"]


def test_numpy_scalars_inside_container_attributes_become_python_ones():
    """Not only top-level attributes: those inside lists and dicts too, in the network's copy of the graph."""
    import numpy as np

    g = mlp_graph()
    g.graph["name"] = [np.int64(1), {"k": np.float32(0.5)}, (np.bool_(True),)]
    net = mg.ModuleGraph(g)
    name = net.graph.graph["name"]
    assert name == [1, {"k": 0.5}, (True,)]
    assert [type(name[0]), type(name[1]["k"]), type(name[2][0])] == [int, float, bool]
    assert type(g.graph["name"][0]) is np.int64  # the caller's graph is left as it was


def test_saving_a_value_that_contains_itself_names_the_loop(tmp_path):
    loop = []
    loop.append(loop)
    with pytest.raises(mg.GraphSpecError, match=r"a\.json\.nodes\.x\.extra(\[0\])*: the value contains itself"):
        mg.save_spec({"nodes": {"x": {"op": "input", "features": 2, "extra": loop}}}, tmp_path / "a.json")
    assert not list(tmp_path.iterdir())


def test_no_line_is_guessed_when_nodes_come_from_a_yaml_merge(tmp_path):
    """x and h are merged in from an anchor (two names, one '<<' line): their lines cannot be paired with the node
    names, so the error names the file alone rather than the line of another node."""
    path = tmp_path / "merged.yaml"
    path.write_text("name: &base\n  x: {op: input, features: 3}\n  h: {op: linaer, out_features: 4}\nnodes:\n"
                    "  <<: *base\n  y: {op: linear, out_features: 2}\nedges: [[x, h], [h, y]]\n")
    with pytest.raises(mg.GraphSpecError, match=rf"^{path}: node 'h': unknown op 'linaer'"):
        mg.ModuleGraph.from_file(path)


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_saving_refuses_a_non_string_key_rather_than_rewriting_it(tmp_path, suffix):
    # json.dumps would write the key 1 as "1": the file would hold another value than the spec
    spec = {"nodes": {"x": {"op": "input", "features": 3, "extra": {1: 2}}}}
    with pytest.raises(mg.GraphSpecError, match=r"a\.\w+\.nodes\.x\.extra: keys must be strings, got 1"):
        mg.save_spec(spec, tmp_path / f"a.{suffix}")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_saving_refuses_a_value_that_contains_itself(tmp_path, suffix):
    # yaml.dump would write the loop as an anchor inside itself, a file no reader takes back
    loop = []
    loop.append(loop)
    with pytest.raises(mg.GraphSpecError,
                       match=r"nodes\.x\.extra(\[0\])*: the value contains itself \(a list or dict inside itself\)"):
        mg.save_spec({"nodes": {"x": {"op": "input", "features": 2, "extra": loop}}}, tmp_path / f"a.{suffix}")
    assert not list(tmp_path.iterdir())


def test_json_spec_files_are_strict_json(tmp_path):
    spec = {"name": float("nan"), "nodes": {"x": {"op": "input", "features": 3}}}
    # the place is named (json.dumps said "Out of range float values are not JSON compliant: nan", not where)
    with pytest.raises(mg.GraphSpecError, match=r"a\.json\.name: expected a finite number, got nan \(JSON has no NaN "
                                                r"or infinity; YAML writes \.nan and \.inf\)$"):
        mg.save_spec(spec, tmp_path / "a.json")
    assert not list(tmp_path.iterdir())
    path = mg.save_spec(spec, tmp_path / "a.yaml")  # YAML has .nan
    assert yaml.safe_load(path.read_text())["name"] != yaml.safe_load(path.read_text())["name"]  # NaN != NaN


@pytest.mark.parametrize("make, shown", [
    (lambda: {"nodes": {}}, "dict"),
    (lambda: nx.Graph([("x", "y")]), "Graph"),
    (lambda: nx.MultiDiGraph([("x", "y")]), "MultiDiGraph"),
    (lambda: mg.ModuleGraph(mlp_graph()), r"ModuleGraph; for a network use net.to_dict\(\)"),
])
def test_graph_to_dict_takes_a_digraph(make, shown):
    # before: AttributeError for a dict; an undirected graph was saved with its edges in an arbitrary direction; a
    # network gave "graph attribute(s) 'x', 'h', 'y' cannot be saved in a spec"
    with pytest.raises(mg.GraphSpecError, match=rf"graph_to_dict: expected a networkx.DiGraph, got {shown}"):
        mg.graph_to_dict(make())


def test_a_value_that_is_not_data_is_named_with_its_path_in_the_spec(tmp_path):
    """The spec's values go through modgraph.plaindata with the spec policy: the place inside the value is named."""
    spec = {"nodes": {"x": {"op": "input", "features": 2}, "y": {"op": "relu"}},
            "edges": [{"source": "x", "target": "y", "weight": [1.0, {"k": {1, 2}}]}]}
    with pytest.raises(mg.GraphSpecError, match=r"^spec: edges\[0\]\.weight\[1\]\.k: expected plain data \(number, "
                                                r"string, bool, list, dict\), got set$"):
        mg.graph_from_dict(spec)
    with pytest.raises(mg.GraphSpecError, match=r"a\.json\.edges\[0\]\.weight\[1\]\.k: expected plain data"):
        mg.save_spec(spec, tmp_path / "a.json")
    assert not list(tmp_path.iterdir())


def test_a_yaml_alias_that_nests_a_value_deeper_than_max_depth_is_refused(tmp_path):
    """An alias is walked once, but counts where it appears deepest: 40 levels inside 40 levels are 80 (before: the
    alias was checked only at its first, shallow place, and the 80 levels accepted)."""
    path = tmp_path / "deep.yaml"
    path.write_text("name: {a: &a " + "[" * 40 + "]" * 40 + ", b: " + "[" * 40 + "*a" + "]" * 40 + "}\n"
                    "nodes: {x: {op: input, features: 2}, y: {op: relu}}\nedges: [[x, y]]\n")
    with pytest.raises(mg.GraphSpecError, match=r"deep\.yaml\.name\.b(\[0\]){40}: the value is nested more than "
                                                r"64 levels deep"):
        mg.ModuleGraph.from_file(path)
