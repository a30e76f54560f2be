"""The Python blocks of docs/tutorial.md run, in order, in one namespace, and print what the page shows.

Conventions of the page: a ```text block right after a ```python block is that block's exact output; a ```yaml
block whose first line is ``# NAME`` is written to ``NAME`` in the working directory before the blocks after it run.
"""

import contextlib
import io
import os
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\n", flags=re.S | re.M)


def blocks(path: Path) -> list[tuple[str, str, str | None]]:
    """``(language, code, expected output or None)`` for every fenced block, expected output attached to python."""
    text = path.read_text()
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    out = []
    for i, (lang, body, _start, end) in enumerate(found):
        if lang == "text":
            continue
        expected = None
        if lang == "python" and i + 1 < len(found):
            nxt_lang, nxt_body, nxt_start, _ = found[i + 1]
            if nxt_lang == "text" and not text[end:nxt_start].strip():
                expected = nxt_body
        out.append((lang, body, expected))
    return out


def run_blocks(path: Path, workdir: Path) -> list[tuple[str, str | None]]:
    """Run the page's blocks in ``workdir``; return ``(printed, expected)`` per python block."""
    namespace: dict = {"__name__": "__tutorial__"}
    results = []
    old = os.getcwd()
    os.chdir(workdir)
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()  # the page changes the default dtype
    torch.set_num_threads(1)
    try:
        for n, (lang, body, expected) in enumerate(blocks(path)):
            if lang == "yaml":
                first = body.splitlines()[0]
                if first.startswith("# "):
                    (workdir / first[2:].strip()).write_text(body)
                continue
            if lang != "python":
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, f"{path.name} block {n}", "exec"), namespace)
            results.append((out.getvalue(), expected))
    finally:
        os.chdir(old)
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
    return results


def test_tutorial_blocks_are_found():
    langs = [lang for lang, _, _ in blocks(TUTORIAL)]
    assert langs.count("python") >= 10 and "yaml" in langs
    assert sum(1 for _, _, exp in blocks(TUTORIAL) if exp is not None) >= 10


def test_tutorial_runs_and_prints_what_it_shows(tmp_path):
    results = run_blocks(TUTORIAL, tmp_path)
    for i, (printed, expected) in enumerate(results):
        if expected is not None:
            assert printed == expected, f"python block {i} of docs/tutorial.md"
    assert (tmp_path / "small.pt").stat().st_size > 0


if __name__ == "__main__":  # print every block's output, to update the page
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for i, (printed, expected) in enumerate(run_blocks(TUTORIAL, Path(d))):
            mark = "" if expected is None else (" OK" if printed == expected else " DIFFERS")
            print(f"--- block {i}{mark}\n{printed}", end="")

