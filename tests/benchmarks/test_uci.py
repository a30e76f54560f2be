import numpy as np
import pytest
import torch

from modgraph.benchmarks.uci import (
    PAPER_TABLE2,
    TABLE1,
    Protocol,
    compare,
    format_comparison,
    format_table,
    paired_comparison,
    run_benchmark,
    run_method,
    validation_score,
)
from modgraph.data import UCIDataset
from modgraph.protocols import cv_splits

TINY = Protocol(folds=3, steps=120, eval_every=10, patience=4)


def toy(n=90, seed=0, name="toy"):
    """Three classes from a rule on two features (plus a noise feature): learnable in a few dozen steps."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5).astype(np.int64)
    return UCIDataset(name, X, y, ("a", "b", "noise"), ("0", "1", "2"), ())


def test_tables_are_the_papers():
    assert [TABLE1[d]["hidden"] for d in ("balance", "ecoli", "glass", "liver", "sonar", "vehicle")] == [
        18, 20, 22, 22, 20, 30]
    assert [TABLE1[d]["steps"] for d in TABLE1] == [15000, 30000, 40000, 20000, 15000, 40000]
    assert PAPER_TABLE2["balance"]["attention"] == (19.6942, 0.9960, 0.9840)
    assert PAPER_TABLE2["vehicle"]["WDBP"][2] == 0.6576


def test_validation_score_orders_by_accuracy_then_loss():
    count = torch.tensor([10.0, 10.0, 10.0])
    score = validation_score(torch.tensor([9.0, 0.1, 0.5]), torch.tensor([0.8, 0.7, 0.7]), count)
    assert score.argmax() == 0  # a higher accuracy wins whatever the loss
    assert score[1] > score[2]  # equal accuracy: the lower loss wins
    assert (score <= torch.tensor([0.8, 0.7, 0.7])).all() and (score >= torch.tensor([0.75, 0.65, 0.65])).all()


def test_paired_comparison():
    a = {"method": "a", "test_acc_runs": [0.9, 0.8, 0.85, 0.9]}
    b = {"method": "b", "test_acc_runs": [0.8, 0.7, 0.75, 0.8]}
    c = paired_comparison(a, b)
    assert c["diff"] == pytest.approx(0.1) and c["se"] == pytest.approx(0.0, abs=1e-12) and c["verdict"] == "ahead"
    noisy = {"method": "n", "test_acc_runs": [1.0, 0.6, 0.95, 0.8]}
    assert paired_comparison(noisy, a)["verdict"] == "tie"
    with pytest.raises(ValueError, match="do not hold the same runs"):
        paired_comparison(a, {"method": "d", "test_acc_runs": [0.5]})


@pytest.fixture(scope="module")
def rows():
    data = toy()
    return {m: run_method(data, m, TINY) for m in ("wd", "attention")}


def test_run_method_rows(rows):
    majority = np.bincount(toy().y).max() / 90
    for name, res in rows.items():
        row = res.row
        assert row["dataset"] == "toy" and row["method"] == name and row["runs"] == 3 and row["models"] == 9
        assert row["structure"] == "3-20-3" and row["paper"] is None
        assert row["test_acc_mean"] > majority + 0.15
        assert sum(row["chosen"].values()) == 3
        assert sum(r["n_test"] for r in res.runs) == 90  # the test folds partition the data
        for r in res.runs:
            assert r["n_train"] + r["n_val"] + r["n_test"] == 90
    assert rows["wd"].row["schedule"] == "joint" and rows["attention"].row["schedule"] == "alternating"
    names = [p["name"] for p in rows["attention"].phases]
    assert names[0] == "main" and names[-1] == "joint" and "attention" in names
    assert 0.0 <= rows["attention"].row["attention_on_fraction"] <= 1.0


def test_ahead_in_mean_ignores_float_noise_of_equal_accuracies():
    """Equal per-run accuracies summed in another order differ by ~1e-9 (float32): a tie, not a lead."""
    runs = [0.7142857313156128, 0.8571428656578064, 0.6190476417541504]
    rows = [{"dataset": "d", "method": "attention", "test_acc_runs": [r + 2e-9 for r in runs]},
            {"dataset": "d", "method": "wd", "test_acc_runs": runs},
            {"dataset": "e", "method": "attention", "test_acc_runs": [r + 1 / 210 for r in runs]},
            {"dataset": "e", "method": "wd", "test_acc_runs": runs}]
    c = compare(rows, against=("wd",))["wd"]
    assert c["datasets"]["d"]["diff"] > 0 and c["ahead_in_mean"] == 1  # only "e", one example in 210 ahead


def test_table_and_comparison(rows):
    table = format_table([rows["wd"].row, rows["attention"].row])
    assert "wd (WDBP)" in table and "attention" in table and "3-20-3" in table
    c = compare([rows["wd"].row, rows["attention"].row], against=("wd",))
    assert c["wd"]["compared"] == 1 and set(c["wd"]["datasets"]) == {"toy"}
    assert format_comparison([rows["wd"].row, rows["attention"].row], against=("wd",)).startswith("attention vs wd")


def test_the_test_fold_never_reaches_training_or_selection():
    """Scramble the features of split 0's test fold: that split's training, selection and choice do not change
    (the folds depend on the labels only; standardisation is fitted on the training part)."""
    protocol = Protocol(folds=2, steps=60, eval_every=10, patience=None)  # no early stop: members run alike
    data = toy(n=60, seed=3)
    first = run_method(data, "wd", protocol)
    test0 = cv_splits(data.y, 2, (0,), protocol.val_fraction)[0].test
    X = data.X.copy()
    X[test0] = -10 * X[test0][::-1]
    changed = UCIDataset(data.name, X, data.y, data.feature_names, data.class_names, ())
    second = run_method(changed, "wd", protocol)
    a, b = first.runs[0], second.runs[0]
    for key in ("train_acc", "val_acc", "best_step", "lam"):
        assert a[key] == b[key], key
    assert a["test_acc"] != b["test_acc"]


def test_worker_processes_give_the_same_results(caplog):
    data = [toy(n=60, seed=1, name="one"), toy(n=60, seed=2, name="two")]
    protocol = Protocol(folds=2, steps=40, eval_every=10, patience=None)
    serial = run_benchmark(data, ["plain", "attention"], protocol)
    with caplog.at_level("INFO", logger="modgraph.benchmarks.uci"):
        parallel = run_benchmark(data, ["plain", "attention"], protocol, workers=2)
    progress = [r.getMessage() for r in caplog.records if "programs done" in r.getMessage()]
    assert [m.split(":")[0] for m in progress] == ["1/4 programs done", "2/4 programs done", "3/4 programs done",
                                                   "4/4 programs done"]  # a line per program, from the parent
    assert [(r.row["dataset"], r.row["method"]) for r in parallel] == [("one", "plain"), ("one", "attention"),
                                                                       ("two", "plain"), ("two", "attention")]
    for a, b in zip(serial, parallel):
        assert a.row["test_acc_runs"] == b.row["test_acc_runs"] and a.runs == b.runs
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        run_benchmark(data, ["plain"], protocol, workers=0)


def test_data_that_cannot_be_run_is_named_before_training(tmp_path):
    """Too few rows for the folds, a single class, no feature: a DataError naming the data set and its file, the
    rows (per class) and the minimum, raised before any program trains."""
    from modgraph.errors import DataError

    small = UCIDataset("small", np.zeros((6, 2), np.float32), np.array([0, 1] * 3), ("a", "b"), ("x", "y"),
                       (tmp_path / "small.csv",))
    protocol = Protocol(folds=2, steps=20, eval_every=10)
    pattern = (r"data set 'small' \(.*small\.csv\) has 6 rows \(x: 3, y: 3\); 2-fold cross-validation with a "
               r"validation share of 0\.2 needs at least 10 rows")
    with pytest.raises(DataError, match=pattern):
        run_method(small, "plain", protocol)
    done = []
    with pytest.raises(DataError, match=pattern):  # the first table would train, the second cannot: neither does
        run_benchmark([toy(n=60), small], ["plain"], protocol, callback=done.append)
    assert done == []
    nine = UCIDataset("nine", np.zeros((9, 2), np.float32), np.array([0, 1] * 4 + [0]), ("a", "b"), ("x", "y"), ())
    with pytest.raises(DataError, match=r"data set 'nine' has 9 rows \(x: 5, y: 4\); 2-fold .* needs at least 10 "
                                        r"rows .*; 3 to 9 folds would fit these rows"):
        run_method(nine, "plain", protocol)
    with pytest.raises(DataError, match=r"10-fold .* needs at least 10 rows"):
        run_method(nine, "plain", Protocol(folds=10, steps=20))
    one = UCIDataset("one", np.zeros((20, 2), np.float32), np.zeros(20, np.int64), ("a", "b"), ("x",), ())
    with pytest.raises(DataError, match=r"data set 'one': a single class \(x\); classification needs two"):
        run_method(one, "plain", protocol)
    bare = UCIDataset("bare", np.zeros((20, 0), np.float32), np.arange(20) % 2, (), ("x", "y"), ())
    with pytest.raises(DataError, match="data set 'bare': no feature columns"):
        run_method(bare, "plain", protocol)
