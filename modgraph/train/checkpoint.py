"""Checkpoints of a training run: spec + weights + optimiser + schedule position + selection + RNG states.

Written atomically (a temporary file, then a rename), read with ``torch.load(weights_only=True)`` (no arbitrary
unpickling). A run killed at any moment and resumed from its last checkpoint ends with exactly the result of an
uninterrupted run with the same seed, because everything the remaining steps depend on is restored, RNGs included.
"""

from __future__ import annotations

import io
import json
import os
import random
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import checks
from ..errors import CheckpointError, GraphSpecError
from ..plaindata import Policy, first_fault
from ..serialize import atomic_torch_save, load_state, safe_torch_load

CKPT_FORMAT = "modgraph-checkpoint/1"


def rng_state() -> dict:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators, as plain data."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": np_state[2],
                  "has_gauss": np_state[3], "cached": np_state[4]},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():  # as many GPUs as both machines have
        for i, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), i)


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _spec_of(net):
    """The network's spec as JSON, to check a checkpoint's architecture at resume; ``None`` for a network that has
    none or cannot be written as one (a node holding a ready module, a graph attribute a spec has no place for):
    its checkpoints are still written and read, the weights' names and shapes still checked."""
    to_dict = getattr(net, "to_dict", None)
    if to_dict is None:
        return None
    try:
        return json.dumps(to_dict(), sort_keys=True)
    except GraphSpecError:
        return None


#: what :meth:`Trainer.load_state_dict` reads from a checkpoint's ``trainer`` entry
_TRAINER_KEYS = ("net", "optimizer", "phases", "phase_index", "phase_step", "step", "best_score", "best_step",
                 "best_phase", "best_state", "best_attention", "phase_best", "since_best", "round_scores", "history",
                 "phase_log")


def _check_trainer(trainer, who: str) -> None:
    if not all(hasattr(trainer, a) for a in ("net", "state_dict", "load_state_dict", "step")):
        raise TypeError(f"{who}: expected a modgraph.train.Trainer (a checkpoint holds a whole training), got "
                        f"{type(trainer).__name__}; a network alone is saved and read with modgraph.save_network "
                        f"and modgraph.load_network")


def _reads_back(value) -> bool:
    """Whether ``value`` on its own comes back from ``torch.load(weights_only=True)``: tensors and Python scalars
    at once, anything else (a dtype, a ``torch.Size``, a numpy number, a ``Path``) by trying."""
    if isinstance(value, torch.Tensor) or type(value) in (type(None), bool, int, float, complex, str, bytes):
        return True
    buffer = io.BytesIO()
    try:
        torch.save(value, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)
    except Exception:  # noqa: BLE001 - pickle or the weights_only unpickler refused it: that is the answer
        return False
    return True


#: what ``torch.load(weights_only=True)`` reads back: the containers it rebuilds are walked (keys too, which may be
#: tuples); any other value is asked on its own; a container inside itself is kept by pickle
_WEIGHTS_ONLY = Policy(leaf=_reads_back, sequence=lambda v: type(v) in (list, tuple, set),
                       mapping=lambda v: type(v) in (dict, OrderedDict), key=None, loops=True)


def _check_extra(extra) -> None:
    """TypeError unless ``extra`` reads back from a checkpoint (``weights_only=True``): else a file is written that
    :func:`load_checkpoint` can never read."""
    buffer = io.BytesIO()
    try:
        torch.save(extra, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)
    except Exception as err:  # an object pickle cannot write, or one weights_only refuses to read
        fault = first_fault(extra, _WEIGHTS_ONLY)  # only a "type" fault under this policy
        kind = None if fault is None else type(fault.value)
        where = (f"extra ({type(err).__name__}: {str(err).splitlines()[0]})" if fault is None
                 else f"{fault.where('extra')} is {kind.__module__}.{kind.__qualname__}")
        raise TypeError(f"save_checkpoint: {where}, which a checkpoint cannot hold (it is read back with "
                        f"torch.load(weights_only=True)); give plain data: numbers, strings, lists, dicts, tensors "
                        f"(float(x), x.tolist(), str(path)); nothing written") from None


