r"""Graph convolution whose messages are scaled by the core gate (ops ``attention_conv``, ``attention_propagate``).

The same mechanism as every other modgraph attention, applied to the edges of an input graph:

1. **score** every edge ``j -> i`` from its two endpoints: keys are the transformed source features
   :math:`k_j = W x_j`, queries the transformed target features :math:`q_i = g \odot W x_i` (``g`` a learned
   per-head diagonal query map, initialised to ones), scored by :class:`modgraph.Scorer` (``gat``:
   :math:`\mathrm{LeakyReLU}(v^\top (k_j + q_i))`, which is GAT's :math:`a^\top [W x_i \Vert W x_j]`;
   ``dot``, ``cosine``, ``additive``, ...), per head;
2. **normalise** per target node with the gate (``sigmoid``, ``softmax`` or ``sparsemax`` over the in-edges of
   ``i``), optional **threshold**;
3. **scale** each message: :math:`x'_i = \sum_{j \in N(i) \cup \{i\}} c_{ij}\, W x_j + b`, with the coefficient

   * ``combine="gcn"`` (default): :math:`c_{ij} = \hat a_{ij}\, w_{ij}\, s_i`, the GCN coefficient
     :math:`\hat a_{ij} = 1/\sqrt{\hat d_i \hat d_j}` re-weighted by attention, where :math:`s_i = \hat d_i` for
     softmax/sparsemax (weights summing to 1 per target, so *uniform attention is exactly GCN*) and
     :math:`s_i = 1` for sigmoid (independent gates that can only damp an edge);
   * ``combine="replace"``: :math:`c_{ij} = w_{ij}` (GAT's propagation with softmax);

4. **report**: the gate hands the weights ``w`` ``[E', heads]`` to its hooks together with the ``edge_index``
   ``[2, E']`` they belong to; ``ModuleGraph.graph_weights()`` returns that pair.

Self-loops: like GCN and GAT the op adds a self-loop to every node that has none (``add_self_loops=True``), so the
recorded weights **include the self-loops**: the reported ``edge_index`` is the input's (in its order, when it has
no self-loops of its own) followed by the ``N`` loops ``i -> i``. Recorded weights are the gate's output: after the
threshold, before attention dropout and before the GCN factor of ``combine="gcn"``.

When the gate is switched off (``ModuleGraph.attention_off()``, the first phase of the alternating schedule) the
op propagates with the plain GCN coefficients :math:`\hat a_{ij}`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear as PyGLinear

from .. import checks
from ..attention import AttentionModule, Scorer, _check_gate
from ..functional.gcn_norm import EdgeIndexCache, cached_gcn_norm
from ..functional.normalize import NORMALIZERS, temperature_problem, threshold_problem
from ..functional.scores import SCORES
from ..gate import Gate
from ..registry import Built, register_op
from .checks import boolean, choice, dtype_fault, features_fault, positive_int, probability

__all__ = ["EdgeAttention", "GraphAttentionConv"]

COMBINE = ("gcn", "replace")


class EdgeAttention(AttentionModule):
    """Scores the edges of a graph from their endpoints and normalises them per target node through one gate.

    Shapes:
        h ``[N, H, D]`` node features per head; edge_index ``[2, E]`` -> weights ``[E, H]`` (``None`` when the gate
        is off). The node ids of ``edge_index`` are checked once per ``edge_index`` tensor (``checked=True``: the
        caller has, as :class:`GraphAttentionConv` has through ``gcn_norm``).
    """

    def __init__(self, heads: int, dim: int, gate: Gate, score: str = "gat"):
        super().__init__()
        self.scorer = Scorer(score, heads, dim)
        _check_gate("EdgeAttention", gate)
        self.heads, self.dim = self.scorer.heads, self.scorer.dim
        self._ids_checked = EdgeIndexCache()
        self.query = nn.Parameter(torch.empty(heads, dim))  # diagonal query map g: q_i = g * h_i
        self.gate = gate
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.scorer.reset_parameters()
        nn.init.ones_(self.query)

    def scores(self, h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        src, dst = edge_index
        if self.scorer.kind == "gat":
            # v . (k_j + q_i) = (v . h)_j + (v g . h)_i: two per-node sums, gathered (GAT's a_src / a_dst)
            v = self.scorer.v
            a_src = (h * v).sum(-1)  # (N, H)
            a_dst = (h * (v * self.query)).sum(-1)  # (N, H)
            return F.leaky_relu(a_src[src] + a_dst[dst], 0.2)  # (E, H)
        return self.scorer(h[src], (h * self.query)[dst])  # (E, H, D) x (E, H, D) -> (E, H)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, *, checked: bool = False) -> torch.Tensor | None:
        if not (isinstance(h, torch.Tensor) and h.dim() == 3 and h.shape[1:] == (self.heads, self.dim)):
            if not isinstance(h, torch.Tensor):
                raise TypeError(f"EdgeAttention: h must be a torch.Tensor [N, heads, dim], got {type(h).__name__}")
            raise ValueError(f"EdgeAttention: h must be a tensor [N, heads, dim] = [N, {self.heads}, {self.dim}], "
                             f"got shape {tuple(h.shape)}")
        if not checked:  # the node ids once per edge_index tensor: a negative source id would wrap around silently
            checks.edge_index("EdgeAttention: edge_index", edge_index, dtype=torch.long, ids=False)
            n = h.size(0)
            self._ids_checked.get(edge_index, n, lambda: checks.edge_index(
                "EdgeAttention: edge_index", edge_index, n, dtype=torch.long, nodes=f"h has {n} rows"))
        if not self.gate.enabled:
            return None
        scores = self.scores(h, edge_index)  # (E, H)
        return self.gate(scores, index=edge_index[1], num_segments=h.size(0), edge_index=edge_index)


class GraphAttentionConv(MessagePassing):
    r"""Graph convolution with attention-scaled messages (see the module docstring for the math).

    Args:
        in_channels: input width.
        out_channels: output width; with ``concat=True`` split into ``heads`` chunks of ``out_channels // heads``,
            with ``concat=False`` every head has ``out_channels`` features and the heads are averaged. ``None``:
            no linear transform and no bias (a propagation step ``x' = C x``; ``concat`` is then ``True``).
        heads: attention heads (default 1); head ``h`` weights chunk ``h`` of the features.
        concat: concatenate the heads (default) or average them.
        attention: the gate's normaliser, ``"sigmoid"``, ``"softmax"`` (default) or ``"sparsemax"``.
        score: pair score of the endpoints (default ``"gat"``; see :mod:`modgraph.functional.scores`).
        threshold: weights under it are exactly 0 (default ``None``).
        temperature: scores are divided by it (default 1).
        combine: ``"gcn"`` (default; attention re-weights the GCN coefficients) or ``"replace"``.
        attention_dropout: dropout on the coefficients in training (GAT uses 0.6; default 0).
        add_self_loops: add the missing self-loops (default ``True``; the recorded weights then include them).
        bias: additive bias (default ``True``).

    Shapes:
        x ``[N, in]`` (dense, or sparse COO/CSR); edge_index ``[2, E]``; output ``[N, out]``.

    Example::

        conv = GraphAttentionConv(16, 8, heads=2)
        out = conv(torch.randn(5, 16), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))   # (5, 8)
    """

    needs_graph = True

    def __init__(self, in_channels: int, out_channels: int | None, heads: int = 1, concat: bool = True,
                 attention: str = "softmax", score: str = "gat", threshold: float | None = None,
                 temperature: float = 1.0, combine: str = "gcn", attention_dropout: float = 0.0,
                 add_self_loops: bool = True, bias: bool = True):
        super().__init__(aggr="add", node_dim=0)
        in_channels = positive_int("in_channels", in_channels)
        if out_channels is not None:
            out_channels = positive_int("out_channels", out_channels)
        heads, attention_dropout = _check(attention, score, threshold, temperature, combine, attention_dropout, heads)
        concat, add_self_loops = boolean("concat", concat), boolean("add_self_loops", add_self_loops)
        bias = boolean("bias", bias)
        if out_channels is None:
            width, concat, bias = in_channels, True, False
        else:
            width = out_channels if concat else out_channels * heads
        if width % heads:
            raise ValueError(f"heads={heads} must divide the output width {width}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.heads, self.concat, self.head_dim = heads, concat, width // heads
        self.combine, self.attention_dropout, self.add_self_loops = combine, attention_dropout, add_self_loops
        self.lin = None if out_channels is None else PyGLinear(in_channels, width, bias=False,
                                                               weight_initializer="glorot")
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        gate = Gate(attention, threshold, temperature, level="graph")
        self.attention = EdgeAttention(heads, self.head_dim, gate, score)
        self._norm_cache = EdgeIndexCache()
        self.reset_parameters()

    @property
    def gate(self) -> Gate:
        return self.attention.gate

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.lin is not None:
            self.lin.reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self.attention.reset_parameters()

    def coefficients(self, weights: torch.Tensor | None, norm) -> torch.Tensor:
        """Per-edge message coefficients ``[E', H]`` from the gate's weights and the cached GCN normalisation."""
        gcn = norm.edge_weight.unsqueeze(-1)  # (E', 1)
        if weights is None:  # attention off: plain GCN propagation
            return gcn.expand(-1, self.heads)
        if self.combine == "replace":
            return weights
        if self.gate.normalizer == "sigmoid":
            return weights * gcn
        return weights * gcn * norm.degree[norm.edge_index[1]].unsqueeze(-1)  # uniform attention == GCN

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if not (isinstance(x, torch.Tensor) and x.dim() == 2 and x.size(1) == self.in_channels
                and (self.lin is not None or x.is_floating_point())):
            features_fault("GraphAttentionConv", x, self.in_channels)
        n = x.size(0)
        try:
            h = x if self.lin is None else self.lin(x)
        except RuntimeError:
            dtype_fault("GraphAttentionConv", x, self.lin.weight.dtype)  # looked for only after a failure
            raise
        if h.layout != torch.strided:  # sparse features propagated as they are (no weights to multiply first)
            h = h.to_dense()
        norm = cached_gcn_norm(self._norm_cache, edge_index, n, self.add_self_loops, h.dtype)
        h = h.view(n, self.heads, self.head_dim)  # (N, H, D)
        weights = self.attention(h, norm.edge_index, checked=True)  # (E', H) or None; gcn_norm checked the ids
        coef = self.coefficients(weights, norm).to(h.dtype)  # (E', H)
        coef = F.dropout(coef, self.attention_dropout, self.training)
        out = self.propagate(norm.edge_index, x=h, coef=coef, size=(n, n))  # (N, H, D)
        out = out.flatten(1) if self.concat else out.mean(dim=1)
        return out if self.bias is None else out + self.bias

    def message(self, x_j: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        return x_j * coef.unsqueeze(-1)  # (E', H, D)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads}, "
                f"concat={self.concat}, combine={self.combine}, {self.gate.extra_repr()})")


def _check(attention, score, threshold, temperature, combine, attention_dropout, heads) -> tuple[int, float]:
    """Check the attention arguments; return ``heads`` and ``attention_dropout`` as an int and a float."""
    choice("attention", attention, NORMALIZERS)
    choice("score", score, SCORES)
    choice("combine", combine, COMBINE)
    heads = positive_int("heads", heads)
    attention_dropout = probability("attention_dropout", attention_dropout)
    problem = (threshold_problem(threshold) if threshold is not None else None) or temperature_problem(temperature)
    if problem is not None:
        raise ValueError(problem)
    return heads, attention_dropout


@register_op("attention_conv")
def attention_conv(in_features: int, out_features: int, heads: int = 1, concat: bool = True,
                   attention: str = "softmax", score: str = "gat", threshold: float | None = None,
                   temperature: float = 1.0, combine: str = "gcn", attention_dropout: float = 0.0,
                   add_self_loops: bool = True, bias: bool = True) -> Built:
    """Graph convolution whose messages are scaled by a gate over each node's in-edges (attention GCN / GAT)."""
    out_features = positive_int("out_features", out_features)
    heads, attention_dropout = _check(attention, score, threshold, temperature, combine, attention_dropout, heads)
    conv = GraphAttentionConv(in_features, out_features, heads, boolean("concat", concat), attention, score,
                              threshold, temperature, combine, attention_dropout,
                              boolean("add_self_loops", add_self_loops), boolean("bias", bias))
    return Built(conv, out_features)


@register_op("attention_propagate")
def attention_propagate(in_features: int, heads: int = 1, attention: str = "softmax", score: str = "gat",
                        threshold: float | None = None, temperature: float = 1.0, combine: str = "gcn",
                        attention_dropout: float = 0.0, add_self_loops: bool = True) -> Built:
    """One attention-weighted propagation step ``x' = C x`` over the graph, without weights of its own."""
    heads, attention_dropout = _check(attention, score, threshold, temperature, combine, attention_dropout, heads)
    conv = GraphAttentionConv(in_features, None, heads, True, attention, score, threshold, temperature, combine,
                              attention_dropout, boolean("add_self_loops", add_self_loops), False)
    return Built(conv, in_features)
