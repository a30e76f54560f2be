"""experiments/uci_distributed.py in one process: experiments/uci.py's rows; --workers is refused in one line."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

import uci_distributed  # noqa: E402

from modgraph.benchmarks.uci import Protocol, run_method  # noqa: E402
from modgraph.data import load_uci  # noqa: E402


def test_one_process_gives_the_rows_of_run_method(data_root, tmp_path, capsys):
    out = tmp_path / "uci.json"
    code = uci_distributed.main(["--dataset", "balance", "--method", "wd,attention", "--folds", "3", "--steps", "60",
                                 "--eval-every", "10", "--patience", "5", "--threads", "1", "--data-root",
                                 str(data_root), "--device", "cpu", "--json", str(out)])
    protocol = Protocol(folds=3, steps=60, eval_every=10, patience=5)
    data = load_uci("balance", data_root)
    expected = [run_method(data, m, protocol).row["test_acc_runs"] for m in ("wd", "attention")]  # same 1 thread
    assert code == 0 and "1 process(es)" in capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert [r["test_acc_runs"] for r in payload["results"]] == expected
    assert payload["machine"]["processes"] == 1


def test_workers_flag_is_refused(capsys):
    assert uci_distributed.run_main(uci_distributed.main, ["--workers", "2"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --workers: the processes are torchrun's here")


def test_help_does_not_offer_workers(capsys):
    """--help listed '--workers' among the options, a flag the script refuses."""
    with pytest.raises(SystemExit):
        uci_distributed.main(["--help"])
    options = capsys.readouterr().out.split("The flags are")[0]  # the options, before the epilog's prose
    assert "--workers" not in options and "--seeds" in options
