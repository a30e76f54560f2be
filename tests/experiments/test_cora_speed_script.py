"""benchmarks/cora_speed.py: a tiny interleaved run times every model and writes ratios to PyG's GCN example."""

import json
from pathlib import Path

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_writes_every_model_and_ratio(data_root, tmp_path, capsys):
    bench = load_script("benchmarks/cora_speed.py", "cora_speed")
    out = tmp_path / "speed.json"
    assert bench.main(["--epochs", "2", "--reps", "1", "--threads", "1", "--data-root", str(data_root),
                       "--json", str(out)]) == 0
    rows = {r["model"]: r for r in json.loads(out.read_text())["results"]}
    assert {"PyG GCN example", "PyG GAT example", "modgraph gcn", "modgraph attention_gcn",
            "modgraph hop_attention", "modgraph attention_gcn +recorder",
            "modgraph hop_attention +recorder"} <= set(rows)
    assert rows["PyG GCN example"]["ratio_to_pyg_gcn"] == 1.0
    assert all(r["minor_faults_per_epoch"] >= 0 for r in rows.values())
    for r in rows.values():
        assert r["median_s"] > 0 and abs(r["ratio_to_pyg_gcn"] - r["median_s"] / rows["PyG GCN example"]["median_s"]) \
            < 1e-12
    assert "x PyG GCN" in capsys.readouterr().out


def test_recorder_rows_record_every_training_forward(data_root):
    bench = load_script("benchmarks/cora_speed.py", "cora_speed")
    from modgraph.data import load_planetoid

    data = load_planetoid("cora", str(data_root))
    d = bench.prepare(data, bench.torch.device("cpu"))
    build, x = bench.make_models(d, data.x)["modgraph attention_gcn +recorder"]
    kept = []

    def keep():
        net, opt, rec = build()
        kept.append(rec)
        return net, opt, rec

    bench.time_epochs(keep, x, d, 3, seed=0)
    (rec,) = kept
    assert rec.epochs == [0, 1, 2] and not rec._handles  # an epoch per epoch, detached at the end
    for key, info in rec.gates.items():  # one training forward per epoch: the evaluation forwards were paused
        assert [stats.count for _, stats in info.history] == [1, 1, 1], key
    assert any(info.level == "graph" and info.shape[0] == d["edge_index"].size(1) + 2708 for info in rec.gates.values())


def test_a_bad_number_is_one_line_and_exit_code_2(data_root, capsys):
    bench = load_script("benchmarks/cora_speed.py", "cora_speed")
    assert bench.run_main(bench.main, ["--reps", "0", "--data-root", str(data_root)]) == 2
    assert capsys.readouterr().err.strip() == "error: --reps must be a positive integer, got 0"
