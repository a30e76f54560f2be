"""EdgeRecorder: statistics equal a direct computation; recording changes nothing; hooks come off."""

import networkx as nx
import numpy as np
import pytest
import torch

import modgraph as mg
from modgraph.record import EdgeRecorder

from ..helpers import default_dtype, mlp_graph


def branch_net(heads=1, attention="softmax"):
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    for b in ("a", "b", "c"):
        g.add_node(b, op="linear", out_features=6, activation="tanh")
        g.add_edge("x", b)
        g.add_edge(b, "m", attention=attention, heads=heads, hidden=6)
    g.add_node("m", op="identity")
    g.add_node("y", op="linear", out_features=2)
    g.add_edge("m", "y")
    return mg.ModuleGraph(g)


def direct(samples: torch.Tensor, threshold: float):
    """Reference statistics over dim 0 of the stacked per-sample weights."""
    s = samples.double()
    return {"mean": s.mean(0), "std": s.std(0, correction=0), "min": s.amin(0), "max": s.amax(0),
            "under": (s < threshold).double().mean(0)}


def check(stats, samples, threshold):
    ref = direct(samples, threshold)
    assert stats.count == samples.shape[0]
    for name, value in ref.items():
        torch.testing.assert_close(getattr(stats, name).double(), value, atol=1e-6, rtol=1e-5, msg=name)


def test_neuron_statistics_equal_a_direct_computation_over_batches():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 7, 3))
    rec = EdgeRecorder(threshold=0.5).attach(net)
    seen = []
    for batch in torch.randn(23, 5).split([8, 8, 7]):
        net(batch)
        seen.append(net.edge_weights()[("h", "y")])
    rec.epoch_end()
    stats = rec.stats("h->y")
    assert stats.mean.shape == (7, 3)
    check(stats, torch.cat(seen), 0.5)


def test_branch_statistics_per_edge_and_head():
    torch.manual_seed(1)
    net = branch_net(heads=2)
    rec = EdgeRecorder(threshold=0.3).attach(net)
    x = torch.randn(9, 4)
    net(x)
    w = torch.stack([net.edge_weights()[(b, "m")] for b in "abc"], dim=1)  # (B, K, heads)
    rec.epoch_end()
    info = rec.gates["m"]
    assert info.level == "branch" and info.edges == [("a", "m"), ("b", "m"), ("c", "m")] and info.shape == (3, 2)
    check(rec.stats("m"), w, 0.3)


def test_graph_gate_statistics_per_edge_over_forwards():
    gate = mg.Gate("softmax", level="graph", name="conv")
    edge_index = torch.tensor([[0, 1, 2, 0, 2], [1, 0, 0, 2, 2]])
    rec = EdgeRecorder(threshold=0.4).attach(gates=[gate])
    torch.manual_seed(2)
    seen = []
    for _ in range(4):
        w = gate(torch.randn(5, 2), index=edge_index[1], num_segments=3, edge_index=edge_index)
        seen.append(w)
    rec.epoch_end()
    assert torch.equal(rec.gates["conv"].edge_index, edge_index)
    check(rec.stats("conv"), torch.stack(seen), 0.4)
    with pytest.raises(ValueError, match=r"graph gate 'conv': edge_index changed \(4 edges, recorded 5 edges\)"):
        gate(torch.randn(4, 2), index=edge_index[1, :4], num_segments=3, edge_index=edge_index[:, :4])


