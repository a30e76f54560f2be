"""The fused neuron-level attention kernel against the modules it replaces: same outputs, same gradients."""

import networkx as nx
import pytest
import torch
import torch.nn.functional as F
from torch.func import vmap

import modgraph as mg
from modgraph.benchmarks.uci import Protocol, build_program
from modgraph.data.uci import UCIDataset
from modgraph.functional.neuron import neuron_scaled_linear
from modgraph.merge import fused_neuron_applies, fused_neuron_attention, prefer_fused_neuron_attention
from modgraph.train import Ensemble

B, IN, OUT, K = 7, 5, 3, 4


def mlp_graph(attention="sigmoid", y_activation=None, **edge):
    """``x`` (5) -> ``h`` (18, sigmoid) -> ``y`` (3), the edge ``h -> y`` attended at neuron level."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=5)
    g.add_node("h", op="linear", out_features=18, activation="sigmoid")
    g.add_node("y", op="linear", out_features=3, activation=y_activation)
    g.add_edge("x", "h")
    g.add_edge("h", "y", attention=attention, **edge)
    return g


def reference(x, h, A, c, W, b):
    """``NeuronAttention`` (linear score, sigmoid gate) followed by ``Linear``'s neuron-scaled forward, as written."""
    weights = torch.sigmoid(F.linear(h, A, c).unflatten(-1, (x.shape[-1], W.shape[0])))
    y = torch.einsum("bi,bio,io->bo", x, weights, W.t())
    return (y if b is None else y + b), weights


def tensors(lead=(), bias=True, same=True, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*lead, *shape, generator=gen, dtype=torch.float64)

    x = rand(B, IN)
    return [x, x if same else rand(B, IN), rand(IN * OUT, IN), rand(IN * OUT), rand(OUT, IN),
            rand(OUT) if bias else None]


def outputs_and_grads(fn, args, requires=(True,) * 6, weights_loss=False, seed=1):
    """``fn(*args)``'s outputs and the gradients of a random linear loss (on ``y``, and on the weights if asked)
    with respect to every argument that requires one (``x`` and ``h`` are one leaf when they are one tensor)."""
    same = args[1] is args[0]
    leaves = [None if a is None else a.detach().clone().requires_grad_(r) for a, r in zip(args, requires)]
    if same:
        leaves[1] = leaves[0]
    y, weights = fn(*leaves)
    gen = torch.Generator().manual_seed(seed)
    loss = (y * torch.randn(y.shape, generator=gen, dtype=y.dtype)).sum()
    if weights_loss:
        loss = loss + (weights * torch.randn(weights.shape, generator=gen, dtype=y.dtype)).sum()
    wrt = [t for i, t in enumerate(leaves) if t is not None and t.requires_grad and not (same and i == 1)]
    return y, weights, torch.autograd.grad(loss, wrt)


def assert_same(a, b):
    (y1, w1, g1), (y2, w2, g2) = a, b
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(w1, w2)
    assert len(g1) == len(g2)
    for u, v in zip(g1, g2):
        torch.testing.assert_close(u, v)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("same", [True, False])
@pytest.mark.parametrize("weights_loss", [False, True])
def test_kernel_equals_reference(bias, same, weights_loss):
    args = tensors(bias=bias, same=same)
    assert_same(outputs_and_grads(neuron_scaled_linear, args, weights_loss=weights_loss),
                outputs_and_grads(reference, args, weights_loss=weights_loss))


@pytest.mark.parametrize("requires", [(True, True, False, False, False, False),  # main trained, attention frozen
                                      (False, False, True, True, False, False),  # attention only (x constant)
                                      (False, False, False, False, True, True),
                                      (True, True, True, True, True, True)])
def test_kernel_under_vmap_with_frozen_groups(requires):
    args = tensors(lead=(K,))
    assert_same(outputs_and_grads(vmap(neuron_scaled_linear), args, requires),
                outputs_and_grads(vmap(reference), args, requires))


