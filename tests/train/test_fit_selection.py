"""Selection, patience, eval_every, the alternation's tol test and resuming, against hand-computed references."""

import torch
import torch.nn.functional as F

import modgraph as mg
from modgraph.train import Phase, Trainer, fit, make_schedule

from ..helpers import mlp_graph
from .test_fit import Stacked


def task(seed=0, n=32):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return x, y


def setup(seed=0):
    torch.manual_seed(seed)
    x, y = task()
    return mg.ModuleGraph(mlp_graph()), (lambda n: F.cross_entropy(n(x), y))


def snapshot(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_alternating_step_counts_by_hand():
    # steps=10, rounds=1: warm-up int(3.0)=3, fine-tune int(2.0)=2, each round phase (10-3-2)//2 = 2
    assert [p.budget for p in make_schedule("alternating", 10, rounds=1)] == [3, 2, 2, 2]
    # steps=23, rounds=2: 6, 4, (23-6-4)//4 = 3
    assert [p.budget for p in make_schedule("alternating", 23, rounds=2)] == [6, 3, 3, 3, 3, 4]


def test_a_large_finetune_share_never_exceeds_the_budget():
    # steps=10, rounds=4, finetune=0.8: 4 rounds of one step each leave 2 steps, one for warm-up and one for fine-tune
    phases = make_schedule("alternating", 10, rounds=4, warmup=0.1, finetune=0.8)
    assert [p.budget for p in phases] == [1] * 10
    for steps in range(4, 60):
        for warmup, finetune in ((0.1, 0.8), (0.8, 0.1), (0.45, 0.45)):
            phases = make_schedule("alternating", steps, rounds=3, warmup=warmup, finetune=finetune)
            assert sum(p.budget for p in phases) <= steps, (steps, warmup, finetune)


def test_a_tie_keeps_the_earliest_best_state():
    net, loss = setup()
    scores = iter([0.1, 0.9, 0.9, 0.2])
    seen = []
    result = fit(net, loss, lambda n: next(scores), steps=4, callback=lambda t: seen.append(snapshot(t.net)))
    assert result.best_step == 2
    for k, v in net.state_dict().items():
        assert torch.equal(v, seen[1][k])


def test_patience_restarts_after_each_improvement():
    # patience 2: 0.1 (best) 0.1 (1) 0.2 (best) 0.2 (1) 0.3 (best) 0.3 (1) 0.3 (2: stop) -> 7 steps
    net, loss = setup()
    scores = iter([0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.3] + [0.0] * 50)
    result = fit(net, loss, lambda n: next(scores), steps=50, patience=2)
    assert result.steps == 7 and result.best_step == 5


def test_patience_is_counted_per_phase():
    # a phase that never beats the previous phase's best still gets its full patience
    net, loss = setup()
    scores = iter([0.9, 0.1, 0.2, 0.3, 0.4] + [0.0] * 20)
    schedule = [Phase("main", "main", False, 1), Phase("joint", "all", True, 20)]
    result = fit(net, loss, lambda n: next(scores), schedule=schedule, patience=1)  # joint: 0.1 0.2 0.3 0.4 0.0 stop
    assert result.steps == 6 and result.best_step == 1


def test_eval_every_counts_steps_within_each_phase_and_evaluates_at_phase_ends():
    net, loss = setup()
    schedule = [Phase("main", "main", False, 5), Phase("joint", "all", True, 4)]
    result = fit(net, loss, lambda n: 0.5, schedule=schedule, eval_every=2)
    assert [h["step"] for h in result.history] == [2, 4, 5, 7, 9]


def test_the_best_attention_switch_is_restored_for_a_single_network():
    net, loss = setup()
    scores = iter([0.1, 0.9, 0.2, 0.3])
    seen = []
    schedule = [Phase("main", "main", False, 2), Phase("joint", "all", True, 2)]
    result = fit(net, loss, lambda n: next(scores), schedule=schedule, callback=lambda t: seen.append(snapshot(t.net)))
    assert result.best_step == 2 and result.best_attention is False and result.best_phase == "main"
    assert not any(g.enabled for g in net.gates())
    for k, v in net.state_dict().items():
        assert torch.equal(v, seen[1][k])


def test_evaluate_runs_in_eval_mode_without_gradients_and_training_in_train_mode():
    net, loss = setup()
    modes = []

    def evaluate(n):
        modes.append(("eval", n.training, torch.is_grad_enabled()))
        return 0.5

    def loss_fn(n):
        modes.append(("train", n.training, torch.is_grad_enabled()))
        return loss(n)

    fit(net, loss_fn, evaluate, steps=3, callback=lambda t: modes.append(("after", t.net.training)))
    assert modes == [("train", True, True), ("eval", False, False), ("after", True)] * 3  # evaluate restores the mode


def test_a_round_changing_the_score_by_exactly_tol_goes_on():
    # "changed by less than tol" ends the alternation: a change of exactly tol does not
    def schedule():
        phases = [Phase("main", "main", False, 1)]
        for r in (1, 2, 3):
            phases += [Phase("attention", "attention", True, 1, r), Phase("main", "main", True, 1, r)]
        return phases + [Phase("joint", "all", True, 1)]

    net, loss = setup()
    scores = iter([0.0, 0.0, 0.25, 0.0, 0.75, 0.0, 0.75, 0.0])  # round ends: 0.25, 0.75 (change 0.5), 0.75
    result = fit(net, loss, lambda n: next(scores), schedule=schedule(), tol=0.5)
    assert [(p["name"], p["round"]) for p in result.phases] == [
        ("main", 0), ("attention", 1), ("main", 1), ("attention", 2), ("main", 2), ("attention", 3), ("main", 3),
        ("joint", 0)]


def test_a_resumed_run_keeps_its_patience_count():
    # by step: 0.5 (best) 0.4 (1) 0.3 (2: stop) -- interrupted after step 2, the resumed run stops after step 3 too
    by_step = {1: 0.5, 2: 0.4, 3: 0.3, 4: 0.9, 5: 0.9, 6: 0.9}
    holder = []

    def make(seed):
        net, loss = setup(seed)
        trainer = Trainer(net, loss, lambda n: by_step[holder[-1].step], "joint", steps=6, patience=2)
        holder.append(trainer)
        return net, trainer

    _, whole = make(0)
    assert whole.run().steps == 3
    _, first = make(0)
    saved = {}

    def stop(t):
        if t.step == 2:
            saved["state"] = t.state_dict()
            raise KeyboardInterrupt

    try:
        first.run(stop)
    except KeyboardInterrupt:
        pass
    _, resumed = make(1)
    resumed.load_state_dict(saved["state"])
    result = resumed.run()
    assert result.steps == 3 and result.best_step == 1


def test_ensemble_ties_keep_each_members_earliest_best():
    net = Stacked(2)
    scores = iter(torch.tensor([[0.5, 0.1], [0.5, 0.3], [0.2, 0.3]]))
    seen = []
    result = fit(net, lambda n: -n.w.sum(), lambda n: next(scores), steps=3,
                 optimizer=lambda p: torch.optim.SGD(p, lr=1.0),
                 callback=lambda t: seen.append(t.net.w.detach().clone()))
    assert result.best_step == [1, 2]
    assert torch.equal(net.w.detach(), torch.stack([seen[0][0], seen[1][1]]))


def test_an_ensemble_members_patience_restarts_after_each_improvement():
    # member 0: 0.1 (best) 0.1 (1) 0.2 (best) 0.2 (1) 0.2 (2: stops after step 5); member 1 improves every step
    net = Stacked(2)
    rows = [[0.1, 0.1], [0.1, 0.2], [0.2, 0.3], [0.2, 0.4], [0.2, 0.5], [0.2, 0.6], [0.2, 0.7]]
    scores = iter(torch.tensor(rows))
    seen = []
    fit(net, lambda n: -n.w.sum(), lambda n, scores=scores: next(scores), steps=7, patience=2,
        optimizer=lambda p: torch.optim.SGD(p, lr=1.0), callback=lambda t: seen.append(t.net.w.detach().clone()))
    # SGD lr 1 on -w: +1 per step while the member trains
    assert [float(w[0]) for w in seen] == [1, 2, 3, 4, 5, 5, 5]
    assert [float(w[1]) for w in seen] == [1, 2, 3, 4, 5, 6, 7]


class StackedWithAttention(Stacked):
    """Two members, each with a main weight ``w`` and an attention weight ``a``."""

    def __init__(self):
        super().__init__(2)
        self.a = torch.nn.Parameter(torch.zeros(2, 1))

    def attention_parameters(self):
        return [self.a]


def test_an_ensemble_member_whose_rounds_ended_stays_held_even_if_its_score_moves_later():
    # one step per phase; round ends (main phases) score member 0: 0.5, 0.5 (unchanged: its rounds end), 0.9, 0.9;
    # member 1 changes every round. Member 0 is held through rounds 3 and 4 although its (noisy) score moved.
    schedule = [Phase("main", "main", False, 1)]
    for r in (1, 2, 3, 4):
        schedule += [Phase("attention", "attention", True, 1, r), Phase("main", "main", True, 1, r)]
    schedule.append(Phase("joint", "all", True, 1))
    rows = [[0.0, 0.0],
            [0.0, 0.0], [0.5, 0.1], [0.0, 0.0], [0.5, 0.2], [0.0, 0.0], [0.9, 0.3], [0.0, 0.0], [0.9, 0.4],
            [0.0, 0.0]]
    scores = iter(torch.tensor(rows))
    net = StackedWithAttention()
    seen = []
    fit(net, lambda n: -(n.w.sum() + n.a.sum()), lambda n: next(scores), schedule=schedule, tol=0.01,
        optimizer=lambda p: torch.optim.SGD(p, lr=1.0),
        callback=lambda t: seen.append((t.net.w[0].item(), t.net.a[0].item())))
    # member 0: warm-up w=1; round 1 a=1, w=2; round 2 a=2, w=3; held in rounds 3 and 4; fine-tune w=4, a=3
    assert seen == [(1, 0), (1, 1), (2, 1), (2, 2), (3, 2), (3, 2), (3, 2), (3, 2), (3, 2), (4, 3)]


class ManyStacked(torch.nn.Module):
    """Two members with ``count`` stacked parameters ``[2, 1]`` each (as an ensemble has one per layer)."""

    def __init__(self, count: int):
        super().__init__()
        self.ws = torch.nn.ParameterList(torch.nn.Parameter(torch.zeros(2, 1)) for _ in range(count))

    def main_parameters(self):
        return list(self.ws)

    def attention_parameters(self):
        return []

    def set_attention(self, enabled):
        pass


def test_ensemble_selection_and_holding_copy_their_masks_once_not_once_per_parameter():
    """The per-member masks live on the CPU; on a GPU every copy of one to the parameters' device is a copy the host
    waits for. They are copied once per evaluation and device (selection) and once per change of the stopped members
    (holding them), however many parameters the network has: the count of copies does not grow with them."""
    from ..helpers import TensorCalls

    rows = [[0.1, 0.1], [0.1, 0.2], [0.2, 0.3], [0.2, 0.4], [0.2, 0.5], [0.2, 0.6], [0.2, 0.7]]  # member 0 stops
    counts, finals = [], []
    for count in (1, 8):
        net, scores = ManyStacked(count), iter(torch.tensor(rows))
        with TensorCalls("to") as calls:
            fit(net, lambda n: -sum(w.sum() for w in n.ws), lambda n, scores=scores: next(scores), steps=7, patience=2,
                optimizer=lambda p: torch.optim.SGD(p, lr=1.0))
        counts.append(calls.counts["to"])
        finals.append([w.detach().flatten().tolist() for w in net.ws])
    assert counts[0] == counts[1], counts
    # each member's best state is restored: member 0's of step 3 (its first 0.2), member 1's of step 7
    assert finals[1] == [[3.0, 7.0]] * 8 and finals[0] == [[3.0, 7.0]]
