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


class ChannelScale(torch.nn.Module):
    """A user's per-channel op: ``x * s`` with one learned factor per feature (no slicer built in)."""

    def __init__(self, features):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.rand(features) + 0.5)

    def forward(self, x):
        return x * self.scale


def test_register_slicer_slices_a_custom_module_as_registered():
    """``register_slicer(cls, fn)``: ``rebuild`` hands ``fn(old, new, keep_in, keep_out)`` each module of class
    ``cls``, and the pruned network holds what ``fn`` copied: here the factors of the kept channels."""
    from modgraph.prune import register_channel_rule, register_slicer
    from modgraph.prune.dependency import CHANNEL_RULES
    from modgraph.prune.structural import SLICERS
    from modgraph.registry import _OPS

    @mg.register_op("test_channel_scale")
    def channel_scale(in_features: int) -> mg.Built:
        return mg.Built(ChannelScale(in_features), in_features)

    calls = []

    def slicer(old, new, keep_in, keep_out):
        calls.append((keep_in.tolist(), keep_out.tolist()))
        new.scale.copy_(old.scale[keep_out])

    try:
        register_channel_rule("test_channel_scale", "per_channel")
        register_slicer(ChannelScale, slicer)
        g = mlp_graph(5, 6, 2, attention=None)
        g.remove_edge("h", "y")
        g.add_node("s", op="test_channel_scale")
        g.add_edges_from([("h", "s"), ("s", "y")])
        torch.manual_seed(0)
        net = mg.ModuleGraph(g)
        gone, kept = [1, 4], [0, 2, 3, 5]  # the hidden units of h are groups 0..5 in row order
        small = rebuild(net, *DependencyGraph(net).keep(gone))
        assert calls == [(kept, kept)]
        assert torch.equal(small.nodes["s"].scale, net.nodes["s"].scale[kept])
        # by hand: the original's kept rows of h, their factors and y's kept columns
        h, s, y = net.nodes["h"], net.nodes["s"].scale, net.nodes["y"]
        x = torch.randn(7, 5)
        expected = (torch.sigmoid(x @ h.weight[kept].T + h.bias[kept]) * s[kept]) @ y.weight[:, kept].T + y.bias
        torch.testing.assert_close(small(x), expected)
    finally:
        SLICERS.pop(ChannelScale, None)
        CHANNEL_RULES.pop("test_channel_scale", None)
        _OPS.pop("test_channel_scale", None)
