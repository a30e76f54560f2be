"""Training: schedules as data (joint, the paper's alternating, main-only), one resumable loop, batched ensembles."""

from .checkpoint import Checkpointer, load_checkpoint, save_checkpoint
from .denormal import flush_denormal, flushing_denormal
from .ensemble import Ensemble, MemberAdam, stack_padded
from .fit import FitResult, Trainer, TrainingDiverged, fit
from .rundir import RunDir, resume_or_start
from .schedules import SCHEDULES, Phase, make_schedule

__all__ = ["Checkpointer", "Ensemble", "FitResult", "MemberAdam", "Phase", "RunDir", "SCHEDULES", "Trainer",
           "TrainingDiverged", "fit", "flush_denormal", "flushing_denormal", "load_checkpoint", "make_schedule",
           "resume_or_start", "save_checkpoint", "stack_padded"]
