"""Importance criteria against hand computations and independent references (torch.nn.utils.prune, SGL)."""

import pytest
import torch
from torch.nn.utils import prune as torch_prune

import modgraph as mg
from modgraph.functional.regularizers import smoothing_group_lasso
from modgraph.prune import (
    AttentionImportance,
    DependencyGraph,
    MagnitudeImportance,
    RandomImportance,
    SGLImportance,
    prune,
    sgl_penalty,
)
from modgraph.record import EdgeRecorder

from ..helpers import mlp_graph
from .nets import wide_dag


def recorded_mlp(hidden=6):
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, hidden, 3))
    rec = EdgeRecorder().attach(net)
    x = torch.randn(40, 5)
    net(x)
    rec.epoch_end()
    return net, rec, net.edge_weights()[("h", "y")]


def test_attention_scores_are_the_recorded_mean_weights():
    net, rec, w = recorded_mlp()
    deps = DependencyGraph(net)
    mean = w.mean(0)  # (in, out)
    torch.testing.assert_close(AttentionImportance(rec).neurons(net, deps), mean.mean(1))
    torch.testing.assert_close(AttentionImportance(rec, reduce="max").neurons(net, deps), mean.amax(1))
    effective = mean * net.nodes["y"].weight.detach().abs().t()
    torch.testing.assert_close(AttentionImportance(rec, weighted=True).neurons(net, deps), effective.mean(1))
    torch.testing.assert_close(AttentionImportance(rec).connections(net)["h->y"], mean)


def test_attention_needs_a_matching_recording():
    net, rec, _ = recorded_mlp()
    other = mg.ModuleGraph(mlp_graph(5, 7, 3))
    with pytest.raises(mg.PruneError, match=r"gate 'h->y': recorded statistics of shape \(6, 3\) do not fit this "
                                            r"network's \(7, 3\)"):
        AttentionImportance(rec).neurons(other, DependencyGraph(other))
    with pytest.raises(mg.PruneError, match="the recorder has no statistics for gate 'h->y'"):
        AttentionImportance(EdgeRecorder()).connections(net)
    with pytest.raises(mg.PruneError, match="the magnitude criterion has no score for branch edges"):
        MagnitudeImportance().branches(net)


def test_magnitude_is_the_l1_norm_of_a_units_weights():
    net = wide_dag()
    deps = DependencyGraph(net)
    a, b, c, h = (net.nodes[n].weight.detach() for n in ("a", "b", "c", "h"))
    unit = 3  # rows of a and b, columns of c and h
    hand = a[unit].abs().sum() + b[unit].abs().sum() + c[:, unit].abs().sum() + h[:, unit].abs().sum()
    assert MagnitudeImportance().neurons(net, deps)[unit].item() == pytest.approx(hand.item(), rel=1e-6)
    assert MagnitudeImportance(side="out").neurons(net, deps)[unit].item() == pytest.approx(
        (c[:, unit].abs().sum() + h[:, unit].abs().sum()).item(), rel=1e-6)


def test_connection_magnitude_pruning_matches_torch_l1_unstructured():
    net, _, _ = recorded_mlp(hidden=10)
    small, report = prune(net, MagnitudeImportance(), level="connection", sparsity=0.4)
    reference = torch.nn.Linear(10, 3)
    reference.weight.data.copy_(net.nodes["y"].weight.data)
    torch_prune.l1_unstructured(reference, "weight", amount=12)  # 40% of 30 connections
    removed = {(i, o) for i, o in report.removed["connections"]["h->y"]}
    assert removed == {(i, o) for o, i in (reference.weight_mask == 0).nonzero().tolist()}


def test_sgl_penalty_and_importance_use_the_outgoing_columns():
    net, _, _ = recorded_mlp()
    deps = DependencyGraph(net)
    w = net.nodes["y"].weight  # (3, 6): column i carries unit i
    torch.testing.assert_close(sgl_penalty(net, deps, a=0.1), smoothing_group_lasso(w.t(), dim=-1, a=0.1))
    torch.testing.assert_close(SGLImportance().neurons(net, deps), w.detach().norm(dim=0))
    cols = w.detach()
    t = cols.norm(dim=0)
    assert (t > 0.1).all() and (t < 10.0).all()  # a = 0.1: the norm's branch; a = 10: the polynomial's
    for a in (0.1, 10.0):
        net.zero_grad(set_to_none=True)
        sgl_penalty(net, deps, a=a).backward()
        # by hand: column g (norm t) gets g / t where t >= a, (3 / (2a) - t^2 / (2a^3)) g below a
        expected = torch.where(t >= a, cols / t, (3 / (2 * a) - t**2 / (2 * a**3)) * cols)
        torch.testing.assert_close(net.nodes["y"].weight.grad, expected)
        assert net.nodes["h"].weight.grad is None