def test_kernel_under_vmap_with_shared_arguments():
    """Arguments not mapped (``in_dims`` None: a shared batch, shared parameters) and nested vmap."""
    batched, shared = tensors(lead=(K,), same=False), tensors(same=False, seed=3)
    args = [batched[0], shared[1], shared[2], batched[3], shared[4], batched[5]]
    dims = (0, None, None, 0, None, 0)
    assert_same(outputs_and_grads(vmap(neuron_scaled_linear, in_dims=dims), args),
                outputs_and_grads(vmap(reference, in_dims=dims), args))
    nested = tensors(lead=(2, K))
    assert_same(outputs_and_grads(vmap(vmap(neuron_scaled_linear)), nested),
                outputs_and_grads(vmap(vmap(reference)), nested))


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # functorch's fallback for addcmul_ in backward
def test_per_member_gradients_vmap_of_grad():
    """``vmap(grad(...))``: the backward pass runs per member, so the saved intermediates must carry the members'
    dim like the inputs (before, they came back flattened and the backward's matrix products failed)."""
    args = tensors(lead=(K,), same=False)

    def loss(fn):
        return lambda x, h, A, c, W, b: fn(x, h, A, c, W, b)[0].square().sum()

    ours = vmap(torch.func.grad(loss(neuron_scaled_linear), argnums=(0, 1, 2, 3, 4, 5)))(*args)
    theirs = vmap(torch.func.grad(loss(reference), argnums=(0, 1, 2, 3, 4, 5)))(*args)
    for u, v in zip(ours, theirs):
        torch.testing.assert_close(u, v)
    shared = (0, 0, None, 0, None, 0)  # one allocator and one layer for every member
    ours = vmap(torch.func.grad(loss(neuron_scaled_linear), argnums=(2, 4)), in_dims=shared)(
        args[0], args[1], args[2][0], args[3], args[4][0], args[5])
    theirs = vmap(torch.func.grad(loss(reference), argnums=(2, 4)), in_dims=shared)(
        args[0], args[1], args[2][0], args[3], args[4][0], args[5])
    for u, v in zip(ours, theirs):
        torch.testing.assert_close(u, v)


def test_kernel_in_float32_within_float_tolerance():
    args = [None if t is None else t.float() for t in tensors(lead=(K,))]
    args[1] = args[0]
    assert_same(outputs_and_grads(vmap(neuron_scaled_linear), args), outputs_and_grads(vmap(reference), args))


def grads_of_net(net, x, fused, interpret=False):
    net.zero_grad(set_to_none=True)
    with fused_neuron_attention(fused):
        out = net.interpret(x) if interpret else net(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}, net.edge_weights()


@pytest.mark.parametrize("edge", [{}, {"weight": 0.5}, {"weight": 0.7, "learnable": True}])
@pytest.mark.parametrize("interpret", [False, True])
def test_module_graph_fused_equals_reference(edge, interpret):
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(attention="sigmoid", **edge)).double()
    with fused_neuron_attention(True):
        assert fused_neuron_applies(net.neuron_attention["h->y"], net.nodes["y"], torch.zeros(2, 18).double(),
                                    torch.zeros(2, 18).double())
    x = torch.randn(11, 5, dtype=torch.float64)
    out1, g1, w1 = grads_of_net(net, x, True, interpret)
    out2, g2, w2 = grads_of_net(net, x, False, interpret)
    torch.testing.assert_close(out1, out2)
    assert g1.keys() == g2.keys()
    for n in g1:
        torch.testing.assert_close(g1[n], g2[n], msg=n)
    torch.testing.assert_close(w1[("h", "y")], w2[("h", "y")])  # the gate still reports its weights


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("interpret", [False, True])
def test_module_graph_fused_equals_reference_with_an_activation_on_the_target(activation, interpret):
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(attention="sigmoid", y_activation=activation)).double()
    h = torch.zeros(2, 18).double()
    with fused_neuron_attention(True):
        assert fused_neuron_applies(net.neuron_attention["h->y"], net.nodes["y"], h, h)  # the kernel's path
    x = torch.randn(11, 5, dtype=torch.float64)
    out1, g1, _ = grads_of_net(net, x, True, interpret)
    out2, g2, _ = grads_of_net(net, x, False, interpret)
    assert (out2 < 0).any() if activation == "tanh" else (out2 == 0).any() and (out2 > 0).any()
    torch.testing.assert_close(out1, out2)
    for n in g2:
        torch.testing.assert_close(g1[n], g2[n], msg=n)


