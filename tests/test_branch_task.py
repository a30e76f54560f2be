"""Behaviour: branch attention learns which parallel branch carries the label."""

import networkx as nx
import pytest
import torch
import torch.nn.functional as F

import modgraph as mg


def branch_net(attention):
    g = nx.DiGraph()
    for name in ("a", "b", "c"):
        g.add_node(name, op="input", features=4)
        g.add_node(f"f{name}", op="linear", out_features=8, activation="tanh")
        g.add_edge(name, f"f{name}")
    g.add_node("m", op="identity")
    for name in ("a", "b", "c"):
        g.add_edge(f"f{name}", "m", attention=attention)
    g.add_node("y", op="linear", out_features=2)
    g.add_edge("m", "y")
    return mg.ModuleGraph(g)


@pytest.mark.parametrize("attention", ["softmax", "sparsemax", "sigmoid"])
def test_branch_attention_ranks_the_informative_branch_first(attention):
    torch.manual_seed(0)
    net = branch_net(attention)
    gen = torch.Generator().manual_seed(1)
    feeds = {k: torch.randn(512, 4, generator=gen) for k in "abc"}
    label = (feeds["b"][:, 0] + feeds["b"][:, 1] > 0).long()  # only branch b carries the label
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(net(feeds), label).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(feeds).argmax(1) == label).float().mean()
    w = {u: net.edge_weights()[(f"f{u}", "m")].mean().item() for u in "abc"}
    assert acc > 0.9
    assert max(w, key=w.get) == "b", w
