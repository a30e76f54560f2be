"""How a node's in-edges become its input: branch weights applied, then a weighted sum or a concat.

Both executors (the compiled ``torch.fx`` code and ``ModuleGraph.interpret``) call these, so they agree bit for bit.
"""

from __future__ import annotations

import torch
import torch.fx as fx

from .attention import scale_heads


def scale_branches(msgs: list, weights: torch.Tensor | None, positions: tuple) -> list:
    """Scale the attended in-edges ``msgs[positions]`` by branch weights ``[B, K, H]`` (``None``: attention off)."""
    if weights is None:
        return msgs
    msgs = list(msgs)
    for k, i in enumerate(positions):
        msgs[i] = scale_heads(msgs[i], weights[..., k, :])
    return msgs


def sum_messages(msgs: list) -> torch.Tensor:
    """The (already weighted) messages added left to right."""
    out = msgs[0]
    for m in msgs[1:]:
        out = out + m
    return out


fx.wrap("scale_branches")
