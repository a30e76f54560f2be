"""benchmarks/record_overhead.py and benchmarks/run.py: rows with the documented keys, ratios that are ours / ref."""

import json
import subprocess

import pytest

from tests.helpers import load_script


@pytest.fixture(scope="module")
def record():
    return load_script("benchmarks/record_overhead.py", "record_overhead")


@pytest.fixture(scope="module")
def timing():
    return load_script("benchmarks/timing.py", "timing")


@pytest.fixture(scope="module")
def run():
    return load_script("benchmarks/run.py", "benchmarks_run")


def test_record_overhead_writes_step_and_fit_rows(record, tmp_path, capsys):
    out = tmp_path / "record.json"
    assert record.main(["--steps", "3", "--reps", "1", "--batch", "12", "--processes", "1", "--device", "cpu",
                        "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())["results"]
    assert [r["name"] for r in rows] == ["step", "fit"]
    for r in rows:
        assert r["ratio"] == pytest.approx(r["ours_s"] / r["reference_s"])
        assert r["ours_s"] > 0 and r["reference_s"] > 0 and r["every"] == 1 and r["network"] == "18-30-4"
        assert r["device"] == "cpu"
        assert f"ratio {r['ratio']:.3f}" in printed


def test_combine_takes_the_median_of_the_processes_ratios(timing):
    def rows(step, fit):  # (ours, reference) per measurement
        return [{"name": n, "ours_s": o, "reference_s": r, "ratio": o / r, "every": 1, "goal": 1.10, "met": None,
                 "ours_samples_s": [o], "reference_samples_s": [r]}
                for n, (o, r) in (("step", step), ("fit", fit))]

    runs = [rows((1.5, 1.0), (2.0, 2.0)), rows((3.3, 3.0), (2.2, 2.0)), rows((1.0, 1.0), (2.6, 2.0))]
    step, fit = timing.combine(runs)  # medians, not means (1.2 for the step's ratios)
    assert step["ratio"] == pytest.approx(1.1) and step["process_ratios"] == pytest.approx([1.5, 1.1, 1.0])
    assert (step["ours_s"], step["reference_s"], step["processes"]) == (1.5, 1.0, 3)  # medians of the times
    assert fit["ratio"] == pytest.approx(1.1) and fit["name"] == "fit" and fit["every"] == 1
    assert step["met"] is True and fit["met"] is True  # judged on the median ratio (one process had 1.5 and 1.3)
    assert "ours_samples_s" not in step  # one process's samples would pass for all of them
    with pytest.raises(ValueError, match="processes measured different things"):
        timing.combine([rows((1, 1), (1, 1)), rows((1, 1), (1, 1))[::-1]])


def test_record_overhead_in_fresh_processes(record, tmp_path, capsys):
    out = tmp_path / "record.json"
    assert record.main(["--steps", "2", "--reps", "1", "--batch", "8", "--hidden", "5", "--processes", "2",
                        "--every", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())["results"]
    assert [r["name"] for r in rows] == ["step", "fit"]
    for r in rows:
        assert r["processes"] == 2 and len(r["process_ratios"]) == 2 and r["network"] == "18-5-4" and r["every"] == 2
        assert r["ratio"] == pytest.approx(sum(r["process_ratios"]) / 2)
    assert printed.count("process ") == 2 and f"ratio {rows[0]['ratio']:.3f}" in printed


def test_a_failing_process_is_reported_in_one_line(record, monkeypatch, capsys):
    monkeypatch.setattr(subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 3, "", "Traceback ...\nMemoryError"))
    with pytest.raises(SystemExit) as stop:
        record.main(["--processes", "2"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "record_overhead: process 1 of 2 failed (exit code 3): Traceback ...\nMemoryError" in err


@pytest.mark.parametrize("flags, message", [
    (["--processes", "0"], "argument --processes: expected a positive integer, got 0"),
    (["--steps", "0"], "argument --steps: expected a positive integer, got 0"),
    (["--every", "x"], "argument --every: expected a positive integer, got 'x'"),
])
def test_record_overhead_rejects_bad_numbers_in_one_line(record, capsys, flags, message):
    with pytest.raises(SystemExit) as stop:
        record.main(flags)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_run_reads_the_record_overhead_json(run, tmp_path, monkeypatch):
    calls = []

    def fake(path, args, threads, timeout=None):  # the script's JSON, without the minutes of timing
        calls.append((path.name, args))
        out = args[args.index("--json") + 1]
        rows = [{"name": "step", "ours_s": 2.2e-3, "reference_s": 2e-3, "ratio": 1.1, "reference": "none"},
                {"name": "fit", "ours_s": 2.4e-3, "reference_s": 2e-3, "ratio": 1.2, "reference": "none"}]
        with open(out, "w") as f:
            json.dump({"results": rows}, f)
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(run, "run_script", fake)
    out = tmp_path / "bench.json"
    assert run.main(["--only", "record_overhead", "--quick", "--json", str(out)]) == 0
    assert calls[0][0] == "record_overhead.py" and "--reps" in calls[0][1] and "--processes" in calls[0][1]
    assert calls[0][1][calls[0][1].index("--device") + 1] in ("cpu", "cuda")
    rows = json.loads(out.read_text())["results"]
    assert [(r["name"], r["met"], r["goal"]) for r in rows] == [("record_overhead/step", True, 1.10),
                                                                ("record_overhead/fit", False, 1.10)]
    assert all(r["benchmark"] == "record_overhead" and "script_commit" in r for r in rows)


def test_run_reports_a_failed_script_as_a_row(run, tmp_path, monkeypatch):
    monkeypatch.setattr(run, "run_script",
                        lambda path, args, threads, timeout=None: subprocess.CompletedProcess(args, 1, "", "boom"))
    out = tmp_path / "bench.json"
    assert run.main(["--only", "record_overhead", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["status"] == "failed" and "exit code 1: boom" in row["reason"] and row["met"] is None


def test_run_rejects_an_unknown_benchmark(run, capsys):
    assert run.main(["--only", "executor,nope"]) == 2
    assert "unknown benchmark(s) ['nope']" in capsys.readouterr().err


@pytest.fixture(scope="module")
def executor():
    return load_script("benchmarks/executor.py", "executor_bench")


def test_executor_in_fresh_processes(executor, tmp_path, capsys):
    out = tmp_path / "executor.json"
    assert executor.main(["--reps", "1", "--steps", "2", "--processes", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())["results"]
    assert [r["name"] for r in rows] == ["executor/uci_mlp", "executor/uci_mlp_plain", "executor/random_dag_20"]
    for r in rows:
        assert r["processes"] == 2 and len(r["process_ratios"]) == 2 and r["steps_per_sample"] == 2
        assert r["ratio"] == pytest.approx(sum(r["process_ratios"]) / 2)
        assert r["met"] == (r["ratio"] <= 1.10) and r["goal"] == 1.10
        assert f"ratio {r['ratio']:.3f}" in printed
    assert printed.count("process ") == 2


def test_executor_adds_no_computing_operator_to_the_hand_written_step(executor):
    """The profile behind docs/benchmarks.md section 1: per step, ours calls the reference's computing operators
    exactly as often; the only extra calls are views and indexing (the allocator's unflatten, the sigmoid's flat
    view and its gradient's, the reported weights' detach)."""
    diff = executor.operator_differences(steps=2)
    assert set(diff) == {"uci_mlp", "uci_mlp_plain", "random_dag_20"}
    assert diff["uci_mlp_plain"] == {}
    assert diff["uci_mlp"] == {"aten::detach": (7.0, 6.0), "aten::unflatten": (1.0, 0.0),
                               "aten::reshape": (10.0, 7.0), "aten::view": (14.0, 10.0)}
    assert set(diff["random_dag_20"]) <= executor.NO_COMPUTE


def test_executor_profile_sees_an_extra_operator(executor):
    """The comparison can fail: a step that adds one multiplication shows it, as computing."""
    net, ref, x, y = executor.cases()["uci_mlp_plain"]
    ours = executor.operator_counts(net, lambda v: net(v) * 1.0, x, y, steps=2)
    theirs = executor.operator_counts(ref, ref, x, y, steps=2)
    differing = {k for k in set(ours) | set(theirs) if ours[k] != theirs[k]}
    assert ours["aten::mul"] == theirs["aten::mul"] + 2  # the product, and its gradient's
    assert not differing <= executor.NO_COMPUTE


@pytest.mark.parametrize("flags, message", [
    (["--processes", "0"], "argument --processes: expected a positive integer, got 0"),
    (["--reps", "0"], "argument --reps: expected a positive integer, got 0"),
    (["--threads", "-1"], "--threads must be 0 (torch's choice) or positive, got -1"),
])
def test_executor_rejects_bad_numbers_in_one_line(executor, capsys, flags, message):
    with pytest.raises(SystemExit) as stop:
        executor.main(flags)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_run_reads_the_executor_json(run, tmp_path, monkeypatch):
    calls = []

    def fake(path, args, threads, timeout=None):
        calls.append((path.name, args))
        rows = [{"name": "executor/uci_mlp", "ours_s": 1.1e-3, "reference_s": 1e-3, "ratio": 1.1, "goal": 1.10,
                 "met": True, "process_ratios": [1.0, 1.1, 1.2], "processes": 3}]
        with open(args[args.index("--json") + 1], "w") as f:
            json.dump({"results": rows}, f)
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(run, "run_script", fake)
    out = tmp_path / "bench.json"
    assert run.main(["--only", "executor", "--quick", "--json", str(out)]) == 0
    assert calls[0][0] == "executor.py" and calls[0][1][calls[0][1].index("--processes") + 1] == "2"
    (row,) = json.loads(out.read_text())["results"]
    assert (row["name"], row["met"], row["process_ratios"]) == ("executor/uci_mlp", True, [1.0, 1.1, 1.2])
    assert row["benchmark"] == "executor" and "script_commit" in row
