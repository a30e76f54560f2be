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


def test_random_dag_refuses_bad_arguments():
    import pytest

    for kwargs, match in ((dict(n=-1), "random_dag: n must be a positive integer .*got -1"),  # networkx's error
                          (dict(n=2.5), "n must be a positive integer .*got 2.5"),
                          (dict(p=2), r"random_dag: p must be a number in \[0, 1\] \(an edge probability\), got 2"),
                          (dict(p=float("nan")), r"p must be a number in \[0, 1\].*got nan"),  # both silently accepted
                          (dict(seed="a"), r"random_dag: seed must be an integer \(a random seed\), got 'a'")):
        args = dict(n=4, p=0.5, seed=0) | kwargs
        with pytest.raises(mg.GraphSpecError, match=match):
            models.random_dag(**args)
    assert sorted(models.random_dag(4, 0.5, 0).edges) == sorted(models.random_dag(4, 0.5, seed=0).edges)
