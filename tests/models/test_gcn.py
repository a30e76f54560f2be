"""The standard graph networks are plain DAGs: the GCN baseline differs from the attention GCN only in its convs."""

import pytest
import torch

import modgraph as mg
from modgraph import models

EDGE_INDEX = torch.tensor([[0, 1, 1, 2, 2, 3, 4, 0], [1, 0, 2, 1, 0, 4, 3, 3]])


def test_baseline_is_the_same_dag_with_the_conv_op_changed():
    att, base = models.attention_gcn(10, 3), models.gcn_net(10, 3, conv="gcn", hidden=64, dropout=0.6)
    assert list(att.edges) == list(base.edges) == [("x", "drop_in"), ("drop_in", "conv1"), ("conv1", "act"),
                                                   ("act", "drop"), ("drop", "conv2")]
    for node in att.nodes:
        a, b = dict(att.nodes[node]), dict(base.nodes[node])
        if node.startswith("conv"):
            assert (a.pop("op"), b.pop("op")) == ("attention_conv", "gcn_conv")
            assert {k: v for k, v in a.items() if k in b} == b  # the width is shared, the rest is attention
        else:
            assert a == b


@pytest.mark.parametrize("build", [
    models.gcn, models.attention_gcn, models.attention_appnp,
    lambda f, c: models.attention_appnp(f, c, steps=2, encoder="attention", propagation="attention",
                                        teleport="sigmoid"),
    lambda f, c: models.attention_gcnii(f, c, layers=2),
    lambda f, c: models.hop_attention(f, c, steps=3),
])
def test_builds_runs_and_round_trips(build):
    torch.manual_seed(0)
    net = mg.ModuleGraph(build(10, 3))
    x = torch.rand(5, 10).to_sparse_csr()
    out = net(x, edge_index=EDGE_INDEX)
    assert out.shape == (5, 3)
    again = mg.ModuleGraph.from_dict(net.to_dict())
    again.load_state_dict(net.state_dict())
    net.eval(), again.eval()
    torch.testing.assert_close(again(x, edge_index=EDGE_INDEX), net(x, edge_index=EDGE_INDEX))


def test_appnp_teleport_is_branch_attention():
    net = mg.ModuleGraph(models.attention_appnp(10, 3, steps=3, propagation="attention", teleport="softmax"))
    net(torch.rand(5, 10), edge_index=EDGE_INDEX)
    weights = net.edge_weights()
    assert set(weights) == {(f"prop{k}", f"z{k}") for k in (1, 2, 3)} | {("z0", f"z{k}") for k in (1, 2, 3)}
    torch.testing.assert_close(weights[("prop1", "z1")] + weights[("z0", "z1")], torch.ones(5))  # per node
    assert set(net.graph_weights()) == {"prop1", "prop2", "prop3"}


def test_bad_conv():
    with pytest.raises(ValueError, match="conv must be one of 'gcn', 'attention', got 'gat'"):
        models.gcn_net(10, 3, conv="gat")
    with pytest.raises(ValueError, match="conv='gcn' takes no attention arguments, got score"):
        models.gcn_net(10, 3, conv="gcn", score="dot")


def test_gcnii_layers_are_fixed_weight_merges():
    g = models.attention_gcnii(10, 3, layers=2, alpha=0.1, lam=0.5)
    assert g.edges["p1", "s1"]["weight"] == pytest.approx(0.9) and g.edges["h0", "s1"]["weight"] == 0.1
    beta = g.edges["w2", "h2"]["weight"]
    assert beta == pytest.approx(0.22314355) and g.edges["s2", "h2"]["weight"] == pytest.approx(1 - beta)
    assert g.nodes["w1"] == {"op": "linear", "out_features": 64, "bias": False}


