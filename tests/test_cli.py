import subprocess
import sys

from modgraph.cli import main

from .helpers import mlp_graph


def test_check_and_summary(tmp_path, capsys):
    import modgraph as mg

    path = mg.ModuleGraph(mlp_graph()).save_spec(tmp_path / "arch.yaml")
    assert main(["check", str(path)]) == 0
    assert "ok (3 nodes, 2 edges, 1,191 parameters)" in capsys.readouterr().out
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert "h -> y  neuron  sigmoid" in out and "1,026 attention" in out


def test_check_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("nodes:\n  x: {op: input, features: 4}\n  y: {op: linaer}\nedges: [[x, y]]\n")
    proc = subprocess.run([sys.executable, "-m", "modgraph.cli", "check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unknown op 'linaer'" in proc.stderr and "Traceback" not in proc.stderr


def test_draw_writes_a_png(tmp_path, capsys):
    import modgraph as mg

    path = mg.ModuleGraph(mlp_graph()).save_spec(tmp_path / "arch.yaml")
    out = tmp_path / "arch.png"
    capsys.readouterr()
    assert main(["draw", str(path), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out == f"wrote {out}\n"


def test_help_has_examples_and_flag_errors_are_one_line(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "modgraph check arch.yaml" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["--log-level", "LOUD", "check", "x.yaml"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'LOUD'" in err


def test_draw_to_a_path_that_cannot_be_written_is_one_line_and_leaves_nothing(tmp_path, capsys):
    import modgraph as mg

    path = mg.ModuleGraph(mlp_graph()).save_spec(tmp_path / "arch.yaml")
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / "a_file" / "arch.png"
    assert main(["draw", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"modgraph draw: error: cannot write {out}: Not a directory\n"  # not mkdir's "File exists"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "arch.yaml"]


def test_draw_to_an_unknown_format_says_which_are_known(tmp_path, capsys):
    import modgraph as mg

    path = mg.ModuleGraph(mlp_graph()).save_spec(tmp_path / "arch.yaml")
    assert main(["draw", str(path), "-o", str(tmp_path / "arch.xyz")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'arch.xyz'}: cannot draw to a '.xyz' file; supported: " in err and "png" in err
    assert main(["draw", str(path), "-o", str(tmp_path / "arch.svg")]) == 0
    assert (tmp_path / "arch.svg").read_text().lstrip().startswith("<?xml")


def test_no_command_is_one_line_with_exit_code_2(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main([])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "required: command" in err


def test_a_spec_that_cannot_be_read_is_one_line_with_exit_code_2(monkeypatch, capsys):
    """An OSError that is not a ModgraphError (permissions, say) still ends in the documented one line and code 2."""
    import errno

    import modgraph as mg

    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(mg.ModuleGraph, "from_file", staticmethod(denied))
    for command in ("check", "summary"):
        assert main([command, "locked.yaml"]) == 2
        assert capsys.readouterr().err == f"modgraph {command}: error: locked.yaml: Permission denied\n"
