"""Small builders shared by the tests."""

import contextlib
import importlib.util
import sys
from pathlib import Path

import torch

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
