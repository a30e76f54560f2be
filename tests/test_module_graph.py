import io

import networkx as nx
import pytest
import torch
import torch.nn.functional as F

import modgraph as mg

from .helpers import mlp_graph, random_dag


def test_readme_example_shapes():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph())
    out = net(torch.randn(32, 5))
    assert out.shape == (32, 3)
    w = net.edge_weights()[("h", "y")]
    assert w.shape == (32, 18, 3)
    assert ((w > 0) & (w < 1)).all()


def test_neuron_attention_matches_hand_written_forward():
    torch.manual_seed(1)
    net = mg.ModuleGraph(mlp_graph())
    x = torch.randn(7, 5)
    h_lin, y_lin = net.nodes["h"], net.nodes["y"]
    alloc = net.neuron_attention["h->y"].allocator
    h = torch.sigmoid(x @ h_lin.weight.T + h_lin.bias)  # (B, 18)
    a = torch.sigmoid((h @ alloc.weight.T + alloc.bias).reshape(7, 18, 3))  # the [hidden, out] matrix
    expected = torch.stack([(h[b][:, None] * a[b] * y_lin.weight.T).sum(0) for b in range(7)]) + y_lin.bias
    torch.testing.assert_close(net(x), expected)
    torch.testing.assert_close(net.edge_weights()[("h", "y")], a)


def test_neuron_softmax_groups_are_the_inputs_of_each_output_neuron():
    net = mg.ModuleGraph(mlp_graph(attention="softmax"))
    net(torch.randn(4, 5))
    w = net.edge_weights()[("h", "y")]
    torch.testing.assert_close(w.sum(dim=1), torch.ones(4, 3))


def _reference_forward(net, g, x):
    """Independent forward of a random DAG: numeric node order, merges written out by hand."""
    out = {"x": x}
    order = sorted((v for v in g.nodes if v != "x"), key=lambda v: int(v[1:]))
    for v in order:
        preds = next(s.preds for s in net.plan.steps if s.name == v)  # pairs each branch with its key projection
        msgs = [out[u] for u in preds]
        if len(msgs) > 1:
            att = net.branch_attention[v]
            keys = torch.stack([lin(m) for lin, m in zip(att.keys, msgs)], 1)  # (B, K, D)
            scores = (torch.tanh(keys + att.query[0]) * att.scorer.v[0]).sum(-1)  # (B, K)
            w = torch.softmax(scores, dim=1)
            merged = sum(w[:, k:k + 1] * m for k, m in enumerate(msgs))
        else:
            merged = msgs[0]
        lin = net.nodes[v]
        out[v] = torch.tanh(merged @ lin.weight.T + lin.bias)
    sinks = [v for v in order if g.out_degree(v) == 0]
    return {s: out[s] for s in sinks}


@pytest.mark.parametrize("seed", range(5))
def test_random_dags_match_reference(seed):
    torch.manual_seed(seed)
    g = random_dag(12, 0.3, seed)
    net = mg.ModuleGraph(g)
    x = torch.randn(6, 8)
    got = net(x)
    ref = _reference_forward(net, g, x)
    got = got if isinstance(got, dict) else {net.outputs[0]: got}
    assert set(got) == set(ref)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k])
    for w in net.edge_weights().values():
        assert w.shape == (6,)
    # per merge, the branch weights of one sample sum to one (softmax)
    for att in net.branch_attention.values():
        total = sum(net.edge_weights()[e] for e in att.gate.edges)
        torch.testing.assert_close(total, torch.ones(6))


def _two_inputs_concat() -> nx.DiGraph:
    """Inputs a [3] and b [4]; c = concat(a, b); y1 = linear(c) [2]; y2 = relu(b)."""
    g = nx.DiGraph()
    g.add_node("a", op="input", features=3)
    g.add_node("b", op="input", features=4)
    g.add_node("c", op="concat")
    g.add_node("y1", op="linear", out_features=2)
    g.add_node("y2", op="relu")
    g.add_edges_from([("a", "c"), ("b", "c"), ("c", "y1"), ("b", "y2")])
    return g


def test_concat_merge_and_multiple_inputs_and_outputs():
    g = _two_inputs_concat()
    net = mg.ModuleGraph(g)
    a, b = torch.randn(5, 3), torch.randn(5, 4)
    out = net({"a": a, "b": b})
    assert set(out) == {"y1", "y2"}
    lin = net.nodes["y1"]
    torch.testing.assert_close(out["y1"], torch.cat([a, b], 1) @ lin.weight.T + lin.bias)
    torch.testing.assert_close(out["y2"], F.relu(b))


