import networkx as nx
import pytest
import torch
import torch.nn as nn

import modgraph as mg
from modgraph.registry import _OPS


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_user_ops_register_with_a_decorator_and_serialise():
    @mg.register_op("test_scale")
    def scale(in_features: int, factor: float = 2.0) -> mg.Built:
        return mg.Built(Scale(factor), in_features)

    try:
        assert "test_scale" in mg.available_ops()
        g = nx.DiGraph()
        g.add_node("x", op="input", features=3)
        g.add_node("s", op="test_scale", factor=3.0)
        g.add_edge("x", "s")
        net = mg.ModuleGraph(g)
        x = torch.randn(2, 3)
        torch.testing.assert_close(net(x), 3 * x)
        assert mg.ModuleGraph.from_dict(net.to_dict()).to_dict() == net.to_dict()
        with pytest.raises(ValueError, match="already registered"):
            mg.register_op("test_scale")(scale)
    finally:
        _OPS.pop("test_scale", None)


def test_builtin_ops():
    assert {"input", "linear", "relu", "tanh", "sigmoid", "elu", "identity", "dropout", "layer_norm", "batch_norm",
            "concat"} <= set(mg.available_ops())


def test_replace_true_overrides_a_registered_op():
    @mg.register_op("test_twice")
    def first(in_features: int) -> mg.Built:
        return mg.Built(Scale(2.0), in_features)

    try:
        @mg.register_op("test_twice", replace=True)
        def second(in_features: int) -> mg.Built:
            return mg.Built(Scale(5.0), in_features)

        g = nx.DiGraph()
        g.add_node("x", op="input", features=3)
        g.add_node("s", op="test_twice")
        g.add_edge("x", "s")
        x = torch.randn(2, 3)
        torch.testing.assert_close(mg.ModuleGraph(g)(x), 5 * x)
    finally:
        _OPS.pop("test_twice", None)


