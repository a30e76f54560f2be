"""modgraph: networks declared as NetworkX DAGs whose connections are weighted, inspected and pruned by attention."""

from . import (
    ops,  # noqa: F401  (registers the built-in ops)
    prune,  # noqa: F401
    record,  # noqa: F401
    train,  # noqa: F401
)
from .attention import AttentionModule, BranchAttention, NeuronAttention, Scorer
from .errors import CheckpointError, DataError, GraphSpecError, ModgraphError, PruneError
from .gate import Gate
from .module_graph import ModuleGraph
from .registry import Built, available_ops, register_op
from .serialize import load_network, save_network
from .spec import graph_from_dict, graph_to_dict, load_spec, save_spec

__version__ = "0.1.0"

__all__ = [
    "AttentionModule", "BranchAttention", "Built", "CheckpointError", "DataError", "Gate", "GraphSpecError",
    "ModgraphError", "ModuleGraph", "NeuronAttention", "PruneError", "Scorer", "available_ops", "graph_from_dict",
    "graph_to_dict", "load_network", "load_spec", "register_op", "save_network", "save_spec",
]
