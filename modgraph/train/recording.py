"""Recording attention weights while :func:`~modgraph.train.fit` trains: ``fit(..., recorder=rec)``.

The recorder (:class:`~modgraph.record.EdgeRecorder`) sees the training forwards only: every validation pass runs
inside :meth:`~modgraph.record.EdgeRecorder.paused`. One recorder epoch closes every ``every`` training steps and
is numbered by the step that closes it (``every`` 10: epochs 10, 20, ...); the last, shorter one closes when the
training ends (early stopping, the end of the schedule). A recorder that is not attached is attached to the network
for the training and detached after it; one that is attached stays so.
"""

from __future__ import annotations

import contextlib
from typing import Callable

from .. import checks


class Recording:
    """The recorder's part in a training: wraps ``evaluate`` and the step callback, closes the last epoch."""

    def __init__(self, recorder, every: int):
        from ..record import EdgeRecorder

        if not isinstance(recorder, EdgeRecorder):
            raise TypeError(f"fit: recorder must be a modgraph.record.EdgeRecorder, got {type(recorder).__name__}")
        every = checks.positive_int("fit: record_every", every, why="steps per recorded epoch")
        if recorder.epochs:
            raise ValueError(f"fit: the recorder already holds epochs up to {recorder.epochs[-1]}; fit numbers its "
                             f"epochs by training step from the first step: give it a fresh EdgeRecorder")
        self.recorder, self.every = recorder, every

    def evaluate(self, evaluate: Callable) -> Callable:
        """``evaluate`` with the recorder paused: validation forwards are not recorded."""
        recorder = self.recorder

        def paused_evaluate(net):
            with recorder.paused():
                return evaluate(net)

        return paused_evaluate

    def callback(self, callback: Callable | None) -> Callable:
        """Close an epoch every ``every`` steps, then call ``callback`` (if any)."""
        recorder, every = self.recorder, self.every

        def after_step(trainer):
            if trainer.step % every == 0 and recorder.pending:
                recorder.epoch_end(trainer.step)
            if callback is not None:
                callback(trainer)

        return after_step

    @contextlib.contextmanager
    def attached(self, net):
        """The recorder attached to ``net`` for the block (unless it is already attached somewhere)."""
        if self.recorder.attached:
            yield
            return
        self.recorder.attach(net)
        try:
            yield
        finally:
            self.recorder.detach()

    def close(self, step: int) -> None:
        """Close the last, shorter epoch (if forwards were recorded since the last one closed)."""
        if self.recorder.pending:
            self.recorder.epoch_end(step)
