"""Every experiment script, killed with SIGKILL mid-run and resumed with --resume, ends with the uninterrupted
run's results (timing fields aside); checkpoint folders of another configuration or damaged files are refused in
one line with exit code 2."""

import json
import sys

import pytest

from .killing import ROOT, kill_and_resume, stable

sys.path.insert(0, str(ROOT / "experiments"))

import cora  # noqa: E402
import prune  # noqa: E402
import scale  # noqa: E402
import uci  # noqa: E402
import uci_distributed  # noqa: E402


def test_cora_killed_and_resumed(tmp_path, data_root):
    args = ["--data-root", str(data_root), "--model", "attention_gcn", "--seeds", "3", "--epochs", "20", "--threads",
            "1", "--device", "cpu", "--checkpoint-every", "5"]
    # killed once seed 0 is finished and seed 1 has a checkpoint in progress: one unit skipped, one continued
    whole, resumed, folder = kill_and_resume(tmp_path, cora.main, "cora.py", args,
                                             wait_for="progress/cora--attention_gcn--seed1.pt")
    assert stable(resumed) == stable(whole)
    assert len(list(folder.glob("units/*.json"))) == 3 and not list(folder.glob("progress/*.pt"))
    assert resumed["results"][0]["per_seed"][0]["test_acc"] == whole["results"][0]["per_seed"][0]["test_acc"]


def test_uci_killed_and_resumed(tmp_path, data_root):
    args = ["--data-root", str(data_root), "--fast", "--dataset", "balance", "--method", "wd,attention", "--steps",
            "150", "--threads", "1", "--device", "cpu", "--checkpoint-every", "10"]
    # killed once the wd program is finished and the attention program has saved its training in progress
    whole, resumed, folder = kill_and_resume(tmp_path, uci.main, "uci.py", args,
                                             wait_for="progress/balance--attention.pt")
    assert stable(resumed) == stable(whole)
    assert [p.name for p in sorted(folder.glob("units/*.json"))] == ["balance--attention.json", "balance--wd.json"]
    assert resumed["runs"] == whole["runs"] and resumed["phases"] == whole["phases"]


def test_prune_killed_and_resumed(tmp_path, data_root):
    args = ["--data-root", str(data_root), "--fast", "--dataset", "balance", "--criteria", "attention,random",
            "--threads", "1", "--device", "cpu"]
    # killed once the first prune point is saved: the base network is retrained, the saved points are skipped
    whole, resumed, folder = kill_and_resume(tmp_path, prune.main, "prune.py", args)
    assert stable(resumed) == stable(whole)
    assert len(list(folder.glob("units/*.json"))) == len(whole["results"]) + len(whole["unselected_variants"]) == 6


def test_scale_killed_and_resumed(tmp_path):
    args = ["--nodes", "2000", "--epochs", "15", "--batch-size", "128", "--num-neighbors", "5,5", "--hidden", "16",
            "--heads", "2", "--lr", "0.05", "--device", "cpu", "--threads", "1"]
    # killed after an epoch end was saved: resumed from there, with the batch order, sampling and dropout of the
    # uninterrupted run
    whole, resumed, folder = kill_and_resume(tmp_path, scale.main, "scale.py", args,
                                             wait_for="progress/train-rank0.pt")
    assert stable(resumed) == stable(whole)
    assert whole["results"][0]["steps"] == 150 and whole["results"][0]["best_val_acc"] > 0.6


SCRIPTS = {"cora": cora, "uci": uci, "uci_distributed": uci_distributed, "prune": prune, "scale": scale}
TINY_SCALE = ["--nodes", "300", "--epochs", "2", "--batch-size", "64", "--num-neighbors", "3,3", "--hidden", "8",
              "--heads", "2", "--device", "cpu", "--threads", "1"]


