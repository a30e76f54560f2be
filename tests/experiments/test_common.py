"""experiments/common.py on its own: the flag checks at their bounds, output checks, the end-of-run writes, the
checkpoint configuration, mean and standard deviation, the plain-text table and run_main's exit codes."""

import argparse
import math
import os
import statistics
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

import common  # noqa: E402
from common import UsageError  # noqa: E402

from modgraph.errors import ModgraphError  # noqa: E402


# ---------------------------------------------------------------------------------------------- number checks
@pytest.mark.parametrize("check, value, ok", [
    (common.number(0, 10), 0.0, True),  # closed ends: the bounds themselves are in
    (common.number(0, 10), 10.0, True),
    (common.number(0, 10), 10.000001, False),
    (common.number(0, 10), -1e-9, False),
    (common.number(0, 1, high_open=True), 0.0, True),
    (common.number(0, 1, high_open=True), 1.0, False),
    (common.number(0, 10, low_open=True), 0.0, False),
    (common.number(0, 10, low_open=True), 1e-9, True),
    (common.number(low=0), 0.0, True),
    (common.number(low=0), 1e300, True),
    (common.number(high=5), 5.0, True),
    (common.number(high=5, high_open=True), 5.0, False),
    (common.number(high=5), -1e300, True),
    (common.number(), -1e300, True),
    (common.number(), math.nan, False),
    (common.number(), math.inf, False),
    (common.number(0, 10), math.nan, False),
    (common.number(low=0), math.inf, False),
    (common.number(high=5), -math.inf, False),
])
def test_number_accepts_its_range_and_nothing_else(check, value, ok):
    if ok:
        check("--x", value)
    else:
        with pytest.raises(UsageError, match=r"^--x must be a"):
            check("--x", value)


@pytest.mark.parametrize("check, message", [
    (common.number(0, 10), "--x must be a number in [0, 10], got -1.0"),
    (common.number(0, 1, low_open=True, high_open=True), "--x must be a number in (0, 1), got -1.0"),
    (common.number(low=0, low_open=True), "--x must be a finite number > 0, got -1.0"),
    (common.number(high=-2), "--x must be a finite number <= -2, got -1.0"),
    (common.number(high=-2, high_open=True), "--x must be a finite number < -2, got -1.0"),
])
def test_number_names_its_range(check, message):
    with pytest.raises(UsageError) as err:
        check("--x", -1.0)
    assert str(err.value) == message


def test_integer_accepts_its_minimum_and_nothing_below():
    common.integer(1)("--n", 1)
    common.integer(0)("--n", 0)
    with pytest.raises(UsageError, match=r"^--n must be a non-negative integer, got -1$"):  # 0 is allowed
        common.integer(0)("--n", -1)
    with pytest.raises(UsageError, match=r"^--n must be a positive integer, got 0$"):
        common.integer(1)("--n", 0)
    with pytest.raises(UsageError, match=r"^--n must be an integer >= 2 \(why not\), got 1$"):
        common.integer(2, why="why not")("--n", 1)


def test_positive_refuses_zero_and_lets_none_through():
    assert common.positive("--n", 1) == 1 and common.positive("--n", None) is None
    for value in (0, -3):
        with pytest.raises(UsageError, match=f"^--n must be a positive integer, got {value}$"):
            common.positive("--n", value)


# ---------------------------------------------------------------------------------------------- ScriptParser
def test_the_parser_checks_values_and_names_the_long_flag():
    parser = common.ScriptParser()
    parser.add_argument("-r", "--rate", type=float)  # no check=: still refused when NaN or infinite
    parser.add_argument("-n", "--count", type=int, default=3, check=common.integer(2))
    assert parser.parse_args([]).rate is None  # None is never checked
    assert parser.parse_args(["-r", "-2.5"]).rate == -2.5
    for value in ("nan", "inf", "-inf"):
        with pytest.raises(UsageError, match=f"^--rate must be a finite number, got {float(value)}$"):
            parser.parse_args([f"-r={value}"])
    with pytest.raises(UsageError, match="^--count must be an integer >= 2, got 1$"):
        parser.parse_args(["-n", "1"])
    with pytest.raises(UsageError, match="invalid int value: 'x'"):  # argparse's own error, not SystemExit
        parser.parse_args(["--count", "x"])
    with pytest.raises(ValueError, match="output must be one of file, figure, dir"):
        parser.add_argument("--out", output="folder")


def test_the_parser_takes_a_positional_argument():
    parser = common.ScriptParser()
    parser.add_argument("name")
    parser.add_argument("--json", output="file")
    assert parser.parse_args(["x"]).name == "x"


def test_the_help_shows_the_first_line_and_the_examples(capsys):
    parser = common.script_parser("Train a thing.\n\nA long story.\n", examples="examples:\n  python x.py --fast")
    parser.print_help()
    out = capsys.readouterr().out
    assert "Train a thing." in out and "  python x.py --fast" in out and "A long story." not in out
    common.script_parser("Only a doc.\n\n  python y.py\n").print_help()
    assert "  python y.py" in capsys.readouterr().out  # no examples given: the whole doc


