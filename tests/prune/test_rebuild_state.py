"""``rebuild`` carries over every piece of state a trained network holds, not only what a fresh build initialises
the same way (zero key biases, adjacency weights at their spec value, enabled gates, float32, counters at 0)."""

import torch

import modgraph as mg
from modgraph.prune import DependencyGraph, mask_units, rebuild

from ..helpers import mlp_graph
from .nets import wide_dag

# wide_dag's groups 0..7 are the summed units of a+b (they run through s, bn, c and the concat)
GONE = [0, 2, 9, 13, 15]


def test_batch_norm_counter_and_statistics_are_carried_over():
    torch.manual_seed(0)
    net = wide_dag()
    with torch.no_grad():
        net.nodes["bn"].num_batches_tracked.fill_(7)
    small = rebuild(net, *DependencyGraph(net).keep(GONE))
    bn, old = small.nodes["bn"], net.nodes["bn"]
    kept = [1, 3, 4, 5, 6, 7]  # by hand: a+b rows 0 and 2 are gone
    assert int(bn.num_batches_tracked) == 7
    assert torch.equal(bn.running_mean, old.running_mean[kept])
    assert torch.equal(bn.running_var, old.running_var[kept])


def test_trained_branch_key_biases_are_carried_over():
    """A fresh branch gate has zero key biases; a trained one does not, and they shape the branch scores."""
    torch.manual_seed(1)
    net = wide_dag()
    with torch.no_grad():
        for lin in net.branch_attention["s"].keys:
            lin.bias.normal_(0.0, 2.0)
    deps = DependencyGraph(net)
    small = rebuild(net, *deps.keep(GONE))
    for new, old in zip(small.branch_attention["s"].keys, net.branch_attention["s"].keys):
        assert torch.equal(new.bias, old.bias)
    x = torch.randn(16, 6)
    torch.testing.assert_close(small(x), mask_units(net, deps, GONE)(x), atol=1e-6, rtol=1e-5)


def test_learned_adjacency_weight_is_carried_over():
    """By hand: ``y = w * (h[:, kept] @ W_y[:, kept].T) + b_y`` with the learned edge weight ``w``."""
    torch.manual_seed(2)
    net = mg.ModuleGraph(mlp_graph(5, 6, 2, attention=None, learnable=True))
    (key,) = list(net.adjacency_weights)
    with torch.no_grad():
        net.adjacency_weights[key].fill_(0.37)
    small = rebuild(net, *DependencyGraph(net).keep([1, 4]))
    assert float(small.adjacency_weights[key].detach()) == float(net.adjacency_weights[key].detach())
    kept = [0, 2, 3, 5]
    h, y = net.nodes["h"], net.nodes["y"]
    x = torch.randn(7, 5)
    expected = (0.37 * torch.sigmoid(x @ h.weight[kept].T + h.bias[kept])) @ y.weight[:, kept].T + y.bias
    torch.testing.assert_close(small(x), expected)


def test_disabled_attention_stays_disabled():
    torch.manual_seed(3)
    net = wide_dag()
    net.set_attention(False)
    deps = DependencyGraph(net)
    small = rebuild(net, *deps.keep(GONE))
    assert [g.enabled for g in small.gates()] == [False] * len(list(net.gates()))
    x = torch.randn(16, 6)
    torch.testing.assert_close(small(x), mask_units(net, deps, GONE)(x), atol=1e-6, rtol=1e-5)


def test_a_float64_network_stays_float64():
    torch.manual_seed(4)
    net = wide_dag().double()
    deps = DependencyGraph(net)
    small = rebuild(net, *deps.keep(GONE))
    assert {p.dtype for p in small.parameters()} == {torch.float64}
    x = torch.randn(16, 6, dtype=torch.float64)
    expected = mask_units(net, deps, GONE)(x)
    assert expected.dtype == torch.float64
    torch.testing.assert_close(small(x), expected, atol=1e-12, rtol=1e-10)


def test_a_declared_in_features_follows_the_pruned_width():
    """A spec may declare a consumer's ``in_features``; the pruned spec must declare the new width (18 - 2)."""
    torch.manual_seed(5)
    g = mlp_graph(5, 18, 3)
    g.nodes["y"]["in_features"] = 18
    net = mg.ModuleGraph(g)
    deps = DependencyGraph(net)
    small = rebuild(net, *deps.keep([0, 1]))
    assert small.graph.nodes["y"]["in_features"] == 16 and small.nodes["y"].in_features == 16
    x = torch.randn(8, 5)
    torch.testing.assert_close(small(x), mask_units(net, deps, [0, 1])(x), atol=1e-6, rtol=1e-5)
