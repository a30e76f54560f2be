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
