"""Run an experiment script uninterrupted, then again killed with SIGKILL mid-run and resumed; compare the JSON."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: keys that hold wall-clock times, machine facts or the command line: they differ between any two runs
VOLATILE = re.compile(r"time|_s$|_s_|seconds|rss|^command$|^machine$|^json$|^checkpoint_dir$|^resume$")


def script(name: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "experiments" / name), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err


def stable(value):
    """``value`` without its volatile keys (recursively)."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if not VOLATILE.search(k)}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def kill_and_resume(tmp_path: Path, main, name: str, args: list[str], wait_for: str = "units/*.json",
                    timeout: float = 120) -> tuple[dict, dict, Path]:
    """``(uninterrupted JSON, resumed JSON, checkpoint folder)``.

    The uninterrupted and the resumed runs call ``main`` in this process (no interpreter start); the run in
    between is ``experiments/<name>`` in a subprocess, killed with SIGKILL once ``wait_for`` (a glob in the
    checkpoint folder) matches.
    """
    whole, resumed, folder = tmp_path / "whole.json", tmp_path / "resumed.json", tmp_path / "ckpt"
    proc = script(name, *args, "--json", str(resumed), "--checkpoint-dir", str(folder))
    assert main([*args, "--json", str(whole)]) == 0  # meanwhile the subprocess imports torch
    deadline = time.time() + timeout
    while not list(folder.glob(wait_for)) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert not resumed.exists(), f"the run finished before it was killed; the test proves nothing\n{err}"
    assert list(folder.glob(wait_for)), f"no checkpoint appeared\n{err}"
    assert not list(folder.rglob(".*.tmp")), "a half-written temporary file is left"
    assert main([*args, "--json", str(resumed), "--checkpoint-dir", str(folder), "--resume"]) == 0
    return json.loads(whole.read_text()), json.loads(resumed.read_text()), folder