@pytest.mark.parametrize("name, kwargs, message", [
    ("", {}, "op names are non-empty strings, got ''"),
    (3, {}, "op names are non-empty strings, got 3"),
    ("test_mean", {"merge": "mean"}, "op 'test_mean': merge must be 'sum' or 'concat', got 'mean'"),
])
def test_bad_registrations_are_refused(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mg.register_op(name, **kwargs)
    assert name not in _OPS


def _one_node(op, **attrs):
    g = nx.DiGraph()
    g.add_node("x", op="input", features=3)
    g.add_node("s", op=op, **attrs)
    g.add_edge("x", "s")
    return g


@pytest.mark.parametrize("op", [["linear"], {"linear": 1}])
def test_an_op_that_is_not_a_name_is_an_unknown_op(op):
    with pytest.raises(mg.GraphSpecError, match=r"node 's': unknown op .*; valid ops: .*linear"):
        mg.ModuleGraph(_one_node(op))


def test_a_builder_with_keyword_catch_all_needs_no_extra_argument():
    """**options is not a required argument (arguments a builder does not name are still refused)."""
    @mg.register_op("test_options")
    def options(in_features: int, factor: float = 2.0, **options) -> mg.Built:
        return mg.Built(Scale(factor), in_features)

    try:
        x = torch.randn(2, 3)
        torch.testing.assert_close(mg.ModuleGraph(_one_node("test_options"))(x), 2 * x)
        with pytest.raises(mg.GraphSpecError, match=r"unexpected argument\(s\) 'colour' for op 'test_options'; "
                                                    r"expected: factor"):
            mg.ModuleGraph(_one_node("test_options", colour="red"))
    finally:
        _OPS.pop("test_options", None)


def test_a_builder_must_return_built():
    @mg.register_op("test_bare")
    def bare(in_features: int):
        return Scale(2.0)

    try:
        with pytest.raises(mg.GraphSpecError, match=r"node 's': builder of op 'test_bare' must return modgraph.Built"):
            mg.ModuleGraph(_one_node("test_bare"))
    finally:
        _OPS.pop("test_bare", None)


def test_a_builders_own_spec_error_names_the_node():
    # e.g. an op that builds a sub-network from a spec: its error gets the outer node in front (and so a line)
    @mg.register_op("fails_with_spec_error")
    def fails(in_features):
        raise mg.GraphSpecError("node 'inner': out_features must be a positive integer")

    try:
        g = nx.DiGraph()
        g.add_node("x", op="input", features=3)
        g.add_node("outer", op="fails_with_spec_error")
        g.add_edge("x", "outer")
        with pytest.raises(mg.GraphSpecError, match=r"^node 'outer': bad arguments for op 'fails_with_spec_error': "
                                                    r"node 'inner': out_features"):
            mg.ModuleGraph(g)
    finally:
        _OPS.pop("fails_with_spec_error", None)


def test_a_builder_that_is_not_callable_is_refused_when_registered():
    # before: registered; every spec naming the op then failed with inspect's "5 is not a callable object"
    with pytest.raises(TypeError, match=r"op 'test_not_callable': register_op decorates a builder function"):
        mg.register_op("test_not_callable")(5)
    assert "test_not_callable" not in _OPS


@pytest.mark.parametrize("kwargs, message", [
    ({"takes_input": "no"}, r"op 'test_flags': takes_input must be true or false, got 'no'"),
    ({"replace": 1}, r"op 'test_flags': replace must be true or false, got 1"),
])
def test_register_op_flags_are_bools(kwargs, message):
    with pytest.raises(ValueError, match=message):  # before: "no" was taken as True
        mg.register_op("test_flags", **kwargs)
    assert "test_flags" not in _OPS


@pytest.mark.parametrize("width", ["3", 0, 2.0, None])
def test_the_width_a_builder_returns_must_be_a_positive_integer(width):
    @mg.register_op("test_width", replace=True)
    def builder(in_features: int):
        return mg.Built(Scale(2.0), width)

    try:  # before: '3' became the node's width, silently (and a later layer failed on it)
        with pytest.raises(mg.GraphSpecError, match=r"node 's': the width the builder of op 'test_width' returned "
                                                    r"\(Built.out_features\) must be a positive integer, got "):
            mg.ModuleGraph(_one_node("test_width"))
    finally:
        _OPS.pop("test_width", None)


def test_a_builder_whose_width_is_not_its_modules_is_named_at_construction():
    @mg.register_op("test_liar")
    def liar(in_features: int) -> mg.Built:
        return mg.Built(nn.Linear(in_features, 5), 7)  # the module gives 5 features, the builder says 7

    try:
        g = nx.DiGraph()
        g.add_node("x", op="input", features=3)
        g.add_node("s", op="test_liar")
        g.add_node("y", op="linear", out_features=2)
        g.add_edges_from([("x", "s"), ("s", "y")])
        with pytest.raises(mg.GraphSpecError, match=r"node 's'.*op 'test_liar' returned Built\(out_features=7\), but "
                                                    r"its module maps 3 input features to 5"):
            mg.ModuleGraph(g)
    finally:
        _OPS.pop("test_liar", None)


def test_a_builder_whose_module_cannot_run_on_zeros_is_trusted_and_keeps_its_train_mode():
    class NeedsPairs(nn.Module):  # a special input: (x, y) pairs; a dry run on [2, in] zeros fails
        def forward(self, pair):
            x, y = pair
            return x + y

    @mg.register_op("test_pairs")
    def pairs(in_features: int) -> mg.Built:
        return mg.Built(nn.Sequential(nn.Dropout(0.5), NeedsPairs()), in_features)

    try:
        g = nx.DiGraph()
        g.add_node("x", op="input", features=3)
        g.add_node("s", op="test_pairs")
        g.add_edge("x", "s")
        net = mg.ModuleGraph(g)
        assert net.nodes["s"].training and net.nodes["s"][0].training
    finally:
        _OPS.pop("test_pairs", None)
