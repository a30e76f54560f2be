"""One command-line surface: every experiment script shows examples in --help, takes the common flags, and
reports a bad flag or value in one line with exit code 2 (argparse's own errors included)."""

import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
SCRIPTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if 'if __name__ == "__main__"' in p.read_text())
COMMON = ("--device", "--json", "--log-level", "--threads", "--checkpoint-dir", "--resume")


def test_every_script_is_covered():
    assert {"cora", "prune", "scale", "uci", "uci_distributed"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_shows_the_common_flags_and_an_example(name, capsys):
    module = importlib.import_module(name)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ")
    assert re.search(rf"^\s+(python|torchrun) .*experiments/{name}\.py", out, flags=re.M), out
    for flag in COMMON:
        assert flag in out


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("argv, message", [
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--threads", "0"], "--threads must be"),
    (["--threads", "two"], "argument --threads: invalid int value: 'two'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_a_bad_flag_is_one_line_with_exit_code_2(name, argv, message, capsys):
    module = importlib.import_module(name)
    assert module.run_main(module.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
