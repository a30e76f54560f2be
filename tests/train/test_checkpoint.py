import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import modgraph as mg
from modgraph.train import Checkpointer, Trainer, load_checkpoint, save_checkpoint

from ..helpers import mlp_graph

SCRIPT = Path(__file__).with_name("killable_run.py")
ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], env=env)


def _checkpoint_step(path):
    try:  # written atomically, so a file that exists is whole
        return torch.load(path, weights_only=True)["trainer"]["step"]
    except FileNotFoundError:
        return -1


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    whole = tmp_path / "whole.json"
    assert _run(tmp_path, "--out", str(whole)).wait(timeout=120) == 0
    ckpt, out = tmp_path / "ckpt", tmp_path / "resumed.json"
    proc = _run(tmp_path, "--out", str(out), "--checkpoint-dir", str(ckpt), "--sleep", "0.1")
    deadline = time.time() + 120
    while _checkpoint_step(ckpt / "last.pt") < 12 and time.time() < deadline:  # mid-run: into the 2nd phase
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists(), "the run finished before it was killed; the test proves nothing"
    assert [p.name for p in ckpt.iterdir()] == ["last.pt"]  # no half-written temporary file is left
    assert _run(tmp_path, "--out", str(out), "--checkpoint-dir", str(ckpt), "--resume").wait(timeout=120) == 0
    assert json.loads(out.read_text()) == json.loads(whole.read_text())


def test_checkpoint_from_another_architecture_is_refused(tmp_path):
    x, y = torch.randn(8, 5), torch.zeros(8, dtype=torch.long)
    loss = lambda n: torch.nn.functional.cross_entropy(n(x), y)  # noqa: E731
    trainer = Trainer(mg.ModuleGraph(mlp_graph(hidden=18)), loss, lambda n: 0.0, steps=2)
    trainer.run()
    path = save_checkpoint(tmp_path / "a.pt", trainer)
    other = Trainer(mg.ModuleGraph(mlp_graph(hidden=20)), loss, lambda n: 0.0, steps=2)
    with pytest.raises(mg.CheckpointError, match=r"a\.pt: the checkpoint was written for another architecture: "
                                                 r"node 'h' is .*18.* in the checkpoint but .*20.* in this network"):
        load_checkpoint(path, other)


def test_a_checkpoint_is_read_onto_the_cpu_and_its_best_state_put_where_the_network_is(tmp_path, monkeypatch):
    """Written on a GPU, a checkpoint would otherwise come back on that GPU (another one's, or none, at resume)."""
    import modgraph.train.checkpoint as ckpt

    x, y = torch.randn(8, 5), torch.zeros(8, dtype=torch.long)
    loss = lambda n: torch.nn.functional.cross_entropy(n(x), y)  # noqa: E731
    torch.manual_seed(0)
    trainer = Trainer(mg.ModuleGraph(mlp_graph()), loss, lambda n: 0.5, steps=3)
    trainer.run()
    path = save_checkpoint(tmp_path / "a.pt", trainer)
    seen, read = [], ckpt.safe_torch_load
    monkeypatch.setattr(ckpt, "safe_torch_load", lambda p, where: seen.append(where) or read(p, where))
    moved = []

    class Spy(torch.Tensor):  # a best_state entry that records where it is sent
        def to(self, *args, **kwargs):
            moved.append(args[0] if args else kwargs.get("device"))
            return torch.Tensor.to(self, *args, **kwargs)

    other = Trainer(mg.ModuleGraph(mlp_graph()), loss, lambda n: 0.5, steps=3)
    load_checkpoint(path, other)
    assert seen == ["cpu"]
    state = other.state_dict()
    state["best_state"] = {k: v.as_subclass(Spy) for k, v in state["best_state"].items()}
    other.load_state_dict(state)
    assert moved and set(moved) == {torch.device("cpu")}  # each entry to its parameter's device
    load_checkpoint(path, other, map_location="cpu")
    assert seen == ["cpu", "cpu"]


