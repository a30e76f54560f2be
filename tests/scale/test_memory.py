import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmSize from /proc (Linux)")
def test_graph_attention_trains_50k_nodes_without_anything_dense():
    # full batch and a sampled batch, softmax and sparsemax gates, under a cap a dense N x N (10 GB) cannot fit in
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(HERE / "memory_worker.py")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[0] == "ok" and int(proc.stdout.split()[1]) > 490_000


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_peak_rss_is_the_kernels_high_water_mark_in_mib():
    from modgraph.scale.memory import peak_rss_mb

    def vm_hwm_mib() -> float:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024  # kB

    before = vm_hwm_mib()
    peak = peak_rss_mb()
    assert 0.95 * before <= peak <= 1.05 * vm_hwm_mib()
