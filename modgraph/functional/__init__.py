"""Pure functions at the core of modgraph: segment normalisers and weight regularisers."""

from modgraph.functional.normalize import (
    NORMALIZERS,
    normalize,
    segment_softmax,
    segment_sparsemax,
    sparsemax,
    threshold,
)
from modgraph.functional.regularizers import smoothing_group_lasso, weight_decay, weight_elimination

__all__ = [
    "NORMALIZERS",
    "normalize",
    "segment_softmax",
    "segment_sparsemax",
    "smoothing_group_lasso",
    "sparsemax",
    "threshold",
    "weight_decay",
    "weight_elimination",
]
