"""attention_mlp: the seed paper's x -> h (sigmoid) -> y network as a plain DAG."""

import torch

import modgraph as mg
from modgraph import models


def test_attention_mlp_by_hand():
    """``sigmoid(x W1^T + b1) W2^T + b2`` with the gate switched off; the name and edge settings are the graph's."""
    g = models.attention_mlp(4, 6, 3, name="paper", threshold=0.5)
    assert g.name == "paper" and models.attention_mlp(4, 6, 3).name == ""
    assert g.edges["h", "y"] == {"attention": "sigmoid", "threshold": 0.5}
    assert models.attention_mlp(4, 6, 3, None).edges["h", "y"] == {}
    assert models.attention_mlp(4, 6, 3, None, weight=0.5).edges["h", "y"] == {"weight": 0.5}
    torch.manual_seed(0)
    net = mg.ModuleGraph(models.attention_mlp(4, 6, 3))
    x = torch.randn(5, 4)
    h, y = net.nodes["h"], net.nodes["y"]
    with net.attention_off():
        torch.testing.assert_close(net(x), torch.sigmoid(x @ h.weight.T + h.bias) @ y.weight.T + y.bias)
