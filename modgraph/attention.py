"""Attention modules: thin wrappers that turn data into scores and pass them through one :class:`Gate`.

* :class:`NeuronAttention` - the paper's allocator: from a layer's activations ``h`` it computes one weight per
  connection ``i -> o`` of the next linear layer, an ``[in, out]`` matrix per sample.
* :class:`BranchAttention` - one weight per in-edge of a merge node and per sample.
* :class:`Scorer` - the pair scorer shared by branch and graph attention (``modgraph.ops.graph`` uses it for a
  graph's neighbours).

Every attention module subclasses :class:`AttentionModule`, so ``ModuleGraph.attention_parameters()`` finds the
parameters the alternating schedule trains apart from the main network.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from . import checks
from .functional.scores import NEEDS_VECTOR, SCORES, pair_scores
from .gate import Gate

NEURON_SCORES = ("linear", "outer")


def _check_gate(where: str, gate) -> None:
    if not isinstance(gate, Gate):
        raise TypeError(f"{where}: gate must be a modgraph.Gate (such as Gate('sigmoid')), got {gate!r}")


class AttentionModule(nn.Module):
    """Marker base class: parameters of these modules form the attention group of a network."""

    gate: Gate


class Scorer(AttentionModule):
    """Learned pair scorer ``[..., H, D] x [..., H, D] -> [..., H]`` (see :mod:`modgraph.functional.scores`)."""

    def __init__(self, kind: str, heads: int, dim: int):
        super().__init__()
        if kind not in SCORES:
            raise ValueError(f"unknown score {kind!r}; valid scores: {', '.join(SCORES)}")
        heads, dim = checks.positive_int("Scorer: heads", heads), checks.positive_int("Scorer: dim", dim)
        self.kind, self.heads, self.dim = kind, heads, dim
        self.v = nn.Parameter(torch.empty(heads, dim)) if kind in NEEDS_VECTOR else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.v is not None:
            nn.init.xavier_uniform_(self.v)

    def forward(self, keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        return pair_scores(self.kind, keys, queries, self.v)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, heads={self.heads}, dim={self.dim}"


class NeuronAttention(AttentionModule):
    """The paper's attention allocation matrix for a connection ``u -> v`` into a linear layer.

    ``score="linear"`` is the paper's fully connected layer ``S = reshape(h A + c, [in, out])``
    (``in * in * out`` weights); ``score="outer"`` is a cheaper rank-structured variant ``S_io = a_i(h) + b_o(h)``
    for wide layers. The gate normalises ``S``: sigmoid elementwise (the paper), softmax or sparsemax over the
    inputs of each output neuron (``dim=-2``).

    Shapes:
        h ``[B, in]`` -> weights ``[B, in, out]``.
    """

    def __init__(self, in_features: int, out_features: int, gate: Gate, score: str = "linear"):
        super().__init__()
        if score not in NEURON_SCORES:
            raise ValueError(f"unknown neuron-level score {score!r}; valid: {', '.join(NEURON_SCORES)}")
        in_features = checks.positive_int("NeuronAttention: in_features", in_features)
        out_features = checks.positive_int("NeuronAttention: out_features", out_features)
        _check_gate("NeuronAttention", gate)
        self.in_features, self.out_features, self.score = in_features, out_features, score
        if score == "linear":
            self.allocator = nn.Linear(in_features, in_features * out_features)
        else:
            self.rows = nn.Linear(in_features, in_features)
            self.cols = nn.Linear(in_features, out_features)
        self.gate = gate
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor | None:
        if not self.gate.enabled:
            return None
        if self.score == "linear":
            scores = self.allocator(h).unflatten(-1, (self.in_features, self.out_features))  # (B, in, out)
        else:
            scores = self.rows(h).unsqueeze(-1) + self.cols(h).unsqueeze(-2)  # (B, in, 1) + (B, 1, out)
        return self.gate(scores, dim=-2)


class BranchAttention(AttentionModule):
    """Per-sample weights for the ``K`` attended in-edges of a merge node.

    Each branch ``x_k`` is projected to ``k_k = W_k x_k`` (``[B, H, D]``) and scored against a learned query
    ``q`` (``[H, D]``); the gate normalises over the ``K`` branches. With ``H`` heads, branch ``k``'s features are
    split into ``H`` equal chunks, chunk ``h`` scaled by ``w[k, h]``.

    Shapes:
        xs: ``K`` tensors ``[B, d_k]`` -> weights ``[B, K, H]``.
    """

    def __init__(self, in_dims: list[int], gate: Gate, score: str = "additive", heads: int = 1, hidden: int = 32):
        super().__init__()
        if not isinstance(in_dims, (list, tuple)) or not in_dims:
            raise TypeError(f"BranchAttention: in_dims must be a non-empty list of the attended branches' widths, "
                            f"got {in_dims!r}")
        in_dims = [checks.positive_int(f"BranchAttention: in_dims[{k}]", d) for k, d in enumerate(in_dims)]
        heads = checks.positive_int("BranchAttention: heads", heads)
        hidden = checks.positive_int("BranchAttention: hidden", hidden)
        _check_gate("BranchAttention", gate)
        for d in in_dims:
            if d % heads:
                raise ValueError(f"heads={heads} must divide every attended branch's width, got widths {in_dims}")
        if hidden % heads:
            raise ValueError(f"heads={heads} must divide hidden={hidden}")
        self.heads, self.dim = heads, hidden // heads
        self.keys = nn.ModuleList(nn.Linear(d, hidden) for d in in_dims)
        self.query = nn.Parameter(torch.empty(heads, self.dim))
        self.scorer = Scorer(score, heads, self.dim)
        self.gate = gate
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in self.keys:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        nn.init.normal_(self.query, std=1.0 / math.sqrt(self.dim))
        self.scorer.reset_parameters()

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor | None:
        if not self.gate.enabled:
            return None
        if len(xs) != len(self.keys):  # zip would drop the extra branches, or score the missing ones as absent
            raise ValueError(f"BranchAttention: expected {len(self.keys)} branch tensors (one per attended in-edge), "
                             f"got {len(xs)}")
        keys = torch.stack([lin(x) for lin, x in zip(self.keys, xs)], dim=-2)  # (B, K, hidden)
        keys = keys.unflatten(-1, (self.heads, self.dim))  # (B, K, H, D)
        scores = self.scorer(keys, self.query)  # (B, K, H)
        return self.gate(scores, dim=-2)


def scale_heads(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Scale ``x`` ``[..., F]`` by head weights ``w`` ``[..., H]``: chunk ``h`` of the features by ``w[..., h]``."""
    heads = w.shape[-1]
    if heads == 1:
        return x * w
    return (x.unflatten(-1, (heads, x.shape[-1] // heads)) * w.unsqueeze(-1)).flatten(-2)
