"""Training schedules as data: a list of phases, each saying what trains and whether attention is on.

* ``joint``: one phase, every parameter, attention on.
* ``alternating`` (the paper, Zhang 2020): (1) the main network alone, attention masked out; (2) the attention
  networks with the main network frozen; (3) the main network with the attention frozen; repeat (2)-(3) until the
  validation score stops changing (or ``rounds`` are done); (5) unfreeze both and fine-tune jointly.
* ``main``: the main network alone with attention masked out throughout (the attention-free baseline).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from .. import checks

log = logging.getLogger(__name__)

SCHEDULES = ("joint", "alternating", "main")
TRAINS = ("main", "attention", "all")


@dataclass(frozen=True)
class Phase:
    name: str  # a label for logs: "main", "attention", "joint"
    trains: str  # which parameter group is optimised: "main", "attention" or "all"
    attention: bool  # gates on (True) or masked out (False)
    budget: int  # at most this many optimisation steps
    round: int = 0  # the alternation round (0 outside the alternation)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"Phase: name must be a string, got {self.name!r}")
        where = f"phase {self.name!r}"
        if self.trains not in TRAINS:
            raise ValueError(f"{where}: trains must be one of {', '.join(map(repr, TRAINS))}, got {self.trains!r}")
        checks.flag(f"{where}: attention", self.attention, why="True: gates on, False: masked out", error=TypeError)
        budget = checks.positive_int(f"{where}: budget", self.budget, why="optimisation steps")
        round_ = checks.integer(f"{where}: round", self.round, least=0)
        object.__setattr__(self, "budget", budget)  # as Python ints (frozen: set through object)
        object.__setattr__(self, "round", round_)

    def to_dict(self) -> dict:
        """The phase as a plain dict (for logs, JSON and checkpoints)."""
        return asdict(self)


def as_phases(schedule) -> list[Phase]:
    """``schedule`` as a list of phases: a non-empty list (or tuple) of :class:`Phase`; TypeError/ValueError naming
    the element at fault otherwise."""
    if isinstance(schedule, (str, bytes, Phase)) or not isinstance(schedule, (list, tuple)):
        raise TypeError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))} or a list of Phase, got "
                        f"{schedule!r}")
    if not schedule:
        raise ValueError("schedule is empty: give at least one Phase (or one of "
                         f"{', '.join(map(repr, SCHEDULES))})")
    for i, phase in enumerate(schedule):
        if not isinstance(phase, Phase):
            raise TypeError(f"schedule[{i}] is {phase!r} ({type(phase).__name__}), not a Phase; a schedule is one of "
                            f"{', '.join(map(repr, SCHEDULES))} or a list of Phase")
    return list(schedule)


def make_schedule(kind: str, steps: int, rounds: int = 2, warmup: float = 0.3, finetune: float = 0.2) -> list[Phase]:
    """The phases of schedule ``kind`` sharing a budget of ``steps`` optimisation steps (at most ``steps`` in all).

    ``alternating``: ``warmup`` of the budget for the main network alone, ``finetune`` for the joint fine-tune,
    the rest split evenly over at most ``rounds`` x (attention phase, main phase). Every phase gets at least one
    step: a budget too small for the shares gives each round phase one step and the warm-up and fine-tune the rest,
    with as many rounds as fit (at least one; fewer than 4 steps is a ``ValueError``).
    """
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
    steps = checks.positive_int("steps", steps)
    if kind == "joint":
        return [Phase("joint", "all", True, steps)]
    if kind == "main":
        return [Phase("main", "main", False, steps)]
    rounds = checks.positive_int("rounds", rounds)
    warmup = checks.number("warmup", warmup, low=0, high=1, low_open=True, high_open=True, why="a share of steps")
    finetune = checks.number("finetune", finetune, low=0, high=1, low_open=True, high_open=True,
                             why="a share of steps")
    if not (0 < warmup < 1 and 0 < finetune < 1 and warmup + finetune < 1):
        raise ValueError(f"warmup and finetune are fractions with warmup + finetune < 1, got {warmup}, {finetune}")
    if steps < 4:
        raise ValueError(f"the alternating schedule needs at least 4 steps (one per phase: warm-up, attention, main, "
                         f"fine-tune), got steps={steps}; use schedule='joint' for fewer")
    first, last = max(1, int(steps * warmup)), max(1, int(steps * finetune))
    each = max(1, (steps - first - last) // (2 * rounds))
    if first + last + 2 * rounds * each > steps:  # a small budget: one step per round phase, the rest to the ends
        fitting = min(rounds, (steps - 2) // 2)  # rounds is a maximum: as many as the budget holds
        if fitting < rounds:
            log.info("alternating schedule: %d steps hold %d of rounds=%d rounds", steps, fitting, rounds)
        rounds, each, spare = fitting, 1, steps - 2 * fitting
        last = max(1, min(last, spare - 1))
        first = max(1, min(first, spare - last))
    phases = [Phase("main", "main", False, first)]
    for r in range(1, rounds + 1):
        phases += [Phase("attention", "attention", True, each, r), Phase("main", "main", True, each, r)]
    phases.append(Phase("joint", "all", True, last))
    return phases
