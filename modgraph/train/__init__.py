"""Training: schedules as data (joint, the paper's alternating, main-only) and one resumable loop."""

from .fit import FitResult, Trainer, fit
from .schedules import SCHEDULES, Phase, make_schedule

__all__ = ["FitResult", "Phase", "SCHEDULES", "Trainer", "fit", "make_schedule"]