def test_learnable_adjacency_is_a_registered_parameter_and_scales_the_sum():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("p", op="identity")
    g.add_node("q", op="tanh")
    g.add_node("m", op="identity")
    g.add_edges_from([("x", "p"), ("x", "q")])
    g.add_edge("p", "m", learnable=True, weight=0.5)
    g.add_edge("q", "m", weight=2.0)
    net = mg.ModuleGraph(g)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["adjacency_weights.p->m"]
    x = torch.randn(3, 4)
    torch.testing.assert_close(net(x), 0.5 * x + 2.0 * torch.tanh(x))
    net(x).sum().backward()
    # d/dw sum(w * x + 2 tanh(x)) = sum(x)
    torch.testing.assert_close(net.adjacency_weights["p->m"].grad, x.sum())
    adj = net.adjacency()
    assert adj.edges["p", "m"]["weight"] == 0.5 and adj.edges["p", "m"]["learnable"]
    assert adj.edges["q", "m"]["weight"] == 2.0 and not adj.edges["q", "m"]["learnable"]  # fixed, not learnable
    assert adj.edges["x", "p"]["weight"] == 1.0 and not adj.edges["x", "p"]["learnable"]  # unset: 1, unscaled
    names, matrix = net.adjacency_matrix()
    assert matrix[names.index("q"), names.index("m")] == 2.0 and matrix[names.index("m"), names.index("q")] == 0


def test_threshold_gives_exact_zeros_and_zero_gradient():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(attention="sigmoid", threshold=0.5))
    x = torch.randn(16, 5)
    alloc = net.neuron_attention["h->y"].allocator
    scores = []  # the allocator's output: the gate's scores before the sigmoid and the threshold
    alloc.register_forward_hook(lambda m, args, out: scores.append(out) or out.retain_grad())
    net(x).sum().backward()
    w = net.edge_weights()[("h", "y")]
    assert (w == 0).any() and (w[w > 0] >= 0.5).all()
    # by hand, loss = sum_bo y_bo: dL/dS_bio = h_bi W_oi sigmoid'(S_bio) where sigmoid(S_bio) >= 0.5, else exactly 0
    h_lin, y_lin = net.nodes["h"], net.nodes["y"]
    h = torch.sigmoid(x @ h_lin.weight.T + h_lin.bias).detach()  # (B, 18)
    a = torch.sigmoid(scores[0].detach().reshape(16, 18, 3))
    kept = a >= 0.5
    assert torch.equal(kept, w > 0)
    d_scores = torch.where(kept, h[:, :, None] * y_lin.weight.T.detach() * a * (1 - a), 0.0)  # (B, 18, 3)
    grad = scores[0].grad.reshape(16, 18, 3)
    assert (grad[~kept] == 0).all()  # zero gradient through every thresholded weight
    torch.testing.assert_close(grad, d_scores)
    # ... so the allocator's parameters learn only through the kept connections
    torch.testing.assert_close(alloc.weight.grad, d_scores.reshape(16, -1).T @ h)
    torch.testing.assert_close(alloc.bias.grad, d_scores.reshape(16, -1).sum(0))


def test_state_dict_round_trip_gives_identical_outputs():
    torch.manual_seed(0)
    g = random_dag(8, 0.4, 3)
    net = mg.ModuleGraph(g)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    other = mg.ModuleGraph.from_dict(net.to_dict())
    other.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(4, 8)
    a, b = net(x), other(x)
    a = a if isinstance(a, dict) else {"o": a}
    b = b if isinstance(b, dict) else {"o": b}
    for k in a:
        assert torch.equal(a[k], b[k])


def test_attention_off_means_unscaled_connections():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph())
    x = torch.randn(5, 5)
    with net.attention_off():
        y = net(x)
    h = net.nodes["h"](x)
    torch.testing.assert_close(y, net.nodes["y"](h))
    assert all(g.enabled for g in net.gates())


def test_parameter_groups_partition_the_parameters():
    net = mg.ModuleGraph(mlp_graph())
    att, main = net.attention_parameters(), net.main_parameters()
    assert {id(p) for p in att}.isdisjoint(id(p) for p in main)
    assert len(att) + len(main) == len(list(net.parameters()))
    assert sum(p.numel() for p in att) == 18 * 18 * 3 + 18 * 3


