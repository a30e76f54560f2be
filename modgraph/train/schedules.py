"""Training schedules as data: a list of phases, each saying what trains and whether attention is on.

* ``joint``: one phase, every parameter, attention on.
* ``alternating`` (the paper, Zhang 2020): (1) the main network alone, attention masked out; (2) the attention
  networks with the main network frozen; (3) the main network with the attention frozen; repeat (2)-(3) until the
  validation score stops changing (or ``rounds`` are done); (5) unfreeze both and fine-tune jointly.
* ``main``: the main network alone with attention masked out throughout (the attention-free baseline).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SCHEDULES = ("joint", "alternating", "main")
TRAINS = ("main", "attention", "all")


@dataclass(frozen=True)
class Phase:
    name: str  # a label for logs: "main", "attention", "joint"
    trains: str  # which parameter group is optimised: "main", "attention" or "all"
    attention: bool  # gates on (True) or masked out (False)
    budget: int  # at most this many optimisation steps
    round: int = 0  # the alternation round (0 outside the alternation)

    def to_dict(self) -> dict:
        """The phase as a plain dict (for logs, JSON and checkpoints)."""
        return asdict(self)


def make_schedule(kind: str, steps: int, rounds: int = 2, warmup: float = 0.3, finetune: float = 0.2) -> list[Phase]:
    """The phases of schedule ``kind`` sharing a budget of ``steps`` optimisation steps.

    ``alternating``: ``warmup`` of the budget for the main network alone, ``finetune`` for the joint fine-tune,
    the rest split evenly over ``rounds`` x (attention phase, main phase).
    """
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if kind == "joint":
        return [Phase("joint", "all", True, steps)]
    if kind == "main":
        return [Phase("main", "main", False, steps)]
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds <= 0:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    if not (0 < warmup < 1 and 0 < finetune < 1 and warmup + finetune < 1):
        raise ValueError(f"warmup and finetune are fractions with warmup + finetune < 1, got {warmup}, {finetune}")
    first, last = max(1, int(steps * warmup)), max(1, int(steps * finetune))
    each = max(1, (steps - first - last) // (2 * rounds))
    phases = [Phase("main", "main", False, first)]
    for r in range(1, rounds + 1):
        phases += [Phase("attention", "attention", True, each, r), Phase("main", "main", True, each, r)]
    phases.append(Phase("joint", "all", True, last))
    return phases
