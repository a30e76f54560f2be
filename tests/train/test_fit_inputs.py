"""Divergence: NaN validation scores. A whole ensemble diverged is an error naming the step, as for a single
network; a member that diverged alone is named in a warning and keeps its best state from before."""

import logging

import pytest
import torch

import modgraph as mg
from modgraph.train import Ensemble, TrainingDiverged, fit

from ..helpers import mlp_graph

NAN = float("nan")


def ensemble(k=4):
    torch.manual_seed(0)
    return Ensemble([mg.ModuleGraph(mlp_graph(5, 6, 3)) for _ in range(k)]), torch.randn(k, 8, 5)


def test_every_member_nan_is_an_error_naming_the_step():
    ens, x = ensemble()
    calls = []

    def evaluate(e):
        calls.append(1)
        return torch.tensor([0.5] * 4 if len(calls) == 1 else [NAN] * 4)

    with pytest.raises(TrainingDiverged, match=r"^evaluate returned NaN at step 2 for every member \(4\); the "
                                                r"training diverged$"):
        fit(ens, lambda e: e(x).square().mean(), evaluate, steps=5)
    assert all(p.requires_grad for p in ens.parameters())
    with pytest.raises(ValueError, match="at step 1 for every member"):  # a ValueError, as before
        fit(ens, lambda e: e(x).square().mean(), lambda e: torch.full((4,), NAN), steps=3)


def test_a_member_that_diverges_alone_keeps_its_best_state_and_is_named_once(caplog):
    """Members 1 and 3 diverge at the third evaluation: the run goes on, each keeps the parameters of its best
    evaluation before (member 3's only finite score), and a member NaN from the start keeps -inf and its first
    state; the others select as usual."""
    ens, x = ensemble()
    seen = []  # the parameters at every evaluation

    def evaluate(e):
        seen.append({k: v.detach().clone() for k, v in e.state_dict().items()})
        step = len(seen)
        table = {1: [0.1, 0.2, 0.3, NAN], 2: [0.2, 0.5, 0.1, NAN]}
        return torch.tensor(table.get(step, [0.3, NAN, 0.2, NAN]), dtype=torch.float64)

    with caplog.at_level(logging.WARNING, logger="modgraph.train.fit"):
        result = fit(ens, lambda e: e(x).square().mean(), evaluate, steps=6)
    assert result.best_score == [0.3, 0.5, 0.3, -float("inf")]
    assert result.best_step == [3, 2, 1, 0]
    warnings = [r.getMessage() for r in caplog.records if "NaN" in r.getMessage()]
    assert len(warnings) == 2  # member 3 at step 1, member 1 at step 3: each once
    assert "step 1 for member(s) 3 (1 of 4)" in warnings[0] and "step 3 for member(s) 1 (1 of 4)" in warnings[1]
    state = ens.state_dict()
    for k, v in state.items():
        if v.dim() and v.shape[0] == 4:
            torch.testing.assert_close(v[1], seen[1][k][1])  # member 1: its evaluation at step 2
            torch.testing.assert_close(v[2], seen[0][k][2])  # member 2: step 1
            torch.testing.assert_close(v[3], seen[0][k][3])  # member 3: the first evaluation's state
    assert isinstance(result.best_attention, list) and len(result.best_attention) == 4


def test_many_new_nan_members_are_listed_briefly(caplog):
    ens, x = ensemble(k=12)
    with caplog.at_level(logging.WARNING, logger="modgraph.train.fit"):
        fit(ens, lambda e: e(x).square().mean(), lambda e: torch.tensor([NAN] * 11 + [0.0]), steps=3)
    assert "for member(s) 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (11 of 12)" in caplog.text


def test_finite_scores_still_select_per_member():
    ens, x = ensemble()
    scores = torch.tensor([0.1, 0.2, -torch.inf, 0.4], dtype=torch.float64)
    result = fit(ens, lambda e: e(x).square().mean(), lambda e: scores, steps=3)
    assert result.best_score[:2] == [0.1, 0.2] and result.steps == 3


