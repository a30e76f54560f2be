"""experiments/scale.py: a small single-process run learns, reports its JSON row; bad flags are one line, exit 2."""

import errno
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

import scale  # noqa: E402

import modgraph as mg  # noqa: E402


def test_small_run_learns_and_writes_its_row(tmp_path, capsys):
    out, saved = tmp_path / "scale.json", tmp_path / "net.pt"
    # one thread (conftest restores the count): two threads on two busy cores wait on each other
    code = scale.main(["--nodes", "2000", "--epochs", "3", "--batch-size", "128", "--num-neighbors", "5,5",
                       "--hidden", "16", "--heads", "2", "--lr", "0.05", "--dropout", "0", "--device", "cpu",
                       "--threads", "1", "--json", str(out), "--save", str(saved)])
    assert code == 0
    assert "s/epoch (train)" in capsys.readouterr().out
    (row,) = json.loads(out.read_text())["results"]
    assert row["nodes"] == 2000 and row["processes"] == 1 and row["steps_per_epoch"] == 10 and row["steps"] == 30
    assert row["best_val_acc"] > 0.6 and row["test_acc"] > 0.6  # 5 classes: chance is 0.2
    assert row["test_nodes"] == 400 and row["parameter_spread"] == 0.0 and row["peak_rss_mb_max"] > 0
    assert row["train_s_per_epoch"] > 0 and row["device"] == "cpu"
    assert mg.load_network(saved).to_dict()["nodes"]


def test_steps_stops_early_never_late(tmp_path):
    """--steps caps the run below --epochs; a larger --steps does not train past --epochs (it used to: 7 steps)."""
    base = ["--nodes", "600", "--epochs", "1", "--batch-size", "128", "--num-neighbors", "3,3", "--hidden", "8",
            "--heads", "2", "--device", "cpu", "--threads", "1"]
    for steps, want in (("2", 2), ("7", 3)):  # 360 training nodes / 128 per batch: 3 steps per epoch
        out = tmp_path / f"steps{steps}.json"
        assert scale.main(base + ["--steps", steps, "--json", str(out)]) == 0
        (row,) = json.loads(out.read_text())["results"]
        assert row["steps_per_epoch"] == 3 and row["steps"] == want


def test_bad_flags_are_one_line_with_exit_code_2(capsys):
    assert scale.run_main(scale.main, ["--num-neighbors", "10,x"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --num-neighbors: expected positive integers or -1, "
                                               "comma-separated, got '10,x'")
    assert scale.run_main(scale.main, ["--num-neighbors", "10,10,10", "--nodes", "100"]) == 2
    assert "two graph convolutions" in capsys.readouterr().err


TINY = ["--nodes", "300", "--hidden", "8", "--heads", "2", "--device", "cpu", "--threads", "1"]


def test_a_save_that_fails_after_the_run_still_writes_the_json(tmp_path, monkeypatch, capsys):
    """--save fails at the end (a full disk; the path was fine when parsed): the row still reaches --json, and the
    failure is one line with exit code 2, not a traceback."""
    def full(net, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(mg, "save_network", full)
    out, saved = tmp_path / "scale.json", tmp_path / "net.pt"
    assert scale.run_main(scale.main, [*TINY, "--json", str(out), "--save", str(saved)]) == 2
    printed, err = capsys.readouterr()
    assert f"wrote {out}" in printed and json.loads(out.read_text())["results"][0]["nodes"] == 300
    assert err == f"error: --save {saved}: cannot write (No space left on device)\n" and not saved.exists()


def test_degenerate_settings_are_refused_not_reported(capsys):
    """One class gave 100.0 accuracy, --eval-nodes 0 an accuracy of 0.0 over no nodes; both ran to the end."""
    assert scale.run_main(scale.main, [*TINY, "--classes", "1"]) == 2
    assert capsys.readouterr() == ("", "error: --classes must be an integer >= 2 (with one class every prediction "
                                       "is right), got 1\n")
    assert scale.run_main(scale.main, [*TINY, "--eval-nodes", "0"]) == 2
    assert capsys.readouterr() == ("", "error: --eval-nodes must be a positive integer (an accuracy over no nodes "
                                       "means nothing), got 0\n")
