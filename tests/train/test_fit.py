import networkx as nx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import modgraph as mg
from modgraph.train import Phase, Trainer, fit, make_schedule

from ..helpers import mlp_graph


def task(seed=0, n=64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return x, y


def loss_of(x, y):
    return lambda net: F.cross_entropy(net(x), y)


def acc_of(x, y):
    return lambda net: (net(x).argmax(1) == y).float().mean().item()


def snapshot(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_schedules_as_data():
    assert make_schedule("joint", 10) == [Phase("joint", "all", True, 10)]
    phases = make_schedule("alternating", 100, rounds=2)
    assert [(p.name, p.trains, p.attention, p.round) for p in phases] == [
        ("main", "main", False, 0), ("attention", "attention", True, 1), ("main", "main", True, 1),
        ("attention", "attention", True, 2), ("main", "main", True, 2), ("joint", "all", True, 0)]
    assert sum(p.budget for p in phases) <= 100
    with pytest.raises(ValueError, match="unknown schedule 'alt'; valid: joint, alternating, main"):
        make_schedule("alt", 10)


def test_best_validation_state_is_restored():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph())
    x, y = task()
    scores = iter([0.1, 0.4, 0.9, 0.3, 0.2, 0.5])
    seen = []
    result = fit(net, loss_of(x, y), lambda n: next(scores), steps=6,
                 callback=lambda t: seen.append(snapshot(t.net)))
    assert result.best_score == 0.9 and result.best_step == 3
    for k, v in net.state_dict().items():
        assert torch.equal(v, seen[2][k])


def test_alternating_schedule_really_freezes():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph())
    x, y = task()
    main_ids = {id(p) for p in net.main_parameters()}
    log = []

    def loss_fn(n):
        log.append(("gates", all(g.enabled for g in n.gates())))
        return F.cross_entropy(n(x), y)

    def record(trainer):
        phase = trainer.phases[trainer.phase_index]
        params = {id(p): p.detach().clone() for p in trainer.net.parameters()}
        grads = {id(p): p.grad for p in trainer.net.parameters()}
        log.append((phase.trains, phase.attention, params, grads))

    result = fit(net, loss_fn, acc_of(x, y), schedule="alternating", steps=60, rounds=2, tol=-1.0, callback=record)
    steps = [e for e in log if e[0] != "gates"]
    gates = [e[1] for e in log if e[0] == "gates"]
    assert [p["name"] for p in result.phases] == ["main", "attention", "main", "attention", "main", "joint"]
    for (trains, attention, params, grads), on in zip(steps, gates):
        assert on == attention
        if trains == "main":  # attention parameters unused: no gradient
            assert all(grads[i] is None for i in params if i not in main_ids)
        if trains == "attention":
            assert all(grads[i] is None for i in params if i in main_ids)
    for prev, cur in zip(steps, steps[1:]):
        if cur[0] == "attention" and prev[0] == "attention":
            assert all(torch.equal(prev[2][i], cur[2][i]) for i in main_ids)
        if cur[0] == "main" and prev[0] == "main":
            assert all(torch.equal(prev[2][i], cur[2][i]) for i in cur[2] if i not in main_ids)
    assert all(p.requires_grad for p in net.parameters())


def test_alternation_stops_when_validation_stops_changing():
    net = mg.ModuleGraph(mlp_graph())
    x, y = task()
    result = fit(net, loss_of(x, y), lambda n: 0.5, schedule="alternating", steps=100, rounds=4, tol=1e-3)
    names = [(p["name"], p["round"]) for p in result.phases]
    assert names == [("main", 0), ("attention", 1), ("main", 1), ("attention", 2), ("main", 2), ("joint", 0)]


def test_patience_ends_phases_early():
    net = mg.ModuleGraph(mlp_graph())
    x, y = task()
    result = fit(net, loss_of(x, y), lambda n: 0.5, steps=100, patience=3)
    assert result.steps == 4


def test_resumed_run_equals_uninterrupted_run():
    x, y = task()

    def run(stop_at=None):
        torch.manual_seed(3)
        net = mg.ModuleGraph(mlp_graph())
        trainer = Trainer(net, loss_of(x, y), acc_of(x, y), "alternating", steps=40, rounds=2)
        if stop_at is None:
            trainer.run()
            return net
        saved = {}

        def stop(t):
            if t.step == stop_at:
                saved["state"] = t.state_dict()
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            trainer.run(stop)
        torch.manual_seed(99)
        fresh = mg.ModuleGraph(mlp_graph())
        resumed = Trainer(fresh, loss_of(x, y), acc_of(x, y), "alternating", steps=40, rounds=2)
        resumed.load_state_dict(saved["state"])
        resumed.run()
        return fresh

    whole = run()
    for stop_at in (5, 17, 31):
        part = run(stop_at)
        for k, v in whole.state_dict().items():
            assert torch.equal(v, part.state_dict()[k]), (stop_at, k)


class Stacked(nn.Module):
    """``members`` one-parameter models trained as one batched program."""

    def __init__(self, members: int = 3):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(members, 1))

    def main_parameters(self):
        return [self.w]

    def attention_parameters(self):
        return []

    def set_attention(self, enabled):
        pass


