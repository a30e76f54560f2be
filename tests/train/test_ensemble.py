import copy

import pytest
import torch
import torch.nn.functional as F

import modgraph as mg
from modgraph.functional.regularizers import weight_decay
from modgraph.train import Ensemble, MemberAdam, fit, stack_padded

from ..helpers import mlp_graph

K = 3


pytestmark = pytest.mark.usefixtures("one_thread")


def members(k=K, seed=0, **kw):
    torch.manual_seed(seed)
    return [mg.ModuleGraph(mlp_graph(**kw)) for _ in range(k)]


def member_data(k=K, seed=0):
    """Per-member data sets of different sizes (so the padding and the masks matter)."""
    gen = torch.Generator().manual_seed(seed)
    data = []
    for i in range(k):
        n = 20 + 7 * i
        x = torch.randn(n, 5, generator=gen)
        y = ((x[:, 0] > 0).long() + (x[:, 1] * x[:, 2] > 0).long())
        data.append((x, y))
    return data


def test_forward_equals_each_member():
    nets = members()
    ens = Ensemble(nets)
    x = torch.randn(K, 7, 5)
    out = ens(x)  # (K, 7, 3)
    assert out.shape == (K, 7, 3)
    for k in range(K):
        torch.testing.assert_close(out[k], nets[k](x[k]))
    shared = torch.randn(7, 5)
    torch.testing.assert_close(ens(shared, shared=True)[1], nets[1](shared))


@pytest.mark.parametrize("attention", ["softmax", "sparsemax"])
def test_forward_equals_each_member_with_normalised_gates(attention):
    """Sparsemax (an autograd function of ours) runs under the ensemble's vmap too, one call for all members."""
    nets = members(attention=attention)
    x = torch.randn(K, 7, 5)
    out = Ensemble(nets)(x)
    for k in range(K):
        torch.testing.assert_close(out[k], nets[k](x[k]))


def test_attention_switch_per_member():
    nets = members()
    ens = Ensemble(nets)
    x = torch.randn(K, 6, 5)
    ens.set_attention(torch.tensor([True, False, True]))
    out = ens(x)
    torch.testing.assert_close(out[0], nets[0](x[0]))
    with nets[1].attention_off():
        torch.testing.assert_close(out[1], nets[1](x[1]))
    ens.set_attention(False)
    with nets[2].attention_off():
        torch.testing.assert_close(ens(x)[2], nets[2](x[2]))
    with pytest.raises(ValueError, match=r"expected a bool or a \[3\] bool tensor, got shape \(2,\)"):
        ens.set_attention(torch.tensor([True, False]))
    for bad in ("yes", 0.5, torch.tensor([1.0, 0.0, 1.0]), 1):  # torch.as_tensor took 0.5 and 1.0 as True
        with pytest.raises(TypeError, match=r"set_attention: expected a bool or a \[3\] bool tensor, got"):
            ens.set_attention(bad)
    ens.set_attention([True, False, False])  # a list of bools, as a checkpoint's JSON log holds it
    assert ens.attention_enabled.tolist() == [True, False, False]


def test_active_members_only_in_training():
    """``set_active``: in training mode only the active members run (the others' rows are zeros and their parameters
    get no gradient), with their own inputs and attention switches; in eval mode every member runs."""
    nets = members()
    ens = Ensemble(nets)
    x = torch.randn(K, 6, 5)
    ens.set_attention(torch.tensor([True, True, False]))
    ens.set_active(torch.tensor([False, True, True]))
    ens.train()
    out = ens(x)
    assert torch.equal(out[0], torch.zeros(6, 3))
    torch.testing.assert_close(out[1], nets[1](x[1]))
    with nets[2].attention_off():
        torch.testing.assert_close(out[2], nets[2](x[2]))
    out.square().sum().backward()
    grad = ens.stacked("nodes.h.weight").grad
    assert torch.equal(grad[0], torch.zeros_like(grad[0])) and grad[1:].abs().sum() > 0
    ens.eval()
    with torch.no_grad():
        torch.testing.assert_close(ens(x)[0], nets[0](x[0]))
    ens.train()
    ens.set_active(None)
    torch.testing.assert_close(ens(x)[0], nets[0](x[0]))
    with pytest.raises(ValueError, match=r"set_active: expected None or a \[3\] bool tensor, got shape \(2,\)"):
        ens.set_active(torch.tensor([True, False]))


