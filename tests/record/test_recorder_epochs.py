"""EdgeRecorder: every=N per gate, nested pauses, epoch numbering, stats by epoch."""

import networkx as nx
import pytest
import torch

import modgraph as mg
from modgraph.record import EdgeRecorder

from ..helpers import mlp_graph


def two_gate_net():
    """x -> h -> z -> y with neuron gates on h -> z and z -> y (each forward calls both once)."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=5)
    g.add_node("h", op="linear", out_features=4, activation="sigmoid")
    g.add_node("z", op="linear", out_features=3, activation="sigmoid")
    g.add_node("y", op="linear", out_features=2)
    g.add_edge("x", "h")
    g.add_edge("h", "z", attention="sigmoid")
    g.add_edge("z", "y", attention="sigmoid")
    return mg.ModuleGraph(g)


@pytest.mark.parametrize("every", [2, 3])
def test_every_counts_forwards_per_gate_from_the_first(every):
    torch.manual_seed(8)
    net = two_gate_net()
    rec = EdgeRecorder(every=every).attach(net)
    seen = {("h", "z"): [], ("z", "y"): []}
    for i in range(7):
        net(torch.randn(2, 5))
        if i % every == 0:  # forwards 0, every, 2*every, ... of each gate
            for edge in seen:
                seen[edge].append(net.edge_weights()[edge])
    rec.epoch_end()
    for (u, v), weights in seen.items():
        ref = torch.cat(weights)
        stats = rec.stats(f"{u}->{v}")
        assert stats.count == ref.shape[0]
        torch.testing.assert_close(stats.mean.double(), ref.double().mean(0), atol=1e-6, rtol=1e-5)


def test_nested_pauses_restore_the_outer_state():
    torch.manual_seed(5)
    net = mg.ModuleGraph(mlp_graph(5, 4, 2))
    rec = EdgeRecorder().attach(net)
    x = torch.randn(3, 5)
    with rec.paused():
        with rec.paused():
            net(x)
        net(x)  # still paused
    net(x)  # recorded
    rec.epoch_end()
    assert rec.stats("h->y").count == 3 and rec.enabled


def test_epoch_numbers_follow_explicit_ones_and_stats_are_keyed_by_them():
    torch.manual_seed(5)
    net = mg.ModuleGraph(mlp_graph(5, 4, 2))
    rec = EdgeRecorder().attach(net)
    net(torch.randn(2, 5))
    assert rec.epoch_end(5) == 5
    net(torch.randn(4, 5))
    assert rec.epoch_end() == 6
    assert rec.epochs == [5, 6]
    assert rec.stats("h->y", epoch=5).count == 2 and rec.stats("h->y", epoch=6).count == 4
    assert rec.stats("h->y").count == 4  # -1: the last epoch
    with pytest.raises(ValueError, match="epoch numbers must increase: got 6 after 6"):
        rec.epoch_end(6)
