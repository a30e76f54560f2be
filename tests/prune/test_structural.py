"""A structurally pruned network computes exactly what the original computes with the same units masked."""

import pytest
import torch

import modgraph as mg
from modgraph.prune import DependencyGraph, mask_units, rebuild

from ..helpers import mlp_graph
from .nets import branchy, params, wide_dag


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


T = torch.tensor
MLP_KEEP = {"in": {"y": [2, 3, 4, 5]}, "out": {"h": [2, 3, 4, 5]}}  # mlp_graph(5, 6, 3) less units 0, 1


@pytest.mark.parametrize("ins, outs, edges, nodes, error, message", [
    ({"y": None}, {}, (), (), mg.PruneError,  # a KeyError before
     r"^rebuild: in_keep has no entry for node 'y'; it needs the kept positions of every node left "
     r"\(DependencyGraph\.keep gives them\)$"),
    ({}, {"h": None}, (), (), mg.PruneError, r"^rebuild: out_keep has no entry for node 'h'"),  # a KeyError before
    ({"zz": T([0])}, {}, (), (), mg.PruneError,  # ignored before
     r"^rebuild: in_keep names 'zz', which is not a node of the network$"),
    ({"y": T([2, 3, 4, 9])}, {"h": T([2, 3, 4, 9])}, (), (), mg.PruneError,  # an IndexError before
     r"^rebuild: out_keep\['h'\] holds position 9 \(at 3\), outside \[0, 6\) \(the output width of node 'h' is 6\)$"),
    ({"y": T([-1, 3, 4, 5])}, {"h": T([-1, 3, 4, 5])}, (), (), mg.PruneError,  # unit 5 twice, silently, before
     r"^rebuild: out_keep\['h'\] holds position -1 \(at 0\), outside \[0, 6\)"),
    ({"y": T([2, 2, 3, 4])}, {"h": T([2, 2, 3, 4])}, (), (), mg.PruneError,  # unit 2 twice, silently, before
     r"^rebuild: out_keep\['h'\] holds position 2 twice; each kept position appears once$"),
    ({}, {"h": T([2.0, 3, 4, 5])}, (), (), TypeError,
     r"^rebuild: out_keep\['h'\] must hold integer positions \(the kept ones, not a mask\), got torch\.float32$"),
    ({}, {"h": T([], dtype=torch.long)}, (), (), mg.PruneError,
     r"^rebuild: out_keep\['h'\] keeps no position; node 'h' would have no output \(a node keeps at least one\)$"),
    ({"y": T([0, 1, 2, 3])}, {}, (), (), mg.PruneError,  # y read the columns of units 0..3 for 2..5, silently
     r"^rebuild: in_keep\['y'\] is \[0, 1, 2, 3\], but out_keep of the nodes it reads \('h'\) leaves \[2, 3, 4, 5\] "
     r"of its merged input; in_keep and out_keep must describe one pruning \(DependencyGraph\.keep gives both\)$"),
    ({"y": T(range(6))}, {}, (), (), mg.PruneError,  # a torch size mismatch before
     r"^rebuild: in_keep\['y'\] is \[0, 1, 2, 3, 4, 5\], but out_keep of the nodes it reads"),
    ({"h": T([0, 1])}, {"x": T([0, 1])}, (), (), mg.PruneError,  # a torch size mismatch before
     r"^rebuild: out_keep\['x'\] is \[0, 1\], 2 of the 5 features of input 'x'; an input keeps them all, in order$"),
    ({}, {"y": T([2, 1, 0])}, (), (), mg.PruneError,  # the classes reversed, silently, before
     r"^rebuild: out_keep\['y'\] is \[2, 1, 0\], 3 of the 3 features of output 'y'; an output keeps them all"),
    ({}, {}, [("x", "y")], (), mg.PruneError,  # ignored before
     r"^rebuild: removed_edges\[0\] is 'x' -> 'y', which is not an edge of the network \(its in-edges: "
     r"'h' -> 'y'\)$"),
    ({}, {}, ("x", "h"), (), TypeError,  # one edge, not a list of them: a ValueError of unpacking before
     r"^rebuild: removed_edges\[0\] must be an edge \(u, v\), a pair of node names, got 'x'$"),
    ({}, {}, (), ["zz"], mg.PruneError,  # ignored before
     r"^rebuild: removed_nodes names 'zz', which is not a node of the network$"),
    ({}, {}, (), "h", TypeError, r"^rebuild: removed_nodes must be a list of node names, got str 'h'$"),
    ({}, {}, (), ["y"], mg.PruneError,  # 'h' became the output, silently, before
     r"^rebuild: removed_nodes names output 'y'; pruning keeps the network's inputs and outputs$"),
])
def test_rebuild_refuses_keeps_edges_and_nodes_that_do_not_fit(ins, outs, edges, nodes, error, message):
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    in_keep, out_keep = DependencyGraph(net).keep([0, 1])
    assert in_keep["y"].tolist() == MLP_KEEP["in"]["y"] and out_keep["h"].tolist() == MLP_KEEP["out"]["h"]
    in_keep, out_keep = {**in_keep, **ins}, {**out_keep, **outs}
    in_keep = {k: v for k, v in in_keep.items() if v is not None}
    out_keep = {k: v for k, v in out_keep.items() if v is not None}
    with pytest.raises(error, match=message):
        rebuild(net, in_keep, out_keep, edges, nodes)


