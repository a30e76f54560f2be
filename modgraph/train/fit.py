"""The training loop: any schedule of phases, model selection on validation, resumable state.

``fit(net, loss_fn, evaluate, schedule=...)`` trains ``net`` (a ``ModuleGraph`` or anything with
``main_parameters()``, ``attention_parameters()`` and ``set_attention()``) and leaves it at the parameters with
the best validation score. ``loss_fn(net)`` returns the loss of one optimisation step (the closure owns the data
and may draw a mini-batch); ``evaluate(net)`` returns the validation score, higher is better, called in eval mode
under ``torch.no_grad()``.

Ensembles: when ``evaluate`` returns a 1-D tensor of ``K`` scores (``K`` models trained as one batched program
whose parameters and buffers all carry a leading dimension ``K``, e.g. :class:`modgraph.train.Ensemble`), selection
and early stopping are per member. A member that has gone ``patience`` evaluations without improving its phase best
stops training: its parameters are held where they were (parameters with a leading dimension ``K``; a network with
``set_active([K] bool)``, as ``Ensemble``, also leaves it out of the training forward pass) until the phase ends,
which is when every member has stopped or the phase's budget is spent. So each member follows the trajectory of a
training of its own, in which the phase would have ended when it stalled. Each member keeps the parameters *and
the attention switch* of its own best evaluation: at the end ``net.set_attention`` receives a ``[K]`` bool tensor
(one member's best may come from the alternating schedule's attention-free warm-up while another's comes from a
phase with attention on). The alternation's "score no longer changes" test is per member too: a member whose round
changed its validation score by less than ``tol`` is held, like a stopped one, through the remaining rounds and
rejoins for the joint fine-tune, where a fit of its own would have gone straight on to it; the remaining rounds are
skipped once every member is done with them.

Divergence: a NaN validation score stops the run with :class:`TrainingDiverged` (a ``ValueError``) naming the step,
the network left whole. In an ensemble only when every member's score is NaN; a member whose score alone is NaN
diverged on its own (e.g. the largest learning rate of a grid): a warning names it once, a NaN is never better than
its best, so it keeps the parameters of its best evaluation before it (its best score stays ``-inf`` if it never
had a finite one) and stops once its patience runs out, while the others train on.
"""

from __future__ import annotations

import copy
import logging
import math
import numbers
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from .. import checks
from .recording import Recording
from .schedules import Phase, as_phases, make_schedule

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[list], torch.optim.Optimizer]


class TrainingDiverged(ValueError):
    """``evaluate`` returned NaN: the training diverged (of a single network, or of every member of an ensemble)."""


def default_optimizer(params: list) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=0.01)


@dataclass
class FitResult:
    best_score: float | torch.Tensor  # a float, or a [K] tensor for ensembles
    best_step: int | torch.Tensor
    steps: int  # optimisation steps run
    history: list = field(default_factory=list)  # {"step", "phase", "round", "loss", "score"} per evaluation
    phases: list = field(default_factory=list)  # {"name", "trains", "attention", "round", "start", "end", "best"}
    best_phase: str | list | None = None  # the phase of the best evaluation (a list of K names for ensembles)
    best_attention: bool | list | None = None  # attention on at the best evaluation (a list of K for ensembles)