def test_ensemble_selection_is_per_member():
    net = Stacked()
    scores = iter(torch.tensor([[0.1, 0.9, 0.1], [0.5, 0.2, 0.1], [0.4, 0.1, 0.8]]))
    result = fit(net, lambda n: -n.w.sum(), lambda n: next(scores), steps=3,
                 optimizer=lambda p: torch.optim.SGD(p, lr=1.0))
    # after step s every member's w is s; member 0 best at step 2, member 1 at step 1, member 2 at step 3
    assert result.best_step == [2, 1, 3]
    assert net.w.squeeze(1).tolist() == [2.0, 1.0, 3.0]


def test_ensemble_members_stop_on_their_own_and_the_phase_ends_with_the_last():
    """Member 0 never improves after its first evaluation, member 2 improves for three, member 1 for five (patience
    2): member 0 stops after step 3, member 2 after step 5, member 1 after step 7, which ends the phase; a stopped
    member's parameters stay where they were, and each is restored to its own best."""
    net = Stacked()
    scores = iter([torch.tensor([0.5, 0.1 * min(s, 5), 0.1 * min(s, 3)]) for s in range(1, 21)])
    seen = []
    result = fit(net, lambda n: -n.w.sum(), lambda n: next(scores), steps=20, patience=2,
                 optimizer=lambda p: torch.optim.SGD(p, lr=1.0), callback=lambda t: seen.append(t.net.w.tolist()))
    assert result.steps == 7
    assert seen[-1] == [[3.0], [7.0], [5.0]]  # the steps each member took
    assert result.best_step == [1, 5, 3]
    assert net.w.squeeze(1).tolist() == [1.0, 5.0, 3.0]


def test_a_nan_validation_score_stops_the_run_naming_the_step_and_leaves_the_network_whole():
    """``evaluate`` returning NaN (a diverged run) stops ``fit`` with an error naming the step; raised in the
    attention phase, where the main parameters are frozen, it still leaves every parameter requiring gradients."""
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph())
    x, y = task()
    warm_up = make_schedule("alternating", 40)[0].budget  # the attention-free main phase
    calls, frozen = [], []

    def evaluate(n):
        calls.append(1)
        if len(calls) == warm_up + 2:  # the second evaluation of the attention phase
            frozen.append(sum(not p.requires_grad for p in n.parameters()))
            return float("nan")
        return 0.5

    with pytest.raises(ValueError, match=rf"^evaluate returned NaN at step {warm_up + 2}; the training diverged$"):
        fit(net, loss_of(x, y), evaluate, schedule="alternating", steps=40)
    assert frozen == [len(net.main_parameters())]  # it came while the main network was frozen
    assert all(p.requires_grad for p in net.parameters())


def test_schedule_needs_attention_parameters():
    g = nx.DiGraph()
    g.add_node("x", op="input", features=5)
    g.add_node("y", op="linear", out_features=3)
    g.add_edge("x", "y")
    x, y = task()
    with pytest.raises(ValueError, match="phase 'attention' trains the attention parameters, but the network has none"):
        fit(mg.ModuleGraph(g), loss_of(x, y), acc_of(x, y), schedule="alternating", steps=20)


def test_an_interrupted_run_leaves_the_network_whole_and_continues_frozen():
    """A run stopped by an exception in the attention phase, after a member stopped: every parameter requires
    gradients again and every member computes in training mode (none outputs zeros); ``run()`` again continues the
    attention phase with the main network frozen."""
    from modgraph.train import Ensemble

    torch.manual_seed(0)
    ens = Ensemble([mg.ModuleGraph(mlp_graph()) for _ in range(3)])
    x, y = task()
    scores = iter([torch.tensor([0.5, 0.1 * s, 0.1 * s]) for s in range(1, 100)])  # member 0 stops after 3 steps

    class Stop(Exception):
        pass

    def interrupt(trainer):
        if trainer.phases[trainer.phase_index].trains == "attention" and trainer.phase_step == 4:
            raise Stop

    trainer = Trainer(ens, lambda n: F.cross_entropy(n(x, shared=True).flatten(0, 1), y.repeat(3)),
                      lambda n: next(scores), schedule="alternating", steps=60, patience=2)
    with pytest.raises(Stop):
        trainer.run(interrupt)
    assert trainer._stopped() is not None and bool(trainer._stopped()[0])  # member 0 had stopped
    assert all(p.requires_grad for p in ens.parameters())
    ens.train()
    with torch.no_grad():
        trained = ens(x, shared=True)
    ens.eval()
    with torch.no_grad():
        torch.testing.assert_close(trained, ens(x, shared=True))  # no dropout: every member computed in both modes
    main = {id(p): p.detach().clone() for p in ens.main_parameters()}
    seen = []

    def record(trainer):
        phase = trainer.phases[trainer.phase_index]
        if phase.trains == "attention" and phase.round == 1:
            seen.append([torch.equal(p, main[id(p)]) and p.grad is None for p in ens.main_parameters()])

    trainer.run(record)
    assert seen and all(all(s) for s in seen)  # the rest of the attention phase: main frozen, no gradients
