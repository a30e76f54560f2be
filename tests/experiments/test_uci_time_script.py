"""benchmarks/uci_time.py: the phase shares of the alternating schedule and a tiny interleaved run."""

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    module = load_script("benchmarks/uci_time.py", "uci_time")
    return module


def test_schedule_shares(bench):
    shares = bench.schedule_shares()
    assert shares == pytest.approx({"attention off": 0.3, "attention only": 0.25, "main, attention frozen": 0.25,
                                    "joint": 0.2})


def test_tiny_run_writes_ratios(bench, data_root, tmp_path, capsys):
    out = tmp_path / "time.json"
    assert bench.main(["--dataset", "liver", "--folds", "2", "--steps", "2", "--reps", "1", "--device", "cpu",
                       "--data-root", str(data_root), "--json", str(out)]) == 0
    assert "median ratio attention/wd per step" in capsys.readouterr().out
    (row,) = json.loads(out.read_text())["results"]
    assert row["dataset"] == "liver" and row["models"] == 6 and row["device"] == "cpu"
    assert row["ratio_joint"] > 0 and set(row["attention_ms_per_step"]) == set(bench.ATTENTION_PHASES)
    assert row["cpu_ratio_joint"] > 0 and "reference_ms_per_step" not in row
    assert bench.main(["--dataset", "iris"]) == 2


def test_reference_timing(bench, data_root, tmp_path):
    out = tmp_path / "time.json"
    assert bench.main(["--dataset", "liver", "--folds", "2", "--steps", "2", "--reps", "1", "--reference",
                       "--data-root", str(data_root), "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert set(row["reference_ms_per_step"]) == set(bench.ATTENTION_PHASES) and row["reference_ratio_joint"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message is for machines without CUDA")
def test_cuda_without_a_gpu_is_one_clear_error(bench, data_root):
    with pytest.raises(SystemExit, match="--device cuda: no CUDA device is available"):
        bench.main(["--dataset", "liver", "--device", "cuda", "--data-root", str(data_root)])