@pytest.mark.parametrize("forwards", [1, 2])
def test_under_counts_exactly_the_weights_a_gate_with_that_threshold_zeroes(forwards):
    """A gate with threshold t keeps weights >= t; a recorder with the same t counts as under exactly the zeroed
    ones. sigmoid(0) = 0.5 exactly: a weight at the threshold is kept and not under (one forward: the held single
    sample; two: the accumulated path)."""
    gate = mg.Gate("sigmoid", threshold=0.5, level="graph", name="conv")
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
    rec = EdgeRecorder(threshold=0.5).attach(gates=[gate])
    scores = torch.tensor([[-1.0], [0.0], [1.0]])  # sigmoid: 0.27 (zeroed), 0.5 (kept), 0.73 (kept)
    for _ in range(forwards):
        w = gate(scores, index=edge_index[1], num_segments=3, edge_index=edge_index)
    assert w[1, 0] == 0.5 and w[0, 0] == 0 and w[2, 0] > 0.5
    rec.epoch_end()
    under = rec.stats("conv").under
    assert under.tolist() == [[1.0], [0.0], [0.0]]
    assert torch.equal(under.bool(), w == 0)


def test_epochs_reset_the_running_statistics_and_are_kept_apart():
    torch.manual_seed(3)
    net = mg.ModuleGraph(mlp_graph(5, 4, 2))
    rec = EdgeRecorder().attach(net)
    x1, x2 = torch.randn(6, 5), torch.randn(10, 5)
    net(x1)
    w1 = net.edge_weights()[("h", "y")]
    assert rec.epoch_end() == 0
    net(x2)
    w2 = net.edge_weights()[("h", "y")]
    assert rec.epoch_end() == 1
    check(rec.stats("h->y", epoch=0), w1, 0.1)
    check(rec.stats("h->y", epoch=1), w2, 0.1)
    check(rec.stats("h->y"), w2, 0.1)
    assert rec.epochs == [0, 1]
    with pytest.raises(KeyError, match="has no epoch 5; recorded epochs: \\[0, 1\\]"):
        rec.stats("h->y", epoch=5)
    with pytest.raises(KeyError, match="no recorded gate 'nope'; recorded gates: 'h->y'"):
        rec.stats("nope")


def test_recording_changes_neither_outputs_nor_gradients_and_works_under_no_grad():
    torch.manual_seed(4)
    net = branch_net()
    x = torch.randn(5, 4)
    plain = net(x)
    grads = torch.autograd.grad(plain.sum(), list(net.parameters()))
    rec = EdgeRecorder().attach(net)
    recorded = net(x)
    grads_rec = torch.autograd.grad(recorded.sum(), list(net.parameters()))
    assert torch.equal(plain, recorded)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_rec))
    with torch.no_grad():
        net(x)
    rec.epoch_end()
    assert rec.stats("m").count == 10


def test_detach_paused_and_context_manager():
    torch.manual_seed(5)
    net = mg.ModuleGraph(mlp_graph(5, 4, 2))
    x = torch.randn(3, 5)
    with EdgeRecorder().attach(net) as rec:
        net(x)
        with rec.paused():
            net(x)
    net(x)  # detached: not counted
    rec.epoch_end()
    assert rec.stats("h->y").count == 3
    assert all(len(g._weight_hooks) == 1 for g in net.gates())  # only the network's own edge_weights() hook


def test_every_records_one_forward_in_k():
    torch.manual_seed(7)
    net = mg.ModuleGraph(mlp_graph(5, 4, 2))
    rec = EdgeRecorder(every=3).attach(net)
    seen = []
    for i in range(7):
        net(torch.randn(4, 5))
        if i % 3 == 0:
            seen.append(net.edge_weights()[("h", "y")])
    rec.epoch_end()
    check(rec.stats("h->y"), torch.cat(seen), 0.1)
    with pytest.raises(ValueError, match="every must be a positive integer, got 0"):
        EdgeRecorder(every=0)


