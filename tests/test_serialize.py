import pytest
import torch

import modgraph as mg

from .helpers import mlp_graph, random_dag


def test_network_file_round_trip(tmp_path):
    torch.manual_seed(0)
    net = mg.ModuleGraph(random_dag(8, 0.4, 1))
    path = mg.save_network(net, tmp_path / "net.pt")
    other = mg.load_network(path)
    x = torch.randn(3, 8)
    a, b = net(x), other(x)
    for k in (a if isinstance(a, dict) else {0: a}):
        assert torch.equal((a if isinstance(a, dict) else {0: a})[k], (b if isinstance(b, dict) else {0: b})[k])
    assert [p.name for p in tmp_path.iterdir()] == ["net.pt"]


def test_weights_from_another_architecture_are_named(tmp_path):
    path = mg.save_network(mg.ModuleGraph(mlp_graph(hidden=18)), tmp_path / "a.pt")
    net = mg.ModuleGraph(mlp_graph(hidden=20))
    blob = torch.load(path, weights_only=True)
    with pytest.raises(mg.CheckpointError, match=r"another architecture: shape mismatch nodes.h.weight: expected "
                                                 r"\(20, 5\), got \(18, 5\)"):
        mg.serialize.load_state(net, blob["state_dict"])


def test_corrupted_and_foreign_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(mg.CheckpointError, match="bad.pt: not a readable modgraph file"):
        mg.load_network(bad)
    other = tmp_path / "other.pt"
    torch.save({"hello": torch.zeros(1)}, other)
    with pytest.raises(mg.CheckpointError, match="not a modgraph network file"):
        mg.load_network(other)
    with pytest.raises(mg.CheckpointError, match="no such file"):
        mg.load_network(tmp_path / "none.pt")
