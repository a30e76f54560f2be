"""benchmarks/report.py: markdown tables from run.py's JSON; a bad file is one line and exit code 2."""

import json
from pathlib import Path

import pytest

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report():
    return load_script("benchmarks/report.py", "benchmarks_report")


def test_tables_of_the_committed_suite_run(report, capsys):
    assert report.main([str(ROOT / "docs" / "results" / "benchmarks" / "run.json")]) == 0
    out = capsys.readouterr().out
    rows = json.loads((ROOT / "docs" / "results" / "benchmarks" / "run.json").read_text())["results"]
    assert "| benchmark | ours | reference |" in out and "| nodes | edges | ours s/epoch |" in out
    for r in rows:
        if r["benchmark"] != "graph_scale":
            assert f"| {r['name']} |" in out
    assert "floor s/epoch" not in out  # that run predates the floor


def test_the_floor_columns_when_the_run_has_them(report, tmp_path, capsys):
    row = {"name": "graph_scale/1000", "benchmark": "graph_scale", "nodes": 1000, "edges": 9000, "ours_s": 0.5,
           "reference_s": 0.4, "ratio": 1.25, "floor_s": 0.2, "ratio_to_floor": 2.5, "ours_train_mb": 10.0,
           "reference_train_mb": 8.0, "memory_ratio": 1.25, "ours_peak_rss_mb": 300.0}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"results": [row]}))
    assert report.main([str(path)]) == 0
    assert "| 1,000 | 9,000 | 0.500 | 0.400 | 1.25 | 0.200 | 2.50 | 10 | 8 | 1.25 | 300 |" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it"),
    ('{"results": [', ":2:1: not valid JSON (Expecting value)"),
    ('{"rows": []}', 'expected {"results": [...], "machine": {...}}'),
    ('{"results": [{"name": "x"}]}', "row 0 has no benchmark"),
])
def test_a_bad_file_is_one_line(report, tmp_path, capsys, content, message):
    path = tmp_path / "bench.json"
    if content is not None:
        path.write_text(content.replace("[", "[\n", 1) if content.endswith("[") else content)
    assert report.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_is_help_not_a_file_name(report, capsys, flag):
    """'--help' was read as the name of a file: 'error: --help: cannot read it'."""
    assert report.main([flag]) == 0
    assert capsys.readouterr().out.startswith("usage: python benchmarks/report.py bench.json")
