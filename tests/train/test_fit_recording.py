"""fit(recorder=...): training forwards recorded, validation not, one recorder epoch per record_every steps."""

import pytest
import torch
import torch.nn.functional as F

import modgraph as mg
from modgraph.record import EdgeRecorder
from modgraph.train import fit

from ..helpers import mlp_graph

TRAIN, VAL = 6, 4  # rows: the recorded counts tell training forwards from validation ones


def setup():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph(features=5, hidden=4, classes=3))
    x, y = torch.randn(TRAIN, 5), torch.randint(0, 3, (TRAIN,))
    xv, yv = torch.randn(VAL, 5), torch.randint(0, 3, (VAL,))

    def evaluate(n):
        return (n(xv).argmax(-1) == yv).float().mean().item()

    return net, (lambda n: F.cross_entropy(n(x), y)), evaluate


def test_epochs_by_step_training_forwards_only_and_the_last_short_epoch():
    net, loss_fn, evaluate = setup()
    rec = EdgeRecorder()
    result = fit(net, loss_fn, evaluate, steps=25, eval_every=5, recorder=rec, record_every=10)
    assert result.steps == 25 and rec.epochs == [10, 20, 25]
    # one training forward per step, of TRAIN rows; the 5 validation passes (VAL rows) are not counted
    assert [rec.stats("h->y", e).count for e in rec.epochs] == [10 * TRAIN, 10 * TRAIN, 5 * TRAIN]
    assert not rec.attached  # attached for the training only
    assert list(net.gates()[0]._weight_hooks.values()) == [net._store_weights]


def test_default_epoch_is_eval_every_and_early_stopping_closes_the_last():
    net, loss_fn, evaluate = setup()
    rec = EdgeRecorder()
    result = fit(net, loss_fn, lambda n: 0.5, steps=100, eval_every=4, patience=2, recorder=rec)
    # the score never improves after the first evaluation: the run stops at the third (step 12)
    assert result.steps == 12 and rec.epochs == [4, 8, 12]
    assert all(rec.stats("h->y", e).count == 4 * TRAIN for e in rec.epochs)


def test_an_attached_recorder_stays_attached_and_records_as_by_hand():
    net, loss_fn, evaluate = setup()
    twin = mg.ModuleGraph(mlp_graph(features=5, hidden=4, classes=3))
    twin.load_state_dict(net.state_dict())
    rec, ref = EdgeRecorder().attach(net), EdgeRecorder()

    def callback(trainer):  # what a user wrote by hand before fit took a recorder
        if trainer.step % 3 == 0:
            ref.epoch_end(trainer.step)

    def ref_evaluate(n):
        with ref.paused():
            return evaluate(n)

    torch.manual_seed(1)
    fit(net, loss_fn, evaluate, steps=9, eval_every=3, recorder=rec)
    assert rec.attached
    with ref.attach(twin):
        torch.manual_seed(1)
        fit(twin, loss_fn, ref_evaluate, steps=9, eval_every=3, callback=callback)
    assert rec.epochs == ref.epochs == [3, 6, 9]
    for e in rec.epochs:
        torch.testing.assert_close(rec.stats("h->y", e).mean, ref.stats("h->y", e).mean, rtol=0, atol=0)


def test_the_callback_still_runs_after_every_step():
    net, loss_fn, evaluate = setup()
    seen = []
    fit(net, loss_fn, evaluate, steps=4, recorder=EdgeRecorder(), callback=lambda t: seen.append(t.step))
    assert seen == [1, 2, 3, 4]


def test_errors():
    net, loss_fn, evaluate = setup()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="record_every must be a positive integer"):
            fit(net, loss_fn, evaluate, steps=2, recorder=EdgeRecorder(), record_every=bad)
    with pytest.raises(ValueError, match="record_every needs a recorder"):
        fit(net, loss_fn, evaluate, steps=2, record_every=2)
    used = EdgeRecorder()
    fit(net, loss_fn, evaluate, steps=2, recorder=used)
    with pytest.raises(ValueError, match=r"already holds epochs up to 2; .* give it a fresh EdgeRecorder"):
        fit(net, loss_fn, evaluate, steps=2, recorder=used)


def test_a_step_that_recorded_nothing_closes_no_epoch():
    # a recorder taking one forward in two, one recorder epoch per step: steps 1 and 3 record (the first forward and
    # every second after it), steps 2 and 4 record nothing and close no (empty) epoch
    net, loss_fn, evaluate = setup()
    rec = EdgeRecorder(every=2)
    fit(net, loss_fn, evaluate, steps=4, eval_every=1, recorder=rec, record_every=1)
    assert rec.epochs == [1, 3]
    assert [rec.stats("h->y", e).count for e in rec.epochs] == [TRAIN, TRAIN]
