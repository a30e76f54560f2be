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
            "modgraph hop_attention"} <= set(rows)
    assert rows["PyG GCN example"]["ratio_to_pyg_gcn"] == 1.0
    for r in rows.values():
        assert r["median_s"] > 0 and abs(r["ratio_to_pyg_gcn"] - r["median_s"] / rows["PyG GCN example"]["median_s"]) \
            < 1e-12
    assert "x PyG GCN" in capsys.readouterr().out
