"""Training: schedules as data (joint, the paper's alternating, main-only) and one resumable loop."""

from .checkpoint import Checkpointer, load_checkpoint, save_checkpoint
from .fit import FitResult, Trainer, fit
from .schedules import SCHEDULES, Phase, make_schedule

__all__ = ["Checkpointer", "FitResult", "Phase", "SCHEDULES", "Trainer", "fit", "load_checkpoint", "make_schedule",
           "save_checkpoint"]
