"""Small feed-forward networks declared as modgraph DAGs.

* :func:`attention_mlp` - the seed paper's network ``x -> h (sigmoid) -> y`` with the neuron-level allocator on
  ``h -> y`` (one weight per connection and sample); ``attention=None`` is the same MLP without it.
* :func:`random_dag` - a random DAG of linear layers from networkx, every merge weighted by branch attention (tests
  and benchmarks of the executor).
"""

from __future__ import annotations

import networkx as nx

from .. import checks
from ..errors import GraphSpecError

__all__ = ["attention_mlp", "random_dag"]


def attention_mlp(features: int, hidden: int, classes: int, attention: str | None = "sigmoid", name: str | None = None,
                  **edge) -> nx.DiGraph:
    """``x -> h`` (``hidden`` sigmoid units) ``-> y`` (``classes`` logits), glorot-uniform weights (the ``linear``
    op's init). With ``attention`` (a normaliser; the paper's is ``"sigmoid"``) the edge ``h -> y`` carries the
    neuron-level gate: its allocator computes a ``[hidden, classes]`` weight matrix from ``h`` for every sample.
    ``edge``: further settings of that edge (``threshold``, ``score``, ``weight``, ...); ``name``: the graph's name.
    """
    g = nx.DiGraph(name=name) if name else nx.DiGraph()
    g.add_node("x", op="input", features=features)
    g.add_node("h", op="linear", out_features=hidden, activation="sigmoid")
    g.add_node("y", op="linear", out_features=classes)
    g.add_edge("x", "h")
    if attention:
        g.add_edge("h", "y", attention=attention, **edge)
    else:
        g.add_edge("h", "y", **edge)
    return g


def random_dag(n: int, p: float, seed: int, width: int = 8, attention: str | None = "softmax") -> nx.DiGraph:
    """``nx.gnp_random_graph(n, p, seed)``'s edges oriented from the lower to the higher node (``n0 ... n{n-1}``,
    each a ``linear`` layer of ``width`` tanh units), an input ``x`` feeding every node without predecessors, and
    every merge's in-edges weighted by ``attention`` branch attention (``None``: plain sums)."""
    n = checks.integer("random_dag: n", n, least=1, why="the number of linear layers", error=GraphSpecError)
    p = checks.number("random_dag: p", p, low=0, high=1, why="an edge probability", error=GraphSpecError)
    seed = checks.integer("random_dag: seed", seed, why="a random seed", error=GraphSpecError)
    und = nx.gnp_random_graph(n, p, seed=seed)
    g = nx.DiGraph()
    g.add_node("x", op="input", features=width)
    for i in range(n):
        g.add_node(f"n{i}", op="linear", out_features=width, activation="tanh")
    for i, j in und.edges():
        g.add_edge(f"n{min(i, j)}", f"n{max(i, j)}")
    for i in range(n):
        if g.in_degree(f"n{i}") == 0:
            g.add_edge("x", f"n{i}")
    if attention:
        for v in list(g.nodes):
            if g.in_degree(v) > 1:
                for u in g.predecessors(v):
                    g.edges[u, v]["attention"] = attention
    return g