# ---------------------------------------------------------------------------------------------- output checks
def test_an_empty_output_path_is_refused():
    for kind in common.OUTPUT_KINDS:
        with pytest.raises(UsageError, match="^--out: expected a path, got an empty value$"):
            common.check_output("--out", "", kind)


def test_an_output_check_leaves_nothing_behind(tmp_path):
    """The probe file is removed, and a missing folder is not created (the write will)."""
    common.check_output("--json", tmp_path / "x.json")
    common.check_output("--json", tmp_path / "new" / "deeper" / "x.json")
    common.check_output("--checkpoint-dir", tmp_path, "dir")
    common.check_output("--checkpoint-dir", tmp_path / "new" / "run", "dir")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_file_may_be_overwritten(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    common.check_output("--json", tmp_path / "x.json")
    common.check_output("--plot", tmp_path / "x.json.png", "figure")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
    with pytest.raises(UsageError, match="x.json: is not a directory$"):
        common.check_output("--checkpoint-dir", tmp_path / "x.json", "dir")


def test_a_dangling_symlink_is_not_a_folder(tmp_path):
    """A link to nowhere cannot be made a folder (mkdir says 'File exists'), nor can anything be written under it."""
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="link: is not a directory$"):
        common.check_output("--checkpoint-dir", tmp_path / "link", "dir")
    with pytest.raises(UsageError, match=f"link/sub/x.json: {tmp_path}/link is not a directory$"):
        common.check_output("--json", tmp_path / "link" / "sub" / "x.json")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_relative_path_names_the_current_directory(monkeypatch):
    monkeypatch.chdir("/proc")
    with pytest.raises(UsageError, match="^--json x.json: cannot write in the current directory"):
        common.check_output("--json", "x.json")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_that_cannot_be_written_is_refused_even_for_root():
    """Tried, not read off the permissions: /proc takes no new file, whoever asks."""
    with pytest.raises(UsageError, match="^--checkpoint-dir /proc: cannot write in this directory"):
        common.check_output("--checkpoint-dir", "/proc", "dir")
    with pytest.raises(UsageError, match="^--json /proc/x.json: cannot write in /proc"):
        common.check_output("--json", "/proc/x.json")


# ---------------------------------------------------------------------------------------------- end-of-run writes
def test_save_outputs_tries_every_write_and_reports_every_failure(tmp_path, capsys):
    done = []

    def fails(name):
        def write():
            raise OSError(28, "No space left on device", name)
        return write

    with pytest.raises(UsageError) as err:
        common.save_outputs(("--json", "a.json", fails("a.json")),
                            ("--plot", None, lambda: done.append("never")),  # not asked for: not written
                            ("--save", "b.pt", lambda: done.append("b.pt")),
                            ("--figures", "figs", fails("figs")))
    assert done == ["b.pt"]
    assert str(err.value) == ("--json a.json: cannot write (No space left on device); "
                              "--figures figs: cannot write (No space left on device)")
    assert capsys.readouterr().out == "wrote b.pt\n"
    common.save_outputs(("--json", "", lambda: done.append("never")))
    assert done == ["b.pt"]


# ---------------------------------------------------------------------------------------------- checkpoint config
def _args(**kwargs):
    parser = common.add_common_args(common.script_parser("A script.\n"), checkpoint_every=50)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--model", default="gcn")
    return parser.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kwargs.items()])


def test_the_checkpoint_config_holds_the_result_flags_only(tmp_path):
    args = _args(seeds=3, lr=0.5, threads=2, json=tmp_path / "r.json", checkpoint_dir=tmp_path, log_level="INFO")
    args.model = Path("gcn")  # an object the flags were resolved into: its text
    assert common.checkpoint_config(args, "s.py") == {"script": "s.py", "--device": "auto", "--seeds": 3,
                                                      "--lr": 0.5, "--model": "gcn"}
    assert common.checkpoint_config(_args(seeds=4), "s.py")["--seeds"] == 4


def test_the_common_flags_defaults():
    args = _args()
    assert (args.device, args.seeds, args.threads, args.checkpoint_every) == ("auto", 10, 1, 50)
    assert (args.json, args.checkpoint_dir, args.resume, args.log_level, args.data_root) == (
        None, None, False, "WARNING", None)
    parser = common.add_common_args(common.script_parser("A script.\n"), seeds=None, threads=None, data_root=False)
    args = parser.parse_args([])
    assert args.threads is None and not hasattr(args, "seeds") and not hasattr(args, "data_root")
    assert not hasattr(args, "checkpoint_every")


def test_resume_needs_a_checkpoint_dir():
    args = _args()
    args.resume = True
    with pytest.raises(UsageError, match="^--resume needs --checkpoint-dir DIR"):
        common.checkpoint_config(args, "s.py")
    args.checkpoint_every = 0  # set after parsing: checked again
    args.resume = False
    with pytest.raises(UsageError, match="^--checkpoint-every must be a positive integer, got 0$"):
        common.checkpoint_config(args, "s.py")


