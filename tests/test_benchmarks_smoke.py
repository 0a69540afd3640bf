"""The benchmark suite runs end to end at tiny sizes and writes the headline keys as finite numbers.

Only that: the numbers of a smoke run mean nothing (tiny models on shared cores), and timing assertions do not
belong in a test suite. The benchmarks themselves are run by hand (see BENCHMARKS.md).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
HEADLINE_KEYS = (
    "throughput_ratio_vs_perceiver_pytorch",
    "peak_memory_ratio_vs_perceiver_pytorch",
    "throughput_ratio_frame_grid_vs_perceiver_pytorch",
    "speedup_absorbed_over_materialised",
    "step_time_ratio_49k_over_12k",
    "preprocess_share_of_step",
    "loader_over_model_rate",
    "sim_frames_per_s",
    "flops_share_of_measured_matmul",
)


@pytest.mark.slow
def test_smoke_run_writes_finite_headline_numbers(tmp_path: Path) -> None:
    pytest.importorskip("perceiver_pytorch")
    out = tmp_path / "smoke.json"
    env = dict(os.environ)
    env.setdefault("MUJOCO_GL", "egl")
    # One thread: tiny ops on two oversubscribed threads spend most of their time in OpenMP barriers.
    completed = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--smoke", "--device", "cpu", "--threads", "1", "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in HEADLINE_KEYS:
        assert key in result, f"missing {key}"
        assert isinstance(result[key], float) and math.isfinite(result[key]), f"{key} = {result[key]!r}"
        assert result[key] > 0, f"{key} = {result[key]!r}"
    for key in ("cpu_model", "cpu_cores", "torch_version", "date_utc"):
        assert result["machine"][key], f"machine.{key} is empty"
    assert set(result["goals"]) <= set(HEADLINE_KEYS)
    assert "## Train step vs perceiver_pytorch.Perceiver" in completed.stdout
