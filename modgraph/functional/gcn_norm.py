r"""GCN normalisation of a graph's edges, and a cache that computes it once per ``edge_index``.

:func:`gcn_norm` is PyG's :func:`torch_geometric.nn.conv.gcn_conv.gcn_norm` (Kipf & Welling, 2017): self-loops are
added where missing and every edge ``j -> i`` gets

.. math::
    \hat a_{ij} = \frac{1}{\sqrt{\hat d_i \hat d_j}}, \qquad \hat d_i = 1 + \sum_j a_{ij},

the entries of :math:`\hat D^{-1/2} (A + I) \hat D^{-1/2}`. It also returns the in-degree :math:`\hat d_i` (self-loop
included) of every node, which the attention conv uses to put simplex-normalised weights on the GCN's scale.

:class:`EdgeIndexCache` remembers the result for one ``edge_index`` tensor: full-batch training passes the same
tensor every epoch, so the normalisation (and the self-loops) are computed once; any other tensor, or the same
tensor modified in place by torch, is recomputed (mini-batches from a neighbour loader stay correct).
:func:`cached_gcn_norm` is the two together, in the dtype the layer computes in (PyG's ``GCNConv`` normalises in
its input's dtype too).
"""

from __future__ import annotations

import weakref
from typing import Callable, NamedTuple

import torch
from torch import Tensor
from torch_geometric.nn.conv.gcn_conv import gcn_norm as _pyg_gcn_norm
from torch_geometric.utils import scatter

from .. import checks

__all__ = ["EdgeIndexCache", "GCNNorm", "cached_gcn_norm", "gcn_norm"]


class GCNNorm(NamedTuple):
    """The normalised graph: ``edge_index [2, E']`` with self-loops, ``edge_weight [E']``, ``degree [N]``."""

    edge_index: Tensor
    edge_weight: Tensor
    degree: Tensor


def gcn_norm(edge_index: Tensor, num_nodes: int, add_self_loops: bool = True,
             dtype: torch.dtype = torch.float32) -> GCNNorm:
    r"""Symmetric GCN normalisation :math:`\hat D^{-1/2} (A + I) \hat D^{-1/2}` as per-edge weights (PyG's).

    Args:
        edge_index: ``[2, E]`` edges ``source -> target`` (PyG's ``source_to_target`` flow).
        num_nodes: ``N``.
        add_self_loops: add a self-loop to every node that has none (default ``True``); existing self-loops are kept.
        dtype: dtype of the weights.

    Returns:
        :class:`GCNNorm` ``(edge_index [2, E'], edge_weight [E'], degree [N])``. Without self-loops in the input,
        ``edge_index[:, :E]`` is the input in its order and the ``N`` self-loops follow (``E' = E + N``).

    Example:
        >>> norm = gcn_norm(torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
        >>> norm.edge_index.tolist(), norm.edge_weight.tolist()
        ([[0, 1, 0, 1], [1, 0, 0, 1]], [0.5, 0.5, 0.5, 0.5])
    """
    num_nodes = checks.integer("gcn_norm: num_nodes", num_nodes, least=0)
    add_self_loops = checks.flag("gcn_norm: add_self_loops", add_self_loops)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"gcn_norm: dtype must be a floating-point torch.dtype (such as torch.float32), got {dtype!r}")
    checks.edge_index("gcn_norm: edge_index", edge_index, num_nodes, dtype=torch.long)
    ei, weight = _pyg_gcn_norm(edge_index, None, num_nodes, False, add_self_loops, "source_to_target", dtype)
    ones = torch.ones(ei.size(1), dtype=dtype, device=ei.device)
    degree = scatter(ones, ei[1], dim=0, dim_size=num_nodes, reduce="sum")  # (N,) in-degree, self-loop included
    return GCNNorm(ei, weight, degree)


def cached_gcn_norm(cache: "EdgeIndexCache", edge_index: Tensor, num_nodes: int, add_self_loops: bool,
                    dtype: torch.dtype) -> GCNNorm:
    """:func:`gcn_norm` in ``dtype``, computed once per ``edge_index`` tensor, node count and dtype in ``cache``."""
    # type, shape and dtype before the cache reads the version counter, nothing read from the device on every
    # forward; the node ids are checked by gcn_norm, once per edge_index tensor
    checks.edge_index("edge_index", edge_index, dtype=torch.long, ids=False)
    return cache.get(edge_index, num_nodes, lambda: gcn_norm(edge_index, num_nodes, add_self_loops, dtype), dtype)


class EdgeIndexCache:
    """Remember one value derived from an ``edge_index`` tensor (and the node count).

    The value is reused while the very same tensor object comes back unmodified (same ``_version``) with the same
    ``num_nodes``; anything else recomputes. "Unmodified" is torch's version counter: in-place torch operations
    (``edge_index[0, 3] = 5``, ``edge_index.copy_(...)``) count, writes that bypass autograd's bookkeeping (through
    ``edge_index.data``, or a NumPy array sharing its memory after ``torch.from_numpy``) are not seen; pass a new
    tensor after such a write, or call :meth:`clear`. The cache holds a weak reference to the tensor, so it never
    keeps a graph alive, and it is dropped when a module is pickled. An *inference tensor* (made under
    ``torch.inference_mode()``) has no version counter, so nothing derived from one is cached: it is recomputed on
    every call.
    """

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self._ref = None
        self._key = None
        self._value = None

    def get(self, edge_index: Tensor, num_nodes: int, compute: Callable[[], object], tag=None):
        """``compute()``, or the value it gave for this very ``edge_index``, ``num_nodes`` and ``tag`` (a dtype)."""
        if not isinstance(edge_index, Tensor):
            raise TypeError(f"EdgeIndexCache: edge_index must be a torch.Tensor, got {type(edge_index).__name__}")
        if edge_index.is_inference():  # no version counter to tell an in-place change: never reused
            return compute()
        # inference-mode results cannot be used by autograd later, so they are cached apart
        key = (edge_index._version, int(num_nodes), edge_index.device, torch.is_inference_mode_enabled(), tag)
        if self._ref is not None and self._ref() is edge_index and self._key == key:
            return self._value
        value = compute()
        self._ref, self._key, self._value = weakref.ref(edge_index), key, value
        return value

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.clear()

    def __deepcopy__(self, memo):
        return EdgeIndexCache()
