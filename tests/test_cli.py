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
    assert main(["draw", str(path), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_has_examples_and_flag_errors_are_one_line(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "modgraph check arch.yaml" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["--log-level", "LOUD", "check", "x.yaml"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'LOUD'" in err