def test_rebuild_refuses_keeps_that_break_a_sum_a_per_channel_node_or_a_path():
    net = wide_dag()
    in_keep, out_keep = DependencyGraph(net).keep([0, 2, 9, 13, 15])
    assert out_keep["a"].tolist() == out_keep["bn"].tolist() == [1, 3, 4, 5, 6, 7]
    with pytest.raises(mg.PruneError, match=r"^rebuild: out_keep\['b'\] is \[0, 1, 2, 3, 4, 5\] but out_keep\['a'\] "
                                            r"is \[1, 3, 4, 5, 6, 7\], and both are summed into node 's'; summed "
                                            r"inputs keep the same positions$"):
        rebuild(net, in_keep, {**out_keep, "b": torch.arange(6)})  # b's kept rows summed onto a's, silently
    with pytest.raises(mg.PruneError, match=r"^rebuild: out_keep\['bn'\] is \[0, 1, 3, 4, 5, 6\], but node 'bn' "
                                            r"passes its input channels on \(per_channel\), so it must equal "
                                            r"in_keep\['bn'\], \[1, 3, 4, 5, 6, 7\]$"):
        rebuild(net, in_keep, {**out_keep, "bn": torch.tensor([0, 1, 3, 4, 5, 6])})  # another unit's statistics
    with pytest.raises(TypeError, match=r"^rebuild: expected a modgraph\.ModuleGraph, got Linear$"):
        rebuild(torch.nn.Linear(6, 3), in_keep, out_keep)  # an AttributeError before
    net = branchy()
    with pytest.raises(mg.PruneError, match=r"^rebuild: node 'a2' would become an output: the removed edges leave it "
                                            r"no path to 'y'; remove it too \(removed_nodes; dead_nodes finds such "
                                            r"nodes\)$"):
        rebuild(net, *DependencyGraph(net).keep((), [("a2", "m")]), [("a2", "m")])  # a second output before


def test_rebuild_of_valid_keeps_of_other_kinds_gives_the_same_network():
    torch.manual_seed(0)
    net = wide_dag()
    deps = DependencyGraph(net)
    in_keep, out_keep = deps.keep([0, 2, 9, 13, 15])
    x = torch.randn(8, 6)
    expected = rebuild(net, in_keep, out_keep)(x)
    torch.testing.assert_close(expected, mask_units(net, deps, [0, 2, 9, 13, 15])(x), atol=1e-6, rtol=1e-5)
    as_lists = rebuild(net, {k: v.tolist() for k, v in in_keep.items()}, {k: v.tolist() for k, v in out_keep.items()})
    as_int32 = rebuild(net, {k: v.int() for k, v in in_keep.items()}, {k: v.int() for k, v in out_keep.items()})
    no_input = rebuild(net, in_keep, {k: v for k, v in out_keep.items() if k != "x"})  # an input keeps every feature
    flipped = out_keep["h"].flip(0)  # h's units in another order, y's columns with them: the same function
    reordered = rebuild(net, {**in_keep, "y": flipped}, {**out_keep, "h": flipped})
    for small in (as_lists, as_int32, no_input, reordered):
        torch.testing.assert_close(small(x), expected, atol=1e-6, rtol=1e-5)


