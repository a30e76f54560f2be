"""Small networks shared by the pruning tests."""

import networkx as nx
import torch

import modgraph as mg


def wide_dag(attention="softmax", score="linear"):
    """Summed producers (a + b), a branch gate, batch norm, a concat and a neuron gate: every dependency kind."""
    g = nx.DiGraph()
    g.add_node("x", op="input", features=6)
    g.add_node("a", op="linear", out_features=8, activation="relu")
    g.add_node("b", op="linear", out_features=8, activation="tanh")
    g.add_node("s", op="identity")
    g.add_node("bn", op="batch_norm")
    g.add_node("c", op="linear", out_features=5, activation="relu")
    g.add_node("cat", op="concat")
    g.add_node("h", op="linear", out_features=7, activation="sigmoid")
    g.add_node("y", op="linear", out_features=3)
    g.add_edges_from([("x", "a"), ("x", "b"), ("s", "bn"), ("bn", "c"), ("bn", "cat"), ("c", "cat"), ("cat", "h")])
    g.add_edge("a", "s", attention="softmax")
    g.add_edge("b", "s", attention="softmax")
    g.add_edge("h", "y", attention=attention, score=score)
    net = mg.ModuleGraph(g)
    with torch.no_grad():
        net.nodes["bn"].running_mean.normal_()
        net.nodes["bn"].running_var.uniform_(0.5, 2.0)
    return net.eval()


def branchy(attention="sigmoid", merge="sum", zero=None):
    """Three branches into a gated merge ``m``; branch ``a`` is a chain ``p -> a -> a2`` with ``s`` shared with ``b``.

    ``zero``: an in-edge of ``m`` given the fixed weight 0 (the masked reference of removing it).
    """
    g = nx.DiGraph()
    g.add_node("x", op="input", features=4)
    for n in ("p", "s", "a", "a2", "b", "c"):
        g.add_node(n, op="linear", out_features=6, activation="tanh")
    g.add_edges_from([("x", "p"), ("x", "s"), ("p", "a"), ("s", "a"), ("a", "a2"), ("s", "b"), ("x", "c")])
    g.add_node("m", op="linear", out_features=5, activation="relu", merge=merge)
    for u in ("a2", "b", "c"):
        g.add_edge(u, "m", attention=attention, **({"weight": 0.0} if zero == u else {}))
    g.add_node("y", op="linear", out_features=2)
    g.add_edge("m", "y")
    return mg.ModuleGraph(g)


def params(*layers):
    """Hand count: a linear ``(in, out)`` has ``in * out + out`` parameters."""
    return sum(i * o + o for i, o in layers)