def test_memory_does_not_grow_with_samples():
    torch.manual_seed(6)
    net = mg.ModuleGraph(mlp_graph(5, 4, 2))
    rec = EdgeRecorder().attach(net)
    for _ in range(50):
        net(torch.randn(64, 5))
    running = rec._running["h->y"]
    tensors = [running.sums, running.totals, running.lo, running.hi]
    assert [t.numel() for t in tensors] == [3 * 64 * 8, 3 * 8, 64 * 8, 64 * 8]  # one batch of the [4, 2] gate
    rec.epoch_end()
    assert rec.stats("h->y").count == 3200


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\], got 1.5"):
        EdgeRecorder(threshold=1.5)
    net = mg.ModuleGraph(mlp_graph(5, 4, 2))
    rec = EdgeRecorder().attach(net)
    with pytest.raises(RuntimeError, match="already attached"):
        rec.attach(net)
    with pytest.raises(ValueError, match="exactly one"):
        EdgeRecorder().attach()
    net(torch.randn(2, 5))
    with pytest.raises(KeyError, match="gate 'h->y' has no closed epoch yet; call epoch_end"):
        rec.stats("h->y")
    rec.epoch_end(3)
    with pytest.raises(ValueError, match="epoch numbers must increase: got 2 after 3"):
        rec.epoch_end(2)


def test_a_gate_silent_in_an_epoch_gets_no_entry_and_buffers_are_reused():
    torch.manual_seed(7)
    net = mg.ModuleGraph(mlp_graph(5, 4, 2))
    rec = EdgeRecorder().attach(net)
    net(torch.randn(6, 5))
    running = rec._running["h->y"]
    rec.epoch_end()  # epoch 0 recorded
    rec.epoch_end()  # epoch 1: no forward
    x = torch.randn(9, 5)
    net(x)
    rec.epoch_end()
    assert [e for e, _ in rec.gates["h->y"].history] == [0, 2] and rec.epochs == [0, 1, 2]
    assert rec._running["h->y"] is running and running.count == 0  # reset, not rebuilt
    check(rec.stats("h->y", epoch=2), net.edge_weights()[("h", "y")], 0.1)  # nothing of epoch 0 left in it


def test_a_shape_or_device_change_is_named():
    net = mg.ModuleGraph(mlp_graph(5, 4, 2))
    rec = EdgeRecorder().attach(net)
    net(torch.randn(3, 5))
    (gate,) = net.gates()
    with pytest.raises(ValueError, match=r"gate 'h->y': weights of shape \(5, 2\), recorded before as \(4, 2\); "
                                         r"a recorder follows one network"):
        gate.report(torch.rand(3, 5, 2))
    with pytest.raises(ValueError, match=r"gate 'h->y': weights moved from cpu \(torch.float32\) to meta "
                                         r"\(torch.float32\) within an epoch; call epoch_end\(\) before moving"):
        gate.report(torch.empty(3, 4, 2, device="meta"))
    with pytest.raises(ValueError, match=r"to cpu \(torch.float64\) within an epoch"):
        gate.report(torch.rand(3, 4, 2, dtype=torch.float64))
    rec.epoch_end()
    assert rec.stats("h->y").count == 3  # the refused reports added nothing


@pytest.mark.parametrize("n_batches", [1, 3])
def test_a_float64_network_is_recorded_in_float64(n_batches):
    """Under ``torch.set_default_dtype(torch.float64)`` the weights are float64, and so are the sums; the statistics
    are float32, as for every network (and as a recording read back from a file)."""
    with default_dtype(torch.float64):
        torch.manual_seed(8)
        net = mg.ModuleGraph(mlp_graph(5, 4, 2))
        rec = EdgeRecorder(threshold=0.5).attach(net)
        seen = []
        for batch in torch.randn(3 * n_batches, 5).split(3):
            net(batch)
            seen.append(net.edge_weights()[("h", "y")])
        rec.epoch_end()
    assert seen[0].dtype == torch.float64 and rec._running["h->y"].dtype == torch.float64
    stats = rec.stats("h->y")
    assert stats.mean.dtype == torch.float32
    check(stats, torch.cat(seen), 0.5)


