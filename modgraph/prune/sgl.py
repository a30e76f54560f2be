r"""Smoothing group lasso over the prunable units of a network: the "neurons zeroed by SGL" baseline.

Each prunable unit (a :class:`~modgraph.prune.dependency.Group`) owns the weights that carry it onwards: the input
columns of every linear layer that reads it. Stacked, they form ``P [units, L]`` (one row per unit, padded with
zeros where a unit has fewer consumers), and the penalty is
:func:`modgraph.functional.regularizers.smoothing_group_lasso` over those rows, which drives whole rows (whole
units' outgoing weights) to zero. A unit whose row is zero contributes nothing downstream, so removing it changes
nothing; its row norm is the SGL importance.

Outgoing rather than incoming weights are grouped because a unit with zero incoming weights still outputs the
constant ``act(b)`` (``sigmoid(b) != 0``), which the next layer keeps using.
"""

from __future__ import annotations

import torch

from ..functional.regularizers import smoothing_group_lasso
from .dependency import DependencyGraph, check_deps, check_network


def unit_weights(net, deps: DependencyGraph | None = None) -> torch.Tensor:
    """``P [units, L]``: row ``g`` holds the outgoing weights of unit ``g`` in every consumer (differentiable).

    ``deps``: the network's :class:`DependencyGraph` (built when ``None``; give it to build it once).

    Shapes:
        output ``[len(deps.groups), sum of the consumers' out_features]``.

    Raises:
        TypeError: ``net`` is not a :class:`~modgraph.ModuleGraph` or ``deps`` not a ``DependencyGraph``.
        PruneError: ``deps`` was built for a network of another structure.
    """
    return _unit_weights(net, deps, "unit_weights")


def _unit_weights(net, deps, who: str) -> torch.Tensor:
    check_network(net, who)
    if deps is None:
        deps = DependencyGraph(net)
    else:
        check_deps(deps, net, who)
    consumers: dict[str, list] = {}
    for group in deps.groups:
        for v, col in group.consumers:
            consumers.setdefault(v, []).append((group.index, col))
    n = len(deps.groups)
    # the index tensors, made once per layer and device and kept on ``deps``: as a penalty this runs every step,
    # and a tensor made from a list on a GPU is a copy the host waits for
    indices = deps.__dict__.setdefault("_sgl_indices", {})
    blocks = []
    for v, pairs in consumers.items():
        weight = net.nodes[v].weight  # (out, in)
        key = (v, weight.device)
        if key not in indices:
            indices[key] = (torch.as_tensor([g for g, _ in pairs], device=weight.device),
                            torch.as_tensor([c for _, c in pairs], device=weight.device))
        rows, cols = indices[key]
        block = weight.new_zeros(n, weight.shape[0]).index_add(0, rows, weight[:, cols].t())
        blocks.append(block)
    if not blocks:
        ref = next(net.parameters())
        return ref.new_zeros(n, 0)
    return torch.cat(blocks, dim=1)


def sgl_penalty(net, deps: DependencyGraph | None = None, a: float = 0.1) -> torch.Tensor:
    """Smoothing group lasso over the units' outgoing weights (add ``lam * sgl_penalty(net)`` to the loss)."""
    return smoothing_group_lasso(_unit_weights(net, deps, "sgl_penalty"), dim=-1, a=a)