def test_parameter_groups_and_member_copy():
    nets = members()
    ens = Ensemble(nets)
    assert ens.stacked("nodes.h.weight").shape == (K, 18, 5)
    assert ens.attention_names == ["neuron_attention.h->y.allocator.weight", "neuron_attention.h->y.allocator.bias"]
    assert {id(p) for p in ens.main_parameters()} | {id(p) for p in ens.attention_parameters()} == {
        id(p) for p in ens.parameters()}
    assert sum(p.numel() for p in ens.parameters()) == K * sum(p.numel() for p in nets[0].parameters())
    ens.set_attention(torch.tensor([True, False, True]))
    one = ens.member(1)
    assert isinstance(one, mg.ModuleGraph) and not any(g.enabled for g in one.gates())
    x = torch.randn(4, 5)
    with nets[1].attention_off():
        torch.testing.assert_close(one(x), nets[1](x))
    with pytest.raises(KeyError, match="no parameter 'nodes.z.weight'; the members have nodes.h.weight"):
        ens.stacked("nodes.z.weight")


def test_members_must_share_the_architecture():
    with pytest.raises(ValueError, match="member 1 differs from member 0"):
        Ensemble([mg.ModuleGraph(mlp_graph(hidden=18)), mg.ModuleGraph(mlp_graph(hidden=20))])
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])


def test_member_adam_equals_adam_with_each_learning_rate():
    torch.manual_seed(0)
    w = torch.randn(K, 4, 2)
    target = torch.randn(K, 4, 2)
    lrs = torch.tensor([1e-3, 1e-2, 3e-2])
    stacked = torch.nn.Parameter(w.clone())
    opt = MemberAdam([stacked], lr=lrs)
    singles = [torch.nn.Parameter(w[k].clone()) for k in range(K)]
    opts = [torch.optim.Adam([singles[k]], lr=float(lrs[k])) for k in range(K)]
    for _ in range(25):
        opt.zero_grad()
        ((stacked - target) ** 3).abs().sum().backward()
        opt.step()
        for k in range(K):
            opts[k].zero_grad()
            ((singles[k] - target[k]) ** 3).abs().sum().backward()
            opts[k].step()
    for k in range(K):
        torch.testing.assert_close(stacked[k], singles[k], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="positive learning rates"):
        MemberAdam([stacked], lr=torch.tensor([0.1, 0.0, 0.1]))
    with pytest.raises(ValueError, match="needs a leading member dimension 3, got shape"):
        MemberAdam([torch.nn.Parameter(torch.zeros(2, 4))], lr=lrs)


def test_stack_padded():
    x, mask = stack_padded([torch.ones(2, 3), 2 * torch.ones(1, 3)])
    assert x.shape == (2, 2, 3) and mask.tolist() == [[True, True], [True, False]]
    assert x[1, 1].tolist() == [0.0, 0.0, 0.0] and x[1, 0].tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match=r"array 1 has shape \(1, 4\), expected \[n, 3\]"):
        stack_padded([torch.ones(2, 3), torch.ones(1, 4)])


@pytest.mark.parametrize("schedule,patience,tol", [("joint", None, -1.0), ("alternating", None, -1.0),
                                                   ("joint", 2, -1.0), ("alternating", 2, -1.0),
                                                   ("alternating", None, 0.1)])
