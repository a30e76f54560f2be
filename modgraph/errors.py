"""Exceptions raised at modgraph's public API.

Faults in what modgraph reads or builds (a spec, a data file, a checkpoint, a pruning request) raise one of these
``ValueError`` subclasses; a wrong argument to a function or a forward pass raises a plain ``ValueError`` or
``TypeError``, as torch does. Either way the message says what was expected, what came, and where (which node,
edge, file or line). docs/errors.md lists them.
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
