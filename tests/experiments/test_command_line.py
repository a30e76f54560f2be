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


# ---------------------------------------------------------------------------------------------- bad numbers
def _parser(name: str):
    """The script's parser (uci_distributed.py takes uci.py's flags)."""
    return importlib.import_module("uci" if name == "uci_distributed" else name).build_parser()


def _number_flags(name: str, kind: type) -> list[str]:
    return [a.option_strings[-1] for a in _parser(name)._actions if a.type is kind]


#: the flags that make each script stop at once were a bad value let through (no data set there, or a tiny graph),
#: so the tests below finish quickly on the code they guard against too
QUICK = {"cora": ["--data-root", "{nowhere}"], "uci": ["--data-root", "{nowhere}", "--dataset", "balance"],
         "uci_distributed": ["--data-root", "{nowhere}", "--dataset", "balance"],
         "prune": ["--data-root", "{nowhere}", "--dataset", "balance"],
         "scale": ["--nodes", "300", "--hidden", "8", "--heads", "2", "--device", "cpu", "--threads", "1"]}


def _one_line_error(name: str, argv: list[str], tmp_path, capsys) -> str:
    """Run the script with ``argv`` after its QUICK flags; it must stop with exit code 2, one line on stderr and
    nothing on stdout (no work done, no table printed), and create nothing."""
    module = importlib.import_module(name)
    quick = [a.replace("{nowhere}", str(tmp_path / "nowhere")) for a in QUICK[name]]
    before = sorted(tmp_path.rglob("*"))
    assert module.run_main(module.main, [*quick, *argv]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert out == "", out
    assert sorted(tmp_path.rglob("*")) == before
    return err


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_number_flag_declares_its_range(name):
    """A number flag is checked when parsed (ScriptParser's check=...), never later in the run or not at all."""
    unchecked = [a.option_strings[-1] for a in _parser(name)._actions
                 if a.type in (int, float) and getattr(a, "check", None) is None]
    assert not unchecked, f"{name}.py: no check= on {unchecked}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_defaults_pass_the_checks(name):
    _parser(name).parse_args([])


@pytest.mark.parametrize("name, flag", [(n, f) for n in SCRIPTS for f in _number_flags(n, float)])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_float_flag_refuses_nan_and_infinity(name, flag, value, tmp_path, capsys):
    err = _one_line_error(name, [f"{flag}={value}"], tmp_path, capsys)  # -inf alone would look like a flag
    assert f"error: {flag} must be " in err and f"got {float(value)}" in err, err


@pytest.mark.parametrize("name, argv, message", [
    ("cora", ["--epochs", "0"], "--epochs must be a positive integer, got 0"),
    ("cora", ["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0, got -1.0"),
    ("prune", ["--sgl-lambda", "-1"], "--sgl-lambda must be a finite number >= 0, got -1.0"),
    ("prune", ["--finetune-lr", "0"], "--finetune-lr must be a finite number > 0, got 0.0"),
    ("prune", ["--finetune-steps", "0"], "--finetune-steps must be a positive integer, got 0"),
    ("scale", ["--lr", "-1"], "--lr must be a finite number > 0, got -1.0"),
    ("scale", ["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
    ("scale", ["--dropout", "1"], "--dropout must be a number in [0, 1), got 1.0"),
    ("scale", ["--workers", "-1"], "--workers must be a non-negative integer, got -1"),
    ("scale", ["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    ("scale", ["--avg-degree", "-1"], "--avg-degree must be a finite number >= 0, got -1.0"),
    # degenerate settings that used to be reported as results: 100.0 accuracy with one class, 0.0 over no nodes
    ("scale", ["--classes", "1"], "--classes must be an integer >= 2 (with one class every prediction is right), "
                                  "got 1"),
    ("scale", ["--eval-nodes", "0"], "--eval-nodes must be a positive integer (an accuracy over no nodes means "
                                     "nothing), got 0"),
    ("scale", ["--nodes", "4", "--classes", "2"], "--nodes must be an integer >= 5 (20% of the nodes validate and "
                                                  "20% test, at least one each), got 4"),
    ("scale", ["--nodes", "6", "--classes", "7"], "--nodes 6: fewer nodes than --classes 7"),
    ("scale", ["--hidden", "8", "--heads", "3"], "--heads 3 must divide --hidden 8"),
    ("uci", ["--workers", "0"], "--workers must be a positive integer, got 0"),
    ("uci", ["--budget-scale", "0"], "--budget-scale must be a number in (0, 10], got 0.0"),
    ("uci_distributed", ["--eval-every", "0"], "--eval-every must be a positive integer, got 0"),
])
def test_a_number_out_of_range_is_refused_before_any_work(name, argv, message, tmp_path, capsys):
    assert message in _one_line_error(name, argv, tmp_path, capsys)


# ---------------------------------------------------------------------------------------------- bad outputs
@pytest.fixture
def places(tmp_path):
    """``tmp_path/afile`` (a file) and ``tmp_path/adir`` (a folder)."""
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    return tmp_path


def _output_cases():
    cases = []
    for name in SCRIPTS:
        cases += [(name, "--json", "adir", "--json {}/adir: is a directory"),
                  (name, "--json", "afile/x.json", "--json {}/afile/x.json: {}/afile is not a directory"),
                  (name, "--json", "afile/sub/x.json", "--json {}/afile/sub/x.json: {}/afile is not a directory"),
                  (name, "--checkpoint-dir", "afile", "--checkpoint-dir {}/afile: is not a directory"),
                  (name, "--checkpoint-dir", "afile/sub", "--checkpoint-dir {}/afile/sub: {}/afile is not a "
                                                          "directory")]
    return cases + [
        ("scale", "--save", "adir", "--save {}/adir: is a directory"),
        ("scale", "--save", "afile/x.pt", "--save {}/afile/x.pt: {}/afile is not a directory"),
        ("prune", "--plot", "adir", "--plot {}/adir: is a directory"),
        ("prune", "--plot", "curves.xyz", "--plot {}/curves.xyz: cannot draw to a '.xyz' file; supported: "),
        ("prune", "--figures", "afile", "--figures {}/afile: is not a directory"),
        ("prune", "--figures", "afile/figs", "--figures {}/afile/figs: {}/afile is not a directory"),
    ]


@pytest.mark.parametrize("name, flag, target, message", _output_cases())
def test_an_output_that_cannot_be_written_is_refused_before_any_work(name, flag, target, message, places, capsys):
    err = _one_line_error(name, [flag, str(places / target)], places, capsys)
    assert message.replace("{}", str(places)) in err, err


def test_run_main_reports_a_diverged_training_and_no_other_value_error(capsys):
    import common

    from modgraph.train import TrainingDiverged

    def diverges(argv):
        raise TrainingDiverged("evaluate returned NaN at step 40; the training diverged")

    assert common.run_main(diverges, []) == 2
    assert capsys.readouterr().err == ("error: evaluate returned NaN at step 40; the training diverged; lower the "
                                       "learning rate\n")

    def bug(argv):
        raise ValueError("evaluate returned NaN at step 40: a plain ValueError is a bug and keeps its traceback")

    with pytest.raises(ValueError, match="keeps its traceback"):
        common.run_main(bug, [])