def test_a_diverged_member_is_remembered_across_a_resume(caplog):
    """The set of diverged members is part of the trainer's state: a resumed run does not warn about them again."""
    from modgraph.train import Trainer

    ens, x = ensemble()
    scores = lambda e: torch.tensor([0.1, NAN, 0.3, 0.2], dtype=torch.float64)  # noqa: E731
    trainer = Trainer(ens, lambda e: e(x).square().mean(), scores, steps=4)
    with caplog.at_level(logging.WARNING, logger="modgraph.train.fit"):
        trainer.run()
        assert caplog.text.count("they diverged") == 1
        state = trainer.state_dict()
        again = Trainer(ens, lambda e: e(x).square().mean(), scores, steps=6)
        again.load_state_dict({**state, "phases": [p.to_dict() for p in again.phases]})
        again.run()
    assert caplog.text.count("they diverged") == 1
    assert again.state_dict()["diverged"].tolist() == [False, True, False, False]


# ---------------------------------------------------------------------------------------------------------------
# what loss_fn and evaluate return, and the callables given: named at once, never a torch traceback or a silent run

def single():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(5, 6, 3))
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    return net, (lambda n: torch.nn.functional.cross_entropy(n(x), y)), (lambda n: 0.5)


def test_evaluate_must_return_a_number_or_the_scores_of_ensemble_members():
    net, loss_fn, _ = single()
    for bad in ("0.5", None, {"acc": 0.5}, True):
        with pytest.raises(TypeError, match=r"^evaluate must return a number, higher is better \(a \[K\] tensor .*"
                                            rf"got {type(bad).__name__} "):
            fit(net, loss_fn, lambda n, bad=bad: bad, steps=2)
    with pytest.raises(ValueError, match=r"evaluate must return a number, .* got a tensor of shape \(2, 2\)$"):
        fit(net, loss_fn, lambda n: torch.ones(2, 2), steps=2)
    # a [1] tensor from a single network used to select only parameters with a leading dimension 1 (none): the
    # network silently ended at its first evaluation's state while best_step named a later one
    with pytest.raises(ValueError, match=r"evaluate returned a tensor of shape \(1,\), the scores of an ensemble of 1 "
                                         r"members, but the network's parameter 'nodes\.h\.weight' has shape \(6, 5\)"):
        fit(net, loss_fn, lambda n: torch.ones(1), steps=2)
    assert fit(net, loss_fn, lambda n: torch.tensor(0.5), steps=2).best_score == 0.5  # a 0-d tensor is a number
    ens, x = ensemble()
    with pytest.raises(ValueError, match=r"shape \(3,\), the scores of an ensemble of 3 members, but .* shape \(4, "):
        fit(ens, lambda e: e(x).square().mean(), lambda e: torch.ones(3), steps=2)


def test_loss_fn_must_return_a_scalar_tensor_with_its_graph():
    net, loss_fn, evaluate = single()
    with pytest.raises(TypeError, match=r"^loss_fn must return the loss as a scalar tensor .* got float 0\.5$"):
        fit(net, lambda n: 0.5, evaluate, steps=2)
    with pytest.raises(ValueError, match=r"^loss_fn must return a scalar tensor, got shape \(8,\); reduce it"):
        fit(net, lambda n: n(torch.randn(8, 5)).sum(1), evaluate, steps=2)
    with pytest.raises(ValueError, match=r"^loss_fn returned a tensor that does not require grad"):
        fit(net, lambda n: loss_fn(n).detach(), evaluate, steps=2)


def test_callables_and_tol_are_checked_before_training():
    net, loss_fn, evaluate = single()
    with pytest.raises(TypeError, match=r"^loss_fn must be a function net -> scalar loss tensor, got int 3$"):
        fit(net, 3, evaluate)
    with pytest.raises(TypeError, match=r"^evaluate must be a function net -> validation score, got str 'acc'$"):
        fit(net, loss_fn, "acc")
    sgd = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"^optimizer must be a factory params -> Optimizer .* got SGD$"):
        fit(net, loss_fn, evaluate, optimizer=sgd)
    with pytest.raises(TypeError, match=r"^optimizer\(params\) must return a torch\.optim\.Optimizer, got NoneType$"):
        fit(net, loss_fn, evaluate, optimizer=lambda p: None)
    with pytest.raises(TypeError, match=r"^callback must be a function callback\(trainer\), got int$"):
        fit(net, loss_fn, evaluate, steps=2, callback=5)
    for bad in (float("nan"), "0.1"):  # NaN never ended the alternation early; a string failed in its second round
        with pytest.raises(ValueError, match=rf"^tol must be a number \(.*\), got {bad!r}$"):
            fit(net, loss_fn, evaluate, schedule="alternating", steps=10, tol=bad)
    with pytest.raises(TypeError, match=r"^fit: recorder must be a modgraph\.record\.EdgeRecorder, got str$"):
        fit(net, loss_fn, evaluate, steps=2, recorder="rec")
