"""Training: schedules as data (joint, the paper's alternating, main-only), one resumable loop, batched ensembles."""

from .ensemble import Ensemble, MemberAdam, stack_padded
from .fit import FitResult, Trainer, fit
from .schedules import SCHEDULES, Phase, make_schedule

__all__ = ["Ensemble", "FitResult", "MemberAdam", "Phase", "SCHEDULES", "Trainer", "fit", "make_schedule",
           "stack_padded"]