def test_batched_training_equals_separate_trainings(schedule, patience, tol):
    """K members trained as one program = K separate fits (own data sizes, penalty strengths, learning rates), with
    early stopping too: a member whose patience runs out stops where a fit of its own would have ended the phase,
    and a member whose alternation has converged (``tol``) waits for the joint fine-tune, which a fit of its own
    would have gone straight on to."""
    nets = members(seed=1)
    copies = [copy.deepcopy(n) for n in nets]
    data = member_data()
    lam = torch.tensor([0.0, 1e-3, 1e-2])
    lrs = torch.tensor([0.01, 0.02, 0.005])
    steps = 40 if patience is None and tol < 0 else 120 if patience else 90  # long enough for patience or rounds
    rounds = 2 if tol < 0 else 3
    coarse = patience is not None or tol >= 0

    def loss_one(net, k):
        x, y = data[k]
        return F.cross_entropy(net(x), y) + lam[k] * weight_decay([net.nodes["h"].weight, net.nodes["y"].weight])

    def score(ce):  # validation score: the negative loss, to one decimal with patience or tol (members stall)
        return -torch.round(ce * 10) / 10 if coarse else -ce

    def score_one(net, k):
        x, y = data[k]
        return score(F.cross_entropy(net(x), y)).item()

    separate = [fit(copies[k], lambda n, k=k: loss_one(n, k), lambda n, k=k: score_one(n, k), schedule=schedule,
                    steps=steps, eval_every=3, rounds=rounds, tol=tol, patience=patience,
                    optimizer=lambda p, k=k: torch.optim.Adam(p, lr=float(lrs[k])))
                for k in range(K)]

    ens = Ensemble(nets)
    x, mask = stack_padded([d[0] for d in data])  # (K, N, 5), (K, N)
    y, _ = stack_padded([d[1] for d in data])  # (K, N)
    weight = mask / mask.sum(1, keepdim=True)

    def per_member_ce(e):
        ce = F.cross_entropy(e(x).transpose(1, 2), y, reduction="none")  # (K, N)
        return (ce * weight).sum(1)  # (K,)

    def loss_all(e):
        penalty = weight_decay([e.stacked("nodes.h.weight"), e.stacked("nodes.y.weight")], batch_dims=1)  # (K,)
        return (per_member_ce(e) + lam * penalty).sum()

    result = fit(ens, loss_all, lambda e: score(per_member_ce(e)), schedule=schedule, steps=steps, eval_every=3,
                 rounds=rounds, tol=tol, patience=patience, optimizer=lambda p: MemberAdam(p, lr=lrs))

    longest = max((r.phases for r in separate), key=len)
    assert [(p["name"], p["round"]) for p in result.phases] == [(p["name"], p["round"]) for p in longest]
    if tol >= 0:
        assert len({len(r.phases) for r in separate}) > 1  # the members' alternations ended after different rounds
    if patience is not None:
        lengths = {tuple(ph["end"] - ph["start"] for ph in r.phases) for r in separate}
        assert len(lengths) > 1  # the members' phases ended at different times
        assert any(ph["end"] - ph["start"] < ph["budget"] for r in separate for ph in r.phases)  # by patience
        if schedule == "joint":
            assert result.steps == max(r.steps for r in separate)  # the program ends with the last of them
    for k in range(K):
        if schedule == "joint" or (patience is None and tol < 0):  # else the fits count steps from other phase ends
            assert result.best_step[k] == separate[k].best_step
        assert result.best_score[k] == pytest.approx(separate[k].best_score, rel=1e-5)
        assert result.best_attention[k] == bool(all(g.enabled for g in copies[k].gates()))
        trained = ens.member(k)
        for name, p in copies[k].named_parameters():
            torch.testing.assert_close(trained.get_parameter(name), p, rtol=1e-4, atol=1e-5)


def test_selection_keeps_each_members_attention_switch():
    """Member 0 is best in the attention-free warm-up, member 1 in a phase with attention on: each keeps its own."""
    nets = members(k=2)
    ens = Ensemble(nets)
    x = torch.randn(2, 8, 5)
    states = []

    def evaluate(e):
        states.append({k: v.clone() for k, v in e.state_dict().items()})
        step = len(states)
        return torch.tensor([1.0 if step == 1 else 0.0, float(step)])  # member 0: the first evaluation wins

    result = fit(ens, lambda e: e(x).square().mean(), evaluate, schedule="alternating", steps=20, rounds=1,
                 tol=-1.0)
    assert result.phases[0]["name"] == "main" and result.phases[0]["attention"] is False
    assert result.best_attention == [False, True]
    assert result.best_phase == ["main", "joint"]
    assert ens.attention_enabled.tolist() == [False, True]
    first = ens.member(0)
    torch.testing.assert_close(first.get_parameter("nodes.h.weight"), states[0]["params.nodes/h/weight"][0])
    with nets[0].attention_off():  # nets[0] still holds the initial weights; the warm-up changed them
        assert not torch.allclose(ens(x)[0], nets[0](x[0]))
    reference = ens.member(0)
    with torch.no_grad():
        torch.testing.assert_close(ens(x)[0], reference(x[0]))
    assert not any(g.enabled for g in reference.gates())