def test_mask_units_refuses_a_network_dependencies_or_groups_that_do_not_fit():
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    deps = DependencyGraph(net)
    with pytest.raises(TypeError, match=r"^mask_units: expected a modgraph\.ModuleGraph, got Linear$"):
        mask_units(torch.nn.Linear(5, 3), deps, [0])  # an AttributeError before
    with pytest.raises(TypeError, match=r"^mask_units: deps must be the DependencyGraph of the network "
                                        r"\(DependencyGraph\(net\)\), got NoneType$"):
        mask_units(net, None, [0])  # an AttributeError before
    with pytest.raises(mg.PruneError, match=r"^mask_units: deps was built for another network: node 'h' has width 6, "
                                            r"in-edges from 'x' there but width 8, in-edges from 'x' here; build it "
                                            r"from this network, DependencyGraph\(net\)$"):
        mask_units(mg.ModuleGraph(mlp_graph(5, 8, 3)), deps, [0])  # units 0..5 of 8 masked by the map of 6 before
    for bad in (6, -1, 1.0, True, "a"):  # an IndexError, the last unit (-1) or unit 1 (True), silently, before
        with pytest.raises(ValueError, match=rf"^mask_units: groups must be groups or their indices in \[0, 6\) "
                                             rf"\(deps\.groups\), got {bad!r}$"):
            mask_units(net, deps, [bad])
    with pytest.raises(TypeError, match=r"^mask_units: groups must be a list of groups or their indices "
                                        r"\(deps\.groups\), got int 3$"):
        mask_units(net, deps, 3)
    x = torch.randn(4, 5)  # valid: indices, groups, a copy's dependencies
    same = [mask_units(net, deps, [1, 4]), mask_units(net, deps, [deps.groups[1], deps.groups[4]]),
            mask_units(net, DependencyGraph(mg.prune.structural.copy_network(net)), [1, 4])]
    for masked in same[1:]:
        assert torch.equal(masked(x), same[0](x))


def test_dead_nodes_refuses_what_is_not_a_graph_and_outputs():
    from modgraph.prune import dead_nodes

    net = branchy()
    g = net.graph.copy()
    g.remove_edge("a2", "m")
    assert dead_nodes(g, ["y"]) == {"p", "a", "a2"}
    with pytest.raises(TypeError, match=r"^dead_nodes: g must be a networkx\.DiGraph; for a network pass net\.graph, "
                                        r"got ModuleGraph$"):
        dead_nodes(net, ["y"])  # an AttributeError before
    with pytest.raises(TypeError, match=r"^dead_nodes: outputs must be a list of node names, got str 'y'$"):
        dead_nodes(g, "y")  # read as its letters before
    with pytest.raises(mg.PruneError, match=r"^dead_nodes: outputs names 'zz', which is not a node of g$"):
        dead_nodes(g, ["zz"])  # a NetworkXError before
    with pytest.raises(mg.PruneError, match=r"^dead_nodes: outputs is empty; with no output every node is dead"):
        dead_nodes(g, [])  # every node before


def test_register_slicer_refuses_what_is_not_a_module_class_or_a_function():
    from modgraph.prune import register_slicer
    from modgraph.prune.structural import SLICERS

    before = dict(SLICERS)
    with pytest.raises(TypeError, match=r"^register_slicer: module_class must be a torch\.nn\.Module subclass \(the "
                                        r"class of the modules to slice\), got 'Linear'$"):
        register_slicer("Linear", lambda old, new, keep_in, keep_out: None)  # registered, never used, before
    with pytest.raises(TypeError, match=r"^register_slicer: fn must be callable as fn\(old, new, keep_in, keep_out\), "
                                        r"got int 5$"):
        register_slicer(ChannelScale, 5)  # a TypeError at the next rebuild before
    assert SLICERS == before