def test_learnable_edge_weights_are_attention_parameters_not_main_parameters():
    """The learnable adjacency belongs to the attention group (trained in the alternating schedule's attention
    phase), never to the main group; the groups are read here off the parameters' registered names."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("p", op="linear", out_features=4)
    g.add_node("q", op="tanh")
    g.add_node("m", op="linear", out_features=5)
    g.add_node("y", op="linear", out_features=2)
    g.add_edges_from([("x", "p"), ("x", "q")])
    g.add_edge("p", "m", learnable=True, weight=0.5)
    g.add_edge("q", "m", learnable=True, weight=2.0, attention="sigmoid")
    g.add_edge("m", "y", attention="sigmoid")  # a neuron-level gate next to the learnable edges
    net = mg.ModuleGraph(g)
    att, main = {id(p) for p in net.attention_parameters()}, {id(p) for p in net.main_parameters()}
    named = dict(net.named_parameters())
    edges = {k for k in named if k.startswith("adjacency_weights.")}
    assert edges == {"adjacency_weights.p->m", "adjacency_weights.q->m"}
    gates = {k for k in named if k.startswith(("neuron_attention.", "branch_attention."))}
    assert gates  # the attention networks' own parameters
    assert att == {id(named[k]) for k in edges | gates}
    assert main == {id(named[k]) for k in named if k.startswith("nodes.")}
    for key in ("p->m", "q->m"):
        assert id(net.adjacency_weights[key]) in att and id(net.adjacency_weights[key]) not in main


def test_module_node_probes_its_width():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("m", module=torch.nn.Linear(4, 6))
    g.add_edge("x", "m")
    net = mg.ModuleGraph(g)
    assert net(torch.randn(2, 4)).shape == (2, 6)
    with pytest.raises(mg.GraphSpecError, match="node 'm' holds a ready torch.nn.Module"):
        net.to_dict()


class _Recorder(torch.nn.Module):
    """A module that records the device, dtype and mode of every input it sees (a stand-in for one on a GPU)."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3, dtype=dtype)
        self.seen = []

    def forward(self, x):
        self.seen.append((x.device, x.dtype, self.training, self.lin.training))
        return self.lin(x)


def test_the_width_probe_runs_on_the_modules_device_and_dtype_and_keeps_its_modes():
    """A ready module is probed with an input like its own parameters (a CUDA or float64 module used to get a
    float32 CPU tensor: GraphSpecError), in eval mode, and every submodule gets its own mode back."""
    for dtype, mode in ((torch.float64, False), (torch.float32, True)):
        m = _Recorder(dtype).train(mode)
        m.lin.train(not mode)  # the modes of a module and its child differ: both come back as they were
        g = nx.DiGraph()
        g.add_node("x", op="input", features=4)
        g.add_node("m", module=m)
        g.add_edge("x", "m")
        net = mg.ModuleGraph(g)
        assert net.plan.widths["m"] == 3
        assert m.seen == [(torch.device("cpu"), dtype, False, False)]
        assert (m.training, m.lin.training) == (mode, not mode)
    meta = torch.nn.Linear(4, 5, device="meta")  # a device other than the CPU, as a module moved to a GPU
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("m", module=meta)
    g.add_edge("x", "m")
    assert mg.ModuleGraph(g).plan.widths["m"] == 5


def test_input_errors_name_the_input():
    net = mg.ModuleGraph(mlp_graph())
    with pytest.raises(ValueError, match=r"input 'x': expected a tensor \[\.\.\., 5\], got \(3, 4\)"):
        net(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"inputs must be exactly 'x'; missing \['x'\], unexpected \['z'\]"):
        net({"z": torch.randn(3, 5)})
    with pytest.raises(ValueError, match=r"inputs must be exactly 'x'; missing \[\], unexpected \['z'\]"):
        net({"x": torch.randn(3, 5), "z": torch.randn(3, 5)})  # an extra input is refused, not ignored


@pytest.mark.parametrize("run", ["forward", "interpret"])
def test_an_input_of_another_dtype_than_the_parameters_is_named(run):
    net = getattr(mg.ModuleGraph(mlp_graph()).double(), run)
    message = (r"input 'x' is torch.float32 but the network's parameters are torch.float64; convert one of them "
               r"\(x.to\(torch.float64\) or net.to\(torch.float32\)\)")
    with pytest.raises(TypeError, match=message):
        net(torch.randn(3, 5, dtype=torch.float32))
    assert net(torch.randn(3, 5, dtype=torch.float64)).dtype == torch.float64  # matching dtypes run as before


def test_compiled_forward_equals_the_interpreter():
    torch.manual_seed(0)
    for seed in range(4):
        g = random_dag(10, 0.35, seed)
        for u, v in list(g.edges)[::3]:
            g.edges[u, v]["learnable"] = True
            g.edges[u, v]["weight"] = 0.7
        net = mg.ModuleGraph(g)
        x = torch.randn(5, 8)
        a, b = net(x), net.interpret(x)
        a = a if isinstance(a, dict) else {"o": a}
        b = b if isinstance(b, dict) else {"o": b}
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    # the compiled code shares the network's parameters: training one trains the other
    net = mg.ModuleGraph(mlp_graph())
    x = torch.randn(4, 5)
    net(x).sum().backward()
    # the same gradients as the hand-written forward (test_neuron_attention_matches_hand_written_forward) on the
    # network's own parameters
    h_lin, y_lin, alloc = net.nodes["h"], net.nodes["y"], net.neuron_attention["h->y"].allocator
    h = torch.sigmoid(x @ h_lin.weight.T + h_lin.bias)
    a = torch.sigmoid((h @ alloc.weight.T + alloc.bias).reshape(4, 18, 3))
    expected = torch.einsum("bi,bio,oi->bo", h, a, y_lin.weight) + y_lin.bias
    params = dict(net.named_parameters())
    grads = torch.autograd.grad(expected.sum(), list(params.values()))
    for (n, p), g in zip(params.items(), grads):
        torch.testing.assert_close(p.grad, g, msg=n)
    assert "_compiled" not in dict(net.named_modules())
    assert not any(k.startswith("_compiled") for k in net.state_dict())


