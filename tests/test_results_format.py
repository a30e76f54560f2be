"""The committed result files in docs/results have the keys docs/results-format.md promises, and its example runs."""

import contextlib
import io
import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "results-format.md").read_text()


def table() -> dict[str, tuple[set, set, list]]:
    """``{script: (required row keys, top-level keys, committed files)}`` from the page's table."""
    section = PAGE.split("## Required keys per script")[1].split("\n## ")[0]
    out = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        names = [re.findall(r"`([^`]+)`", c) for c in cells]
        out[names[0][0]] = (set(names[1]), {k for k in names[2] if "/" not in k}, names[3])
    return out


def test_the_table_covers_every_script():
    scripts = table()
    for script in ("experiments/cora.py", "experiments/uci.py", "experiments/prune.py", "experiments/scale.py",
                   "benchmarks/run.py"):
        assert script in scripts and scripts[script][0], script
    committed = {f for _, _, files in scripts.values() for f in files}
    results = ROOT / "docs" / "results"
    assert committed == {p.relative_to(results).as_posix() for p in results.rglob("*.json")}


@pytest.mark.parametrize("script", [s for s, (_, _, files) in table().items() if files])
def test_committed_files_have_the_required_keys(script):
    rows_keys, top_keys, files = table()[script]
    for name in files:
        blob = json.loads((ROOT / "docs" / "results" / name).read_text())
        assert isinstance(blob["results"], list) and blob["results"], name
        assert top_keys <= set(blob), f"{name}: missing top-level {top_keys - set(blob)}"
        for row in blob["results"]:
            assert rows_keys <= set(row), f"{name}: a row misses {rows_keys - set(row)}"
            for key, value in row.items():
                if "acc" in key and isinstance(value, float):
                    assert 0.0 <= value <= 1.0, f"{name}: {key} = {value} is not a fraction"
                if isinstance(value, float):
                    assert math.isfinite(value)


def test_the_example_runs(monkeypatch):
    code = re.search(r"```python\n(.*?)```", PAGE, flags=re.S).group(1)
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "results-format.md", "exec"), {})
    assert "cora      attention_gcn    82.5 ± 0.6" in out.getvalue()
