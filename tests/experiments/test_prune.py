"""experiments/prune.py: CI-sized UCI and Cora runs write the promised rows and figure; user errors exit 2."""

import errno
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
    (["--dataset", "balance", "--data-root", "/nonexistent", "--sgl-lambda", "-1"],
     r"--sgl-lambda must be a finite number >= 0, got -1.0"),
    (["--dataset", "balance", "--data-root", "/nonexistent", "--sgl-lambda", "nan"],
     r"--sgl-lambda must be a finite number >= 0, got nan"),
    (["--dataset", "balance", "--data-root", "/nonexistent", "--finetune-lr", "nan"],
     r"--finetune-lr must be a finite number > 0, got nan"),
])
def test_user_errors_exit_2_with_one_line(capsys, argv, message):
    assert script.run_main(script.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err)


def _rows(**change) -> list[dict]:
    """Two rows as prune.py --json writes them for a UCI data set (one criterion, sparsity 0 and 0.5)."""
    rows = [{"dataset": "balance", "seed": 0, "criterion": "random", "variant": "uniform", "sparsity": s,
             "neurons_before": 18, "neurons_after": 18 - round(18 * s), "params_before": 147,
             "params_after": 147 - round(147 * s), "test_acc_before": 0.9, "test_acc_pruned": 0.8,
             "test_acc_after": 0.88 - s / 10, "val_acc_before": 0.9, "val_acc_after": 0.87} for s in (0.0, 0.5)]
    rows[0].update(change)
    return rows


def test_from_json_of_a_results_file_plots_the_curves(tmp_path, capsys):
    rows, png = tmp_path / "p.json", tmp_path / "curves.png"
    rows.write_text(json.dumps({"results": _rows(), "unselected_variants": []}))
    assert script.run_main(script.main, ["--from-json", str(rows), "--plot", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and "balance (1 seed)" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    ('{"results": [{"dataset": "balance", "method": "wd", "test_acc_mean": 0.9}]}',  # experiments/uci.py's JSON
     r"p.json: results\[0\] has no seed, criterion, variant, sparsity, .*; expected the --json file of an earlier "
     r"experiments/prune.py run"),
    ('{"results": [', r"p.json:1:14: not valid JSON \(Expecting value\); expected the --json file"),
    ('[1, 2]', r'p.json: not \{"results": \[...\], "unselected_variants": \[...\]\}; expected'),
    ('{"results": []}', r"p.json: the results are empty"),
    (json.dumps({"results": _rows(sparsity="half")}), r"p.json: results\[0\]: sparsity is 'half', expected a number"),
    (json.dumps({"results": _rows(), "unselected_variants": [{"dataset": "balance"}]}),
     r"p.json: unselected_variants\[0\] has no seed, criterion"),
])
def test_from_json_of_another_file_names_it_and_what_was_expected(content, message, tmp_path, capsys):
    (tmp_path / "p.json").write_text(content)
    assert script.run_main(script.main, ["--from-json", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --from-json {tmp_path}") and err.count("\n") == 1, err
    assert re.search(message, err), err


def test_from_json_of_a_folder_or_with_json_is_one_line(tmp_path, capsys):
    assert script.run_main(script.main, ["--from-json", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: --from-json {tmp_path}: is a directory; expected the --json file of an "
                                       f"earlier experiments/prune.py run\n")
    rows = tmp_path / "p.json"
    rows.write_text(json.dumps({"results": _rows()}))
    assert script.run_main(script.main, ["--from-json", str(rows), "--json", str(tmp_path / "again.json")]) == 2
    assert "--json: --from-json runs nothing, so writes no results" in capsys.readouterr().err


def test_an_unknown_plot_format_is_refused_before_reading_anything(tmp_path, capsys):
    rows = tmp_path / "p.json"
    rows.write_text(json.dumps({"results": _rows()}))
    assert script.run_main(script.main, ["--from-json", str(rows), "--plot", str(tmp_path / "out.xyz")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: --plot {tmp_path}/out.xyz: cannot draw to a '.xyz' file; supported:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


FAST_BALANCE = ["--dataset", "balance", "--fast", "--criteria", "random", "--device", "cpu", "--threads", "1"]


def test_a_diverged_training_is_one_line_with_exit_code_2(data_root, monkeypatch, capsys):
    monkeypatch.setattr(script, "val_score", lambda net, data: float("nan"))
    assert script.run_main(script.main, [*FAST_BALANCE, "--data-root", str(data_root)]) == 2
    err = capsys.readouterr().err
    assert err == ("error: evaluate returned NaN at step 5; the training diverged; lower the learning "
                   "rate\n")


def test_a_failed_write_at_the_end_still_writes_the_other_outputs(data_root, tmp_path, monkeypatch, capsys):
    """--json fails (a full disk, after the check when parsed): --plot is still written; one line, exit code 2."""
    def full(path, obj, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(script, "atomic_write_json", full)
    out, png = tmp_path / "rows.json", tmp_path / "curves.png"
    assert script.run_main(script.main, [*FAST_BALANCE, "--data-root", str(data_root), "--json", str(out),
                                         "--plot", str(png)]) == 2
    printed, err = capsys.readouterr()
    assert "balance (1 seed)" in printed and f"wrote {png}" in printed
    assert err == f"error: --json {out}: cannot write (No space left on device)\n"
    assert png.read_bytes()[:4] == b"\x89PNG" and not out.exists()


def test_a_figure_that_cannot_be_written_is_one_line(data_root, tmp_path, monkeypatch, capsys):
    import modgraph.plot

    def full(recorder, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(modgraph.plot, "weight_histograms", full)
    figures = tmp_path / "figs"
    assert script.run_main(script.main, [*FAST_BALANCE, "--data-root", str(data_root), "--figures", str(figures)]) == 2
    assert capsys.readouterr().err == (f"error: --figures {figures}: cannot write {figures}/balance_histograms.png (No "
                                       f"space left on device)\n")
