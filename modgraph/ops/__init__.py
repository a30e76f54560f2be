from . import basic, gcn, graph_attention, sparse  # noqa: F401  (registers the ops)
