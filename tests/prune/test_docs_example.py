"""docs/pruning.md: the minimal example runs and prints what the page says."""

import contextlib
import io
import re
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[2] / "docs" / "pruning.md"


def test_minimal_example_prints_what_the_docs_say():
    text = DOC.read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    expected = re.search(r"prints\n```\n(.*?)```", text, flags=re.S).group(1)
    out = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(DOC), "exec"), {})
    finally:
        torch.set_num_threads(threads)
    assert out.getvalue() == expected