def test_replacing_a_submodule_is_seen_by_the_compiled_code():
    import copy

    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(attention=None))
    x = torch.randn(3, 5)
    net(x)
    new = torch.nn.Linear(18, 3)
    net.nodes["y"] = new
    torch.testing.assert_close(net(x), new(net.nodes["h"](x)))
    clone = copy.deepcopy(net)
    with torch.no_grad():
        clone.nodes["y"].weight.add_(1.0)
    assert not torch.equal(clone(x), net(x))  # the copy runs its own parameters
    torch.testing.assert_close(clone(x), clone.interpret(x))


def test_compiled_code_reads_the_networks_containers_at_call_time():
    torch.manual_seed(0)
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("p", op="linear", out_features=4)
    g.add_node("q", op="linear", out_features=4)
    g.add_node("m", op="identity")
    g.add_edges_from([("x", "p"), ("x", "q"), ("q", "m")])
    g.add_edge("p", "m", learnable=True, weight=0.5)
    net = mg.ModuleGraph(g)
    x = torch.randn(3, 4)
    net(x)
    compiled = net._compiled[1]
    # an entry replaced inside a container (module or adjacency parameter) is used without recompiling
    net.adjacency_weights["p->m"] = torch.nn.Parameter(torch.tensor(2.0))
    net.nodes["q"] = torch.nn.Linear(4, 4)
    torch.testing.assert_close(net(x), 2.0 * net.nodes["p"](x) + net.nodes["q"](x))
    assert net._compiled[1] is compiled
    # a whole container replaced: recompiled against the new one
    net.nodes = torch.nn.ModuleDict({k: torch.nn.Linear(4, 4) if k != "m" else v for k, v in net.nodes.items()})
    torch.testing.assert_close(net(x), net.interpret(x), rtol=0, atol=0)
    assert net._compiled[1] is not compiled


# names the spec accepts that are not Python identifiers (or are keywords) reach the compiled code only as strings
ODD_NAMES = ["class", "if", "None", "True", "lambda", "match", "_", "a b", "a-b", "1a", "ü", 'a"b', "a'b", "a\\b",
             "a\nb", "a)b", "self", "in_0", "edge_index", "getitem", "torch"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_compiled_forward_runs_any_accepted_node_name(name):
    torch.manual_seed(0)
    g = nx.DiGraph()
    g.add_node(name + "i", op="input", features=4)
    g.add_node(name, op="linear", out_features=4)
    g.add_node(name + "2", op="tanh")
    g.add_node(name + "m", op="identity")
    g.add_node(name + "o", op="linear", out_features=2)
    g.add_edge(name + "i", name, learnable=True, weight=0.3, attention="sigmoid")  # adjacency + neuron gate
    g.add_edge(name + "i", name + "2", learnable=True)
    g.add_edge(name, name + "m", attention="softmax")  # a branch gate keyed by the node's name
    g.add_edge(name + "2", name + "m", attention="softmax")
    g.add_edge(name + "m", name + "o", attention="sigmoid")
    g.graph["outputs"] = [name + "o", name]  # a dict output keyed by the names
    net = mg.ModuleGraph(g)
    x = torch.randn(3, 4)
    out, ref = net(x), net.interpret(x)
    assert list(out) == [name + "o", name]
    for key in out:
        torch.testing.assert_close(out[key], ref[key], rtol=0, atol=0)
    out[name + "o"].sum().backward()
    # the adjacency weight's gradient against a central difference of the compiled forward, in float64
    net.double()
    x = x.double()
    w = net.adjacency_weights[f"{name}i->{name}"]
    w.grad = None
    net(x)[name + "o"].sum().backward()
    eps, w0 = 1e-6, w.detach().clone()
    with torch.no_grad():
        w.copy_(w0 + eps)
        up = net(x)[name + "o"].sum()
        w.copy_(w0 - eps)
        down = net(x)[name + "o"].sum()
        w.copy_(w0)
    torch.testing.assert_close(w.grad, (up - down) / (2 * eps), rtol=1e-6, atol=1e-9)


def test_declared_out_features_of_a_module_node_is_checked_at_build():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("m", module=torch.nn.Linear(4, 6), out_features=5)
    g.add_node("y", op="linear", out_features=2)
    g.add_edges_from([("x", "m"), ("m", "y")])
    with pytest.raises(mg.GraphSpecError, match=r"node 'm': declared out_features=5, but its module maps 4 input "
                                                r"features to 6"):
        mg.ModuleGraph(g)
    # a right declaration builds, and the dry run leaves every submodule's train/eval mode as it was
    body = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Dropout(0.5))
    body[1].eval()
    g.nodes["m"].update(module=body, out_features=6)
    net = mg.ModuleGraph(g)
    assert body.training and body[0].training and not body[1].training
    assert net(torch.randn(3, 4)).shape == (3, 2)


