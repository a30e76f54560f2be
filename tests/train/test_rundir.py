"""modgraph.train.RunDir: finished units saved and skipped, the configuration checked, damaged files named."""

import json

import pytest
import torch

import modgraph as mg
from modgraph.train import RunDir, Trainer, resume_or_start

from ..helpers import mlp_graph


def test_units_are_saved_once_and_read_back_as_json(tmp_path):
    store = RunDir(tmp_path / "run", {"--epochs": 3})
    calls = []

    def compute():
        calls.append(1)
        return {"acc": 0.1 + 0.2, "shape": (2, 3), "nan": float("nan")}

    first = store.unit("cora/gcn/seed0", compute)
    again = RunDir(tmp_path / "run", {"--epochs": 3}, resume=True).unit("cora/gcn/seed0", compute)
    assert calls == [1] and first["shape"] == again["shape"] == [2, 3] and first["acc"] == again["acc"] == 0.1 + 0.2
    assert [p.name for p in store.finished()] == ["cora--gcn--seed0.json"]
    memory = RunDir(None, {})  # no folder: nothing written, the same JSON values
    assert memory.unit("k", lambda: (1, 2)) == [1, 2] and memory.progress_path("k") is None


def test_another_configuration_is_refused_naming_the_setting(tmp_path):
    RunDir(tmp_path, {"script": "cora.py", "--epochs": 50, "--model": "gcn"})
    with pytest.raises(mg.CheckpointError, match=r"written by another configuration: --epochs is 50 there, 30 here"):
        RunDir(tmp_path, {"script": "cora.py", "--epochs": 30, "--model": "gcn"}, resume=True)
    with pytest.raises(mg.CheckpointError, match=r"--combine is '<absent>' there, 'gcn' here"):
        RunDir(tmp_path, {"script": "cora.py", "--epochs": 50, "--model": "gcn", "--combine": "gcn"}, resume=True)
    with pytest.raises(mg.CheckpointError, match="already holds a run; resume it or use an empty folder"):
        RunDir(tmp_path, {"script": "cora.py", "--epochs": 50, "--model": "gcn"})


def test_damaged_files_are_named(tmp_path):
    store = RunDir(tmp_path, {"a": 1})
    store.finish("u", {"x": 1})
    path = store.unit_path("u")
    path.write_text(path.read_text()[:7])  # truncated
    with pytest.raises(mg.CheckpointError, match=r"u\.json: not a readable unit result \(JSONDecodeError"):
        store.done("u")
    path.write_text(json.dumps({"key": "other", "result": 1}))
    with pytest.raises(mg.CheckpointError, match=r"u\.json: not the result of unit 'u'"):
        store.done("u")
    path.write_text(json.dumps({"key": "u"}))  # no result
    with pytest.raises(mg.CheckpointError, match=r"u\.json: not the result of unit 'u'"):
        store.done("u")
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(mg.CheckpointError, match=r"run\.json: not a readable run description"):
        RunDir(tmp_path, {"a": 1}, resume=True)
    (tmp_path / "run.json").write_text("[]")
    with pytest.raises(mg.CheckpointError, match=r"run\.json: not a modgraph run description"):
        RunDir(tmp_path, {"a": 1}, resume=True)


def test_resume_or_start_continues_a_saved_training(tmp_path):
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))

    def make():
        torch.manual_seed(0)
        net = mg.ModuleGraph(mlp_graph())
        return net, Trainer(net, lambda n: torch.nn.functional.cross_entropy(n(x), y),
                            lambda n: -float(torch.nn.functional.cross_entropy(n(x), y)), steps=10)

    net, trainer = make()
    whole = trainer.run()
    net2, trainer2 = make()
    trainer2.run(lambda t: (t.step == 4 and resume_or_start(t, tmp_path / "p.pt", every=4)(t)))  # a save at step 4
    net3, trainer3 = make()
    callback = resume_or_start(trainer3, tmp_path / "p.pt", every=4)
    assert trainer3.step == 4
    assert trainer3.run(callback).history == whole.history
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), net3.state_dict().values()))


