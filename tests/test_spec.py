import json

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
def _mutated_valid_spec(draw):
    """A valid chain with merges, then (maybe) one attribute replaced by an arbitrary value."""
    width = draw(st.integers(1, 6))
    nodes = {"x": {"op": "input", "features": width}}
    edges = []
    names = ["x"]
    for i in range(draw(st.integers(1, 4))):
        name = f"n{i}"
        op = draw(st.sampled_from(["linear", "relu", "tanh", "dropout", "layer_norm", "concat", "identity"]))
        nodes[name] = {"op": op, **({"out_features": draw(st.integers(1, 6))} if op == "linear" else {})}
        for src in draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)):
            edge = {"source": src, "target": name}
            if draw(st.booleans()):
                edge["attention"] = draw(st.sampled_from(["sigmoid", "softmax", "sparsemax"]))
            edges.append(edge)
        names.append(name)
    spec = {"nodes": nodes, "edges": edges}
    if draw(st.booleans()):
        target = draw(st.sampled_from([nodes[n] for n in nodes] + edges))
        target[draw(st.sampled_from(["op", "features", "out_features", "attention", "threshold", "merge", "heads",
                                     "score", "level", "in_features", "p"]))] = draw(_values)
    return spec


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


def test_yaml_dump_of_spec_is_plain(tmp_path):
    net = mg.ModuleGraph(mlp_graph())
    text = yaml.safe_dump(net.to_dict(), sort_keys=False)
    assert "!!python" not in text


def test_shipped_example_specs_build():
    from pathlib import Path

    specs = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
    assert specs
    for path in specs:
        net = mg.ModuleGraph.from_file(path)
        assert mg.ModuleGraph.from_dict(net.to_dict()).to_dict() == net.to_dict()
