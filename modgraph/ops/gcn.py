r"""The plain graph convolution (the ``gcn_conv`` op): PyG's ``GCNConv`` with its normalisation cached per graph.

Kipf & Welling (2017), *Semi-Supervised Classification with Graph Convolutional Networks*:

.. math::
    X' = \hat D^{-1/2} (A + I) \hat D^{-1/2} X W + b .

The layer is :class:`torch_geometric.nn.GCNConv` itself (``normalize=False``); the normalisation comes from
:func:`modgraph.functional.gcn_norm.gcn_norm` (PyG's ``gcn_norm``) through an :class:`EdgeIndexCache`, so it is
computed once per ``edge_index`` tensor and recomputed for any other graph (PyG's own ``cached=True`` would keep
the first graph forever). It is the baseline of the attention conv: the same DAG with ``op: gcn_conv``.

:class:`GCNPropagate` (the ``gcn_propagate`` op) is the propagation alone, :math:`X' = \hat A X` without weights:
the steps of APPNP-style networks.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch_geometric.nn import GCNConv as PyGGCNConv
from torch_geometric.nn import MessagePassing

from ..functional.gcn_norm import EdgeIndexCache, cached_gcn_norm
from ..registry import Built, register_op
from .checks import boolean, dtype_fault, features_fault, positive_int

__all__ = ["GCNConv", "GCNPropagate"]


class GCNConv(nn.Module):
    """PyG's ``GCNConv`` as a modgraph node: ``module(x, edge_index)``, normalisation cached per ``edge_index``.

    Args:
        in_channels, out_channels: feature widths.
        bias: learn an additive bias (default ``True``).
        add_self_loops: add the missing self-loops before normalising (default ``True``).

    Shapes:
        x ``[N, in]`` (dense, or sparse COO/CSR for bag-of-words features); edge_index ``[2, E]``;
        output ``[N, out]``.
    """

    needs_graph = True

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, add_self_loops: bool = True):
        super().__init__()
        in_channels, out_channels = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        self.add_self_loops = boolean("add_self_loops", add_self_loops)
        self.conv = PyGGCNConv(in_channels, out_channels, normalize=False, bias=boolean("bias", bias))
        self._norm_cache = EdgeIndexCache()

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if not (isinstance(x, torch.Tensor) and x.dim() == 2 and x.size(1) == self.conv.in_channels):
            features_fault("GCNConv", x, self.conv.in_channels)
        n = x.size(0)
        norm = cached_gcn_norm(self._norm_cache, edge_index, n, self.add_self_loops, self.conv.lin.weight.dtype)
        try:
            return self.conv(x, norm.edge_index, norm.edge_weight)
        except RuntimeError:
            dtype_fault("GCNConv", x, self.conv.lin.weight.dtype)  # looked for only after a failure
            raise


@register_op("gcn_conv")
def gcn_conv(in_features: int, out_features: int, bias: bool = True, add_self_loops: bool = True) -> Built:
    """Graph convolution of Kipf & Welling (PyG's GCNConv), symmetric normalisation cached per edge_index."""
    out_features = positive_int("out_features", out_features)
    return Built(GCNConv(in_features, out_features, boolean("bias", bias), boolean("add_self_loops", add_self_loops)),
                 out_features)


class GCNPropagate(MessagePassing):
    r"""One GCN propagation step without weights: :math:`X' = \hat D^{-1/2} (A + I) \hat D^{-1/2} X`.

    Shapes:
        x ``[N, F]``; edge_index ``[2, E]``; output ``[N, F]``.
    """

    needs_graph = True

    def __init__(self, add_self_loops: bool = True):
        super().__init__(aggr="add")
        self.add_self_loops = boolean("add_self_loops", add_self_loops)
        self._norm_cache = EdgeIndexCache()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if not (isinstance(x, torch.Tensor) and x.dim() == 2 and x.is_floating_point()):
            features_fault("GCNPropagate", x, None)
        n = x.size(0)
        norm = cached_gcn_norm(self._norm_cache, edge_index, n, self.add_self_loops, x.dtype)
        return self.propagate(norm.edge_index, x=x, weight=norm.edge_weight, size=(n, n))

    def message(self, x_j: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return x_j * weight.unsqueeze(-1)  # (E', F)


@register_op("gcn_propagate")
def gcn_propagate(in_features: int, add_self_loops: bool = True) -> Built:
    """One GCN propagation step without weights, A_hat x (the steps of APPNP)."""
    return Built(GCNPropagate(boolean("add_self_loops", add_self_loops)), in_features)