@pytest.mark.parametrize("edge", [{"threshold": 0.3}, {"temperature": 2.0}, {"attention": "softmax"},
                                  {"score": "outer"}])
def test_other_gates_run_the_modules(edge):
    net = mg.ModuleGraph(mlp_graph(**edge))
    h = torch.zeros(2, 18)
    with fused_neuron_attention(True):
        assert not fused_neuron_applies(net.neuron_attention["h->y"], net.nodes["y"], h, h)
        net.set_attention(False)
        assert not fused_neuron_applies(net.neuron_attention["h->y"], net.nodes["y"], h, h)


def test_the_kernel_is_off_by_default_and_preferred_only_where_asked():
    net = mg.ModuleGraph(mlp_graph(attention="sigmoid"))
    h = torch.zeros(2, 18)

    def applies():
        return fused_neuron_applies(net.neuron_attention["h->y"], net.nodes["y"], h, h)

    assert not applies()  # the modules as written: published results stay reproducible bit for bit
    with prefer_fused_neuron_attention():
        assert applies()
    with fused_neuron_attention(False), prefer_fused_neuron_attention():
        assert not applies()  # a forced choice (uci_time.py --reference) wins over the preference
    assert not applies()


def test_module_hooks_see_their_modules_called():
    net = mg.ModuleGraph(mlp_graph())
    calls = []
    handle = net.neuron_attention["h->y"].register_forward_hook(lambda *a: calls.append(1))
    net(torch.randn(3, 5))
    assert calls == [1]
    handle.remove()
    net(torch.randn(3, 5))
    assert calls == [1]


