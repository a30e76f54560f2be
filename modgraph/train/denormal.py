"""Flush denormal floats to zero while training: saturated sigmoid gates otherwise make the CPU crawl.

A sigmoid allocator whose scores drift to -90 or below gives weights under 1.2e-38, float32's smallest normal number,
and every product with them (the scaling, the gradients) is a denormal that x86 CPUs compute in microcode, tens of
times slower than normal numbers. On the UCI programs the attention step grew 3-4x slower within a few hundred steps
of training (ecoli: 13 ms -> 57 ms per step), while the same step with denormals flushed stayed at 13 ms.
Flushing changes values only below 1.2e-38 in magnitude (they become 0), far under float32's rounding of the
numbers they are added to; TensorFlow's CPU kernels flush denormals by default.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .. import checks


def flushing_denormal() -> bool:
    """Whether this thread currently flushes denormal floats to zero (probed: a denormal times 1 gives 0)."""
    return bool((torch.tensor([1e-39]) * 1.0)[0] == 0)


@contextmanager
def flush_denormal(enabled: bool = True):
    """Within the block, denormal floats are flushed to zero on CPU (``torch.set_flush_denormal``), then the previous
    setting is restored. The setting is per thread: it covers single-threaded programs (``torch.set_num_threads(1)``,
    as the UCI programs run); where the CPU does not support it, nothing changes."""
    checks.flag("flush_denormal: enabled", enabled, error=TypeError)
    before = flushing_denormal()
    torch.set_flush_denormal(enabled)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)