def test_random_is_seeded():
    net, _, _ = recorded_mlp()
    deps = DependencyGraph(net)
    assert torch.equal(RandomImportance(3).neurons(net, deps), RandomImportance(3).neurons(net, deps))
    assert not torch.equal(RandomImportance(3).neurons(net, deps), RandomImportance(4).neurons(net, deps))


def test_attention_needs_a_closed_and_existing_epoch():
    """Before: a KeyError from the recorder; now a PruneError saying what to do."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    rec = EdgeRecorder().attach(net)
    net(torch.randn(40, 5))
    with pytest.raises(mg.PruneError, match=r"gate 'h->y' has no closed epoch in the recorder: call epoch_end\(\)"):
        prune(net, AttentionImportance(rec), sparsity=0.5)
    rec.epoch_end()
    with pytest.raises(mg.PruneError, match=r"gate 'h->y' has no recorded epoch 7; recorded epochs: \[0\]"):
        prune(net, AttentionImportance(rec, epoch=7), sparsity=0.5)
    with pytest.raises(mg.PruneError, match=r"no recorded epoch 3"):
        prune(net, AttentionImportance(rec, epoch=3), level="connection", sparsity=0.5)
    with pytest.raises(TypeError, match=r"epoch must be an integer .* got 'last'"):
        AttentionImportance(rec, epoch="last")
    pruned, _ = prune(net, AttentionImportance(rec, epoch=0), sparsity=0.5)  # the recorded epoch works
    assert pruned.nodes["h"].out_features == 3


def test_graph_edge_scores_need_a_closed_and_existing_epoch():
    gate = mg.Gate("softmax", level="graph", name="conv")
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 2]])
    rec = EdgeRecorder().attach(gates=[gate])
    gate(torch.randn(4, 1), index=edge_index[1], num_segments=3, edge_index=edge_index)
    with pytest.raises(mg.PruneError, match=r"gate 'conv' has no closed epoch in the recorder"):
        AttentionImportance(rec).graph_edges(None, edge_index)
    rec.epoch_end()
    with pytest.raises(mg.PruneError, match=r"gate 'conv' has no recorded epoch 2; recorded epochs: \[0\]"):
        AttentionImportance(rec, epoch=2).graph_edges(None, edge_index)
    assert AttentionImportance(rec).graph_edges(None, edge_index).shape == (4,)


def test_criterion_settings_are_checked_when_made():
    """p=0 was a ZeroDivisionError at pruning, p<0 or inf ranked units silently by a meaningless score; a seed that
    is not an integer failed inside torch; a recorder that is not one, an AttributeError; weighted='no' was true."""
    for p in (0, -1, float("inf"), float("nan"), "l2"):
        with pytest.raises(ValueError, match=rf"^MagnitudeImportance: p must be a finite number > 0 \(the norm: 1 L1, "
                                             rf"2 L2\), got {p!r}$"):
            MagnitudeImportance(p=p)
    for seed in (1.5, "a", None):
        with pytest.raises(TypeError, match=rf"^RandomImportance: seed must be an integer, got {seed!r}$"):
            RandomImportance(seed=seed)
    with pytest.raises(TypeError, match=r"^AttentionImportance: recorder must be a modgraph\.record\.EdgeRecorder "
                                        r"that saw the network run, got str$"):
        AttentionImportance("rec")
    _, rec, _ = recorded_mlp()
    with pytest.raises(TypeError, match=r"^AttentionImportance: weighted must be true or false, got 'no'$"):
        AttentionImportance(rec, weighted="no")


def test_attention_on_a_network_without_neuron_gates_says_so():
    _, rec, _ = recorded_mlp()
    plain = mg.ModuleGraph(mlp_graph(5, 6, 3, attention=None))
    with pytest.raises(mg.PruneError, match=r"^the network has no neuron-level attention gates, so the attention "
                                            r"criterion has no scores for its hidden units; use magnitude"):
        prune(plain, AttentionImportance(rec), sparsity=0.5)  # "there are no scored hidden units" before


def test_sgl_penalty_makes_its_index_tensors_once_per_dependency_graph():
    """As a training penalty it runs every step; a tensor made from a Python list on a GPU is a copy the host waits
    for. With ``deps`` given, the second call makes none, and it gives the same value, on the meta device too."""
    from ..helpers import TensorCalls

    torch.manual_seed(0)
    net = wide_dag()
    deps = DependencyGraph(net)
    first = sgl_penalty(net, deps)
    with TensorCalls("tensor", "as_tensor") as calls:
        again = sgl_penalty(net, deps)
    assert calls.total() == 0, calls.counts
    torch.testing.assert_close(again, first)
    meta = sgl_penalty(net.to("meta"), deps)  # a new device: index tensors made there
    assert meta.device.type == "meta" and meta.shape == first.shape


def test_unit_weights_and_sgl_penalty_refuse_dependencies_of_another_network():
    from modgraph.prune import unit_weights

    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    deps = DependencyGraph(net)
    with pytest.raises(mg.PruneError, match=r"^unit_weights: deps was built for another network: node 'h' has width 6, "
                                            r"in-edges from 'x' there but width 4, in-edges from 'x' here"):
        unit_weights(mg.ModuleGraph(mlp_graph(5, 4, 3)), deps)  # an IndexError before
    with pytest.raises(mg.PruneError, match=r"^sgl_penalty: deps was built for another network: node 'h' has width 6, "
                                            r"in-edges from 'x' there but width 8"):
        sgl_penalty(mg.ModuleGraph(mlp_graph(5, 8, 3)), deps)  # the penalty of 6 of the 8 units, silently, before
    with pytest.raises(TypeError, match=r"^unit_weights: deps must be the DependencyGraph of the network "
                                        r"\(DependencyGraph\(net\)\), got str$"):
        unit_weights(net, "deps")  # an AttributeError before
    with pytest.raises(TypeError, match=r"^sgl_penalty: expected a modgraph\.ModuleGraph, got Linear$"):
        sgl_penalty(torch.nn.Linear(5, 3))  # named DependencyGraph before
    copy = mg.prune.structural.copy_network(net)  # valid: the dependencies of an equal network
    assert torch.equal(unit_weights(copy, deps), unit_weights(net)) and torch.equal(unit_weights(net, deps),
                                                                                    unit_weights(net))


def test_criteria_refuse_a_network_dependencies_or_graph_of_another_kind():
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    other = DependencyGraph(mg.ModuleGraph(mlp_graph(5, 4, 3)))
    for imp in (MagnitudeImportance(), RandomImportance(), SGLImportance()):
        name = type(imp).__name__
        with pytest.raises(mg.PruneError, match=rf"^{name}\.neurons: deps was built for another network"):
            imp.neurons(net, other)  # 4 scores for 6 units (random), an IndexError or wrong scores, before
        with pytest.raises(TypeError, match=rf"^{name}\.neurons: expected a modgraph\.ModuleGraph, got Linear$"):
            imp.neurons(torch.nn.Linear(5, 3), DependencyGraph(net))
    edge_index = torch.tensor([[0, -1], [1, 0]])
    with pytest.raises(mg.PruneError, match=r"^MagnitudeImportance\.graph_edges: edge_index has the edge -1 -> 0 "
                                            r"\(column 1\), which names a negative node id"):
        MagnitudeImportance().graph_edges(net, edge_index)  # node -1 read as the last node before
    with pytest.raises(TypeError, match=r"^RandomImportance\.graph_edges: edge_index must be a torch\.Tensor \[2, E\] "
                                        r"of integer node ids \(torch\.long\), got list$"):
        RandomImportance().graph_edges(net, [[0, 1], [1, 0]])  # an AttributeError before
    with pytest.raises(TypeError, match=r"^MagnitudeImportance\.connections: expected a modgraph\.ModuleGraph, got "
                                        r"Linear$"):
        MagnitudeImportance().connections(torch.nn.Linear(5, 3))
    # valid: the scores as before
    deps = DependencyGraph(net)
    seeded = torch.rand(6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(RandomImportance(3).neurons(net, deps), seeded)
    assert MagnitudeImportance().graph_edges(net, torch.tensor([[0, 1], [1, 0]])).tolist() == [0.5, 0.5]