def test_a_folder_with_units_or_progress_but_no_run_json_is_refused(tmp_path):
    for sub, name in (("units", "a.json"), ("progress", "a.pt")):
        folder = tmp_path / sub
        RunDir(folder, {"a": 1})
        (folder / sub).mkdir()
        (folder / sub / name).write_text("{}")
        (folder / "run.json").unlink()  # lost: the saved results could belong to any flags
        for resume in (False, True):
            with pytest.raises(mg.CheckpointError, match=rf"holds {sub}/ but no run\.json: it cannot be checked "
                                                         rf"against these flags; use an empty folder or restore"):
                RunDir(folder, {"a": 2}, resume=resume)
    RunDir(tmp_path / "empty", {"a": 1}, resume=True)  # an empty or missing folder still starts a run


def test_a_unit_result_the_caller_cannot_read_is_named(tmp_path):
    def check(result):
        return None if isinstance(result, dict) and "method" in result else "no method"

    store = RunDir(tmp_path, {"a": 1}, check_unit=check)
    store.finish("u", {"method": "wd"})
    assert RunDir(tmp_path, {"a": 1}, resume=True, check_unit=check).done("u") == {"method": "wd"}
    store.unit_path("u").write_text(json.dumps({"key": "u", "result": {"row": {}}}))  # valid JSON, damaged
    with pytest.raises(mg.CheckpointError, match=r"u\.json: not a readable unit result \(no method\)"):
        RunDir(tmp_path, {"a": 1}, resume=True, check_unit=check).done("u")


def test_temporaries_of_a_killed_write_are_removed_when_the_run_restarts(tmp_path):
    store = RunDir(tmp_path, {"a": 1})
    store.finish("u", 1)
    (tmp_path / "progress").mkdir()
    stale = [tmp_path / ".run.json.k2j_9xQa.tmp", tmp_path / "units" / ".u.json.abcd1234.tmp",
             tmp_path / "progress" / ".train-rank0.pt.Zz0_aB9c.tmp"]
    kept = [tmp_path / "units" / "notes.tmp", tmp_path / ".hidden.tmp", tmp_path / "units" / ".u.json.bak"]
    for path in stale + kept:
        path.write_text("x")
    RunDir(tmp_path, {"a": 1}, resume=True, clean=False)  # a second process of the same run: nothing removed
    assert all(p.exists() for p in stale)
    RunDir(tmp_path, {"a": 1}, resume=True)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert store.done("u") == 1


def test_a_configuration_is_compared_as_it_reads_back_from_json(tmp_path):
    # a tuple in the flags is saved as a list: resuming with the same tuple is the same configuration
    RunDir(tmp_path, {"--layers": (8, 4), "--lr": 0.1})
    again = RunDir(tmp_path, {"--layers": (8, 4), "--lr": 0.1}, resume=True)
    assert again.config == {"--layers": [8, 4], "--lr": 0.1}
    assert RunDir(None, {"a": (1,)}).config == {"a": [1]}


def test_a_setting_dropped_since_the_run_started_is_named(tmp_path):
    RunDir(tmp_path, {"--epochs": 50, "--old": 1})
    with pytest.raises(mg.CheckpointError, match=r"another configuration: --old is 1 there, '<absent>' here"):
        RunDir(tmp_path, {"--epochs": 50}, resume=True)


def test_finishing_a_unit_drops_its_progress_checkpoint(tmp_path):
    store = RunDir(tmp_path, {"a": 1})
    progress = store.progress_path("cora/u")
    progress.parent.mkdir()
    progress.write_bytes(b"checkpoint")
    other = store.progress_path("v")
    other.write_bytes(b"checkpoint")
    store.finish("cora/u", {"x": 1})
    assert not progress.exists() and other.exists()  # only the finished unit's


@pytest.mark.parametrize("result", [0, 0.0, [], {}, "", False, None])  # None: a result, not "unfinished"
def test_a_falsy_result_counts_as_finished(tmp_path, result):
    calls = []

    def compute():
        calls.append(1)
        return result

    RunDir(tmp_path, {"a": 1}).unit("u", compute)
    again = RunDir(tmp_path, {"a": 1}, resume=True).unit("u", compute)
    assert calls == [1] and again == result


def test_empty_units_and_progress_folders_without_run_json_start_a_run(tmp_path):
    (tmp_path / "units").mkdir()
    (tmp_path / "progress").mkdir()
    RunDir(tmp_path, {"a": 1})  # nothing in them to check against the flags
    assert json.loads((tmp_path / "run.json").read_text())["config"] == {"a": 1}


