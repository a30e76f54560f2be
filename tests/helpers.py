"""Small builders shared by the tests."""

import collections
import contextlib
import importlib.util
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from modgraph import models
from modgraph.models import random_dag  # noqa: F401  (the tests' random DAGs)

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """``torch.set_default_dtype(dtype)`` inside the block, the previous default after it (also on errors)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def load_script(relative: str, name: str):
    """Import a script of the repository (``docs/make_api.py``, ``benchmarks/uci_time.py``, ...) as module ``name``;
    its folder goes on ``sys.path`` first, so its own sibling imports (``common``, ``timing``) resolve."""
    path = ROOT / relative
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mlp_graph(features=5, hidden=18, classes=3, attention="sigmoid", **edge):
    return models.attention_mlp(features, hidden, classes, attention, **edge)


def mlp_with_layer_before_h():
    """``mlp_graph(5, 6, 3)`` with a tanh layer ``z`` [4] between ``x`` and ``h``: ``x -> z -> h -(sigmoid)-> y``
    (``z`` is read only by the plain layer ``h``, whose allocator on ``h -> y`` does not see it)."""
    g = mlp_graph(5, 6, 3, "sigmoid")
    g.add_node("z", op="linear", out_features=4, activation="tanh")
    g.remove_edge("x", "h")
    g.add_edges_from([("x", "z"), ("z", "h")])
    return g


def legend_texts(ax) -> list[str]:
    """The labels of a matplotlib axes' legend (``[]`` without one)."""
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


class TensorCalls(TorchFunctionMode):
    """Count, inside the block, the calls of the named tensor methods and torch functions (``counts[name]``).

    Tests of what would wait for a GPU, run on the CPU: a read of a tensor's value into Python (``item``,
    ``__float__``, ``__bool__``, ``tolist``) or a tensor made from host data (``tensor``, ``as_tensor``) is a copy
    between host and device on CUDA, which the host waits for."""

    def __init__(self, *names: str):
        super().__init__()
        self.names = set(names)
        self.counts: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.names:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))

    def total(self) -> int:
        return sum(self.counts.values())


@contextlib.contextmanager
def unplaced_tensors_on_meta():
    """Tensors created without a ``device`` go to the ``meta`` device inside the block.

    A device test without a GPU for code paths that read data (``.item()``, ``nonzero``, PyG's self-loops), which
    cannot run on ``meta`` inputs: run them on CPU tensors; any tensor made inside without the device of its inputs
    lands on ``meta``, and mixing it with the CPU tensors raises, as a CPU tensor would on CUDA."""
    before = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(before)
