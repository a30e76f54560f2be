"""Pruning by recorded attention: hidden units, connections, branches and graph edges.

Split like Torch-Pruning: :mod:`.dependency` (which tensors shrink together), :mod:`.importance` (one score per
unit: attention, magnitude, random, sgl), :mod:`.select` (the policy: sparsity or threshold, global or local),
:mod:`.structural` (rewriting the spec and slicing weights), :mod:`.graph_edges` (edge_index sparsification),
:mod:`.report` (parameters, MACs, neurons, edges, accuracy) and :mod:`.pruner` (``prune``, which runs them).

Example::

    rec = mg.record.EdgeRecorder().attach(net)
    ...                                                  # run the network over the training data
    rec.epoch_end()
    small, report = mg.prune.prune(net, mg.prune.AttentionImportance(rec), level="neuron", sparsity=0.5)
    print(report)
"""

from .dependency import CHANNEL_RULES, DependencyGraph, Group, register_channel_rule
from .graph_edges import sparsify_edges
from .importance import (
    CRITERIA,
    AttentionImportance,
    Importance,
    MagnitudeImportance,
    RandomImportance,
    SGLImportance,
)
from .pruner import LEVELS, prune
from .report import PruneReport, count_connections, count_macs, count_neurons, count_params, register_macs
from .select import select_lowest
from .sgl import sgl_penalty, unit_weights
from .structural import dead_nodes, mask_units, rebuild, register_slicer

__all__ = [
    "CHANNEL_RULES", "CRITERIA", "LEVELS", "AttentionImportance", "DependencyGraph", "Group", "Importance",
    "MagnitudeImportance", "PruneReport", "RandomImportance", "SGLImportance", "count_connections", "count_macs",
    "count_neurons", "count_params", "dead_nodes", "mask_units", "prune", "rebuild", "register_channel_rule",
    "register_macs", "register_slicer", "select_lowest", "sgl_penalty", "sparsify_edges", "unit_weights",
]
