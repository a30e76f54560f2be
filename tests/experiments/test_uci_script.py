"""experiments/uci.py: a --fast run beats the majority class and writes the JSON the issue asks for."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"dataset", "method", "test_acc_mean", "test_acc_std", "train_acc_mean", "train_time_s_mean", "runs"}


@pytest.fixture(scope="module")
def script():
    return load_script("experiments/uci.py", "uci_script")


def test_fast_run_beats_the_majority_class(script, data_root, tmp_path, capsys):
    out = tmp_path / "uci.json"
    code = script.run_main(script.main, ["--fast", "--dataset", "balance", "--method", "wd,attention", "--steps", "150",
                            "--data-root", str(data_root), "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "balance" in printed and "wd (WDBP)" in printed and "0.898" in printed  # the paper's number beside ours
    assert "4-18-3 / 5-18-3" in printed  # our structure (features only) beside Table 1's
    payload = json.loads(out.read_text())
    rows = payload["results"]
    assert [(r["dataset"], r["method"]) for r in rows] == [("balance", "wd"), ("balance", "attention")]
    majority = 288 / 625  # balance: L 288, B 49, R 288
    for row in rows:
        assert REQUIRED <= set(row)
        assert row["runs"] == 3 and row["models"] == 9
        assert row["test_acc_mean"] > majority + 0.2
    assert payload["protocol"]["folds"] == 3 and payload["wall_time_s"] > 0


def test_csv_path(script, tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    lines = ["a,b,label"] + [f"{x:.4f},{y:.4f},{'yes' if x + y > 0 else 'no'}" for x, y in X]
    table = tmp_path / "toy.csv"
    table.write_text("\n".join(lines) + "\n")
    out = tmp_path / "toy.json"
    code = script.run_main(script.main, ["--fast", "--csv", str(table), "--label-column", "label", "--method", "plain",
                            "--steps", "100", "--json", str(out)])
    assert code == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["dataset"] == "toy" and row["structure"] == "2-20-2" and row["test_acc_mean"] > 0.75


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "iris"], "--dataset: unknown 'iris'; valid: balance, ecoli"),
    (["--method", "dropout"], "--method: unknown 'dropout'"),
    (["--csv", "x.csv"], "--csv needs --label-column"),
    (["--folds", "1"], "--folds must be an integer >= 2"),
])
def test_user_errors_exit_2_with_one_line(script, argv, message, capsys):
    assert script.run_main(script.main, argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_data_is_a_one_line_error(script, tmp_path, capsys):
    assert script.run_main(script.main, ["--dataset", "glass", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: UCI data set 'glass': file 'glass.data' not found") and err.count("\n") == 1
