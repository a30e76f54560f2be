"""Dropout over the stored entries of a sparse feature matrix (the ``sparse_dropout`` op).

Bag-of-words features such as Cora's (2708 x 1433, 1.3% nonzero) are best kept as a torch sparse tensor: dense
dropout draws a random number for every one of the 3.9 M entries each epoch, which is most of the time of a small
GCN on a CPU. Dropping only the stored entries, as the original GCN code does (Kipf & Welling, ``sparse_dropout``),
draws 49 k numbers, and the first layer's product becomes a sparse-dense matmul.

The result is the same distribution as dense dropout: every nonzero is zeroed with probability ``p`` and the rest
scaled by ``1 / (1 - p)``; zeros stay zero either way.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import flag, number
from ..registry import Built, register_op
from .checks import probability

__all__ = ["SparseDropout", "sparse_dropout"]


def sparse_dropout(x: torch.Tensor, p: float = 0.5, training: bool = True) -> torch.Tensor:
    """Dropout on the stored values of a sparse COO or CSR tensor; plain dropout on a dense one.

    Shapes:
        x ``[N, F]`` (strided, ``sparse_coo`` or ``sparse_csr``) -> same shape and layout.
    """
    p = number("sparse_dropout: p", p, low=0, high=1)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"sparse_dropout: x must be a torch.Tensor (strided, sparse_coo or sparse_csr), got "
                        f"{type(x).__name__}")
    if not flag("sparse_dropout: training", training) or p == 0.0:
        return x
    if x.layout == torch.sparse_csr:
        values = F.dropout(x.values(), p, True)
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.shape, check_invariants=False)
    if x.layout == torch.sparse_coo:
        x = x.coalesce()
        values = F.dropout(x.values(), p, True)
        return torch.sparse_coo_tensor(x.indices(), values, x.shape, is_coalesced=True, check_invariants=False)
    if x.layout == torch.strided:
        return F.dropout(x, p, True)
    raise TypeError(f"sparse_dropout: unsupported layout {x.layout}; expected strided, sparse_coo or sparse_csr")


class SparseDropout(nn.Module):
    """:func:`sparse_dropout` as a module: active in training mode, identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = number("SparseDropout: p", p, low=0, high=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sparse_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


@register_op("sparse_dropout")
def sparse_dropout_op(in_features: int, p: float = 0.5) -> Built:
    """Dropout over the nonzeros of a sparse (COO/CSR) input, plain dropout on a dense one."""
    return Built(SparseDropout(probability("p", p)), in_features)