def test_appnp_fixed_teleport_and_bad_choices():
    g = models.attention_appnp(10, 3, steps=2, alpha=0.1)
    assert g.nodes["prop1"] == {"op": "gcn_propagate"} and g.edges["z0", "z2"] == {"weight": 0.1}
    with pytest.raises(ValueError, match="encoder must be one of 'mlp', 'attention', got 'gat'"):
        models.attention_appnp(10, 3, encoder="gat")


def test_hop_attention_weights_every_depth_per_node():
    torch.manual_seed(0)
    g = models.hop_attention(10, 3, steps=3, dropout=0.0)
    assert sorted(g.predecessors("out")) == ["z0", "z1", "z2", "z3"]
    assert [g.nodes[f"z{k}"]["op"] for k in (1, 2, 3)] == ["gcn_propagate"] * 3
    net = mg.ModuleGraph(g)
    x = torch.rand(5, 10)
    out = net(x, edge_index=EDGE_INDEX)
    weights = net.edge_weights()
    assert set(weights) == {(f"z{k}", "out") for k in range(4)}
    assert all(w.shape == (5,) and bool(((w > 0) & (w < 1)).all()) for w in weights.values())  # sigmoid, per node
    # the output is the per-node weighted sum of the depths, which are powers of GCN's propagation
    from torch_geometric.nn import APPNP

    hops = [net.nodes["z0"](net.nodes["drop"](net.nodes["act"](net.nodes["enc"](x))))]
    prop = APPNP(K=1, alpha=0.0)
    for _ in range(3):
        hops.append(prop(hops[-1], EDGE_INDEX))
    expected = sum(weights[(f"z{k}", "out")].unsqueeze(-1) * hops[k] for k in range(4))
    torch.testing.assert_close(out, expected)
    soft = mg.ModuleGraph(models.hop_attention(10, 3, steps=2, attention="softmax"))
    soft(x, edge_index=EDGE_INDEX)
    torch.testing.assert_close(sum(soft.edge_weights().values()), torch.ones(5))


def test_hop_attention_without_attention_is_the_sum_of_the_depths_as_with_the_gate_off():
    g, base = models.hop_attention(10, 3, steps=2), models.hop_attention(10, 3, steps=2, attention=None)
    assert list(g.edges) == list(base.edges) and dict(g.nodes(data=True)) == dict(base.nodes(data=True))
    assert all(base.edges[u, "out"] == {} for u in base.predecessors("out"))
    net = mg.ModuleGraph(base).eval()
    x = torch.rand(5, 10)
    z0 = net.nodes["z0"](net.nodes["act"](net.nodes["enc"](x)))
    from torch_geometric.nn import APPNP

    z1 = APPNP(K=1, alpha=0.0)(z0, EDGE_INDEX)
    z2 = APPNP(K=1, alpha=0.0)(z1, EDGE_INDEX)
    torch.testing.assert_close(net(x, edge_index=EDGE_INDEX), z0 + z1 + z2)
    gated = mg.ModuleGraph(g).eval()
    gated.load_state_dict(net.state_dict(), strict=False)
    with gated.attention_off():
        torch.testing.assert_close(gated(x, edge_index=EDGE_INDEX), z0 + z1 + z2)


def test_documented_hyper_parameters():
    """gcn: Kipf & Welling's 16 hidden units, ReLU, dropout 0.5; attention_gcn: 8 heads of 64 units in all, ELU,
    dropout 0.6 (experiments/cora.py); ``input_dropout`` sets the dropout before conv1 only."""
    g = models.gcn(10, 3)
    assert g.nodes["conv1"] == {"op": "gcn_conv", "out_features": 16} and g.nodes["act"] == {"op": "relu"}
    assert g.nodes["drop_in"]["p"] == 0.5 and g.nodes["drop"]["p"] == 0.5
    assert models.gcn(10, 3, dropout=0.2, hidden=8).nodes["drop"]["p"] == 0.2  # the overrides win
    a = models.attention_gcn(10, 3)
    assert (a.nodes["conv1"]["heads"], a.nodes["conv1"]["out_features"], a.nodes["conv2"]["heads"]) == (8, 64, 1)
    assert a.nodes["act"] == {"op": "elu"} and a.nodes["drop"]["p"] == 0.6 and a.nodes["drop_in"]["p"] == 0.6
    assert a.nodes["conv1"]["attention_dropout"] == 0.6 and a.nodes["conv1"]["score"] == "gat"
    split = models.gcn_net(10, 3, conv="gcn", dropout=0.5, input_dropout=0.2)
    assert split.nodes["drop_in"]["p"] == 0.2 and split.nodes["drop"]["p"] == 0.5