def test_only_temporaries_named_like_an_atomic_write_are_removed(tmp_path):
    RunDir(tmp_path, {"a": 1})
    (tmp_path / "units").mkdir()
    stale = tmp_path / "units" / ".u.json.a1B2c3D4.tmp"  # mkstemp's 8 random characters
    kept = [tmp_path / "units" / ".u.json.old.tmp", tmp_path / ".notes.draft_version_2.tmp"]
    for path in (stale, *kept):
        path.write_text("x")
    RunDir(tmp_path, {"a": 1}, resume=True)
    assert not stale.exists() and all(p.exists() for p in kept)


def test_the_unit_checkpointer_resumes_a_unit_in_progress(tmp_path):
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))

    def make():
        torch.manual_seed(0)
        net = mg.ModuleGraph(mlp_graph())
        return net, Trainer(net, lambda n: torch.nn.functional.cross_entropy(n(x), y),
                            lambda n: -float(torch.nn.functional.cross_entropy(n(x), y)), steps=6)

    net, trainer = make()
    whole = trainer.run()
    store = RunDir(tmp_path, {"a": 1})
    _, first = make()
    save = store.checkpointer(first, "cora/u", every=3)
    first.run(lambda t: t.step <= 3 and save(t))  # killed after the save at step 3
    assert store.progress_path("cora/u").exists()
    net2, second = make()
    callback = RunDir(tmp_path, {"a": 1}, resume=True).checkpointer(second, "cora/u", every=3)
    assert second.step == 3
    assert second.run(callback).history == whole.history
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), net2.state_dict().values()))


def test_keys_that_would_map_to_one_file_keep_their_own_results(tmp_path):
    """'a b' and 'a_b' (and 'a/b' and 'a--b') once shared a file: the second finish overwrote the first's result."""
    store = RunDir(tmp_path / "run", {"x": 1})
    keys = ["a b", "a_b", "a/b", "a--b", "seed0/glass"]
    for i, key in enumerate(keys):
        store.finish(key, {"i": i})
    assert [store.done(key) for key in keys] == [{"i": i} for i in range(len(keys))]
    assert len({store.unit_path(key) for key in keys}) == len(keys) == len(store.finished())
    assert store.unit_path("a_b").name == "a_b.json" and store.unit_path("seed0/glass").name == "seed0--glass.json"


def test_a_config_or_result_that_is_not_plain_data_is_named(tmp_path):
    """json's own message ('Object of type float32 is not JSON serializable') said what, not where."""
    from pathlib import Path

    import numpy as np

    with pytest.raises(TypeError, match=r"^config\['root'\] is PosixPath .*; a run's config and unit results are"):
        RunDir(tmp_path / "a", {"seed": 0, "root": Path("data")})
    store = RunDir(tmp_path / "b", {"seed": 0})
    with pytest.raises(TypeError, match=r"^unit 'u': result\['runs'\]\[1\]\['acc'\] is float32 "):
        store.finish("u", {"runs": [{"acc": 0.5}, {"acc": np.float32(0.25)}]})
    assert store.done("u") is None and not (tmp_path / "b" / "units" / "u.json").exists()  # nothing written


def test_a_bad_value_after_a_shared_part_or_a_loop_is_named_where_it_is(tmp_path):
    """The config goes through modgraph.plaindata: a part used twice is not 'contains itself' (it was named so,
    instead of the Path after it); a real loop is named where it appears inside itself; nothing is written."""
    from pathlib import Path

    shared = [1, 2]
    with pytest.raises(TypeError, match=r"^config\['c'\]\[1\] is PosixPath PosixPath\('data'\); a run's config"):
        RunDir(tmp_path / "a", {"a": shared, "b": shared, "c": [0, Path("data")]})
    loop: list = [0]
    loop.append(loop)
    with pytest.raises(TypeError, match=r"^config\['a'\]\[1\] contains itself; a run's config"):
        RunDir(tmp_path / "a", {"a": loop})
    with pytest.raises(TypeError, match=r"^config\['a'\] has the key \(1, 2\) \(tuple\); a run's config"):
        RunDir(tmp_path / "a", {"a": {(1, 2): 3}})
    assert not (tmp_path / "a").exists()
    config = RunDir(None, {"a": shared, "b": shared, 1: float("nan")}).config  # accepted as before, as JSON reads it
    assert config["a"] == config["b"] == [1, 2] and config["1"] != config["1"]  # the key 1 as "1"; NaN
