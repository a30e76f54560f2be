"""Every experiment script, killed with SIGKILL mid-run and resumed with --resume, ends with the uninterrupted
run's results (timing fields aside); checkpoint folders of another configuration or damaged files are refused in
one line with exit code 2."""

import sys

from .killing import ROOT, kill_and_resume, stable

sys.path.insert(0, str(ROOT / "experiments"))

import cora  # noqa: E402
import prune  # noqa: E402
import scale  # noqa: E402
import uci  # noqa: E402


def test_cora_killed_and_resumed(tmp_path, data_root):
    args = ["--data-root", str(data_root), "--seeds", "3", "--epochs", "20", "--threads", "1", "--device", "cpu",
            "--checkpoint-every", "5"]
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