def test_output_heads_are_averaged():
    torch.manual_seed(0)
    net = mg.ModuleGraph(models.gcn_net(10, 3, hidden=16, heads=4, out_heads=2, dropout=0.0))
    assert net(torch.rand(5, 10), edge_index=EDGE_INDEX).shape == (5, 3)


def test_fixed_teleport_appnp_is_pyg_appnp():
    """``z_k = (1 - alpha) A_hat z_{k-1} + alpha z0``: PyG's APPNP on the encoder's prediction."""
    from torch_geometric.nn import APPNP

    torch.manual_seed(0)
    g = models.attention_appnp(10, 3, steps=3, dropout=0.0, alpha=0.2)
    assert g.edges["prop2", "z2"] == {"weight": pytest.approx(0.8)}
    net = mg.ModuleGraph(g).eval()
    x = torch.rand(5, 10)
    z0 = net.nodes["z0"](net.nodes["act"](net.nodes["enc"](x)))
    torch.testing.assert_close(net(x, edge_index=EDGE_INDEX), APPNP(K=3, alpha=0.2)(z0, EDGE_INDEX))


def test_gcnii_propagation_choice():
    assert models.attention_gcnii(10, 3, layers=2).nodes["p1"]["op"] == "attention_propagate"
    assert models.attention_gcnii(10, 3, layers=2, propagation="gcn").nodes["p2"] == {"op": "gcn_propagate"}


# ------------------------------------------------------------------------------------------ devices and dtypes
# The graph networks read their graph's data (edge_index validation, PyG's self-loops, ranges of the segment index),
# which the meta device cannot run. Instead they run on CPU tensors while every tensor made without a device goes to
# meta: one made inside forward or backward without the device of its inputs mixes devices and raises.
DEVICE_MODELS = {
    "gcn": lambda: models.gcn(10, 3),
    "attention_gcn": lambda: models.attention_gcn(10, 3, hidden=16, heads=2),
    "attention_gcn_sparsemax": lambda: models.attention_gcn(10, 3, attention="sparsemax", hidden=16, heads=2),
    "attention_gcn_sigmoid": lambda: models.attention_gcn(10, 3, attention="sigmoid", hidden=16, heads=2),
    "hop_attention": lambda: models.hop_attention(10, 3, hidden=8, steps=3),
    "hop_attention_softmax": lambda: models.hop_attention(10, 3, hidden=8, steps=3, attention="softmax"),
    "attention_appnp": lambda: models.attention_appnp(10, 3, hidden=8, steps=2, propagation="attention",
                                                      teleport="softmax"),
    "attention_gcnii": lambda: models.attention_gcnii(10, 3, layers=2, hidden=8),
}


def test_the_meta_check_of_graph_networks_catches_a_tensor_made_on_the_default_device():
    from ..helpers import unplaced_tensors_on_meta

    x = torch.rand(5, 10)
    with unplaced_tensors_on_meta(), pytest.raises(RuntimeError, match="meta"):
        x * torch.ones(10)  # what a forward writing torch.ones(F) instead of x.new_ones(F) would do