def save_checkpoint(path: str | os.PathLike, trainer, extra: dict | None = None) -> Path:
    """Write the trainer's whole state (and ``extra`` plain data, e.g. finished runs) to ``path`` atomically.

    Raises TypeError, before writing anything, for an ``extra`` the checkpoint could not be read back with (a numpy
    number, a ``Path``, any other object ``torch.load(weights_only=True)`` refuses).
    """
    path = checks.path("save_checkpoint: path", path)
    _check_trainer(trainer, "save_checkpoint")
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"save_checkpoint: extra must be a dict of plain data (or None), got "
                            f"{type(extra).__name__}; nothing written")
        _check_extra(extra)
    return atomic_torch_save({"format": CKPT_FORMAT, "spec": _spec_of(trainer.net), "trainer": trainer.state_dict(),
                              "rng": rng_state(), "extra": extra or {}}, path)


def load_checkpoint(path: str | os.PathLike, trainer, map_location=None) -> dict:
    """Restore ``trainer`` (and the global RNGs) from ``path``; return the ``extra`` data saved with it.

    The file is read onto the CPU (``map_location=None``; give one to read elsewhere), and every tensor goes where
    the trainer's network has it: a checkpoint written on one GPU resumes on another, or on a machine without one.

    Raises :class:`CheckpointError` naming the file when it is unreadable, not a checkpoint, or was written for
    another architecture.
    """
    path = checks.path("load_checkpoint: path", path)
    _check_trainer(trainer, "load_checkpoint")
    blob = safe_torch_load(path, "cpu" if map_location is None else map_location)
    if not isinstance(blob, dict) or blob.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path}: not a modgraph training checkpoint (expected format {CKPT_FORMAT!r})")
    missing = [k for k in ("spec", "trainer", "rng", "extra") if k not in blob]
    if not missing and not isinstance(blob["trainer"], dict):
        raise CheckpointError(f"{path}: damaged checkpoint: 'trainer' is {type(blob['trainer']).__name__}, "
                              f"expected a dict")
    if not missing:
        missing = [f"trainer.{k}" for k in _TRAINER_KEYS if k not in blob["trainer"]]
    if missing:
        raise CheckpointError(f"{path}: damaged checkpoint: no {', '.join(map(repr, missing))}")
    ours = _spec_of(trainer.net)
    if blob["spec"] != ours:
        raise CheckpointError(f"{path}: the checkpoint was written for another architecture: "
                              f"{_spec_diff(blob['spec'], ours)}")

    load_state(trainer.net, blob["trainer"]["net"], str(path))
    trainer.load_state_dict(blob["trainer"])
    set_rng_state(blob["rng"])
    return blob["extra"]


def _spec_diff(a: str | None, b: str | None) -> str:
    if a is None or b is None:
        return "one of the two networks has no spec"
    sa, sb = json.loads(a), json.loads(b)
    for name in sorted(set(sa["nodes"]) | set(sb["nodes"])):
        na, nb = sa["nodes"].get(name), sb["nodes"].get(name)
        if na != nb:
            return f"node {name!r} is {na} in the checkpoint but {nb} in this network"
    return "the edges differ"


class Checkpointer:
    """A ``fit`` callback saving ``dir/name`` every ``every`` steps (and never leaving a half-written file)."""

    def __init__(self, directory: str | os.PathLike, name: str = "last.pt", every: int = 50,
                 extra: Callable[[], dict] | None = None):
        every = checks.positive_int("every", every)
        for arg, value in (("directory", directory), ("name", name)):
            if not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"Checkpointer: {arg} must be a path (a str or a Path), got {type(value).__name__}")
        if Path(name).name != str(name) or str(name) in ("", ".", ".."):
            raise ValueError(f"Checkpointer: name must be a file name in directory (such as 'last.pt'), got "
                             f"{str(name)!r}; put folders in directory")
        if extra is not None and not callable(extra):
            raise TypeError(f"Checkpointer: extra must be a function returning a dict to save (or None), got "
                            f"{type(extra).__name__}")
        self.path = Path(directory) / name
        self.every, self.extra = every, extra

    def __call__(self, trainer) -> None:
        step = getattr(trainer, "step", None)
        if not checks.is_integer(step):
            _check_trainer(trainer, "Checkpointer")
        if step % self.every == 0:
            save_checkpoint(self.path, trainer, self.extra() if self.extra else None)
