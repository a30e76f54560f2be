"""experiments/cora.py: a short Cora run well above chance, its JSON rows, and one-line errors with exit code 2."""

import errno
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "cora.py"
sys.path.insert(0, str(SCRIPT.parent))

import cora  # noqa: E402


def test_short_cora_run_is_well_above_chance(data_root, tmp_path, capsys):
    out = tmp_path / "results.json"
    code = cora.main(["--data-root", str(data_root), "--model", "gcn,attention_gcn", "--seeds", "1",
                      "--epochs", "50", "--json", str(out), "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "test acc (%)" in printed and "attention_gcn" in printed
    rows = json.loads(out.read_text())["results"]
    assert [(r["dataset"], r["method"]) for r in rows] == [("cora", "gcn"), ("cora", "attention_gcn")]
    for row in rows:
        for key in ("test_acc_mean", "test_acc_std", "val_acc_mean", "train_acc_mean", "train_time_s_mean", "runs"):
            assert key in row
        assert row["runs"] == 1 and row["test_acc_std"] == 0.0
        assert row["test_acc_mean"] > 0.7  # chance is 1/7, the largest class 32%
        assert 1 <= row["best_epoch_mean"] <= 50
    assert rows[0]["attention"] is None and rows[1]["attention"] == "softmax"


def test_pubmed_partial_folder_is_one_line_with_exit_code_2(data_root, capsys):
    assert cora.run_main(cora.main, ["--dataset", "pubmed", "--data-root", str(data_root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "ind.pubmed.allx" in err and str(data_root) in err


def test_the_script_exits_through_run_main():
    assert "sys.exit(run_main(main))" in SCRIPT.read_text()


@pytest.mark.parametrize("args, message", [
    (["--dataset", "cora,pubmd"], "--dataset: unknown 'pubmd'; valid: cora, citeseer, pubmed"),
    (["--model", "gat"], "--model: unknown 'gat'; valid: gcn, attention_gcn, appnp, attention_appnp, hop_attention"),
    (["--seeds", "0"], "--seeds must be a positive integer, got 0"),
])
def test_user_errors(args, message, capsys):
    assert cora.run_main(cora.main, args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_root_offline(tmp_path, capsys):
    assert cora.run_main(cora.main, ["--data-root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "Planetoid Cora: no raw files found" in err and str(tmp_path / "nowhere") in err


def test_attention_flags_on_a_model_without_attention_warn(data_root, caplog, capsys):
    code = cora.main(["--data-root", str(data_root), "--model", "gcn", "--seeds", "1", "--epochs", "3",
                      "--schedule", "alternating", "--attention", "sigmoid"])
    assert code == 0
    assert "--schedule alternating needs attention; gcn has none and trains jointly" in caplog.text
    assert "--attention sigmoid does not apply to gcn" in caplog.text


def test_the_default_model_is_hop_attention():
    args = cora.build_parser().parse_args([])
    assert (args.model, args.dataset, args.seeds) == ("hop_attention", "cora", 10)


def test_per_dataset_settings_reach_the_model_and_the_optimiser():
    recipe = cora.RECIPES["hop_attention"]
    cite, plain = recipe.for_dataset("citeseer"), recipe.for_dataset("cora")
    assert (plain.weight_decay, cite.weight_decay) == (5e-3, 2e-2)
    assert plain.build(10, 3, "sigmoid").nodes["drop"]["p"] == 0.8
    assert cite.build(10, 3, "sigmoid").nodes["drop"]["p"] == 0.5
    # the baseline is the same DAG and recipe with the attention taken out
    base = cora.RECIPES["hops"].for_dataset("citeseer")
    assert (base.weight_decay, base.lr, base.epochs, base.patience) == (2e-2, cite.lr, cite.epochs, cite.patience)
    assert list(base.build(10, 3, None).edges) == list(cite.build(10, 3, "sigmoid").edges)


def test_weight_decay_dropout_and_combine_flags_change_the_recipe():
    args = cora.build_parser().parse_args(["--weight-decay", "0.005", "--dropout", "0.8", "--combine", "replace"])
    recipe = cora.RECIPES["hop_attention"].for_dataset("citeseer").changed(cora.flag_changes(args, "hop_attention"))
    assert recipe.weight_decay == 0.005 and recipe.build(10, 3, "sigmoid").nodes["drop"]["p"] == 0.8  # flag wins
    gat = cora.RECIPES["attention_gcn"].changed(cora.flag_changes(args, "attention_gcn"))
    assert {gat.build(10, 3, "softmax").nodes[n]["combine"] for n in ("conv1", "conv2")} == {"replace"}
    plain = cora.RECIPES["gcn"].changed(cora.flag_changes(args, "gcn"))
    g = plain.build(10, 3, None)
    assert g.nodes["drop_in"]["p"] == 0.8 and "combine" not in g.nodes["conv1"]


@pytest.mark.parametrize("args, message", [
    (["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0, got -1.0"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number >= 0, got nan"),  # `< 0` let NaN through
    (["--dropout", "1"], "--dropout must be a number in [0, 1), got 1.0"),
])
def test_bad_recipe_flags(args, message, tmp_path, capsys):
    assert cora.run_main(cora.main, ["--data-root", str(tmp_path / "nowhere"), *args]) == 2  # before any data
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_diverged_training_is_one_line_with_exit_code_2(data_root, monkeypatch, capsys):
    """modgraph.train raises TrainingDiverged when the validation score is NaN; the script says so in one line."""
    monkeypatch.setattr(cora, "selection_score", lambda net, d: float("nan"))
    assert cora.run_main(cora.main, ["--data-root", str(data_root), "--model", "gcn", "--seeds", "1", "--epochs", "2",
                                     "--device", "cpu", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: evaluate returned NaN at step 1; the training diverged; lower the learning "
                   "rate\n")


def test_a_json_write_that_fails_after_the_run_is_one_line(data_root, tmp_path, monkeypatch, capsys):
    """The path was fine when the flags were parsed, but the write fails (a full disk): one line, exit code 2."""
    def full(path, rows, **extra):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cora, "write_json", full)
    out = tmp_path / "rows.json"
    assert cora.run_main(cora.main, ["--data-root", str(data_root), "--model", "gcn", "--seeds", "1", "--epochs", "2",
                                     "--device", "cpu", "--threads", "1", "--json", str(out)]) == 2
    printed, err = capsys.readouterr()
    assert "test acc (%)" in printed  # the table was shown before the write
    assert err == f"error: --json {out}: cannot write (No space left on device)\n"
    assert list(tmp_path.iterdir()) == []