@pytest.mark.parametrize("n_batches", [1, 2])
def test_float64_weights_keep_a_tiny_spread_and_their_side_of_the_threshold(n_batches):
    """Four float64 weights 1e-10 apart around the threshold 0.1: in float32 they would all round to one number
    (spread 0, and none under the threshold); recorded in float64 they are what torch computes."""
    gate = mg.Gate("sigmoid", level="neuron", name=("h", "y"))
    rec = EdgeRecorder(threshold=0.1).attach(gates=[gate])
    w = (0.1 + 1e-10 * torch.tensor([-1.0, 1.0, 2.0, 3.0], dtype=torch.float64)).view(4, 1, 1)
    for part in w.split(4 // n_batches):
        gate.report(part)
    rec.epoch_end()
    stats = rec.stats("h->y")
    assert stats.under.item() == 0.25 and stats.mean.dtype == torch.float32
    torch.testing.assert_close(stats.std.double(), w.std(0, correction=0), rtol=1e-6, atol=0)
    assert stats.min.item() == torch.tensor(0.1 - 1e-10).float().item()  # the float32 nearest each


def test_attach_names_what_is_not_a_network_or_has_nothing_to_record():
    with pytest.raises(TypeError, match=r"^attach: expected a modgraph\.ModuleGraph \(a network with gates\(\)\), got "
                                        r"Sequential"):
        EdgeRecorder().attach(torch.nn.Sequential(torch.nn.Linear(5, 3)))  # an AttributeError before
    net = mg.ModuleGraph(mlp_graph())
    with pytest.raises(TypeError, match=r"^attach: gates must be a list of Gate, got Gate$"):
        EdgeRecorder().attach(gates=net.gates()[0])
    with pytest.raises(TypeError, match=r"^attach: gates\[1\] is Tensor, not a modgraph Gate"):
        EdgeRecorder().attach(gates=[net.gates()[0], torch.zeros(1)])
    plain = mg.ModuleGraph(mlp_graph(attention=None))  # recorded nothing, silently (and stayed "not attached")
    with pytest.raises(ValueError, match=r"^attach: the network has no attention gates .*; there is nothing to "
                                         r"record$"):
        EdgeRecorder().attach(plain)


def test_epoch_numbers_are_non_negative_integers():
    """1.5 or True were taken as epoch numbers (and then written to files load() refuses); '3' was a TypeError."""
    net = mg.ModuleGraph(mlp_graph())
    rec = EdgeRecorder().attach(net)
    net(torch.randn(4, 5))
    for bad in (1.5, True, "3", -1):
        with pytest.raises(ValueError, match=rf"^epoch_end: epoch must be a non-negative integer \(an epoch number; "
                                             rf"stats\(key, -1\) is the last\), got {bad!r}$"):
            rec.epoch_end(bad)
    assert rec.epochs == [] and rec.pending
    assert rec.epoch_end(3) == 3


def test_gate_key_and_stats_name_arguments_of_the_wrong_kind():
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    rec = EdgeRecorder().attach(net)
    net(torch.randn(4, 5))
    rec.epoch_end()
    net(torch.randn(4, 5))
    rec.epoch_end()
    assert mg.record.gate_key(net.gates()[0]) == "h->y"
    for gate in ("h->y", None):
        with pytest.raises(TypeError, match=r"gate_key: expected a modgraph Gate \(net.gates\(\) lists a network's\), "
                                            f"got {type(gate).__name__}"):
            mg.record.gate_key(gate)
    for key in (["h->y"], 0):
        with pytest.raises(TypeError, match=r"stats: key must be a gate key \(a str such as 'h->y'; recorded gates: "
                                            r"'h->y'\), got " + type(key).__name__):
            rec.stats(key)
    for epoch in (True, 1.0, "1"):  # before: True and 1.0 gave epoch 1, silently
        with pytest.raises(TypeError, match=r"stats: epoch must be an integer \(an epoch number; -1: the last\), got "):
            rec.stats("h->y", epoch)
    assert rec.stats("h->y", np.int64(1)) is rec.stats("h->y", 1) is rec.stats("h->y")