def test_a_module_that_cannot_run_on_zeros_is_trusted_with_its_declared_width():
    class PositiveOnly(torch.nn.Module):
        def forward(self, x):
            if not bool((x > 0).all()):
                raise ValueError("positive inputs only")
            return x[:, :2]

    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("m", module=PositiveOnly(), out_features=2)
    g.add_edge("x", "m")
    net = mg.ModuleGraph(g)
    assert net(torch.rand(3, 4) + 0.1).shape == (3, 2)


def test_edge_weights_are_those_of_the_last_forward_only():
    """A forward with attention off reports no weights, so none of an earlier forward are left to read."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(4, 5, 3))
    net(torch.randn(6, 4))
    assert ("h", "y") in net.edge_weights()
    with net.attention_off():
        net(torch.randn(6, 4))
    assert net.edge_weights() == {}
    net.interpret(torch.randn(2, 4))
    assert net.edge_weights()[("h", "y")].shape == (2, 5, 3)


def test_a_node_with_a_branch_gate_and_a_graph_gate_reports_both():
    """Both gates are named after the node; each level keeps its own weights."""
    torch.manual_seed(0)
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("a", op="linear", out_features=6)
    g.add_node("b", op="linear", out_features=6)
    g.add_node("c", op="attention_conv", out_features=4, heads=2)
    g.add_edges_from([("x", "a"), ("x", "b")])
    g.add_edge("a", "c", attention="softmax")
    g.add_edge("b", "c", attention="softmax")
    net = mg.ModuleGraph(g).eval()
    seen = {}
    for gate in net.gates():
        gate.register_weight_hook(lambda gate, w, context: seen.__setitem__(gate.level, w.detach().clone()))
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    net(torch.randn(4, 4), edge_index=edge_index)
    branch = net.edge_weights()
    assert set(branch) == {("a", "c"), ("b", "c")} and branch[("a", "c")].shape == (4,)
    torch.testing.assert_close(branch[("a", "c")], seen["branch"][:, 0, 0])
    torch.testing.assert_close(branch[("a", "c")] + branch[("b", "c")], torch.ones(4))
    (_, weights), = net.graph_weights().values()
    torch.testing.assert_close(weights, seen["graph"])


def test_the_summary_shows_every_edge_weight_and_gate_setting():
    """A learnable weight's current value (and where it started), a fixed weight, the gate's settings; the scorer's
    kind in the module print."""
    g = nx.DiGraph()
    g.add_node("a", op="input", features=4)
    g.add_node("b", op="input", features=4)
    g.add_node("m", op="linear", out_features=4)
    g.add_edge("a", "m", learnable=True, weight=0.3, attention="softmax", threshold=0.2, temperature=0.5, score="dot")
    g.add_edge("b", "m", weight=2.0, attention="softmax", threshold=0.2, temperature=0.5, score="dot")
    net = mg.ModuleGraph(g)
    with torch.no_grad():
        net.adjacency_weights["a->m"].fill_(0.75)
    rows = {"->".join(line.split()[0:3:2]): line for line in net.summary().splitlines() if " -> " in line}
    assert "threshold 0.2, temperature 0.5, score dot" in rows["a->m"] and "0.75 (learnable, from 0.3)" in rows["a->m"]
    assert rows["b->m"].split("score dot")[1].split()[0] == "2" and "learnable" not in rows["b->m"]
    assert "Scorer(kind=dot, heads=1" in repr(net)


def _columns(table: str) -> list[list[str]]:
    """The cells of a summary table, cut at the columns its dashed line marks (a cell out of its column shows)."""
    header, dashes, *rows = table.splitlines()
    spans, start = [], 0
    for dash in dashes.split("  "):
        spans.append((start, start + len(dash)))
        start += len(dash) + 2
    for line in (header, *rows):
        assert len(line) <= start - 2
        assert all(line[b:b + 2].strip() == "" for _, b in spans[:-1]), f"a cell overflows its column: {line!r}"
    return [[line[a:b].strip() for a, b in spans] for line in (header, *rows)]


def test_the_summary_counts_every_node_and_edge_by_hand():
    """Widths (a merge's in-widths joined by '+'), parameters per node (a linear layer: in*out + out), per gate (a
    branch gate is the merge's, shown on each of its edges), unset weights as 1, a zero threshold shown, and the
    total split into main and attention parameters; every cell in its column."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("a", op="linear", out_features=6)
    g.add_node("b", op="tanh")
    g.add_node("m", op="linear", out_features=3, merge="concat")
    g.add_edge("x", "a", attention="sigmoid", threshold=0.0)
    g.add_edge("x", "b", weight=0.5, learnable=True)
    g.add_edge("a", "m", attention="softmax", heads=2, hidden=8)
    g.add_edge("b", "m", attention="softmax", heads=2, hidden=8)
    net = mg.ModuleGraph(g)
    nodes_text, edges_text, total_line = net.summary().split("\n\n")
    nodes = _columns(nodes_text)
    assert nodes == [["node", "op", "in", "out", "params"],
                     ["x", "input", "-", "4", "0"],
                     ["a", "linear", "4", "6", str(4 * 6 + 6)],
                     ["b", "tanh", "4", "4", "0"],
                     ["m", "linear", "6+4", "3", str((6 + 4) * 3 + 3)]]
    neuron = sum(p.numel() for p in net.neuron_attention["x->a"].parameters())
    branch = sum(p.numel() for p in net.branch_attention["m"].parameters())
    assert neuron > 0 and branch > 0
    edges = {row[0]: row[1:] for row in _columns(edges_text)[1:]}
    assert edges == {
        "x -> a": ["neuron", "sigmoid", "threshold 0", "1", f"{neuron:,}"],
        "x -> b": ["-", "-", "-", "0.5 (learnable, from 0.5)", "0"],
        "a -> m": ["branch", "softmax", "heads 2, hidden 8", "1", f"{branch:,} (shared by the merge)"],
        "b -> m": ["branch", "softmax", "heads 2, hidden 8", "1", f"{branch:,} (shared by the merge)"],
    }
    main = (4 * 6 + 6) + ((6 + 4) * 3 + 3)
    attention = neuron + branch + 1  # the gates and the learnable edge weight
    assert sum(p.numel() for p in net.parameters()) == main + attention
    assert total_line == f"parameters: {main + attention:,} ({main:,} main, {attention:,} attention)"


def test_a_fixed_edge_weight_of_zero_silences_the_edge():
    """weight 0 is a weight like any other: 0 * branch, not the unscaled branch."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("p", op="tanh")
    g.add_node("m", op="identity")
    g.add_edge("x", "p")
    g.add_edge("x", "m", weight=0.0)
    g.add_edge("p", "m", weight=-1.5)
    net = mg.ModuleGraph(g)
    x = torch.randn(3, 4)
    torch.testing.assert_close(net(x), -1.5 * torch.tanh(x))
    torch.testing.assert_close(net.interpret(x), -1.5 * torch.tanh(x))


def test_the_width_probe_follows_a_module_with_only_buffers():
    """No parameters: the probe's input takes the dtype of the first floating buffer."""

    class Project(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("proj", torch.ones(4, 3, dtype=torch.float64))

        def forward(self, x):
            return x @ self.proj

    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("m", module=Project())
    g.add_edge("x", "m")
    net = mg.ModuleGraph(g).double()
    assert net.plan.widths["m"] == 3
    torch.testing.assert_close(net(torch.ones(2, 4, dtype=torch.float64)), torch.full((2, 3), 4.0, dtype=torch.float64))


def _plain_then_attended() -> nx.DiGraph:
    """x -> p (tanh) and x -> q (relu) into m; p -> m plain, q -> m attended (sigmoid): m's in-edges are p, q."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("p", op="tanh")
    g.add_node("q", op="relu")
    g.add_node("m", op="identity")
    g.add_edges_from([("x", "p"), ("x", "q"), ("p", "m")])
    g.add_edge("q", "m", attention="sigmoid")
    return g


def test_a_branch_gate_weighs_the_attended_in_edge_not_the_first_one():
    """m's in-edges are p (plain) then q (attended, sigmoid): m = p + w * q with w the gate's weight of q -> m."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(_plain_then_attended())
    assert list(net.graph.predecessors("m")) == ["p", "q"]
    x = torch.randn(5, 4)
    for run in (net, net.interpret):
        out = run(x)
        w = net.edge_weights()[("q", "m")]
        assert set(net.edge_weights()) == {("q", "m")} and w.shape == (5,)
        torch.testing.assert_close(out, torch.tanh(x) + w[:, None] * torch.relu(x))


def _branch_merge_net():
    """m = p + q (identity), both in-edges weighted by a softmax branch gate; h -> y neuron-level next to it."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    g.add_node("p", op="tanh")
    g.add_node("q", op="relu")
    g.add_node("m", op="identity")
    g.add_node("y", op="linear", out_features=3)
    g.add_edges_from([("x", "p"), ("x", "q")])
    g.add_edge("p", "m", attention="softmax")
    g.add_edge("q", "m", attention="softmax")
    g.add_edge("m", "y", attention="sigmoid")
    return mg.ModuleGraph(g)


def test_attention_off_unscales_branch_merges_too():
    """Switched off, a branch gate reports nothing and its merge is the plain sum p + q (not the weighted one)."""
    torch.manual_seed(0)
    net = _branch_merge_net()
    x = torch.randn(5, 4)
    unscaled = torch.tanh(x) + torch.relu(x)
    y_lin = net.nodes["y"]
    expected = unscaled @ y_lin.weight.T + y_lin.bias
    for run in ("forward", "interpret"):
        with net.attention_off():
            torch.testing.assert_close(getattr(net, run)(x), expected)
            assert net.edge_weights() == {}
        net.set_attention(False)
        assert not any(g.enabled for g in net.gates())
        torch.testing.assert_close(getattr(net, run)(x), expected)
        assert net.edge_weights() == {}
        net.set_attention(True)
        assert all(g.enabled for g in net.gates())
        getattr(net, run)(x)
        assert set(net.edge_weights()) == {("p", "m"), ("q", "m"), ("m", "y")}


def test_attention_off_restores_each_gates_own_state():
    """A gate that was off before the block stays off after it; the others come back on."""
    net = _branch_merge_net()
    branch, = (g for g in net.gates() if g.level == "branch")
    branch.enabled = False
    with net.attention_off():
        assert not any(g.enabled for g in net.gates())
    assert {g.level: g.enabled for g in net.gates()} == {"branch": False, "neuron": True}


def test_a_branch_gate_scores_the_attended_in_edge_by_hand():
    """m = p + w * q: w is the sigmoid of the additive score of q's own key (not of the plain in-edge p)."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(_plain_then_attended())
    att = net.branch_attention["m"]
    assert len(att.keys) == 1
    x = torch.randn(5, 4)
    key = torch.relu(x) @ att.keys[0].weight.T + att.keys[0].bias  # (B, hidden): q's key, hidden = heads * dim
    w = torch.sigmoid((torch.tanh(key + att.query[0]) * att.scorer.v[0]).sum(-1))  # (B,)
    for run in (net, net.interpret):
        out = run(x)
        torch.testing.assert_close(net.edge_weights()[("q", "m")], w)
        assert not net.edge_weights()[("q", "m")].requires_grad  # stored detached: no graph kept alive
        torch.testing.assert_close(out, torch.tanh(x) + w[:, None] * torch.relu(x))


def test_the_interpreter_keeps_the_output_order_and_the_concat_order():
    """Outputs in the order of the graph's ``outputs`` attribute; a concat in the order of the node's in-edges."""
    g = _two_inputs_concat()
    g.graph["outputs"] = ["y2", "c", "y1"]
    net = mg.ModuleGraph(g)
    a, b = torch.randn(5, 3), torch.randn(5, 4)
    lin = net.nodes["y1"]
    for run in (net, net.interpret):
        out = run({"a": a, "b": b})
        assert list(out) == ["y2", "c", "y1"]
        torch.testing.assert_close(out["c"], torch.cat([a, b], 1))
        torch.testing.assert_close(out["y1"], torch.cat([a, b], 1) @ lin.weight.T + lin.bias)
        torch.testing.assert_close(out["y2"], F.relu(b))


def test_declared_out_features_of_a_module_behind_a_concat_is_checked():
    """The dry run of a concat node's module gets the summed in-width, so a wrong declaration is caught there too."""
    g = nx.DiGraph()
    g.add_node("a", op="input", features=3)
    g.add_node("b", op="input", features=4)
    g.add_node("m", module=torch.nn.Linear(7, 6), out_features=5, merge="concat")
    g.add_edges_from([("a", "m"), ("b", "m")])
    with pytest.raises(mg.GraphSpecError, match=r"node 'm': declared out_features=5, but its module maps 7 input "
                                                r"features to 6"):
        mg.ModuleGraph(g)



# ----------------------------------------------------------------------------------------------------
# bad inputs to a forward pass: named after the forward failed (nothing is checked on a working forward)


def _graph_net():
    return mg.ModuleGraph.from_dict({"nodes": {"x": {"op": "input", "features": 4},
                                               "c": {"op": "attention_conv", "out_features": 3}},
                                     "edges": [["x", "c"]]})


@pytest.mark.parametrize("run", ["forward", "interpret"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_or_bool_features_are_named(run, dtype):
    for net, x in ((mg.ModuleGraph(mlp_graph()), torch.zeros(3, 5, dtype=dtype)),
                   (_graph_net(), torch.zeros(5, 4, dtype=dtype))):
        with pytest.raises(TypeError, match=rf"input 'x' is {dtype}, but the network computes in torch.float32; "
                                            r"features must be floating point \(x.to\(torch.float32\)\)"):
            getattr(net, run)(x, torch.tensor([[0, 1], [1, 2]]) if net.needs_graph else None)


@pytest.mark.parametrize("run", ["forward", "interpret"])
def test_an_input_that_is_not_one_row_per_node_or_sample_is_named(run):
    # before: a graph op saw a 1-D input as 4 nodes ("edge_index holds node ids in [0, 4] but there are 4 nodes"),
    # a neuron-level gate raised einsum's "number of subscripts ... does not match"
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    net = getattr(_graph_net(), run)
    for x in (torch.randn(4), torch.randn(2, 5, 4)):
        with pytest.raises(ValueError, match=r"input 'x': expected a tensor \[N, 4\] \(the network has graph ops, "
                                             r"which take one row per node\), got \("):
            net(x, ei)
    net = getattr(mg.ModuleGraph(mlp_graph()), run)  # its h -> y edge is neuron-level
    for x in (torch.randn(5), torch.randn(2, 3, 5)):
        with pytest.raises(ValueError, match=r"input 'x': expected a tensor \[N, 5\] \(the network has neuron-level "
                                             r"gates, which take one row per sample\), got \("):
            net(x)
    assert net(torch.randn(3, 5)).shape == (3, 3)


@pytest.mark.parametrize("run", ["forward", "interpret"])
def test_inputs_with_different_batch_sizes_are_named(run):
    net = getattr(mg.ModuleGraph(_two_inputs_concat()), run)  # inputs a [3] and b [4]
    with pytest.raises(ValueError, match=r"inputs 'a' \(2, 3\) and 'b' \(4, 4\) differ in their leading \(batch\) "
                                         r"dimensions; every input needs one row per sample"):
        net({"a": torch.randn(2, 3), "b": torch.randn(4, 4)})  # before: torch.cat's "Sizes of tensors must match"


@pytest.mark.parametrize("value", ["false", None, 0, 1, torch.tensor(True)])
def test_set_attention_takes_a_bool_only(value):
    net = mg.ModuleGraph(mlp_graph())
    with pytest.raises(ValueError, match=r"set_attention: enabled must be true or false, got "):
        net.set_attention(value)  # before: bool("false") switched the gates on
    assert all(g.enabled for g in net.gates())
    net.set_attention(False)
    assert not any(g.enabled for g in net.gates())


# ------------------------------------------------------------------------------------------ devices and dtypes
# No GPU is needed to check that a network follows its input's device: on the ``meta`` device every shape is
# computed and any tensor made on the CPU inside forward or backward mixes devices and raises.
def _meta_forward_backward(net, x):
    net = net.to("meta")
    y = net(x.to("meta"))
    assert y.device.type == "meta"
    y.sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert grads and all(g is not None and g.device.type == "meta" for g in grads)
    return net


@pytest.mark.parametrize("fused", [False, True], ids=["modules", "fused"])
def test_the_paper_mlp_runs_forward_and_backward_on_the_meta_device(fused, monkeypatch):
    calls = []
    kernel = mg.merge.neuron_scaled_linear
    monkeypatch.setattr(mg.merge, "neuron_scaled_linear", lambda *a: calls.append(1) or kernel(*a))
    net = mg.ModuleGraph(mlp_graph(5, 8, 3, "sigmoid"))
    with mg.merge.fused_neuron_attention(fused):
        net = _meta_forward_backward(net, torch.randn(4, 5))
    assert len(calls) == fused  # the fused kernel ran exactly when asked for
    assert net.edge_weights()[("h", "y")].shape == (4, 8, 3)


@pytest.mark.parametrize("attention", ["softmax", "sparsemax", "sigmoid"])
def test_a_dag_with_branch_attention_runs_forward_and_backward_on_the_meta_device(attention):
    net = mg.ModuleGraph(random_dag(6, 0.6, seed=1, attention=attention))
    assert any(step.branch for step in net.plan.steps)  # a merge weighted by branch attention
    _meta_forward_backward(net, torch.randn(4, 8))


@pytest.mark.parametrize("build", [lambda: mlp_graph(5, 8, 3, "sigmoid"),
                                   lambda: random_dag(6, 0.6, seed=1, attention="sparsemax")], ids=["mlp", "dag"])
@pytest.mark.parametrize("fused", [False, True], ids=["modules", "fused"])
def test_a_float64_network_computes_in_float64(build, fused):
    torch.manual_seed(0)
    net = mg.ModuleGraph(build()).to(torch.float64)
    x = torch.randn(4, net.plan.widths[net.inputs[0]], dtype=torch.float64)
    with mg.merge.fused_neuron_attention(fused):
        y = net(x)
    y.sum().backward()
    assert y.dtype == torch.float64
    assert all(p.grad.dtype == torch.float64 for p in net.parameters())
    assert all(w.dtype == torch.float64 for w in net.edge_weights().values())