def test_member_adam_step_is_adams_step_scaled_per_member_bit_for_bit():
    """The multi-tensor update equals ``old + (p_adam - old) * lr[k] / max(lr)`` exactly, parameter by parameter."""
    torch.manual_seed(0)
    lr = torch.tensor([1e-3, 1e-2, 3e-2])
    params = [torch.randn(3, 4, 5, requires_grad=True), torch.randn(3, 2, requires_grad=True)]
    plain = [p.detach().clone().requires_grad_(True) for p in params]
    member, adam = MemberAdam(params, lr=lr), torch.optim.Adam(plain, lr=float(lr.max()))
    for _ in range(5):
        for ps, opt in ((params, member), (plain, adam)):
            opt.zero_grad()
            sum((p ** 3).sum() + p.sin().sum() for p in ps).backward()
        with torch.no_grad():
            before = [p.detach().clone() for p in plain]
            adam.step()
            for p, old in zip(plain, before):
                scale = (lr.double() / lr.double().max()).float().view(-1, *[1] * (p.dim() - 1))
                p.copy_(old + (p - old) * scale)
        member.step()
        for p, q in zip(params, plain):
            assert torch.equal(p, q)


def test_members_must_be_networks_of_one_spec():
    """Equal parameter shapes are not enough: the ensemble runs member 0's structure for every member, so a member
    with another activation or gate ran silently as member 0's network."""
    with pytest.raises(TypeError, match=r"^Ensemble needs a list of member networks, got ModuleGraph; for one network "
                                        r"write Ensemble\(\[net\]\)$"):
        Ensemble(members(1)[0])
    with pytest.raises(TypeError, match=r"^Ensemble: member 1 must be a network \(an nn\.Module\), got Tensor$"):
        Ensemble([members(1)[0], torch.zeros(3)])
    relu = mlp_graph()
    relu.nodes["h"]["activation"] = "relu"
    with pytest.raises(ValueError, match=r"^Ensemble members must share one architecture \(the ensemble runs member "
                                         r"0's for all\); member 1 differs: node 'h' is .*'relu'.* in member 1 but "
                                         r".*'sigmoid'.* in member 0$"):
        Ensemble([mg.ModuleGraph(mlp_graph()), mg.ModuleGraph(relu)])
    with pytest.raises(ValueError, match=r"member 2 differs: edge .*'softmax'.* in member 2 but .*'sigmoid'.*"):
        Ensemble(members(2) + [mg.ModuleGraph(mlp_graph(attention="softmax"))])
    assert Ensemble(torch.nn.ModuleList(members(2))).size == 2


def test_inputs_without_the_member_dimension_are_named():
    ens = Ensemble(members())
    for shape in ((K + 1, 7, 5), (7, 5)):  # a vmap "size mismatch" before; [B, ...] needs shared=True
        with pytest.raises(ValueError, match=rf"^Ensemble of {K}: inputs must be tensors \[{K}, B, \.\.\.\] \(member k "
                                             rf"gets inputs\[k\]\), or \[B, \.\.\.\] with shared=True .* got shape "
                                             rf"\({', '.join(map(str, shape))}\)$"):
            ens(torch.randn(*shape))
    assert ens(torch.randn(7, 5), shared=True).shape == (K, 7, 3)
    with pytest.raises(TypeError, match=r"^Ensemble\.member: k must be an integer, got '0'$"):
        ens.member("0")


def test_member_adam_refuses_an_infinite_learning_rate():
    """lr.max() = inf scaled every other member's step to 0 (and the infinite one's to NaN), silently."""
    ens = Ensemble(members(2))
    with pytest.raises(ValueError, match=r"^MemberAdam: lr must be a 1-D tensor \[K\] of finite positive learning "
                                         r"rates, got \[0\.1.*, inf\]$"):
        MemberAdam(ens.parameters(), lr=torch.tensor([0.1, float("inf")]))


# ------------------------------------------------------------------------------------------ devices
@pytest.mark.parametrize("fused", [False, True], ids=["modules", "fused"])
@pytest.mark.parametrize("switches", ["all on", "per member", "active members"])
def test_the_ensemble_runs_forward_and_backward_on_the_meta_device(fused, switches):
    """No GPU needed: on ``meta`` any read of a value (which on CUDA waits for the device at every forward, such as
    the per-member attention switches) or tensor made on the CPU raises."""
    ens = Ensemble(members(attention="sigmoid"))
    if switches != "all on":
        ens.set_attention(torch.tensor([True, False, True]))
    if switches == "active members":
        ens.set_active(torch.tensor([False, True, True]))
    ens = ens.to("meta").train()
    assert ens.attention_enabled.device.type == "meta"
    with mg.merge.fused_neuron_attention(fused):
        out = ens(torch.randn(K, 6, 5, device="meta"))
    assert out.shape == (K, 6, 3) and out.device.type == "meta"
    out.sum().backward()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in ens.parameters())