def test_a_folder_holding_a_run_needs_resume(tmp_path):
    args = _args(checkpoint_dir=tmp_path)
    common.open_run_dir(args, common.checkpoint_config(args, "s.py"))
    assert (tmp_path / "run.json").exists()
    with pytest.raises(UsageError, match="holds an earlier run; add --resume"):
        common.open_run_dir(args, common.checkpoint_config(args, "s.py"))
    args.resume = True
    common.open_run_dir(args, common.checkpoint_config(args, "s.py"))


# ---------------------------------------------------------------------------------------------- threads, device
def test_apply_threads_sets_torch_threads():
    before = torch.get_num_threads()
    target = 2 if before != 2 else 3
    common.apply_threads(argparse.Namespace(threads=target))
    assert torch.get_num_threads() == target  # conftest restores the count
    common.apply_threads(argparse.Namespace(threads=None))
    assert torch.get_num_threads() == target
    with pytest.raises(UsageError, match="^--threads must be a positive integer, got 0$"):
        common.apply_threads(argparse.Namespace(threads=0))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_usage_error():
    assert common.resolve_device("auto") == torch.device("cpu") == common.resolve_device("cpu")
    with pytest.raises(UsageError, match="^--device cuda: no CUDA device is available"):
        common.resolve_device("cuda")


# ---------------------------------------------------------------------------------------------- numbers shown
def test_mean_std_is_the_sample_standard_deviation():
    values = [0.5, 0.75, 0.8, 0.95]
    mean, std = common.mean_std(values)
    assert mean == pytest.approx(sum(values) / 4)
    by_hand = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))  # n - 1: a sample
    assert std == pytest.approx(by_hand) and std != pytest.approx(statistics.pstdev(values))
    assert common.mean_std([0.7]) == (0.7, 0.0)


def test_format_table_aligns_columns_and_shows_nan_as_a_dash():
    rows = [{"name": "a", "acc": 81.25}, {"name": "longer name", "acc": float("nan")}]
    text = common.format_table(rows, [("method", "name", str), ("acc (%)", "acc", lambda v: f"{v:.1f}")])
    assert text.splitlines() == ["method       acc (%)",
                                 "-----------  -------",
                                 "a            81.2",
                                 "longer name  -"]


# ---------------------------------------------------------------------------------------------- exit codes
@pytest.mark.parametrize("raised, code, line", [
    (UsageError("--x must be a positive integer, got 0"), 2, "error: --x must be a positive integer, got 0\n"),
    (ModgraphError("no such spec file"), 2, "error: no such spec file\n"),
    (KeyboardInterrupt(), 130, "interrupted\n"),  # the shell's code of SIGINT (128 + 2)
])
def test_run_main_exit_codes(raised, code, line, capsys):
    def main(argv):
        raise raised

    assert common.run_main(main, []) == code
    assert capsys.readouterr().err == line


@pytest.mark.parametrize("env, exits", [
    ({}, False),
    ({"WORLD_SIZE": "1", "TORCHELASTIC_RUN_ID": "r"}, False),  # torchrun with one process: an ordinary return
    ({"WORLD_SIZE": "2"}, False),  # not under torchrun
    ({"WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "r"}, True),
])
def test_run_main_ends_the_process_only_under_torchrun_with_several(env, exits, monkeypatch, capsys):
    for name in ("WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ended = []
    monkeypatch.setattr(common.os, "_exit", ended.append)

    def main(argv):
        raise UsageError("bad")

    assert common.run_main(main, []) == 2
    assert ended == ([2] if exits else []) and capsys.readouterr().err == "error: bad\n"


def test_run_main_returns_mains_code_and_passes_argv():
    assert common.run_main(lambda argv: len(argv), ["a", "b"]) == 2
    assert common.run_main(lambda argv: 0) == 0


def test_a_positional_argument_is_checked_too():
    # parse_args skipped every action without a flag: a positional's check= and a float's NaN refusal never ran
    parser = common.ScriptParser()
    parser.add_argument("count", type=int, check=common.integer(1))
    with pytest.raises(UsageError, match="count must be a positive integer, got 0"):
        parser.parse_args(["0"])
    parser = common.ScriptParser()
    parser.add_argument("rate", type=float)
    with pytest.raises(UsageError, match="rate must be a finite number"):
        parser.parse_args(["nan"])


def test_a_list_flag_is_checked_value_by_value():
    # nargs="+" gives a list: integer()'s comparison raised TypeError (a traceback, not one line with exit code 2)
    parser = common.ScriptParser()
    parser.add_argument("--sizes", type=int, nargs="+", check=common.integer(1))
    assert parser.parse_args(["--sizes", "1", "2"]).sizes == [1, 2]
    with pytest.raises(UsageError, match="--sizes must be a positive integer, got 0"):
        parser.parse_args(["--sizes", "2", "0"])
