import os

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


@pytest.mark.parametrize("damage, message", [
    (lambda blob: blob.update(spec=3), r"damaged network file: 'spec' is int, expected a JSON string"),
    (lambda blob: blob.pop("spec"), r"damaged network file: no 'spec'"),
    (lambda blob: blob.update(spec="{not json"), r"damaged spec \(JSONDecodeError"),
    (lambda blob: blob.pop("state_dict"), r"damaged network file: no 'state_dict' \(expected a dict of tensors\)"),
    (lambda blob: blob.update(state_dict=[1, 2]), r"damaged network file: 'state_dict' is list, expected a dict"),
    (lambda blob: blob["state_dict"].update({"nodes.h.weight": 3}),
     r"damaged weights: entry 'nodes.h.weight' is int, expected a tensor"),
])
def test_well_formed_but_damaged_network_files_are_named(tmp_path, damage, message):
    path = mg.save_network(mg.ModuleGraph(mlp_graph()), tmp_path / "x.pt")
    blob = torch.load(path, weights_only=True)
    damage(blob)
    torch.save(blob, path)
    with pytest.raises(mg.CheckpointError, match=r"x\.pt: " + message):
        mg.load_network(path)


def test_a_network_saved_on_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    """The file's tensors are read onto the CPU unless map_location says otherwise: a network saved from CUDA
    (simulated: every storage tagged cuda:0) loads on a machine without CUDA, with its weights."""
    if torch.cuda.is_available():
        pytest.skip("the point is a machine without CUDA")
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph())
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        path = mg.save_network(net, tmp_path / "net.pt")
    with pytest.raises(RuntimeError, match="CUDA"):  # what torch does with the saved location
        torch.load(path, weights_only=True)
    other = mg.load_network(path)
    x = torch.randn(3, 5)
    assert torch.equal(other(x), net(x))
    with pytest.raises(ValueError, match=r"map_location 'cuda:0': this machine has no CUDA device"):
        mg.load_network(path, map_location="cuda:0")  # asked for explicitly: the argument is at fault, not the file
    with pytest.raises(ValueError, match=r"map_location must be a device such as 'cpu' .* got 'gpu'"):
        mg.load_network(path, map_location="gpu")
    assert torch.equal(mg.load_network(path, map_location=torch.device("cpu"))(x), net(x))


def test_a_network_file_holding_other_objects_is_refused_without_running_them(tmp_path):
    """weights_only: an object whose unpickling would run code (here: create a file) is refused, not run."""
    import json
    import pathlib

    marker = tmp_path / "ran"

    class Touch:
        def __reduce__(self):
            return pathlib.Path.touch, (marker,)

    net = mg.ModuleGraph(mlp_graph())
    path = tmp_path / "net.pt"
    torch.save({"format": "modgraph-net/1", "spec": json.dumps(net.to_dict()), "state_dict": net.state_dict(),
                "note": Touch()}, path)
    with pytest.raises(mg.CheckpointError, match=r"net\.pt: not a readable modgraph file"):
        mg.load_network(path)
    assert not marker.exists()


def test_missing_and_unexpected_weights_are_named():
    net = mg.ModuleGraph(mlp_graph(attention=None))
    state = net.state_dict()
    del state["nodes.h.bias"]
    with pytest.raises(mg.CheckpointError, match=r"ckpt: the weights come from another architecture: missing "
                                                 r"nodes\.h\.bias$"):
        mg.serialize.load_state(net, state, "ckpt")
    state = net.state_dict()
    state["nodes.z.weight"] = torch.zeros(2)
    with pytest.raises(mg.CheckpointError, match=r"another architecture: unexpected nodes\.z\.weight$"):
        mg.serialize.load_state(net, state, "ckpt")


def test_a_save_that_fails_half_way_leaves_the_old_network_file(tmp_path, monkeypatch):
    import io

    path = mg.save_network(mg.ModuleGraph(mlp_graph()), tmp_path / "net.pt")
    old = path.read_bytes()
    save = torch.save

    def half_then_fail(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        save(obj, buf)
        data = buf.getvalue()[: len(buf.getvalue()) // 2]
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as out:
                out.write(data)
        else:
            f.write(data)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        mg.save_network(mg.ModuleGraph(mlp_graph(hidden=7)), path)
    monkeypatch.undo()
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["net.pt"]
    assert mg.load_network(path).plan.widths["h"] == 18


@pytest.mark.parametrize("make", [lambda net, p: (str(p), net), lambda net, p: (net.state_dict(), p),
                                  lambda net, p: (torch.nn.Linear(2, 3), p)])
def test_saving_something_that_is_not_a_network_is_named(tmp_path, make):
    net = mg.ModuleGraph(mlp_graph())
    args = make(net, tmp_path / "n.pt")
    # before: AttributeError "'str' object has no attribute 'to_dict'"
    with pytest.raises(TypeError, match=r"save_network: net must be a modgraph.ModuleGraph \(the call is "
                                        r"save_network\(net, path\)\), got "):
        mg.save_network(*args)
    assert list(tmp_path.iterdir()) == []
