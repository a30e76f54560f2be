import pytest
import torch

import modgraph as mg


def test_gate_reports_through_its_hooks_and_handles_remove():
    gate = mg.Gate("softmax")
    seen = []
    handle = gate.register_weight_hook(lambda g, w, ctx: seen.append((g, w.clone(), ctx)))
    scores = torch.randn(4, 3)
    w = gate(scores, dim=-1)
    torch.testing.assert_close(w, torch.softmax(scores, -1))
    assert seen[0][0] is gate and torch.equal(seen[0][1], w)
    handle.remove()
    gate(scores)
    assert len(seen) == 1


def test_segment_gate_groups_by_index():
    gate = mg.Gate("sparsemax", level="graph")
    scores = torch.tensor([3.0, 1.0, 0.2, 5.0, 4.9])
    index = torch.tensor([0, 0, 0, 1, 1])
    w = gate(scores, index=index)
    torch.testing.assert_close(torch.zeros(2).index_add(0, index, w), torch.ones(2))
    assert w[1] == 0 and w[2] == 0


def test_threshold_zeroes_and_blocks_gradient():
    gate = mg.Gate("sigmoid", threshold=0.5)
    scores = torch.tensor([-2.0, 0.1, 3.0], requires_grad=True)
    w = gate(scores)
    assert w[0] == 0 and w[1] > 0.5
    w.sum().backward()
    assert scores.grad[0] == 0 and scores.grad[1] > 0


def test_temperature_sharpens():
    scores = torch.tensor([1.0, 2.0])
    hot, cold = mg.Gate("softmax", temperature=10.0)(scores), mg.Gate("softmax", temperature=0.1)(scores)
    assert cold[1] > hot[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"normalizer": "relu"}, "unknown normalizer 'relu'"),
    ({"threshold": 2}, r"threshold must be a number in \[0, 1\]"),
    ({"temperature": 0}, "temperature must be a finite number > 0, got 0"),
])
def test_gate_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mg.Gate(**kwargs)


def test_net_hooks_see_every_gate():
    from .helpers import random_dag

    net = mg.ModuleGraph(random_dag(10, 0.4, 2))
    seen = set()
    for gate in net.gates():
        gate.register_weight_hook(lambda g, w, ctx: seen.add(g.name))
    net(torch.randn(2, 8))
    assert seen == {g.name for g in net.gates()} and seen


def test_hooks_receive_the_segment_index_and_none_for_a_dense_gate():
    seen = []
    segment = mg.Gate("softmax", level="graph")
    segment.register_weight_hook(lambda g, w, ctx: seen.append(ctx))
    index = torch.tensor([0, 0, 1, 1, 1])
    segment(torch.randn(5), index=index, edge_index=torch.zeros(2, 5, dtype=torch.long))
    assert torch.equal(seen[0]["index"], index)
    dense = mg.Gate("softmax")
    dense.register_weight_hook(lambda g, w, ctx: seen.append(ctx))
    dense(torch.randn(4, 3))
    assert "index" in seen[1] and seen[1]["index"] is None


@pytest.mark.parametrize("level", ["node", None, "edge"])
def test_a_level_that_reports_cannot_read_is_refused(level):
    # before: accepted; ModuleGraph.edge_weights() and graph_weights() then silently left the gate out
    with pytest.raises(ValueError, match=r"Gate: level must be one of 'neuron', 'branch', 'graph', got "):
        mg.Gate("sigmoid", level=level)


def test_a_hook_that_is_not_callable_is_refused_when_registered():
    gate = mg.Gate("sigmoid")
    with pytest.raises(TypeError, match=r"register_weight_hook: hook must be callable as hook\(gate, weights, "
                                        r"context\), got 'x'"):
        gate.register_weight_hook("x")  # before: accepted, then "'str' object is not callable" at every forward
    gate(torch.randn(3))  # nothing was registered
