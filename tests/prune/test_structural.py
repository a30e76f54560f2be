"""A structurally pruned network computes exactly what the original computes with the same units masked."""

import pytest
import torch

import modgraph as mg
from modgraph.prune import DependencyGraph, mask_units, rebuild

from ..helpers import mlp_graph
from .nets import params, wide_dag


@pytest.mark.parametrize("attention", ["sigmoid", "softmax", "sparsemax"])
@pytest.mark.parametrize("score", ["linear", "outer"])
def test_pruned_mlp_equals_masked_original(attention, score):
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 18, 3, attention=attention, score=score))
    deps = DependencyGraph(net)
    gone = [0, 3, 5, 17]
    small = rebuild(net, *deps.keep(gone))
    x = torch.randn(32, 5)
    torch.testing.assert_close(small(x), mask_units(net, deps, gone)(x), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(small(x), net(x))  # the units mattered
    assert small.plan.widths["h"] == 14 and small.neuron_attention["h->y"].in_features == 14


@pytest.mark.parametrize("attention", ["sigmoid", "softmax", "sparsemax"])
def test_pruned_dag_equals_masked_original(attention):
    torch.manual_seed(1)
    net = wide_dag(attention)
    deps = DependencyGraph(net)
    gone = [0, 2, 9, 13, 15]  # two summed units of a+b (through bn, a branch gate, c and a concat), c's 1, h's 0, 2
    small = rebuild(net, *deps.keep(gone))
    x = torch.randn(16, 6)
    torch.testing.assert_close(small(x), mask_units(net, deps, gone)(x), atol=1e-6, rtol=1e-5)
    assert [small.plan.widths[n] for n in ("a", "b", "bn", "c", "cat", "h")] == [6, 6, 6, 4, 10, 5]
    assert not small.training and net.plan.widths["a"] == 8  # mode kept, original untouched


def test_parameter_counts_match_hand_counts():
    torch.manual_seed(2)
    net = mg.ModuleGraph(mlp_graph(5, 18, 3))
    # h: 5 -> 18, y: 18 -> 3, allocator: 18 -> 18 * 3
    assert sum(p.numel() for p in net.parameters()) == params((5, 18), (18, 3), (18, 54)) == 1191
    deps = DependencyGraph(net)
    small = rebuild(net, *deps.keep(range(9)))
    assert sum(p.numel() for p in small.parameters()) == params((5, 9), (9, 3), (9, 27)) == 354
    outer = mg.ModuleGraph(mlp_graph(5, 18, 3, score="outer"))
    small = rebuild(outer, *DependencyGraph(outer).keep(range(9)))
    # outer allocator: rows 9 -> 9, cols 9 -> 3
    assert sum(p.numel() for p in small.parameters()) == params((5, 9), (9, 3), (9, 9), (9, 3)) == 204


def test_pruned_network_saves_and_loads_with_its_new_structure(tmp_path):
    torch.manual_seed(3)
    net = wide_dag()
    deps = DependencyGraph(net)
    small = rebuild(net, *deps.keep([1, 4, 8, 16]))
    path = mg.save_network(small, tmp_path / "small.pt")
    back = mg.load_network(path).eval()
    x = torch.randn(8, 6)
    assert torch.equal(back(x), small(x))
    assert back.to_dict() == small.to_dict() and back.to_dict()["nodes"]["a"]["out_features"] == 6
    assert sum(p.numel() for p in back.parameters()) < sum(p.numel() for p in net.parameters())


def test_pruned_mlp_equals_zeroed_hidden_units():
    """A reference independent of the dependency graph: with a per-connection sigmoid gate, removing hidden unit
    ``i`` is exactly ``h_i = 0`` in the original (its connections carry ``h_i a_io W_oi``, and the allocator reads
    ``h_i`` through its own column only)."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 18, 3, attention="sigmoid"))
    gone = [0, 3, 5, 17]
    small = rebuild(net, *DependencyGraph(net).keep(gone))
    x = torch.randn(32, 5)
    h = net.nodes["h"](x)
    assert torch.all((h > 0) & (h < 1))  # the node's module returns the activated units: zeroing them removes them

    def zero_gone(module, args, out):
        out = out.clone()
        out[:, gone] = 0
        return out

    handle = net.nodes["h"].register_forward_hook(zero_gone)
    try:
        expected = net(x)
    finally:
        handle.remove()
    torch.testing.assert_close(small(x), expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(expected, net(x))  # the units mattered
