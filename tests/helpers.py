"""Small builders shared by the tests."""

import importlib.util
import sys
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str, name: str):
    """Import a script of the repository (``docs/make_api.py``, ``benchmarks/uci_time.py``, ...) as module ``name``;
    its folder goes on ``sys.path`` first, so its own sibling imports (``common``, ``timing``) resolve."""
    path = ROOT / relative
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mlp_graph(features=5, hidden=18, classes=3, attention="sigmoid", **edge):
    g = nx.DiGraph()
    g.add_node("x", op="input", features=features)
    g.add_node("h", op="linear", out_features=hidden, activation="sigmoid")
    g.add_node("y", op="linear", out_features=classes)
    g.add_edge("x", "h")
    if attention:
        g.add_edge("h", "y", attention=attention, **edge)
    else:
        g.add_edge("h", "y")
    return g


def random_dag(n, p, seed, width=8, attention="softmax"):
    """A random DAG from networkx: gnp edges oriented by node order, an input feeding every source."""
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
