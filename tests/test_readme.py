"""The README's example runs and prints what the README says; .ci/run runs the README's commands."""

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme():
    code = _blocks("python")[0]
    expected = re.search(r"prints\n```\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue() == expected


def test_ci_runs_the_readme_commands():
    setup, _main_job, tests = [b.strip() for b in _blocks("bash")[:3]]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup in ci and tests in ci