def test_ensemble_fused_equals_reference():
    """The batched program of the UCI tables (an Ensemble under vmap), every phase of the alternating schedule."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(60, 4, generator=gen).numpy()
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    data = UCIDataset("toy", X, y, ("a", "b", "c", "d"), ("0", "1", "2"), ())
    program = build_program(data, "attention", Protocol(folds=2))
    ens: Ensemble = program.ensemble
    for trains, attention in (("all", True), ("main", True), ("attention", True), ("main", False)):
        att = set(map(id, ens.attention_parameters()))
        for p in ens.parameters():
            p.requires_grad_(trains == "all" or (id(p) in att) == (trains == "attention"))
        ens.set_attention(attention)
        results = []
        for fused in (True, False):
            ens.zero_grad(set_to_none=True)
            with fused_neuron_attention(fused):
                loss = program.loss_fn(ens)
                loss.backward()
                with torch.no_grad():
                    score = program.evaluate(ens)
            grads = [None if p.grad is None else p.grad.clone() for p in ens.parameters()]
            results.append((loss.detach(), score, grads))
        (l1, s1, g1), (l2, s2, g2) = results
        torch.testing.assert_close(l1, l2)
        torch.testing.assert_close(s1, s2)
        for u, v in zip(g1, g2):
            assert (u is None) == (v is None)
            if u is not None:
                torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-6)


def test_second_derivatives_are_refused():
    """The hand-written gradient is not differentiable again: asking for it raises instead of answering wrong."""
    x, h, A, c, W, b = [t.requires_grad_(True) for t in tensors(same=False)]
    y, _ = neuron_scaled_linear(x, h, A, c, W, b)
    (gx,) = torch.autograd.grad((y * y).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        gx.sum().backward()


def test_forced_choices_nest_and_none_restores_the_default():
    """Leaving a block restores the choice of the block around it; ``None`` inside a forced block is the default
    again, so a preference applies there."""
    net = mg.ModuleGraph(mlp_graph(attention="sigmoid"))
    h = torch.zeros(2, 18)

    def applies():
        return fused_neuron_applies(net.neuron_attention["h->y"], net.nodes["y"], h, h)

    with fused_neuron_attention(True):
        with fused_neuron_attention(False):
            assert not applies()
        assert applies()  # the outer forced choice is back
    with fused_neuron_attention(False):
        with fused_neuron_attention(True):
            assert applies()
        with prefer_fused_neuron_attention():
            assert not applies()  # still forced off after the inner block
        with fused_neuron_attention(None):
            assert not applies()
            with prefer_fused_neuron_attention():
                assert applies()  # the default again: the preference applies
    assert not applies()


def test_module_hooks_are_honoured_when_the_kernel_is_forced():
    """A hook on the allocator that changes its scores: the forced kernel steps aside and the hook takes effect."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(attention="sigmoid"))
    x = torch.randn(4, 5)
    h = net.nodes["h"](x)
    y_lin = net.nodes["y"]
    alloc = net.neuron_attention["h->y"].allocator
    handle = alloc.register_forward_hook(lambda m, args, out: torch.zeros_like(out))  # every weight sigmoid(0) = 1/2
    with fused_neuron_attention(True):
        assert not fused_neuron_applies(net.neuron_attention["h->y"], y_lin, h, h)
        out = net(x)
    torch.testing.assert_close(out, 0.5 * (h @ y_lin.weight.T) + y_lin.bias)
    torch.testing.assert_close(net.edge_weights()[("h", "y")], torch.full((4, 18, 3), 0.5))
    handle.remove()
    # a forward pre-hook that halves h for the allocator (not for the layer): weights sigmoid(A h/2 + c)
    handle = net.neuron_attention["h->y"].register_forward_pre_hook(lambda m, args: (args[0] / 2,))
    with fused_neuron_attention(True):
        assert not fused_neuron_applies(net.neuron_attention["h->y"], y_lin, h, h)
        out = net(x)
    a = torch.sigmoid((h / 2 @ alloc.weight.T + alloc.bias).reshape(4, 18, 3))
    torch.testing.assert_close(out, (h[:, :, None] * a * y_lin.weight.T).sum(1) + y_lin.bias)
    handle.remove()
    with fused_neuron_attention(True):
        assert fused_neuron_applies(net.neuron_attention["h->y"], y_lin, h, h)


def test_the_kernel_reports_like_the_modules():
    """Hooks get the same weights and the same context (``index`` None for a dense gate) on both paths."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(attention="sigmoid"))
    seen = []
    net.neuron_attention["h->y"].gate.register_weight_hook(lambda g, w, ctx: seen.append((w.detach(), ctx)))
    x = torch.randn(4, 5)
    for fused in (True, False):
        with fused_neuron_attention(fused):
            net(x)
    (w1, ctx1), (w2, ctx2) = seen
    torch.testing.assert_close(w1, w2)
    assert ctx1 == ctx2 == {"index": None}


@pytest.mark.parametrize("hooked", ["attention", "allocator", "gate", "layer"])
def test_a_hook_on_any_module_of_the_connection_runs_under_the_forced_kernel(hooked):
    """The kernel would skip the module's call, so a hook on any of the four modules keeps the modules as written."""
    net = mg.ModuleGraph(mlp_graph(attention="sigmoid"))
    att = net.neuron_attention["h->y"]
    module = {"attention": att, "allocator": att.allocator, "gate": att.gate, "layer": net.nodes["y"]}[hooked]
    calls = []
    module.register_forward_hook(lambda *a: calls.append(hooked))
    with fused_neuron_attention(True):
        net(torch.randn(3, 5))
    assert calls == [hooked]


