import statistics

import numpy as np
import pytest
import torch

from modgraph.benchmarks import uci
from modgraph.benchmarks.methods import METHODS
from modgraph.benchmarks.uci import (
    PAPER_TABLE2,
    TABLE1,
    Protocol,
    budget,
    build_program,
    check_data,
    compare,
    format_comparison,
    format_table,
    paired_comparison,
    run_benchmark,
    run_method,
    summarize,
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
    with pytest.raises(ValueError, match=r"run_benchmark: methods names 'plain' more than once"):
        run_benchmark(data, ["plain", "attention", "plain"], protocol)  # ran twice, one result hiding the other
    with pytest.raises(ValueError, match=r"run_benchmark: datasets names 'one' more than once"):
        run_benchmark([data[0], data[0]], ["plain"], protocol)
    with pytest.raises(ValueError, match=r"run_benchmark: methods is empty; nothing to run"):
        run_benchmark(data, [], protocol)  # returned [] silently


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


# ---------------------------------------------------------------------------------------------------------------
# the batched program: every member's data, initial weights, loss, score and learning rate against a hand reference

LAMBDAS, LRS = (1e-4, 1e-3, 1e-2), (0.01, 0.03, 0.1)  # docs/uci.md's candidates, in order


def test_members_get_their_own_runs_data_standardised_on_the_fitted_part():
    """Member ``r * 3 + g`` (run r, candidate g) holds run r's train/val/test rows (the protocol's validation
    share), standardised with the mean and (population) std of run r's fitted part only; unequal folds (61 rows)
    are padded and masked."""
    data = toy(n=61, seed=4)
    protocol = Protocol(folds=2, seeds=(0, 1), steps=10, val_fraction=0.3)
    program = build_program(data, "wd", protocol)
    splits = cv_splits(data.y, 2, (0, 1), 0.3)
    assert [(s.seed, s.fold) for s in program.splits] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len({len(s.train) for s in splits}) == 2  # the padding is exercised
    for k in range(4 * 3):
        s, ps = splits[k // 3], program.splits[k // 3]
        fitted = data.X[s.train].astype(np.float64)
        mean, std = fitted.mean(0), fitted.std(0)
        for part in ("train", "val", "test"):
            idx = getattr(s, part)
            assert np.array_equal(getattr(ps, part), idx)
            x, y, mask = program.tensors[part]
            n = len(idx)
            assert int(mask[k].sum()) == n and bool(mask[k, :n].all())
            np.testing.assert_allclose(x[k, :n].numpy(), (data.X[idx] - mean) / std, rtol=1e-5, atol=1e-5)
            assert y[k, :n].tolist() == data.y[idx].tolist()
        x, _, mask = program.tensors["train"]  # so the fitted part itself is centred with unit variance
        fit_x = x[k][mask[k]].double()
        torch.testing.assert_close(fit_x.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)
        torch.testing.assert_close(fit_x.std(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-5,
                                   rtol=0)


def test_every_method_starts_a_run_from_the_same_main_weights():
    """Paired runs: the same splits and the same initial main weights in every method; the candidates of one run
    start alike, and every run (seed x fold) starts from its own draw."""
    data = toy(n=40, seed=5)
    protocol = Protocol(folds=2, seeds=(0, 1), steps=10)
    programs = {m: build_program(data, m, protocol) for m in METHODS}
    ref = programs["plain"]
    for name in ("nodes.h.weight", "nodes.h.bias", "nodes.y.weight", "nodes.y.bias"):
        w = ref.ensemble.stacked(name).detach()
        runs = w.reshape(4, 3, *w.shape[1:])
        assert all(torch.equal(runs[:, 0], runs[:, g]) for g in (1, 2)), name
        if name.endswith("weight"):
            firsts = runs[:, 0].flatten(1)
            assert all(not torch.equal(firsts[i], firsts[j]) for i in range(4) for j in range(i)), name
        for method, program in programs.items():
            assert torch.equal(program.ensemble.stacked(name).detach(), w), (method, name)
    for method, program in programs.items():
        for a, b in zip(program.splits, ref.splits):
            assert all(np.array_equal(getattr(a, p), getattr(b, p)) for p in ("train", "val", "test")), method


def _hand_logits(program, k, x):
    """Member k's MLP by hand: ``sigmoid(x W1^T + b1) W2^T + b2`` in float64."""
    w1, b1, w2, b2 = (program.ensemble.stacked(n)[k].detach().double()
                      for n in ("nodes.h.weight", "nodes.h.bias", "nodes.y.weight", "nodes.y.bias"))
    return torch.sigmoid(torch.as_tensor(x, dtype=torch.float64) @ w1.T + b1) @ w2.T + b2


def _hand_penalty(kind, w1, w2, a=0.1, w0=1.0):
    if kind == "wd":
        return float((w1**2).sum() + (w2**2).sum())
    if kind == "we":
        r = torch.cat([w1.flatten(), w2.flatten()]) ** 2 / w0**2
        return float((r / (1 + r)).sum())
    total = 0.0
    for j in range(w1.shape[0]):  # one group per hidden neuron: its incoming row and outgoing column
        t = float(torch.sqrt((w1[j] ** 2).sum() + (w2[:, j] ** 2).sum()))
        total += t if t >= a else -t**4 / (8 * a**3) + 3 * t**2 / (4 * a) + 3 * a / 8
    return total


@pytest.mark.parametrize("method", ["plain", "wd", "we", "sgl"])
def test_loss_is_the_sum_over_members_of_fitted_cross_entropy_plus_lam_times_penalty(method):
    data = toy(n=41, seed=6)
    program = build_program(data, method, Protocol(folds=2, seeds=(0, 1), steps=10))
    kind = METHODS[method].penalty
    expected = 0.0
    for k in range(12):
        s = program.splits[k // 3]
        fitted = data.X[s.train].astype(np.float64)
        x = (fitted - fitted.mean(0)) / fitted.std(0)
        y = torch.as_tensor(data.y[s.train])
        expected += float(torch.nn.functional.cross_entropy(_hand_logits(program, k, x), y))
        if kind is not None:
            w1, w2 = (program.ensemble.stacked(n)[k].detach().double() for n in ("nodes.h.weight", "nodes.y.weight"))
            expected += LAMBDAS[k % 3] * _hand_penalty(kind, w1, w2)
    assert float(program.loss_fn(program.ensemble)) == pytest.approx(expected, rel=1e-5)


def test_accuracy_and_validation_score_are_each_members_own():
    """Every member predicts class 0 (second layer zeroed, bias [2, 0, -1]): its accuracy on a part is the share
    of label 0 in its own run's rows of that part (padding never counts), its validation score
    ``acc - min(ce, 4) / (8 n_val)`` with its own validation rows."""
    data = toy(n=61, seed=7)
    program = build_program(data, "we", Protocol(folds=2, seeds=(0, 1), steps=10))
    bias = torch.tensor([2.0, 0.0, -1.0])
    with torch.no_grad():
        program.ensemble.stacked("nodes.y.weight").zero_()
        program.ensemble.stacked("nodes.y.bias").copy_(bias)
    acc = program.accuracies()
    score = program.evaluate(program.ensemble)
    ce_of = (torch.logsumexp(bias.double(), 0) - bias.double()).numpy()  # the cross-entropy of each label
    for k in range(12):
        s = program.splits[k // 3]
        for part in ("train", "val", "test"):
            y = data.y[getattr(s, part)]
            assert float(acc[part][k]) == pytest.approx(np.mean(y == 0), abs=1e-6), (k, part)
        y = data.y[s.val]
        ref = np.mean(y == 0) - min(ce_of[y].mean(), 4.0) / (8 * len(y))
        assert float(score[k]) == pytest.approx(ref, abs=1e-6), k
    assert len({round(float(a), 6) for a in acc["test"]}) > 1  # the runs' shares differ: a mix-up would show


@pytest.mark.parametrize("method, lrs", [("plain", LRS), ("attention", LRS), ("wd", (0.05,) * 3),
                                         ("attention+sgl", (0.05,) * 3)])
def test_each_member_steps_with_its_candidates_learning_rate(method, lrs):
    """Adam's first step moves every weight with a non-zero gradient by the learning rate (``lr * g / |g|``):
    the candidates' rates for the lr methods, the protocol's ``lr`` for the others."""
    program = build_program(toy(n=40, seed=8), method, Protocol(folds=2, steps=10, lr=0.05))
    w = program.ensemble.stacked("nodes.y.weight")
    before = w.detach().clone()
    opt = program.optimizer(list(program.ensemble.parameters()))
    opt.zero_grad()
    program.loss_fn(program.ensemble).backward()
    opt.step()
    step = (w.detach() - before).abs().flatten(1).amax(1)
    torch.testing.assert_close(step, torch.tensor(lrs * 2, dtype=step.dtype), rtol=1e-3, atol=0)


def test_each_run_reports_the_candidate_with_the_best_validation_score():
    """run_method's records against the same program fitted again (deterministic): run r's record is the member
    of run r with the highest best score (the first of equal ones), with that member's accuracies and knob."""
    data = toy(n=60, seed=2)
    protocol = Protocol(folds=2, seeds=(0, 1), steps=40, eval_every=10, patience=None)
    res = run_method(data, "plain", protocol)
    program = build_program(data, "plain", protocol)
    fit = program.fit(protocol)
    acc = program.accuracies()
    score = [float(v) for v in fit.best_score]
    assert len(res.runs) == 4
    for r, (record, split) in enumerate(zip(res.runs, program.splits)):
        members = range(3 * r, 3 * r + 3)
        best = max(members, key=lambda k: (score[k], -k))
        assert (record["seed"], record["fold"]) == (split.seed, split.fold)
        assert record["lr"] == LRS[best - 3 * r]
        assert record["val_acc"] == pytest.approx(max(float(acc["val"][k]) for k in members))
        for part in ("train", "val", "test"):
            assert record[f"{part}_acc"] == pytest.approx(float(acc[part][best])), (r, part)
        assert (record["n_train"], record["n_val"], record["n_test"]) == (len(split.train), len(split.val),
                                                                         len(split.test))
    assert {r["lr"] for r in res.runs} != {LRS[0]}  # not every run chose the first candidate: indices matter


def test_fit_trains_with_the_protocols_settings(monkeypatch):
    seen = {}

    class Recorder:
        def __init__(self, ensemble, loss_fn, evaluate, **kwargs):
            seen.update(kwargs)

        def run(self, callback=None):
            return "result"

    monkeypatch.setattr(uci, "Trainer", Recorder)
    protocol = Protocol(folds=2, steps=33, eval_every=7, patience=3, rounds=4, tol=0.02)
    program = build_program(toy(n=40), "attention", protocol)
    assert program.fit(protocol) == "result"
    assert seen == dict(schedule="alternating", steps=33, optimizer=program.optimizer, patience=3, eval_every=7,
                        rounds=4, tol=0.02, progress=False)


def test_protocol_defaults_are_the_documented_ones():
    """docs/uci.md: 10 stratified folds, 20 % validation, an evaluation every 25 steps, patience 10, Adam at 0.03,
    at most 2 rounds with tolerance 0.001, Table 1's budget."""
    assert Protocol().to_dict() == {"folds": 10, "seeds": [0], "val_fraction": 0.2, "schedule": "alternating",
                                    "steps": None, "budget_scale": 1.0, "patience": 10, "eval_every": 25,
                                    "lr": 0.03, "rounds": 2, "tol": 1e-3}


def test_budget_is_table1_scaled_or_the_protocols_steps():
    assert budget("balance", Protocol()) == (18, 15_000)
    assert budget("glass", Protocol(budget_scale=0.1)) == (22, 4_000)
    assert budget("glass", Protocol(steps=7, budget_scale=0.1)) == (22, 7)
    assert budget("sonar", Protocol(budget_scale=1e-9)) == (20, 1)  # at least one step
    assert budget("mine", Protocol()) == (20, 20_000)  # a --csv table


def test_the_fewest_rows_the_protocol_splits_are_accepted():
    """2 folds at 20 % need 10 rows (training folds of 5: one validation row); 10 rows pass, 6 fit only 6 folds."""
    ten = UCIDataset("ten", np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10) % 2, ("a", "b"),
                     ("x", "y"), ())
    check_data(ten, Protocol(folds=2))
    program = build_program(ten, "plain", Protocol(folds=2, steps=5))
    assert [int(m.sum()) for m in program.tensors["val"][2][::3]] == [1, 1]
    from modgraph.errors import DataError

    six = UCIDataset("six", np.zeros((6, 2), np.float32), np.arange(6) % 2, ("a", "b"), ("x", "y"), ())
    with pytest.raises(DataError, match=r"needs at least 10 rows .*; 6 folds would fit these rows$"):
        check_data(six, Protocol(folds=2))


# ---------------------------------------------------------------------------------------------------------------
# the summary row and the paired comparison, by hand


def _records(test, train, val, knob, values, attention_on):
    return [{"seed": 0, "fold": i, knob: v, "train_acc": tr, "val_acc": va, "test_acc": te, "attention_on": on}
            for i, (te, tr, va, v, on) in enumerate(zip(test, train, val, values, attention_on))]


def test_summary_row_by_hand():
    data = toy(n=30, name="balance")
    test, train, val = [0.9, 0.7, 0.8, 0.6], [1.0, 0.9, 0.95, 0.85], [0.8, 0.9, 0.7, 0.6]
    records = _records(test, train, val, "lam", [1e-3, 1e-2, 1e-3, 1e-3], [False] * 4)
    row = summarize("balance", METHODS["wd"], "joint", records, 12.0, 12, 345, 400, 20, data)
    assert row["test_acc_mean"] == pytest.approx(0.75) and row["train_acc_mean"] == pytest.approx(0.925)
    assert row["test_acc_std"] == pytest.approx(statistics.stdev(test))  # sample std (n - 1)
    assert row["train_acc_std"] == pytest.approx(statistics.stdev(train))
    assert row["val_acc_mean"] == pytest.approx(0.75)
    assert row["train_time_s_mean"] == pytest.approx(1.0) and row["train_time_s_per_run"] == pytest.approx(3.0)
    assert (row["runs"], row["models"], row["steps"], row["budget_steps"]) == (4, 12, 345, 400)
    assert row["chosen"] == {"0.001": 3, "0.01": 1} and row["test_acc_runs"] == test
    assert row["attention_on_fraction"] is None  # wd has no attention
    assert row["structure"] == "3-20-3" and row["paper_structure"] == "5-18-3"
    assert row["paper"] == {"train_time_s": 6.5427, "train_acc": 0.9672, "test_acc": 0.8982}  # Table 2, WDBP
    att = summarize("balance", METHODS["attention"], "alternating",
                    _records(test, train, val, "lr", [0.01] * 4, [True, False, True, True]), 12.0, 12, 1, 1, 20, data)
    assert att["attention_on_fraction"] == pytest.approx(0.75) and att["paper"]["test_acc"] == 0.9840
    one = summarize("balance", METHODS["wd"], "joint", records[:1], 3.0, 3, 1, 1, 20, data)
    assert (one["test_acc_std"], one["train_acc_std"]) == (0.0, 0.0)  # one run: no spread, not NaN


def test_summary_row_of_liver_drinks_is_not_tables_task():
    """Table 2's liver rows belong to the selector label; the ``drinks >= 3`` task gets no paper row."""
    X, y = np.zeros((20, 2), np.float32), np.arange(20) % 2
    selector = UCIDataset("liver", X, y, ("a", "b"), ("selector=1", "selector=2"), ())
    drinks = UCIDataset("liver", X, y, ("a", "b"), ("drinks<3", "drinks>=3"), ())
    records = _records([0.5], [0.5], [0.5], "lam", [1e-3], [False])
    args = ("liver", METHODS["wd"], "joint", records, 1.0, 3, 1, 1, 22)
    assert summarize(*args, selector)["paper"]["test_acc"] == 0.5043
    assert summarize(*args, drinks)["paper"] is None


def test_paired_comparison_standard_error_by_hand():
    def row(runs):
        return {"method": "m", "test_acc_runs": runs}

    base = [0.5, 0.5, 0.5, 0.5]
    c = paired_comparison(row([0.6, 0.8, 0.7, 0.5]), row(base))  # d = 0.1, 0.3, 0.2, 0.0
    d = [0.1, 0.3, 0.2, 0.0]
    assert c["diff"] == pytest.approx(0.15) and c["se"] == pytest.approx(statistics.stdev(d) / 2)
    assert c["verdict"] == "ahead"  # 0.15 > 2 x 0.0645
    assert paired_comparison(row(base), row([0.6, 0.8, 0.7, 0.5]))["verdict"] == "behind"
    c = paired_comparison(row([0.8, 0.4, 0.7, 0.5]), row(base))  # d = 0.3, -0.1, 0.2, 0.0: 1.1 standard errors
    assert c["se"] == pytest.approx(statistics.stdev([0.3, -0.1, 0.2, 0.0]) / 2) and c["verdict"] == "tie"
    single = paired_comparison(row([0.9]), row([0.1]))
    assert single["se"] == float("inf") and single["verdict"] == "tie"  # one run: no standard error


def test_compare_counts_by_hand():
    base = [0.5, 0.5, 0.5, 0.5]
    rows = []
    for dataset, runs in (("p", [0.6, 0.8, 0.7, 0.5]), ("q", [0.4, 0.2, 0.3, 0.5]), ("r", [0.8, 0.4, 0.7, 0.5]),
                          ("s", [0.3, 0.4, 0.4, 0.3])):
        rows += [{"dataset": dataset, "method": "attention", "test_acc_runs": runs},
                 {"dataset": dataset, "method": "wd", "test_acc_runs": base}]
    c = compare(rows, against=("wd", "we"))
    assert {d: v["verdict"] for d, v in c["wd"]["datasets"].items()} == {"p": "ahead", "q": "behind", "r": "tie",
                                                                         "s": "behind"}
    assert (c["wd"]["ahead_in_mean"], c["wd"]["ahead_significant"], c["wd"]["behind_significant"],
            c["wd"]["compared"]) == (2, 1, 2, 4)
    assert c["we"]["compared"] == 0


def test_table_shows_each_columns_own_spread():
    row = {"dataset": "d", "method": "wd", "structure": "3-20-3", "train_time_s_mean": 1.5, "train_acc_mean": 0.9,
           "train_acc_std": 0.01, "test_acc_mean": 0.8, "test_acc_std": 0.05, "paper": None}
    line = format_table([row]).splitlines()[2]
    assert "0.900 ± 0.010" in line and "0.800 ± 0.050" in line and "wd (WDBP)" in line


def test_ties_go_to_the_first_candidate_and_the_record_is_the_chosen_members(monkeypatch):
    """A stand-in trainer with hand-made best scores (it leaves the initial weights): each run reports the member
    with the highest score, the smaller candidate among equal ones, with that member's step, phase and attention."""
    from modgraph.train.fit import FitResult

    scores = [0.5, 0.7, 0.7, 0.9, 0.1, 0.2]  # run 0: candidates 1 and 2 tie, the first wins; run 1: candidate 0

    class Fixed:
        def __init__(self, ensemble, loss_fn, evaluate, **kwargs):
            pass

        def run(self, callback=None):
            return FitResult(torch.tensor(scores), torch.arange(6) * 10, 77, [], [{"name": "main"}],
                             [f"p{k}" for k in range(6)], [k % 2 == 1 for k in range(6)])

    monkeypatch.setattr(uci, "Trainer", Fixed)
    data, protocol = toy(n=40, seed=9), Protocol(folds=2, steps=10)
    res = run_method(data, "wd", protocol)
    initial = build_program(data, "wd", protocol).accuracies()
    for r, k in ((0, 1), (1, 3)):
        record = res.runs[r]
        assert record["lam"] == LAMBDAS[k - 3 * r] and record["best_step"] == 10 * k
        assert record["best_phase"] == f"p{k}" and record["attention_on"] == (k % 2 == 1)
        for part in ("train", "val", "test"):
            assert record[f"{part}_acc"] == pytest.approx(float(initial[part][k]))
    assert res.row["steps"] == 77 and res.phases == [{"name": "main"}]
    assert res.row["chosen"] == {"0.0001": 1, "0.001": 1}


def test_paired_comparison_refuses_rows_of_different_run_counts_either_way():
    # numpy broadcast one run against four: the old check only caught the longer row first
    one = {"dataset": "d", "method": "attention", "test_acc_runs": [0.9]}
    four = {"dataset": "d", "method": "wd", "test_acc_runs": [0.8, 0.7, 0.75, 0.8]}
    for a, b in ((four, one), (one, four)):
        with pytest.raises(ValueError, match=r"do not hold the same runs \((1 and 4|4 and 1)\)"):
            paired_comparison(a, b)
    with pytest.raises(ValueError, match="do not hold the same runs"):
        compare([one, four], against=("wd",))


@pytest.mark.parametrize("field, bad, message", [
    ("steps", 0, "steps must be a positive integer or None"),  # 0 used to mean Table 1's full budget
    ("folds", 1, "folds must be an integer >= 2"),
    ("seeds", (), "seeds must be one or more non-negative integers"),
    ("val_fraction", 1.0, r"val_fraction must be a number in \(0, 1\)"),
    ("schedule", "alternate", "schedule must be one of joint, alternating, main"),
    ("budget_scale", 0.0, "budget_scale must be a finite number > 0"),
    ("patience", 0, "patience must be a positive integer or None"),
    ("eval_every", True, "eval_every must be a positive integer"),
    ("lr", float("nan"), "lr must be a finite number > 0"),
    ("rounds", 0, "rounds must be a positive integer"),
    ("tol", -1e-3, "tol must be a finite number >= 0"),
])
def test_protocol_names_a_bad_setting(field, bad, message):
    with pytest.raises(ValueError, match=f"Protocol: {message}"):
        Protocol(**{field: bad})


def test_protocol_steps_override_table1_and_seeds_become_a_tuple():
    assert budget("glass", Protocol(steps=7)) == (22, 7)
    assert budget("glass", Protocol(budget_scale=0.5)) == (22, 20_000)
    assert Protocol(seeds=[0, 1]).seeds == (0, 1)


def test_arguments_of_the_wrong_kind_are_named_before_training():
    data = toy(n=60)
    protocol = Protocol(folds=2, steps=20, eval_every=10)
    with pytest.raises(TypeError, match=r"^run_benchmark: methods must be a list, e\.g\. \['plain'\], got str "
                                        r"'plain'$"):
        run_benchmark([data], "plain", protocol)  # "unknown method 'p'" before
    with pytest.raises(TypeError, match=r"^run_benchmark: datasets must be a list, e\.g\. \[load_uci\('glass'\)\], got "
                                        r"UCIDataset"):
        run_benchmark(data, ["plain"], protocol)
    with pytest.raises(TypeError, match=r"^run_benchmark: datasets\[0\] must be a UCIDataset \(load_uci, load_csv\), "
                                        r"got str; load it first, e\.g\. load_uci\('glass'\)"):
        run_benchmark(["glass"], ["plain"], protocol)  # an AttributeError before
    with pytest.raises(TypeError, match=r"^protocol must be a Protocol \(e\.g\. Protocol\(folds=5\)\), got dict$"):
        run_benchmark([data], ["plain"], {"folds": 2})
    with pytest.raises(TypeError, match=r"^run_benchmark: store must be a modgraph\.train\.RunDir \(or None\), got "
                                        r"str$"):
        run_benchmark([data], ["plain"], protocol, store="runs")
    with pytest.raises(TypeError, match=r"^run_benchmark: callback must be a function callback\(result\), got int$"):
        run_benchmark([data], ["plain"], protocol, callback=5)  # after the first program had trained, before
    with pytest.raises(TypeError, match=r"^method must be a method name \(plain, .*\) or a Method, got NoneType$"):
        run_method(data, None, protocol)
    with pytest.raises(TypeError, match=r"^Protocol: seeds must be a list of seeds, one repetition each .* got 3$"):
        Protocol(seeds=3)
    with pytest.raises(ValueError, match=r"^Protocol: seeds must be distinct \(a seed twice repeats the same runs\), "
                                         r"got \(0, 0\)$"):
        Protocol(seeds=(0, 0))
