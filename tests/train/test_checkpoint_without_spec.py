"""A network that cannot be written as a spec (a ready module, an extra graph attribute) can still be checkpointed."""

import networkx as nx
import pytest
import torch

import modgraph as mg
from modgraph.train import Trainer, load_checkpoint, save_checkpoint

from ..helpers import mlp_graph


def _graph(kind: str) -> nx.DiGraph:
    g = mlp_graph()
    if kind == "module":
        g.add_node("h2", module=torch.nn.Linear(18, 18))
        g.add_edge("h", "h2")
        g.add_edge("h2", "y")
        g.remove_edge("h", "y")
    else:
        g.graph["notes"] = "not part of a spec"
    return g


@pytest.mark.parametrize("kind", ["module", "graph attribute"])
def test_a_network_without_a_spec_is_checkpointed_and_resumed(tmp_path, kind):
    x, y = torch.randn(8, 5), torch.zeros(8, dtype=torch.long)
    loss = lambda n: torch.nn.functional.cross_entropy(n(x), y)  # noqa: E731
    torch.manual_seed(0)
    net = mg.ModuleGraph(_graph(kind))
    with pytest.raises(mg.GraphSpecError):
        net.to_dict()
    trainer = Trainer(net, loss, lambda n: 0.0, steps=2)
    trainer.run()
    path = save_checkpoint(tmp_path / "a.pt", trainer)
    torch.manual_seed(1)
    other = Trainer(mg.ModuleGraph(_graph(kind)), loss, lambda n: 0.0, steps=2)
    load_checkpoint(path, other)
    for (k, a), (_, b) in zip(net.state_dict().items(), other.net.state_dict().items()):
        assert torch.equal(a, b), k
    assert other.step == trainer.step == 2
