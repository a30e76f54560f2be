"""benchmarks/record_update.py: the reducing reference summarises batches as RunningStats does; a tiny timed run."""

import json

import pytest
import torch

from tests.helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/record_update.py", "record_update")


def test_the_reference_computes_what_running_stats_computes(bench, monkeypatch):
    gen = torch.Generator().manual_seed(1)
    batches = [torch.rand(9, 3, 2, generator=gen) for _ in range(3)]
    bench.check_same(batches, 0.3)  # the same mean, minimum, maximum and share under the threshold
    update = bench.ReducingStats.update
    monkeypatch.setattr(bench.ReducingStats, "update", lambda self, w: update(self, w[1:]))  # drops a sample
    with pytest.raises(AssertionError):
        bench.check_same(batches, 0.3)


def test_tiny_run_writes_a_row(bench, tmp_path, capsys):
    out = tmp_path / "update.json"
    assert bench.main(["--batch", "16", "--updates", "2", "--reps", "1", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["name"] == "record_update/[16, 30, 4]" and row["goal"] is None
    assert row["ratio"] == pytest.approx(row["ours_s"] / row["reference_s"])
    assert f"ratio {row['ratio']:.3f}" in capsys.readouterr().out