def one_line_error(module, argv, capsys) -> str:
    assert module.run_main(module.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.strip()


@pytest.mark.parametrize("name", SCRIPTS)
def test_resume_needs_a_checkpoint_dir(name, capsys):
    err = one_line_error(SCRIPTS[name], ["--resume"], capsys)
    assert err == "error: --resume needs --checkpoint-dir DIR (the folder of the run to continue)"


def test_a_folder_of_another_configuration_is_refused(tmp_path, capsys):
    folder = str(tmp_path / "ckpt")
    assert scale.main([*TINY_SCALE, "--checkpoint-dir", folder]) == 0
    capsys.readouterr()
    err = one_line_error(scale, [*TINY_SCALE, "--hidden", "12", "--checkpoint-dir", folder, "--resume"], capsys)
    assert err == (f"error: {folder}: the checkpoints were written by another configuration: --hidden is 8 there, "
                   "12 here")
    err = one_line_error(scale, [*TINY_SCALE, "--checkpoint-dir", folder], capsys)  # no --resume: never overwritten
    assert "holds an earlier run; add --resume to continue it, or use an empty folder" in err


def test_a_checkpoint_of_another_architecture_or_a_damaged_one_is_named(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert scale.main([*TINY_SCALE, "--checkpoint-dir", str(a)]) == 0
    assert scale.main([*TINY_SCALE, "--model", "gcn", "--checkpoint-dir", str(b)]) == 0
    capsys.readouterr()
    saved = b / "progress" / "train-rank0.pt"
    saved.write_bytes((a / "progress" / "train-rank0.pt").read_bytes())  # a folder mixed up by hand
    err = one_line_error(scale, [*TINY_SCALE, "--model", "gcn", "--checkpoint-dir", str(b), "--resume"], capsys)
    assert err.startswith(f"error: {saved}: the checkpoint was written for another architecture: node ")
    saved.write_bytes(saved.read_bytes()[:100])  # truncated
    err = one_line_error(scale, [*TINY_SCALE, "--model", "gcn", "--checkpoint-dir", str(b), "--resume"], capsys)
    assert err.startswith(f"error: {saved}: not a readable modgraph file (")


def test_a_damaged_unit_file_is_named(tmp_path, data_root, capsys):
    """Truncated (not JSON any more), or JSON without what a resume reads: one line naming the file."""
    folder = tmp_path / "ckpt"
    args = ["--data-root", str(data_root), "--fast", "--dataset", "balance", "--method", "wd", "--steps", "20",
            "--checkpoint-dir", str(folder)]
    assert uci.main(args) == 0
    capsys.readouterr()
    unit = folder / "units" / "balance--wd.json"
    whole = unit.read_text()
    unit.write_text(whole[:-20])
    err = one_line_error(uci, [*args, "--resume"], capsys)
    assert err.startswith(f"error: {unit}: not a readable unit result (JSONDecodeError: ")
    unit.write_text(json.dumps({"key": "balance/wd", "result": {"row": {}}}))
    err = one_line_error(uci, [*args, "--resume"], capsys)
    assert err == f"error: {unit}: not a readable unit result (expected the keys row, runs, phases)"
    unit.write_text(json.dumps({"key": "balance/wd", "result": {"row": {"dataset": "balance"}, "runs": [],
                                                                  "phases": []}}))
    err = one_line_error(uci, [*args, "--resume"], capsys)
    assert err.startswith(f"error: {unit}: not a readable unit result (the row lacks method, schedule, ")


def test_scale_workers_is_part_of_the_configuration_and_run_json_is_required(tmp_path, capsys):
    """--workers changes scale.py's sampling (the loader's worker processes seed themselves); a folder without
    run.json cannot be checked against the flags at all."""
    folder = tmp_path / "ckpt"
    assert scale.main([*TINY_SCALE, "--checkpoint-dir", str(folder)]) == 0
    capsys.readouterr()
    err = one_line_error(scale, [*TINY_SCALE, "--workers", "1", "--checkpoint-dir", str(folder), "--resume"], capsys)
    assert err == (f"error: {folder}: the checkpoints were written by another configuration: --workers is 0 there, "
                   f"1 here")
    (folder / "run.json").unlink()
    for resume in ([], ["--resume"]):
        err = one_line_error(scale, [*TINY_SCALE, "--checkpoint-dir", str(folder), *resume], capsys)
        assert err == (f"error: {folder} holds progress/ but no run.json: it cannot be checked against these flags; "
                       f"use an empty folder or restore run.json")


def test_uci_distributed_resumes_a_folder_of_uci(tmp_path, data_root, capsys):
    """The two scripts' folders interchange: a program saved by uci.py is skipped, a missing one is run."""
    folder, first, second = tmp_path / "ckpt", tmp_path / "a.json", tmp_path / "b.json"
    args = ["--data-root", str(data_root), "--fast", "--dataset", "balance", "--method", "wd,attention", "--steps",
            "60", "--threads", "1", "--device", "cpu", "--checkpoint-dir", str(folder)]
    assert uci.main([*args, "--json", str(first)]) == 0
    (folder / "units" / "balance--attention.json").unlink()
    assert uci_distributed.main([*args, "--json", str(second), "--resume"]) == 0
    assert stable(json.loads(second.read_text()))["results"] == stable(json.loads(first.read_text()))["results"]
    capsys.readouterr()
    err = one_line_error(uci, [*args, "--checkpoint-every", "0", "--resume"], capsys)
    assert err == "error: --checkpoint-every must be a positive integer, got 0"


def test_prune_on_a_graph_skips_saved_points(tmp_path, data_root):
    folder, first, second = tmp_path / "ckpt", tmp_path / "a.json", tmp_path / "b.json"
    args = ["--data-root", str(data_root), "--fast", "--dataset", "cora", "--criteria", "attention,random",
            "--sparsities", "0.3", "--threads", "1", "--device", "cpu", "--checkpoint-dir", str(folder)]
    assert prune.main([*args, "--json", str(first)]) == 0
    units = sorted(folder.glob("units/*.json"))
    assert [p.name for p in units] == ["cora--seed0--attention--mean--0.3.json",
                                       "cora--seed0--attention--relative--0.3.json",
                                       "cora--seed0--random--uniform--0.3.json"]
    units[1].unlink()  # as if killed before the second point finished: the base network is trained again
    assert prune.main([*args, "--json", str(second), "--resume"]) == 0
    assert stable(json.loads(second.read_text())) == stable(json.loads(first.read_text()))
