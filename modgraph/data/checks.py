"""Checks of tensors before training: finite features, labels in range, no empty data. Errors name the fault."""

from __future__ import annotations

import torch

from ..errors import DataError


def check_features(x: torch.Tensor, name: str = "features") -> torch.Tensor:
    """Raise :class:`DataError` if ``x`` is empty or holds NaN/Inf, naming how many and the first one's place."""
    if x.numel() == 0 or x.shape[0] == 0:
        raise DataError(f"{name}: the data set is empty (shape {tuple(x.shape)})")
    if x.layout != torch.strided:  # COO (summed duplicates: two large entries can add up to inf), CSR, CSC, BSR
        values = x.coalesce().values() if x.layout == torch.sparse_coo else x.values()
        bad = ~torch.isfinite(values)
        if bad.any():
            raise DataError(f"{name}: {int(bad.sum())} NaN/Inf values in the sparse features")
        return x
    bad = ~torch.isfinite(x)
    if bad.any():
        where = bad.nonzero()[0].tolist()
        kinds = "NaN" if torch.isnan(x).any() else "Inf"
        raise DataError(f"{name}: {int(bad.sum())} non-finite values ({kinds}); the first at row {where[0]}"
                        + (f", column {where[1]}" if len(where) > 1 else "") + "; impute or drop them first")
    return x


def check_labels(y: torch.Tensor, num_classes: int, name: str = "labels") -> torch.Tensor:
    """Raise :class:`DataError` unless ``y`` is a non-empty integer vector with values in ``[0, num_classes)``."""
    if y.numel() == 0:
        raise DataError(f"{name}: the data set is empty")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise DataError(f"{name}: labels must be integers 0..{num_classes - 1}, got dtype {y.dtype}")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise DataError(f"{name}: labels must be in [0, {num_classes}), got {int(y[i])} at row {i} "
                        f"({int(bad.sum())} out of range)")
    return y
