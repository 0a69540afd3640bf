"""The BC benchmarks (demo dose, target probe) run end to end at toy size, and the probe's decision rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bc_target_probe import verdict

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_probe_rule_reads_each_outcome() -> None:
    assert verdict({"raw_perceiver": [0.95, 0.9], "fourier_perceiver": [0.2, 0.3]}).startswith("supported")
    assert verdict({"raw_perceiver": [0.3, 0.4], "fourier_perceiver": [0.2, 0.3]}).startswith("refuted: raw tokens")
    assert verdict({"raw_perceiver": [0.95, 0.9], "fourier_perceiver": [0.9, 0.85]}).startswith("refuted: the Fourier")
    assert verdict({"raw_perceiver": [0.95, 0.3], "fourier_perceiver": [0.2, 0.9]}).startswith("inconclusive")
    assert verdict({"raw_perceiver": [0.95]}).startswith("not decided")


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": str(REPO_ROOT / "src")}
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.mark.slow
def test_probe_and_dose_run_at_toy_size(tmp_path: Path) -> None:
    probe = _run(["benchmarks/bc_target_probe.py", "--train", "24", "--valid", "8", "--budgets", "2", "--seeds", "0",
                  "--models", "raw_perceiver,fourier_perceiver,cnn", "--out", str(tmp_path / "probe.json")])
    assert probe.returncode == 0, probe.stderr[-3000:]
    record = json.loads((tmp_path / "probe.json").read_text())
    assert {r["model"] for r in record["rows"]} == {"raw_perceiver", "fourier_perceiver", "cnn"}
    assert record["pixels_differing_median"] > 0 and "Verdict:" in probe.stdout
    dose = _run(["benchmarks/bc_demo_dose.py", "--work", str(tmp_path / "dose"), "--demos", "10", "--budgets", "2",
                 "--episodes", "2", "--out", str(tmp_path / "dose.json")])
    assert dose.returncode == 0, dose.stderr[-3000:]
    rows = json.loads((tmp_path / "dose.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["train_windows"] > 0 and 0 <= rows[0]["success_2cm"] <= 1