def test_the_attention_switches_follow_every_change_of_the_buffer():
    """The forward decides on a CPU copy of ``attention_enabled``; a state loaded into the buffer, an in-place write,
    and ``.to()`` all reach it."""
    nets = members()
    ens = Ensemble(nets)
    x = torch.randn(K, 6, 5)
    state = copy.deepcopy(ens.state_dict())
    ens.set_attention(torch.tensor([True, False, True]))
    off = ens(x)
    with nets[1].attention_off():
        torch.testing.assert_close(off[1], nets[1](x[1]))
    ens.load_state_dict(state)  # all on again
    torch.testing.assert_close(ens(x)[1], nets[1](x[1]))
    with torch.no_grad():
        ens.attention_enabled[1] = False
    torch.testing.assert_close(ens(x), off)
    ens = ens.to(torch.float64)
    assert ens.attention_enabled.tolist() == [True, False, True]
    torch.testing.assert_close(ens(x.double()), off.double(), rtol=1e-5, atol=1e-6)
    ens.attention_enabled = torch.tensor([False, True, True])  # a new buffer object
    with nets[0].attention_off():
        torch.testing.assert_close(ens(x.double())[0], nets[0](x[0]).double(), rtol=1e-5, atol=1e-6)
    ens.attention_enabled = torch.tensor([True, False, True])
    assert ens.member(1).gates()[0].enabled is False


def test_stack_padded_names_what_it_cannot_stack_and_keeps_every_value():
    x, mask = stack_padded([torch.tensor([1, 2]), torch.tensor([0.5])])  # before: [[1, 2], [0, 0]] (int64)
    assert x.tolist() == [[1.0, 2.0], [0.5, 0.0]] and x.dtype == torch.float32
    assert mask.tolist() == [[True, True], [True, False]]
    same, _ = stack_padded([torch.ones(2, dtype=torch.long), torch.ones(1, dtype=torch.long)])
    assert same.dtype == torch.long  # one dtype: kept, as before
    for arrays, error, message in [
        (5, TypeError, r"stack_padded: expected a list of K arrays \[n_k, \.\.\.\], got int"),
        ("ab", TypeError, r"stack_padded: expected a list of K arrays \[n_k, \.\.\.\], got str"),
        ([torch.ones(2), None], ValueError, r"stack_padded: array 1 is not an array of numbers \(NoneType: "),
    ]:
        with pytest.raises(error, match=message):
            stack_padded(arrays)
    with pytest.raises(TypeError, match=r"stack_padded: dtype must be a torch\.dtype .*got 'float32'"):
        stack_padded([torch.ones(2)], dtype="float32")
    with pytest.raises(ValueError, match=r"stack_padded: device must be a torch\.device such as 'cpu' .*got 'gpu'"):
        stack_padded([torch.ones(2)], device="gpu")


def test_member_adam_and_the_ensembles_methods_name_arguments_of_the_wrong_kind():
    ens = Ensemble(members())
    params = [torch.nn.Parameter(torch.zeros(K, 2))]
    for lr, error, message in [
        ([], ValueError, r"got \[\]"),  # before: torch's max() of an empty tensor
        ([True] * K, TypeError, r"got bools \[True, True, True\]"),  # before: learning rates of 1.0
        ("0.1", TypeError, r"got '0\.1'"),
        (None, TypeError, r"got None"),
    ]:
        with pytest.raises(error, match=r"MemberAdam: lr must be a 1-D tensor \[K\] of finite positive learning "
                                        r"rates, " + message):
            MemberAdam(params, lr=lr)
    for name in (["nodes.h.weight"], 5):
        with pytest.raises(TypeError, match=r"stacked: name must be a member parameter name \(a str such as "
                                            r"'nodes\.h\.weight'\), got " + type(name).__name__):
            ens.stacked(name)
    for active in ([0, 2, 1], [0.5, 0.0, 1.0], torch.tensor([0, 1]), "all"):  # before: indices taken as a mask
        with pytest.raises(TypeError, match=rf"set_active: expected None or a \[{K}\] bool tensor \(True: the member "
                                            r"trains\), got "):
            ens.set_active(active)
    assert ens._active is None
    ens.set_active([True, False, True])
    assert ens._active.tolist() == [0, 2]
    ens.set_active(None)
    x = torch.randn(4, 5)
    with pytest.raises(TypeError, match=r"^Ensemble: shared must be true or false, got 'yes'$"):
        ens(x, shared="yes")  # before: taken as True
    torch.testing.assert_close(ens(x, shared=True), ens(x.expand(K, 4, 5)))