@pytest.mark.parametrize("edge", [{"temperature": 0.5}, {"temperature": 2.0}, {"threshold": 0.6}])
def test_a_forced_kernel_keeps_the_gates_temperature_and_threshold(edge):
    """Under a forced kernel a gate with a temperature (sharper or softer) or a threshold still gives
    y_bo = sum_i h_bi a_bio W_oi + b_o with a = sigmoid(S / T), zeroed below the threshold."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(attention="sigmoid", **edge))
    x = torch.randn(6, 5)
    h = net.nodes["h"](x)
    y_lin, alloc = net.nodes["y"], net.neuron_attention["h->y"].allocator
    a = torch.sigmoid((h @ alloc.weight.T + alloc.bias).reshape(6, 18, 3) / edge.get("temperature", 1.0))
    a = torch.where(a < edge.get("threshold", 0.0), 0.0, a)
    with fused_neuron_attention(True):
        assert not fused_neuron_applies(net.neuron_attention["h->y"], y_lin, h, h)
        out = net(x)
    torch.testing.assert_close(net.edge_weights()[("h", "y")], a)
    torch.testing.assert_close(out, (h[:, :, None] * a * y_lin.weight.T).sum(1) + y_lin.bias)


def _neuron_args(batch=4, n_in=3, n_out=2):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, n_in, generator=gen)
    return (x, x, torch.randn(n_in * n_out, n_in, generator=gen), torch.randn(n_in * n_out, generator=gen),
            torch.randn(n_out, n_in, generator=gen), torch.randn(n_out, generator=gen))


@pytest.mark.parametrize("pos, bad, match", [
    (2, torch.randn(3, 6), r"A must be a tensor of shape \[6, 3\] \(x is \(4, 3\), W \(2, 3\)\), got shape \(3, 6\)"),
    (3, torch.randn(3, 2), r"c must be a tensor of shape \[6\] .*got shape \(3, 2\)"),
    (5, torch.randn(1), r"b must be a tensor of shape \[2\] .*got shape \(1,\)"),
    (1, torch.randn(5, 3), r"h must be a tensor of shape \[4, 3\] .*got shape \(5, 3\)"),
    (4, torch.randn(2, 4), r"W must be a tensor \[out, in\] = \[out, 3\] \(x is \(4, 3\)\), got shape \(2, 4\)"),
    (0, torch.randn(2, 4, 3), r"x must be a tensor \[B, in\], got shape \(2, 4, 3\)"),
])
def test_neuron_scaled_linear_names_a_wrong_shape(pos, bad, match):
    # a transposed A, a c of another shape or a b of one value were computed with silently (views and broadcasts)
    args = list(_neuron_args())
    args[pos] = bad
    with pytest.raises(ValueError, match=match):
        neuron_scaled_linear(*args)


def test_neuron_scaled_linear_names_a_wrong_type_or_dtype():
    args = list(_neuron_args())
    with pytest.raises(TypeError, match="neuron_scaled_linear: x must be a torch.Tensor, got list"):
        neuron_scaled_linear(args[0].tolist(), *args[1:])
    with pytest.raises(TypeError, match=r"must share one floating-point dtype, got x torch.float64, h torch.float64, "
                                        r"A torch.float32"):
        neuron_scaled_linear(args[0].double(), args[1].double(), *args[2:])


def test_neuron_scaled_linear_valid_input_unchanged_and_a_flat_bias_refused():
    x, h, A, c, W, b = _neuron_args()
    with pytest.raises(ValueError, match=r"b must be a tensor of shape \[2\]"):
        neuron_scaled_linear(x, h, A, c, W, b[:1])
    y, weights = neuron_scaled_linear(x, h, A, c, W, b)
    ref_w = torch.sigmoid(torch.nn.functional.linear(h, A, c).unflatten(-1, (3, 2)))
    assert torch.allclose(weights, ref_w)
    assert torch.allclose(y, torch.einsum("bi,bio,io->bo", x, ref_w, W.t()) + b, atol=1e-6)
