"""The gate: the one mechanism every kind of parallel input goes through.

``scores -> normalise per target group -> threshold -> report``; the caller then scales its messages by the
weights. Neuron connections (``[B, in, out]`` scores, grouped per output neuron), branches into a merge
(``[B, K, H]``, grouped per sample) and a graph's edges (``[E, H]``, grouped by target node through an index) are
three uses of this module, never three implementations.

Every gate reports its weights through :meth:`Gate.register_weight_hook`, the single hook point that
``ModuleGraph.edge_weights()``, the recorder and the pruner attach to.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle

from . import checks
from .functional.normalize import NORMALIZERS, normalize, temperature_problem, threshold, threshold_problem

LEVELS = ("neuron", "branch", "graph")

WeightHook = Callable[["Gate", torch.Tensor, dict], None]


class Gate(nn.Module):
    """Normalise attention scores per group, zero those under ``threshold``, and report them.

    Args:
        normalizer: ``"sigmoid"`` (independent gates in (0, 1)), ``"softmax"`` or ``"sparsemax"`` (weights of a
            group sum to 1; sparsemax gives exact zeros).
        threshold: weights below it become exactly zero, with zero gradient (``None``: no threshold).
        temperature: scores are divided by it before normalising.
        level: ``"neuron"``, ``"branch"`` or ``"graph"``: what the weights belong to (set for reports).
        name: the gate's name in reports (the edge ``(src, dst)`` or the node).

    Shapes:
        dense: scores of any shape, normalised along ``dim``; segment: scores ``[E]`` or ``[E, H]`` with
        ``index`` ``[E]`` naming each entry's group. Output: the shape of ``scores``.
    """

    def __init__(self, normalizer: str = "sigmoid", threshold: float | None = None, temperature: float = 1.0,
                 level: str = "branch", name=None):
        super().__init__()
        if normalizer not in NORMALIZERS:
            raise ValueError(f"unknown normalizer {normalizer!r}; valid: {', '.join(NORMALIZERS)}")
        problem = (threshold_problem(threshold) if threshold is not None else None) or temperature_problem(temperature)
        if problem is not None:
            raise ValueError(problem)
        checks.choice("Gate: level", level, LEVELS)  # reports and ModuleGraph.edge_weights() read it
        self.normalizer = normalizer
        self.threshold = None if threshold is None else float(threshold)
        self.temperature = float(temperature)
        self.level = level
        self.name = name
        self.enabled = True  # False: attention is masked out (the first phase of the alternating schedule)
        self._weight_hooks: OrderedDict[int, WeightHook] = OrderedDict()

    def forward(self, scores: torch.Tensor, index: torch.Tensor | None = None, num_segments: int | None = None,
                dim: int = -1, **context) -> torch.Tensor:
        weights = normalize(scores, self.normalizer, index=index, num_segments=num_segments, dim=dim,
                            temperature=self.temperature)
        weights = threshold(weights, self.threshold)
        self.report(weights, index=index, **context)
        return weights

    def report(self, weights: torch.Tensor, **context) -> None:
        """Hand ``weights`` to every registered hook: the one place weights leave a gate."""
        for hook in self._weight_hooks.values():
            hook(self, weights, context)

    def register_weight_hook(self, hook: WeightHook) -> RemovableHandle:
        """Call ``hook(gate, weights, context)`` after every forward; returns a handle with ``.remove()``."""
        if not callable(hook):
            raise TypeError(f"register_weight_hook: hook must be callable as hook(gate, weights, context), got "
                            f"{hook!r}")
        handle = RemovableHandle(self._weight_hooks)
        self._weight_hooks[handle.id] = hook
        return handle

    def extra_repr(self) -> str:
        return (f"level={self.level}, normalizer={self.normalizer}, threshold={self.threshold}, "
                f"temperature={self.temperature}")
