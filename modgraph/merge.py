"""How a node's in-edges become its input: branch weights applied, then a weighted sum or a concat; and a linear
layer scaled connection by connection by its neuron-level attention.

Both executors (the compiled ``torch.fx`` code and ``ModuleGraph.interpret``) call these, so they agree bit for bit.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.fx as fx

from .attention import NeuronAttention, scale_heads
from .functional.neuron import neuron_scaled_linear
from .ops.basic import Linear

# The fused neuron-level kernel where it applies: None (default) = off, except inside blocks that prefer it (the
# UCI programs); True/False = forced by fused_neuron_attention. Off by default because it sums in another order:
# trained networks differ from the modules' in float rounding, which training amplifies, and the published results
# of experiments/prune.py and the tutorial were made with the modules as written.
_FUSED = {"neuron": None}


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


def _no_hooks(*modules) -> bool:
    return not any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def fused_neuron_applies(attention, layer, h: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether :func:`neuron_linear` takes the fused kernel: the paper's allocator (score ``"linear"``, an enabled
    sigmoid gate without threshold or temperature) on a plain ``linear`` layer, inputs ``[B, in]`` of one dtype, no
    module hooks on the modules involved. Anything else runs the modules as written."""
    if _FUSED["neuron"] is not True or type(attention) is not NeuronAttention or type(layer) is not Linear:
        return False
    gate = attention.gate
    if not gate.enabled or attention.score != "linear" or gate.normalizer != "sigmoid" or gate.temperature != 1.0 \
            or gate.threshold not in (None, 0.0):
        return False
    alloc = attention.allocator
    return (x.dim() == 2 and h.shape == x.shape and x.dtype == h.dtype == alloc.weight.dtype == layer.weight.dtype
            and _no_hooks(attention, alloc, gate, layer))


def neuron_linear(attention, layer, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``layer(x, attention(h))``: the linear layer on ``x`` with every connection scaled by the neuron-level
    attention computed from ``h`` (``x`` is ``h``, times the edge's adjacency weight if it has one).

    Where :func:`fused_neuron_applies`, one autograd function computes the same values and gradients
    (:func:`modgraph.functional.neuron.neuron_scaled_linear`, up to float rounding) in fewer passes; the gate still
    reports the weights to its hooks.
    """
    if not fused_neuron_applies(attention, layer, h, x):
        return layer(x, attention(h))
    alloc = attention.allocator
    y, weights = neuron_scaled_linear(x, h, alloc.weight, alloc.bias, layer.weight, layer.bias)
    attention.gate.report(weights, index=None)
    return layer.act(y) if layer.act is not None else y


@contextmanager
def fused_neuron_attention(enabled: bool | None):
    """Within the block, :func:`neuron_linear` uses the fused kernel (``True``) or always runs the modules as
    written (``False``: the reference path, for tests and timing comparisons); ``None`` restores the default (the
    modules as written, except where :func:`prefer_fused_neuron_attention` asks for the kernel)."""
    before, _FUSED["neuron"] = _FUSED["neuron"], None if enabled is None else bool(enabled)
    try:
        yield
    finally:
        _FUSED["neuron"] = before


@contextmanager
def prefer_fused_neuron_attention():
    """The fused kernel within the block unless a surrounding :func:`fused_neuron_attention` forced a choice
    (the UCI programs train this way: ``modgraph.benchmarks.uci.Program.fit``)."""
    with fused_neuron_attention(True if _FUSED["neuron"] is None else _FUSED["neuron"]):
        yield


fx.wrap("scale_branches")
fx.wrap("neuron_linear")
