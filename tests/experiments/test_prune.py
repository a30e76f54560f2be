"""experiments/prune.py: CI-sized UCI and Cora runs write the promised rows and figure; user errors exit 2."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

import prune as script  # noqa: E402

REQUIRED = {"dataset", "criterion", "sparsity", "params_before", "params_after", "test_acc_before", "test_acc_after"}


def test_fast_uci_run_writes_rows_and_curves(tmp_path, data_root, capsys):
    out, png = tmp_path / "rows.json", tmp_path / "curves.png"
    code = script.main(["--dataset", "balance", "--fast", "--criteria", "attention,magnitude,random",
                        "--data-root", str(data_root), "--json", str(out), "--plot", str(png)])
    assert code == 0
    rows = json.loads(out.read_text())["results"]
    assert all(REQUIRED <= set(r) for r in rows)
    assert {r["criterion"] for r in rows} == {"attention", "magnitude", "random"}
    assert sorted({r["sparsity"] for r in rows}) == [0.0, 0.5, 0.8]
    for r in rows:
        assert r["dataset"] == "balance" and 0.0 <= r["test_acc_after"] <= 1.0
        assert r["neurons_after"] == 18 - round(18 * r["sparsity"])
        assert (r["params_after"] < r["params_before"]) == (r["sparsity"] > 0)
    assert png.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert script.main(["--from-json", str(out)]) == 0  # the tables again, from the file alone
    printed = capsys.readouterr().out
    assert "balance (1 seed)" in printed and "largest sparsity within 1 point of unpruned" in printed


def test_fast_cora_run_removes_graph_edges(tmp_path, data_root, capsys):
    out = tmp_path / "cora.json"
    code = script.main(["--dataset", "cora", "--fast", "--sparsities", "0.3", "--data-root", str(data_root),
                        "--json", str(out)])
    assert code == 0
    blob = json.loads(out.read_text())
    rows = blob["results"]
    assert all(REQUIRED <= set(r) for r in rows)
    assert {r["criterion"] for r in rows} == {"attention", "magnitude", "random"}  # sgl scores units, not edges
    for r in rows:
        assert r["edges_before"] == 10556 and r["params_after"] == r["params_before"]
        assert r["edges_after"] == 10556 - 2 * 1583  # 30%, both directions of an undirected edge together
        assert 0.0 <= r["test_acc_after"] <= 1.0
    chosen = {r["variant"] for r in rows if r["criterion"] == "attention"}
    others = {r["variant"] for r in blob["unselected_variants"]}
    assert len(chosen) == 1 and chosen | others == {"mean", "relative"}
    assert "cora (1 seed)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "nope"], "--dataset: unknown nope; valid: uci, balance"),
    (["--dataset", "balance", "--sparsities", "0.5,1.0"], r"every sparsity must be in \[0, 1\), got 1.0"),
    (["--dataset", "balance", "--criteria", "l2"], "--criteria: unknown l2"),
    (["--dataset", "cora", "--criteria", "sgl"], "SGL scores hidden units, not graph edges"),
    (["--dataset", "balance", "--attention-variants", "median"], "--attention-variants: unknown median"),
    (["--dataset", "balance", "--seeds", "0"], "--seeds must be a positive integer, got 0"),
    (["--from-json", "/nonexistent/rows.json"], "--from-json: no such file"),
])
def test_user_errors_exit_2_with_one_line(capsys, argv, message):
    assert script.run_main(script.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err)
