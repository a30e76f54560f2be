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
