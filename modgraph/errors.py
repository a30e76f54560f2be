"""Exceptions raised at modgraph's public API.

Every error a user can cause is one of these ``ValueError`` subclasses, and its message says what was
expected, what came, and where (which node, edge, file or line).
"""


class ModgraphError(ValueError):
    """Base class of every user-facing modgraph error."""


class GraphSpecError(ModgraphError):
    """The declared network is invalid: a cycle, an unknown op, bad arguments, a shape mismatch, ..."""


class DataError(ModgraphError):
    """A data set is missing, partial, corrupted or malformed (names the file and, where it applies, the line)."""


class CheckpointError(ModgraphError):
    """A checkpoint cannot be read or does not fit the network it is loaded into."""


class PruneError(ModgraphError):
    """A pruning request cannot be met (a threshold or sparsity out of range, or it would prune everything)."""