class Trainer:
    """A resumable run of a schedule: everything needed to continue is in :meth:`state_dict`."""

    def __init__(self, net, loss_fn: Callable, evaluate: Callable, schedule: str | list[Phase] = "joint",
                 steps: int = 200, optimizer: OptimizerFactory | None = None, patience: int | None = None,
                 eval_every: int = 1, rounds: int = 2, tol: float = 1e-3, progress: bool = False):
        for name in ("main_parameters", "attention_parameters", "set_attention"):
            if not hasattr(net, name):
                raise TypeError(f"fit needs a network with {name}() (a modgraph.ModuleGraph), got {type(net).__name__}")
        for name, fn, what in (("loss_fn", loss_fn, "net -> scalar loss tensor"),
                               ("evaluate", evaluate, "net -> validation score")):
            if not callable(fn):
                raise TypeError(f"{name} must be a function {what}, got {type(fn).__name__} {fn!r:.60}")
        if isinstance(optimizer, torch.optim.Optimizer) or (optimizer is not None and not callable(optimizer)):
            raise TypeError(f"optimizer must be a factory params -> Optimizer (e.g. lambda p: torch.optim.SGD(p, "
                            f"lr=0.1)), called afresh for every phase, got {type(optimizer).__name__}")
        patience = checks.positive_int("patience", patience, optional=True)
        eval_every = checks.positive_int("eval_every", eval_every)
        tol = checks.number("tol", tol, finite=False, why="the change of the validation score below which the "
                            "alternation ends; 0 or less: never early")
        self.net, self.loss_fn, self.evaluate = net, loss_fn, evaluate
        self.phases = make_schedule(schedule, steps, rounds) if isinstance(schedule, str) else as_phases(schedule)
        self.make_optimizer = optimizer or default_optimizer
        self.patience, self.eval_every, self.tol, self.progress = patience, eval_every, tol, progress
        # position in the schedule and selection state
        self.phase_index, self.phase_step, self.step = 0, 0, 0
        self.best_score = None  # float or [K] tensor
        self.best_step = None
        self.best_phase = None
        self.best_state = None  # state_dict snapshot at the best score
        self.best_attention = True
        self._diverged = None  # [K] bool: ensemble members whose score has been NaN (warned about once)
        self.phase_best = None
        self.since_best = None  # evaluations since the phase's best (int or [K] tensor)
        self.round_scores: dict = {}  # round -> validation score at the end of the round (a [K] tensor for ensembles)
        self.rounds_over = None  # [K] bool: the ensemble members whose alternation has ended (None: none has)
        self.history: list = []
        self.phase_log: list = []
        self.last_score = None  # the latest evaluation: ends a round of the alternation when the phase ends
        self.optimizer = None

    # ------------------------------------------------------------------------------------------ phases
    def _params(self, trains: str) -> tuple[list, list]:
        main, att = self.net.main_parameters(), self.net.attention_parameters()
        if trains == "main":
            return main, att
        if trains == "attention":
            return att, main
        return main + att, []

    def _freeze(self, phase: Phase) -> list:
        """Only ``phase``'s parameter group requires gradients (the others' are dropped); returns that group."""
        trainable, frozen = self._params(phase.trains)
        for p in trainable:
            p.requires_grad_(True)
        for p in frozen:
            p.requires_grad_(False)
            p.grad = None
        return trainable

    def _enter_phase(self) -> None:
        phase = self.phases[self.phase_index]
        trainable = self._freeze(phase)
        self.net.set_attention(phase.attention)
        if not trainable:
            raise ValueError(f"phase {phase.name!r} trains the {phase.trains} parameters, but the network has none "
                             f"(use schedule='joint' for a network without attention)")
        self.optimizer = self.make_optimizer(trainable)
        if not (hasattr(self.optimizer, "step") and hasattr(self.optimizer, "zero_grad")):
            raise TypeError(f"optimizer(params) must return a torch.optim.Optimizer, got "
                            f"{type(self.optimizer).__name__}")
        self.phase_best, self.since_best = None, None
        self._set_active()
        if self.phase_step == 0:
            self.phase_log.append({**phase.to_dict(), "start": self.step, "end": None, "best": None})
            log.info("phase %d/%d: %s (trains %s, attention %s, round %d, up to %d steps)", self.phase_index + 1,
                     len(self.phases), phase.name, phase.trains, "on" if phase.attention else "off", phase.round,
                     phase.budget)

    def _leave_phase(self, last_score) -> None:
        phase = self.phases[self.phase_index]
        entry = self.phase_log[-1]
        entry["end"] = self.step
        entry["best"] = _to_py(self.phase_best)
        for p in self.net.parameters():
            p.requires_grad_(True)
        self.phase_index += 1
        self.phase_step = 0
        # the alternation stops once a round's validation score no longer changes (per member of an ensemble)
        if phase.round and phase.trains == "main" and last_score is not None:
            score = last_score.clone() if isinstance(last_score, torch.Tensor) else float(last_score)
            prev = self.round_scores.get(phase.round - 1)
            self.round_scores[phase.round] = score
            if prev is None:
                return
            unchanged = abs(score - prev) < self.tol
            if isinstance(unchanged, torch.Tensor):
                if self.rounds_over is not None:
                    unchanged = unchanged | self.rounds_over
                self.rounds_over = unchanged
                log.info("round %d: the validation score of %d of %d members unchanged (tol %g)", phase.round,
                         int(unchanged.sum()), unchanged.numel(), self.tol)
                unchanged = bool(unchanged.all())
            if unchanged:
                log.info("round %d: validation score unchanged (tol %g); on to the joint fine-tune", phase.round,
                         self.tol)
                while self.phase_index < len(self.phases) and self.phases[self.phase_index].round:
                    self.phase_index += 1

    # ------------------------------------------------------------------------------------------ selection
    def _evaluate(self):
        was_training = self.net.training
        self.net.eval()
        with torch.no_grad():
            score = self._checked_score(self.evaluate(self.net))
        self.net.train(was_training)
        if isinstance(score, torch.Tensor):
            score = score.detach().to("cpu", torch.float64)
            nan = torch.isnan(score)
            if bool(nan.all()):
                raise TrainingDiverged(f"evaluate returned NaN at step {self.step} for every member "
                                       f"({score.numel()}); the training diverged")
            if bool(nan.any()):  # those members diverged: a NaN is never better, so they keep their best before it
                new = nan & ~self._diverged if self._diverged is not None else nan
                self._diverged = nan if self._diverged is None else self._diverged | nan
                if bool(new.any()):
                    members = new.nonzero().flatten().tolist()
                    shown = ", ".join(map(str, members[:10])) + (", ..." if len(members) > 10 else "")
                    log.warning("evaluate returned NaN at step %d for member(s) %s (%d of %d): they diverged; each "
                                "keeps its best state before it (best_score -inf if it had none)", self.step, shown,
                                len(members), score.numel())
            return score
        if math.isnan(score):
            raise TrainingDiverged(f"evaluate returned NaN at step {self.step}; the training diverged")
        return score

    def _checked_score(self, score):
        """``evaluate``'s value as a float, or a ``[K]`` tensor of an ensemble's scores; TypeError/ValueError naming
        what came otherwise (a string, ``None``, a tensor of several elements, ``[K]`` scores of a network whose
        parameters have no leading member dimension ``K``, a kind that changed since the last evaluation)."""
        want = "a number, higher is better (a [K] tensor of scores for an ensemble of K members)"
        if isinstance(score, torch.Tensor) and score.dim() == 1:
            k = score.numel()
            if isinstance(self.best_score, torch.Tensor):
                if self.best_score.numel() != k:
                    raise ValueError(f"evaluate returned {k} scores at step {self.step}, "
                                     f"{self.best_score.numel()} before; an ensemble's members do not change")
            elif self.best_score is not None:
                raise ValueError(f"evaluate returned a tensor of shape ({k},) at step {self.step}, a number before")
            else:  # the first evaluation: the K scores must be those of a network of K stacked members
                for name, p in self.net.named_parameters():
                    if p.dim() == 0 or p.shape[0] != k:
                        raise ValueError(
                            f"evaluate returned a tensor of shape ({k},), the scores of an ensemble of {k} members, "
                            f"but the network's parameter {name!r} has shape {tuple(p.shape)}, without that leading "
                            f"member dimension; evaluate of a single network returns a number (e.g. acc.item())")
            return score
        if isinstance(score, torch.Tensor):
            if score.numel() != 1:
                raise ValueError(f"evaluate must return {want}, got a tensor of shape {tuple(score.shape)}")
        elif isinstance(score, (str, bytes, bool)) or not (isinstance(score, numbers.Real)
                                                          or hasattr(score, "__float__")):
            raise TypeError(f"evaluate must return {want}, got {type(score).__name__} {score!r:.60}")
        if isinstance(self.best_score, torch.Tensor):
            raise ValueError(f"evaluate returned a number at step {self.step}, a tensor of "
                             f"{self.best_score.numel()} scores before")
        return float(score)

    def _select(self, score) -> None:
        phase = self.phases[self.phase_index]
        state = self.net.state_dict()
        if isinstance(score, torch.Tensor):  # ensemble: per member
            if self.best_score is None:  # a member never better than -inf (NaN throughout) keeps this state
                self.best_score = torch.full_like(score, -math.inf)
                self.best_step = torch.zeros(score.shape, dtype=torch.long)
                self.best_state = {k: v.detach().clone() for k, v in state.items()}
                self.best_attention = torch.full(score.shape, phase.attention)
                self.best_phase = [phase.name] * score.shape[0]
            better = score > self.best_score
            if better.any():
                self.best_score = torch.where(better, score, self.best_score)
                self.best_step[better] = self.step
                on_device = {}  # `better` copied once per device, not once per state entry
                for k, v in state.items():
                    if v.dim() and v.shape[0] == score.shape[0]:
                        if v.device not in on_device:
                            on_device[v.device] = better.to(v.device)
                        mask = on_device[v.device].view(-1, *[1] * (v.dim() - 1))
                        self.best_state[k] = torch.where(mask, v.detach(), self.best_state[k])
                self.best_attention = torch.where(better, phase.attention, self.best_attention)
                self.best_phase = [phase.name if b else old for b, old in zip(better.tolist(), self.best_phase)]
            if self.phase_best is None:
                self.phase_best, self.since_best = score.clone(), torch.zeros(score.shape, dtype=torch.long)
            else:
                improved = score > self.phase_best
                self.phase_best = torch.where(improved, score, self.phase_best)
                self.since_best = torch.where(improved, 0, self.since_best + 1)
            return
        if self.best_score is None or score > self.best_score:
            self.best_score, self.best_step, self.best_phase = score, self.step, phase.name
            self.best_state = copy.deepcopy(state)
            self.best_attention = phase.attention
        if self.phase_best is None or score > self.phase_best:
            self.phase_best, self.since_best = score, 0
        else:
            self.since_best += 1

    def _done(self):
        """Whether training in this phase is over: a bool, or a ``[K]`` bool tensor per ensemble member.

        Over when the phase's patience has run out, or, in a round of the alternation, when the member's rounds
        have ended (its score stopped changing while others' did not)."""
        out = False
        if self.patience is not None and self.since_best is not None:
            out = self.since_best >= self.patience
        if self.rounds_over is not None and self.phases[self.phase_index].round:
            out = self.rounds_over | out
        return out

    def _stalled(self) -> bool:
        """The phase ends: training in it is over (for every member of an ensemble)."""
        out = self._done()
        return bool(out.all()) if isinstance(out, torch.Tensor) else out

    def _stopped(self) -> torch.Tensor | None:
        """``[K]`` bool: the ensemble members that no longer train in this phase, or ``None`` if all still do."""
        out = self._done()
        return out if isinstance(out, torch.Tensor) and bool(out.any()) else None

    def _set_active(self, everyone: bool = False) -> None:
        """Tell a network that can skip members (``set_active``) which ones still train."""
        setter = getattr(self.net, "set_active", None)
        if setter is not None:
            stopped = None if everyone else self._stopped()
            setter(None if stopped is None else ~stopped)

    def _step(self):
        """One optimisation step; the parameter rows of stopped members are put back afterwards."""
        stopped = self._stopped()
        held = []
        if stopped is not None:
            for group in self.optimizer.param_groups:
                for p in group["params"]:
                    if p.dim() and p.shape[0] == stopped.numel():
                        idx = self._rows(stopped, p.device)
                        held.append((p, idx, p.detach().index_select(0, idx)))
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net)
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"loss_fn must return the loss as a scalar tensor (backward runs through it), got "
                            f"{type(loss).__name__} {loss!r:.60}")
        if loss.numel() != 1:
            raise ValueError(f"loss_fn must return a scalar tensor, got shape {tuple(loss.shape)}; reduce it "
                             f"(e.g. .mean() or .sum())")
        if not loss.requires_grad:
            raise ValueError("loss_fn returned a tensor that does not require grad (computed under torch.no_grad(), "
                             "detached, or not from the network's parameters); backward needs its graph")
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            for p, idx, values in held:
                p.index_copy_(0, idx, values)
        return loss

    def _rows(self, stopped: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The indices of the ``stopped`` members on ``device``. ``stopped`` (on the CPU) changes only at an
        evaluation: the indices are copied to a device once per change, not once per parameter and step."""
        key = tuple(stopped.tolist())
        cache = self.__dict__.setdefault("_rows_on", {})
        if cache.get("key") != key:
            cache.clear()
            cache["key"] = key
        if device not in cache:
            cache[device] = stopped.nonzero().squeeze(1).to(device)
        return cache[device]

    # ------------------------------------------------------------------------------------------ the loop
    def run(self, callback: Callable | None = None) -> FitResult:
        """Train to the end of the schedule (or continue a resumed run); ``callback(trainer)`` after each step."""
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be a function callback(trainer), got {type(callback).__name__}")
        total = sum(p.budget for p in self.phases)
        bar = tqdm(total=total, initial=min(self.step, total), disable=None if self.progress else True,
                   desc="train", leave=False)
        try:
            if self.optimizer is not None and self.phase_index < len(self.phases):  # run() again after an interruption
                self._freeze(self.phases[self.phase_index])
            while self.phase_index < len(self.phases):
                phase = self.phases[self.phase_index]
                if self.optimizer is None:
                    self._enter_phase()
                if self.phase_step >= phase.budget or self._stalled():
                    self._leave_phase(self.last_score)
                    self.optimizer = None
                    continue
                self.net.train()
                loss = self._step()
                self.step += 1
                self.phase_step += 1
                bar.update(1)
                if self.phase_step % self.eval_every == 0 or self.phase_step == phase.budget:
                    last_score = self.last_score = self._evaluate()
                    self._select(last_score)
                    self._set_active()
                    loss_value = float(loss.detach())
                    self.history.append({"step": self.step, "phase": phase.name, "round": phase.round,
                                         "loss": loss_value, "score": _to_py(last_score)})
                    if not isinstance(last_score, torch.Tensor):
                        bar.set_postfix(phase=phase.name, loss=f"{loss_value:.3f}", val=f"{last_score:.3f}")
                if callback is not None:
                    callback(self)
        finally:  # also when interrupted: the network is left whole (every parameter trainable, every member run)
            bar.close()
            for p in self.net.parameters():
                p.requires_grad_(True)
            self._set_active(everyone=True)
        if self.best_state is not None:
            self.net.load_state_dict(self.best_state)
            self.net.set_attention(self.best_attention)
        return FitResult(_to_py(self.best_score), _to_py(self.best_step), self.step, self.history, self.phase_log,
                         self.best_phase, _to_py(self.best_attention))

    # ------------------------------------------------------------------------------------------ resuming
    def state_dict(self) -> dict:
        """Everything a resumed run needs besides the closures: net, optimiser, schedule position, selection."""
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "phases": [p.to_dict() for p in self.phases],
            "phase_index": self.phase_index, "phase_step": self.phase_step, "step": self.step,
            "best_score": self.best_score, "best_step": self.best_step, "best_phase": self.best_phase,
            "best_state": self.best_state, "best_attention": self.best_attention,
            "phase_best": self.phase_best, "since_best": self.since_best,
            "round_scores": dict(self.round_scores), "rounds_over": self.rounds_over, "diverged": self._diverged,
            "history": list(self.history),
            "phase_log": list(self.phase_log), "last_score": self.last_score,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`: the net, the schedule position, the selection state and the optimiser."""
        self.net.load_state_dict(state["net"])
        self.phases = [Phase(**p) for p in state["phases"]]
        for key in ("phase_index", "phase_step", "step", "best_score", "best_step", "best_phase", "best_state",
                    "best_attention", "round_scores", "history", "phase_log"):
            setattr(self, key, state[key])
        self.rounds_over = state.get("rounds_over")  # absent from checkpoints written before it was saved
        self._diverged = state.get("diverged")
        if isinstance(self.best_state, dict):  # where the network has each entry (a checkpoint is read on the CPU)
            here = self.net.state_dict()
            self.best_state = {k: v.to(here[k].device) if isinstance(v, torch.Tensor) and k in here else v
                               for k, v in self.best_state.items()}
        self.optimizer = None
        if self.phase_index < len(self.phases):
            self._enter_phase()  # rebuilds the optimiser over the phase's parameters, then restores its state
            if state["optimizer"] is not None:
                self.optimizer.load_state_dict(state["optimizer"])
        self.phase_best, self.since_best = state["phase_best"], state["since_best"]
        self._set_active()
        self.last_score = state.get("last_score")  # absent from checkpoints written before it was saved


def fit(net, loss_fn: Callable, evaluate: Callable, schedule: str | list[Phase] = "joint", steps: int = 200,
        optimizer: OptimizerFactory | None = None, patience: int | None = None, eval_every: int = 1,
        rounds: int = 2, tol: float = 1e-3, progress: bool = False, callback: Callable | None = None,
        recorder=None, record_every: int | None = None) -> FitResult:
    """Train ``net`` with ``schedule`` for at most ``steps`` steps; leave it at its best validation parameters.

    Args:
        net: a ``ModuleGraph`` (or a module with ``main_parameters``/``attention_parameters``/``set_attention``).
        loss_fn: ``loss_fn(net) -> scalar loss`` for one optimisation step.
        evaluate: ``evaluate(net) -> float`` (or ``[K]`` tensor for an ensemble): validation score, higher wins.
        schedule: ``"joint"``, ``"alternating"``, ``"main"`` or a list of :class:`Phase`.
        steps: the total budget of optimisation steps.
        optimizer: ``factory(params) -> Optimizer``, called afresh for every phase (default Adam, lr 0.01).
        patience: end a phase after this many evaluations without improving its best score (``None``: never); in
            an ensemble a member stops after that many, and the phase ends when every member has stopped.
        eval_every: evaluate every this many steps.
        rounds, tol: the alternation repeats at most ``rounds`` times, stopping when a round changes the
            validation score by less than ``tol`` (from the second round on; per member in an ensemble).
        progress: show a progress bar (tqdm; quiet when not a terminal).
        callback: ``callback(trainer)`` after every step (checkpointing hooks in here).
        recorder: an :class:`~modgraph.record.EdgeRecorder` that records the attention weights of the training
            forwards (validation passes are not recorded); attached to ``net`` for the training unless it already
            is, and given one epoch per ``record_every`` steps (default ``eval_every``), numbered by the step
            that closes it, the last one at the end of the training (:mod:`modgraph.train.recording`).
    """
    recording = None if recorder is None else Recording(recorder, eval_every if record_every is None else record_every)
    if recording is not None:
        evaluate, callback = recording.evaluate(evaluate), recording.callback(callback)
    elif record_every is not None:
        raise ValueError("fit: record_every needs a recorder")
    trainer = Trainer(net, loss_fn, evaluate, schedule, steps, optimizer, patience, eval_every, rounds, tol, progress)
    if recording is None:
        return trainer.run(callback)
    with recording.attached(net):
        result = trainer.run(callback)
        recording.close(trainer.step)
    return result


def _to_py(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value
