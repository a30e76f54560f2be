"""Misused schedules fail with a message naming the phase, instead of training something else or nothing."""

import pytest
import torch
import torch.nn.functional as F

import modgraph as mg
from modgraph.train import Phase, Trainer, fit, make_schedule

from ..helpers import mlp_graph


def net_and_task():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    return net, (lambda n: F.cross_entropy(n(x), y)), (lambda n: 0.5)


@pytest.mark.parametrize("args, error, pattern", [
    (("att", "attnetion", True, 5), ValueError,
     r"phase 'att': trains must be one of 'main', 'attention', 'all', got 'attnetion'"),
    (("joint", "all", True, -5), ValueError, r"phase 'joint': budget must be a positive integer .*got -5"),
    (("joint", "all", True, 0), ValueError, r"phase 'joint': budget must be a positive integer .*got 0"),
    (("joint", "all", True, 2.5), ValueError, r"phase 'joint': budget must be a positive integer .*got 2\.5"),
    (("joint", "all", True, True), ValueError, r"phase 'joint': budget must be a positive integer .*got True"),
    (("joint", "all", "yes", 5), TypeError,
     r"phase 'joint': attention must be true or false \(True: gates on, False: masked out\), got 'yes'"),
    (("main", "main", False, 5, -1), ValueError, r"phase 'main': round must be a non-negative integer, got -1"),
    ((None, "all", True, 5), TypeError, r"Phase: name must be a string, got None"),
])  # fmt: skip
def test_a_bad_phase_is_named(args, error, pattern):
    with pytest.raises(error, match=pattern):
        Phase(*args)


def test_a_misspelt_group_never_trains_everything():
    """Before: an unknown ``trains`` fell through to "all" and trained every parameter."""
    net, loss, score = net_and_task()
    with pytest.raises(ValueError, match="trains must be one of"):
        fit(net, loss, score, schedule=[Phase("att", "attnetion", True, 5)])


@pytest.mark.parametrize("schedule, error, pattern", [
    ([], ValueError, r"schedule is empty: give at least one Phase"),
    ((), ValueError, r"schedule is empty"),
    (("joint",), TypeError, r"schedule\[0\] is 'joint' \(str\), not a Phase"),
    ([Phase("joint", "all", True, 3), {"name": "x"}], TypeError, r"schedule\[1\] is \{'name': 'x'\} \(dict\), not a "
                                                                  r"Phase"),
    (Phase("joint", "all", True, 3), TypeError, r"schedule must be one of 'joint', 'alternating', 'main' or a list of "
                                                r"Phase, got Phase\("),
    (3, TypeError, r"schedule must be one of .* or a list of Phase, got 3"),
])  # fmt: skip
def test_a_bad_schedule_is_named(schedule, error, pattern):
    net, loss, score = net_and_task()
    with pytest.raises(error, match=pattern):
        fit(net, loss, score, schedule=schedule)
    with pytest.raises(error, match=pattern):
        Trainer(net, loss, score, schedule)


def test_a_list_of_phases_still_trains():
    net, loss, score = net_and_task()
    result = fit(net, loss, score, schedule=(Phase("main", "main", False, 2), Phase("joint", "all", True, 3)))
    assert result.steps == 5 and [p["name"] for p in result.phases] == ["main", "joint"]


@pytest.mark.parametrize("rounds", [1, 2, 3, 5])
def test_alternating_never_exceeds_its_budget(rounds):
    """The docstring's "at most ``steps``" (before: 6 steps for steps=3). A small budget runs fewer rounds (``rounds``
    is a maximum); below the 4 steps of one warm-up, round and fine-tune it is an error saying so."""
    for steps in range(1, 4):
        with pytest.raises(ValueError, match=rf"the alternating schedule needs at least 4 steps .* got steps={steps}"):
            make_schedule("alternating", steps, rounds=rounds)
    for steps in range(4, 200):
        phases = make_schedule("alternating", steps, rounds=rounds)
        assert sum(p.budget for p in phases) <= steps and all(p.budget >= 1 for p in phases), steps
        held = min(rounds, (steps - 2) // 2)  # the rounds the budget holds
        assert [p.round for p in phases] == [0, *[r for r in range(1, held + 1) for _ in (0, 1)], 0], steps
    assert [p.budget for p in make_schedule("alternating", 8, rounds=3)] == [1] * 8  # was 9 steps
    assert [(p.name, p.budget) for p in make_schedule("alternating", 4, rounds=2)] == [
        ("main", 1), ("attention", 1), ("main", 1), ("joint", 1)]  # was 6 steps


def test_fit_keeps_to_a_small_budget():
    net, loss, score = net_and_task()
    assert fit(net, loss, score, schedule="alternating", steps=5).steps <= 5
    with pytest.raises(ValueError, match=r"needs at least 4 steps .* got steps=3"):
        fit(net, loss, score, schedule="alternating", steps=3)


def test_normal_budgets_keep_their_phases():
    """The UCI tables were run with these phases: the step counts of ordinary budgets are unchanged."""
    expected = {
        100: [30, 12, 12, 12, 12, 20],
        1000: [300, 125, 125, 125, 125, 200],
        15000: [4500, 1875, 1875, 1875, 1875, 3000],
        40000: [12000, 5000, 5000, 5000, 5000, 8000],
    }
    for steps, budgets in expected.items():
        phases = make_schedule("alternating", steps)
        assert [p.budget for p in phases] == budgets
        assert [(p.name, p.trains, p.attention, p.round) for p in phases] == [
            ("main", "main", False, 0), ("attention", "attention", True, 1), ("main", "main", True, 1),
            ("attention", "attention", True, 2), ("main", "main", True, 2), ("joint", "all", True, 0)]
        assert make_schedule("joint", steps) == [Phase("joint", "all", True, steps)]
        assert make_schedule("main", steps) == [Phase("main", "main", False, steps)]


def test_alternating_shares_must_be_numbers():
    with pytest.raises(ValueError, match=r"^warmup must be a number in \(0, 1\) \(a share of steps\), got '0\.3'$"):
        make_schedule("alternating", 20, warmup="0.3")  # was a TypeError from a comparison
    with pytest.raises(ValueError, match=r"^finetune must be a number in \(0, 1\) \(a share of steps\), got nan$"):
        make_schedule("alternating", 20, finetune=float("nan"))