@pytest.mark.parametrize("name", list(DEVICE_MODELS))
def test_graph_networks_make_every_tensor_on_their_inputs_device(name):
    from ..helpers import unplaced_tensors_on_meta

    torch.manual_seed(0)
    net = mg.ModuleGraph(DEVICE_MODELS[name]())
    x, edge_index = torch.rand(5, 10), EDGE_INDEX.clone()
    with unplaced_tensors_on_meta():
        for _ in range(2):  # the second forward reuses the cached normalisation
            out = net(x, edge_index=edge_index)
            out.sum().backward()
    assert out.device.type == "cpu" and out.shape == (5, 3)
    assert all(p.grad is not None and p.grad.device.type == "cpu" for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", list(DEVICE_MODELS))
def test_graph_networks_in_float64_compute_in_float64(name):
    torch.manual_seed(0)
    net = mg.ModuleGraph(DEVICE_MODELS[name]())
    out = net(torch.rand(5, 10), edge_index=EDGE_INDEX)  # the normalisation is cached in float32 first
    net = net.to(torch.float64)
    out = net(torch.rand(5, 10, dtype=torch.float64), edge_index=EDGE_INDEX)
    out.sum().backward()
    assert out.dtype == torch.float64
    assert all(p.grad.dtype == torch.float64 for p in net.parameters() if p.grad is not None)
    assert all(w.dtype == torch.float64 for w in net.edge_weights().values())
    assert all(w.dtype == torch.float64 for _, w in net.graph_weights().values())


@pytest.mark.parametrize("build, match", [
    (lambda: models.attention_appnp(10, 3, steps=-1),
     r"steps must be a positive integer \(propagation steps\), got -1"),
    (lambda: models.attention_appnp(10, 3, steps=2.5), "steps must be a positive integer .*got 2.5"),
    (lambda: models.attention_appnp(10, 3, alpha=2), r"alpha must be a number in \[0, 1\], got 2"),
    (lambda: models.attention_appnp(10, 3, teleport="fixd"),
     "teleport must be one of 'fixed', 'sigmoid', 'softmax', 'sparsemax', got 'fixd'"),
    (lambda: models.attention_appnp(10, 3, score="gatt"), "score must be one of .* got 'gatt'"),
    (lambda: models.hop_attention(10, 3, steps=-2), "steps must be a positive integer .*got -2"),
    (lambda: models.hop_attention(10, 3, steps=2.0), "steps must be a positive integer .*got 2.0"),
    (lambda: models.attention_gcnii(10, 3, layers=0), r"layers must be a positive integer \(the depth\), got 0"),
    (lambda: models.attention_gcnii(10, 3, lam=-1), "lam must be a finite number >= 0, got -1"),
    (lambda: models.attention_gcnii(10, 3, alpha=1.5), r"alpha must be a number in \[0, 1\], got 1.5"),
    (lambda: models.attention_gcnii(10, 3, propagation="gcnn"), "propagation must be one of 'gcn', 'attention', "
                                                                "got 'gcnn'"),
    (lambda: models.attention_gcnii(10, 3, propagation="gcn", attention="softmx"),
     "attention must be one of 'sigmoid', 'softmax', 'sparsemax', got 'softmx'"),
    (lambda: models.gcn_net(10, 3, concat=True), "gcn_net sets concat of the convs itself; .* got concat=True"),
])
def test_spec_builders_refuse_bad_arguments(build, match):
    # each was silently accepted (a negative count, alpha outside [0, 1], an unknown propagation built attention, an
    # unused attention typo) or a TypeError / math domain error from deep inside the builder
    with pytest.raises(mg.GraphSpecError, match=match):
        build()


def test_spec_builders_valid_arguments_unchanged_and_negative_alpha_refused():
    with pytest.raises(mg.GraphSpecError, match=r"alpha must be a number in \[0, 1\], got -0.5"):
        models.attention_appnp(10, 3, alpha=-0.5)
    g = models.attention_appnp(10, 3, steps=2, alpha=0.25)
    assert g.edges["prop1", "z1"]["weight"] == 0.75 and g.edges["z0", "z2"]["weight"] == 0.25
    assert len(models.attention_gcnii(10, 3, layers=2, propagation="gcn").nodes) == 3 + 5 * 2 + 2