def test_corrupted_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"\x00" * 10)
    trainer = Trainer(mg.ModuleGraph(mlp_graph()), lambda n: n(torch.zeros(1, 5)).sum(), lambda n: 0.0, steps=1)
    with pytest.raises(mg.CheckpointError, match="last.pt: not a readable modgraph file"):
        load_checkpoint(path, trainer)
    with pytest.raises(ValueError, match="every must be a positive integer"):
        Checkpointer(tmp_path, every=0)
    with pytest.raises(TypeError, match="Checkpointer: directory must be a path .*, got NoneType"):
        Checkpointer(None)


def test_same_seed_same_numbers():
    def run():
        torch.manual_seed(5)
        net = mg.ModuleGraph(mlp_graph())
        x = torch.randn(16, 5)
        y = torch.randint(0, 3, (16,))
        mg.train.fit(net, lambda n: torch.nn.functional.cross_entropy(n(x), y), lambda n: 0.0, steps=5)
        return net(x)

    assert torch.equal(run(), run())


def test_resuming_at_every_step_gives_the_same_result(tmp_path):
    """Including the steps that end a phase: the alternation's round test needs the last score after a resume."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()

    def make():
        torch.manual_seed(3)
        net = mg.ModuleGraph(mlp_graph())
        loss = lambda n: torch.nn.functional.cross_entropy(n(x), y)  # noqa: E731
        score = lambda n: (n(x).argmax(1) == y).float().mean().item()  # noqa: E731
        return net, Trainer(net, loss, score, "alternating", steps=40, rounds=3, tol=0.5, eval_every=3)

    net, trainer = make()
    saved = {}

    def callback(t):
        saved[t.step] = save_checkpoint(tmp_path / f"{t.step}.pt", t)

    whole = trainer.run(callback)
    assert len(whole.phases) < 2 + 2 * 3  # the round test ended the alternation early: resuming must not undo that
    ends = sorted({p["end"] for p in whole.phases} | {1, 7})
    for step in ends:
        net2, trainer2 = make()
        load_checkpoint(saved[step], trainer2)
        again = trainer2.run()
        assert again.phases == whole.phases and again.history == whole.history, f"resumed at step {step}"
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), net2.state_dict().values()))


@pytest.mark.parametrize("schedule", ["joint", "alternating"])
def test_resumed_ensemble_keeps_its_stopped_members_stopped(tmp_path, schedule):
    """An ensemble with per-member early stopping (joint) or per-member ends of the alternation (alternating),
    resumed before, while and after its members stop: the same steps, history and parameters as the uninterrupted
    run (the stopped members stay held and out of the forward pass)."""
    from modgraph.train import Ensemble, MemberAdam

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 40, 5, generator=gen)
    y = (x[..., 0] > 0).long() + (x[..., 1] > 0.5).long()
    lrs = torch.tensor([0.003, 0.03, 0.01])

    def make():
        torch.manual_seed(3)
        ens = Ensemble([mg.ModuleGraph(mlp_graph()) for _ in range(3)])
        ce = lambda e: torch.nn.functional.cross_entropy(e(x).transpose(1, 2), y, reduction="none").mean(1)  # noqa: E731
        score = lambda e: -torch.round(ce(e) * 10) / 10  # noqa: E731  (ties, so members stop)
        if schedule == "joint":
            return ens, Trainer(ens, lambda e: ce(e).sum(), score, "joint", steps=90, eval_every=3, patience=2,
                                optimizer=lambda p: MemberAdam(p, lr=lrs))
        return ens, Trainer(ens, lambda e: ce(e).sum(), score, "alternating", steps=60, eval_every=3, rounds=3,
                            tol=0.05, optimizer=lambda p: MemberAdam(p, lr=lrs))

    ens, trainer = make()
    saved, stopped_at = {}, {}

    def callback(t):
        saved[t.step] = save_checkpoint(tmp_path / f"{t.step}.pt", t)
        stopped_at[t.step] = int(t._stopped().sum()) if t._stopped() is not None else 0

    whole = trainer.run(callback)
    partly = [s for s, n in stopped_at.items() if 0 < n < 3]
    assert partly  # some members stopped before the last one
    if schedule == "joint":
        assert whole.steps < 90
    else:  # the third round ran for the members whose score still changed
        assert [p["round"] for p in whole.phases] == [0, 1, 1, 2, 2, 3, 3, 0]
    for step in (1, partly[0], partly[-1]):
        ens2, trainer2 = make()
        load_checkpoint(saved[step], trainer2)
        again = trainer2.run()
        assert again.history == whole.history and again.best_step == whole.best_step, f"resumed at step {step}"
        assert all(torch.equal(a, b) for a, b in zip(ens.state_dict().values(), ens2.state_dict().values()))


def _small_trainer():
    torch.manual_seed(0)
    net = mg.ModuleGraph(mlp_graph())
    return Trainer(net, lambda n: n(torch.zeros(1, 5)).sum(), lambda n: 0.0, steps=1)


def test_the_global_generators_and_the_extra_data_are_restored(tmp_path):
    # what the remaining steps draw from Python's, NumPy's and torch's generators after a resume is what they drew
    # after the save
    import random

    import numpy as np

    trainer = _small_trainer()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = save_checkpoint(tmp_path / "c.pt", trainer, extra={"finished": [1, 2], "name": "u"})
    after_save = (random.random(), np.random.rand(3).tolist(), torch.rand(3))
    random.seed(10), np.random.seed(20), torch.manual_seed(30)  # anything else in between
    extra = load_checkpoint(path, trainer)
    after_load = (random.random(), np.random.rand(3).tolist(), torch.rand(3))
    assert after_load[:2] == after_save[:2] and torch.equal(after_load[2], after_save[2])
    assert extra == {"finished": [1, 2], "name": "u"}


def test_a_file_that_is_not_a_checkpoint_or_lost_weights_is_named(tmp_path):
    trainer = _small_trainer()
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)  # a readable torch file, but no training checkpoint
    with pytest.raises(mg.CheckpointError, match=r"other\.pt: not a modgraph training checkpoint"):
        load_checkpoint(other, trainer)
    path = save_checkpoint(tmp_path / "c.pt", trainer)
    blob = torch.load(path, weights_only=True)
    lost = sorted(blob["trainer"]["net"])[0]
    del blob["trainer"]["net"][lost]  # same spec, one weight gone
    torch.save(blob, path)
    with pytest.raises(mg.CheckpointError, match=rf"c\.pt: the weights come from another architecture: missing "
                                                 rf"{lost}"):
        load_checkpoint(path, trainer)


def _small_trainer():
    x, y = torch.randn(8, 5), torch.zeros(8, dtype=torch.long)
    trainer = Trainer(mg.ModuleGraph(mlp_graph()), lambda n: torch.nn.functional.cross_entropy(n(x), y),
                      lambda n: 0.0, steps=2)
    trainer.run()
    return trainer


def test_extra_that_cannot_be_read_back_is_refused_before_writing(tmp_path):
    """A numpy number or a Path in ``extra`` was written, and the file then refused by every load (weights_only)."""
    import numpy as np

    trainer = _small_trainer()
    for value, kind in ((np.float64(0.5), r"numpy\.float64"), (Path("runs"), r"pathlib\.\w*Path")):
        with pytest.raises(TypeError, match=rf"^save_checkpoint: extra\['done'\]\[0\] is {kind}, which a checkpoint "
                                            r"cannot hold .*; nothing written$"):
            save_checkpoint(tmp_path / "a.pt", trainer, extra={"done": [value]})
    assert list(tmp_path.iterdir()) == []
    path = save_checkpoint(tmp_path / "a.pt", trainer, extra={"done": [0.5, "runs", (1, 2)]})
    assert load_checkpoint(path, _small_trainer()) == {"done": [0.5, "runs", (1, 2)]}


def test_a_wrong_target_or_trainer_is_named(tmp_path):
    trainer = _small_trainer()
    with pytest.raises(IsADirectoryError, match=rf"Is a directory \(give a file name\): '{tmp_path}'$"):
        save_checkpoint(tmp_path, trainer)  # named the temporary file before
    for fn in (save_checkpoint, load_checkpoint):
        with pytest.raises(TypeError, match=rf"^{fn.__name__}: expected a modgraph\.train\.Trainer .*, got "
                                            r"ModuleGraph; a network alone is saved .* modgraph\.save_network"):
            fn(tmp_path / "a.pt", trainer.net)
    torch.save({"format": "modgraph-checkpoint/1", "spec": None}, tmp_path / "damaged.pt")
    with pytest.raises(mg.CheckpointError, match=r"damaged\.pt: damaged checkpoint: no 'trainer', 'rng', 'extra'$"):
        load_checkpoint(tmp_path / "damaged.pt", trainer)  # a KeyError before


def test_extra_with_a_loop_or_readable_objects_names_the_value_that_cannot_be_read(tmp_path):
    """The extras go through modgraph.plaindata: a loop (which pickle keeps) made the search recurse until a
    RecursionError, and a dtype (which weights_only reads) was named instead of the Path after it."""
    trainer = _small_trainer()
    loop: list = [1]
    loop.append(loop)
    for extra in ({"loop": loop, "runs": [0, {"dir": Path("x")}]},
                  {"dtype": torch.float32, "size": torch.Size([2]), "runs": [0, {"dir": Path("x")}]}):
        with pytest.raises(TypeError, match=r"^save_checkpoint: extra\['runs'\]\[1\]\['dir'\] is pathlib\.\w*Path, "
                                            r"which a checkpoint cannot hold .*; nothing written$"):
            save_checkpoint(tmp_path / "a.pt", trainer, extra=extra)
    with pytest.raises(TypeError, match=r"^save_checkpoint: extra\['sets'\]\[0\] is builtins\.frozenset, "):
        save_checkpoint(tmp_path / "a.pt", trainer, extra={"sets": [frozenset({1})]})  # before: no place named
    assert list(tmp_path.iterdir()) == []
    saved = load_checkpoint(save_checkpoint(tmp_path / "a.pt", trainer, extra={"loop": loop}), _small_trainer())
    assert saved["loop"][1] is saved["loop"]  # a loop is still accepted: the file reads back


def test_checkpoint_paths_names_and_extras_of_the_wrong_kind_are_named(tmp_path):
    from modgraph.train import resume_or_start

    trainer = _small_trainer()
    for name in ("", "a/b.pt", ".."):  # before: taken, and saved elsewhere (or failed at the first save)
        with pytest.raises(ValueError, match=rf"^Checkpointer: name must be a file name in directory \(such as "
                                             rf"'last\.pt'\), got '{name}'; put folders in directory$"):
            Checkpointer(tmp_path, name=name)
    with pytest.raises(TypeError, match=r"^Checkpointer: extra must be a function returning a dict to save \(or "
                                        r"None\), got dict$"):
        Checkpointer(tmp_path, extra={"a": 1})  # before: "'dict' object is not callable" at the first save
    with pytest.raises(TypeError, match=r"^Checkpointer: expected a modgraph\.train\.Trainer"):
        Checkpointer(tmp_path, every=1)(trainer.net)  # before: an AttributeError
    for extra in ([1, 2], torch.ones(2)):  # before: a list was written; a tensor failed inside `extra or {}`
        with pytest.raises(TypeError, match=r"^save_checkpoint: extra must be a dict of plain data \(or None\), got "
                                            rf"{type(extra).__name__}; nothing written$"):
            save_checkpoint(tmp_path / "a.pt", trainer, extra=extra)
    for call, name in ((lambda p: save_checkpoint(p, trainer), "save_checkpoint"),
                       (lambda p: load_checkpoint(p, trainer), "load_checkpoint"),
                       (lambda p: resume_or_start(trainer, p, 5), "resume_or_start")):
        with pytest.raises(TypeError, match=rf"^{name}: path must be a file path \(a str or a Path\), got int 5$"):
            call(5)
    with pytest.raises(TypeError, match=r"^resume_or_start: expected a modgraph\.train\.Trainer .*got NoneType"):
        resume_or_start(None, tmp_path / "new.pt", 5)  # before: a Checkpointer that failed at its first call
    assert list(tmp_path.iterdir()) == []
    checkpointer = resume_or_start(trainer, tmp_path / "ok.pt", 1)
    checkpointer(trainer)
    assert (tmp_path / "ok.pt").exists() and checkpointer.path == tmp_path / "ok.pt"
