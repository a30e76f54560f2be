"""experiments/scale.py: a small single-process run learns, reports its JSON row; bad flags are one line, exit 2."""

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

import scale  # noqa: E402

import modgraph as mg  # noqa: E402


def test_small_run_learns_and_writes_its_row(tmp_path, capsys):
    out, saved = tmp_path / "scale.json", tmp_path / "net.pt"
    threads = torch.get_num_threads()
    try:  # one thread: two threads on two busy cores wait on each other
        code = scale.main(["--nodes", "2000", "--epochs", "3", "--batch-size", "128", "--num-neighbors", "5,5",
                           "--hidden", "16", "--heads", "2", "--lr", "0.05", "--dropout", "0", "--device", "cpu",
                           "--threads", "1", "--json", str(out), "--save", str(saved)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    assert "s/epoch (train)" in capsys.readouterr().out
    (row,) = json.loads(out.read_text())["results"]
    assert row["nodes"] == 2000 and row["processes"] == 1 and row["steps_per_epoch"] == 10 and row["steps"] == 30
    assert row["best_val_acc"] > 0.6 and row["test_acc"] > 0.6  # 5 classes: chance is 0.2
    assert row["test_nodes"] == 400 and row["parameter_spread"] == 0.0 and row["peak_rss_mb_max"] > 0
    assert row["train_s_per_epoch"] > 0 and row["device"] == "cpu"
    assert mg.load_network(saved).to_dict()["nodes"]


def test_bad_flags_are_one_line_with_exit_code_2(capsys):
    assert scale.run_main(scale.main, ["--num-neighbors", "10,x"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --num-neighbors: expected positive integers or -1, "
                                               "comma-separated, got '10,x'")
    assert scale.run_main(scale.main, ["--num-neighbors", "10,10,10", "--nodes", "100"]) == 2
    assert "two graph convolutions" in capsys.readouterr().err
