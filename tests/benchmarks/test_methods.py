import pytest
import torch

import modgraph as mg
from modgraph.benchmarks.methods import METHODS, SGL_A, W0, get_method, mlp_graph, penalty


def test_every_method_has_the_same_tuning_budget():
    sizes = {m.grid.__len__() for m in METHODS.values()}
    assert len(sizes) == 1
    assert [m.name for m in METHODS.values() if m.attention] == ["attention", "attention+sgl"]
    with pytest.raises(ValueError, match="unknown method 'dropout'; valid: plain, wd, we, sgl, attention"):
        get_method("dropout")


def test_attention_changes_only_the_edge_into_the_output():
    torch.manual_seed(0)
    plain = mg.ModuleGraph(mlp_graph(4, 18, 3, attention=False))
    torch.manual_seed(0)
    att = mg.ModuleGraph(mlp_graph(4, 18, 3, attention=True))
    # the same seed gives the same main weights: the allocator is drawn after them
    for name, p in plain.named_parameters():
        assert torch.equal(p, att.get_parameter(name))
    shapes = {n: tuple(p.shape) for n, p in att.named_parameters() if n not in dict(plain.named_parameters())}
    assert shapes == {"neuron_attention.h->y.allocator.weight": (54, 18), "neuron_attention.h->y.allocator.bias": (54,)}
    x = torch.randn(5, 4)
    att(x)
    assert att.edge_weights()[("h", "y")].shape == (5, 18, 3)  # one sigmoid weight per connection and sample
    with att.attention_off():
        torch.testing.assert_close(att(x), plain(x))


def test_penalties_by_hand():
    first = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.05, 0.0]])  # 3 hidden neurons, 2 inputs
    second = torch.tensor([[0.0, 0.0, 0.0]])  # 1 output
    assert penalty("wd", first, second).item() == pytest.approx(25.0025)
    r = (first / W0) ** 2
    assert penalty("we", first, second).item() == pytest.approx(float((r / (1 + r)).sum()))
    # groups: neuron 0 norm 5 (>= a: counts 5); neuron 1 norm 0 (f(0) = 3a/8); neuron 2 norm 0.05 < a (polynomial)
    t = 0.05
    small = -t**4 / (8 * SGL_A**3) + 3 * t**2 / (4 * SGL_A) + 3 * SGL_A / 8
    assert penalty("sgl", first, second).item() == pytest.approx(5 + 3 * SGL_A / 8 + small)
    # the outgoing weights belong to the neuron's group too
    out = torch.tensor([[0.0, 3.0, 0.0]])
    zero = torch.zeros(3, 2)
    assert penalty("sgl", zero, out).item() == pytest.approx(3 + 2 * 3 * SGL_A / 8)
    with pytest.raises(ValueError, match="unknown penalty 'l1'; valid: wd, we, sgl"):
        penalty("l1", first, second)


@pytest.mark.parametrize("kind", ["wd", "we", "sgl"])
def test_batched_penalty_is_per_member(kind):
    torch.manual_seed(1)
    first, second = torch.randn(4, 6, 3), torch.randn(4, 2, 6)
    batched = penalty(kind, first, second, batch_dims=1)
    assert batched.shape == (4,)
    for k in range(4):
        assert batched[k].item() == pytest.approx(penalty(kind, first[k], second[k]).item(), rel=1e-6)


def test_methods_are_the_documented_table():
    """docs/uci.md's table: the network, the penalty, the tuned knob and its three candidates of every method."""
    lr, lam = [0.01, 0.03, 0.1], [1e-4, 1e-3, 1e-2]
    expected = {
        "plain": (False, None, "lr", lr, None),
        "wd": (False, "wd", "lam", lam, "WDBP"),
        "we": (False, "we", "lam", lam, "WEBP"),
        "sgl": (False, "sgl", "lam", lam, "SGLBP"),
        "attention": (True, None, "lr", lr, "attention"),
        "attention+sgl": (True, "sgl", "lam", lam, None),
    }
    got = {name: (m.attention, m.penalty, m.knob, list(m.grid), m.paper) for name, m in METHODS.items()}
    assert got == expected
    assert METHODS["we"].to_dict() == {"name": "we", "attention": False, "penalty": "we", "knob": "lam",
                                       "grid": lam, "paper": "WEBP"}


def test_penalties_count_both_layers_with_the_documented_constants():
    """One hidden neuron, one input, one output: every penalty sees the second layer's weight too, with
    ``w0 = 1`` (weight elimination) and ``a = 0.1`` (smoothed group lasso) as docs/uci.md states."""
    first, second = torch.tensor([[0.5]]), torch.tensor([[2.0]])
    assert penalty("wd", first, second).item() == pytest.approx(0.25 + 4.0)
    assert penalty("we", first, second).item() == pytest.approx(0.25 / 1.25 + 4.0 / 5.0)
    assert penalty("sgl", first, second).item() == pytest.approx(4.25 ** 0.5)  # the group norm, above a
    # a group norm of 0.05 < a = 0.1: the polynomial -t^4/(8a^3) + 3t^2/(4a) + 3a/8
    small_first, small_second = torch.tensor([[0.03]]), torch.tensor([[0.04]])
    assert penalty("sgl", small_first, small_second).item() == pytest.approx(
        -0.05**4 / (8 * 0.1**3) + 3 * 0.05**2 / (4 * 0.1) + 3 * 0.1 / 8)
    assert penalty("we", torch.tensor([[1.0]]), torch.zeros(1, 1)).item() == pytest.approx(0.5)  # (w/w0)^2 = 1


def test_mlp_graph_puts_the_sigmoid_allocator_on_h_to_y_only():
    att, plain = mlp_graph(4, 6, 3, attention=True), mlp_graph(4, 6, 3, attention=False)
    assert att.edges["h", "y"]["attention"] == "sigmoid" and "attention" not in att.edges["x", "h"]
    assert plain.edges["h", "y"] == {} and plain.nodes["h"]["activation"] == "sigmoid"
    torch.manual_seed(0)
    net = mg.ModuleGraph(att)
    net(torch.randn(7, 4))
    w = net.edge_weights()[("h", "y")]
    # independent sigmoids: inside (0, 1), not normalised to sum to one over the hidden units or the outputs
    assert bool(((w > 0) & (w < 1)).all())
    assert not torch.allclose(w.sum(1), torch.ones(7, 3)) and not torch.allclose(w.sum(2), torch.ones(7, 6))
