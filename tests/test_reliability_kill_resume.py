"""Reliability under kills: the checkpoint protocol (a simulated kill at every file-system operation of a save,
pointer updates and removals of old steps included)
and the end-to-end kill -9 / resume benchmark through the real CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from rvperceiver.model.policy import build_policy
from rvperceiver.train import checkpoint as ckpt
from rvperceiver.train.checkpoint import load_policy, load_training_state, read_checkpoint_meta, save_checkpoint
from rvperceiver.train.config import load_config
from rvperceiver.train.loop import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class _Killed(BaseException):
    """Stands for SIGKILL: raised at the chosen file-system operation, and at every one after it."""


class _CrashAt:
    def __init__(self, at: int) -> None:
        self.at, self.count, self.dead = at, 0, False

    def tick(self) -> None:
        if self.dead or self.count == self.at:
            self.dead = True
            raise _Killed
        self.count += 1


def _install(monkeypatch: pytest.MonkeyPatch, crash: _CrashAt) -> None:
    real_rename, real_mkdir = os.rename, Path.mkdir

    def write_bytes(path: Path, data: bytes) -> str:
        crash.tick()
        path.write_bytes(data[: len(data) // 2])  # a kill can land mid-file
        crash.tick()
        path.write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    def rename(src, dst) -> None:
        crash.tick()
        real_rename(src, dst)

    def rmtree(path, ignore_errors: bool = False) -> None:
        path = Path(path)
        if not path.exists():
            if ignore_errors:
                return
            raise FileNotFoundError(path)
        for child in sorted(path.rglob("*"), reverse=True):  # one file at a time: a kill can land mid-delete
            crash.tick()
            child.unlink() if child.is_file() else child.rmdir()
        crash.tick()
        path.rmdir()

    def mkdir(self, *args, **kwargs) -> None:
        crash.tick()
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(ckpt, "_write_bytes", write_bytes)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    monkeypatch.setattr(Path, "mkdir", mkdir)


def _policy():
    config = load_config(CONFIGS / "tiny.yaml")
    torch.manual_seed(0)
    x = torch.randint(0, 256, (8, 2, 8, 8, 3), dtype=torch.uint8)
    policy = build_policy(config.policy, (2, 8, 8, 3), (4, 3))
    policy.fit_statistics([x], torch.rand(8, 4, 3))
    return policy, config


def _loadable_step(run: Path) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_policy(run)
        state = load_training_state(run)
        assert state.step == read_checkpoint_meta(run)["step"]
        for pointer in ("last", "best"):  # a pointer, where there is one, names a loadable step
            link = run / "checkpoints" / pointer
            if link.is_symlink() or link.exists():
                assert read_checkpoint_meta(link)["step"] <= state.step
        return state.step


def _crash_states(base: Path, policy, config, step: int, tag: str, monkeypatch) -> list[Path]:
    """Copies of ``base`` after a crash at each file-system operation of a save of ``step``."""
    states = []
    for at in range(1000):
        run = base.with_name(f"{tag}-{at}")
        shutil.copytree(base, run, symlinks=True)
        with monkeypatch.context() as patch:
            _install(patch, _CrashAt(at))
            try:
                save_checkpoint(run / "checkpoints", policy, config, step=step, valid_loss=1.0 / step, keep_last=1)
            except _Killed:
                states.append(run)
                continue
        shutil.rmtree(run)
        return states
    raise AssertionError("save_checkpoint never finished")


def test_a_kill_at_any_point_of_two_saves_leaves_a_loadable_checkpoint(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # durability is not what this test is about; speed is
    policy, config = _policy()
    base = tmp_path / "base"
    save_checkpoint(base / "checkpoints", policy, config, step=1, valid_loss=1.0, keep_last=1)
    first = _crash_states(base, policy, config, 2, "a", monkeypatch)
    assert len(first) > 10
    checked = 0
    for state in first:
        assert _loadable_step(state) in (1, 2), state
        # ... and a kill anywhere in the next save (the resumed run's first) still leaves one.
        for second in _crash_states(state, policy, config, 3, state.name + "-b", monkeypatch):
            assert _loadable_step(second) in (1, 2, 3), second
            checked += 1
            shutil.rmtree(second)
        save_checkpoint(state / "checkpoints", policy, config, step=3, valid_loss=1.0 / 3, keep_last=1)
        assert _loadable_step(state) == 3
        assert sorted(p.name for p in (state / "checkpoints").iterdir()) == ["000003", "best", "last"]
    assert checked > 100


def _windows(m: int = 24) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randint(0, 256, (m, 2, 8, 8, 3), generator=g, dtype=torch.uint8), torch.rand(m, 4, 3, generator=g))


@pytest.mark.filterwarnings("ignore::rvperceiver.train.loop.CollapseWarning")
def test_resume_survives_a_metrics_line_torn_by_the_kill(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "tiny.yaml", ["steps=4", "checkpoint_every=2", "log_every=1", "eval_every=100"])
    data = _windows()
    train(config, data, None, out_dir=tmp_path, progress=False, stop_at_step=2)
    metrics = tmp_path / "metrics.jsonl"
    with open(metrics, "a", encoding="utf-8") as handle:
        handle.write('{"kind": "train", "step": 3, "lo')  # what a kill in the middle of an append leaves
    result = train(config, data, None, out_dir=tmp_path, resume=True, progress=False)
    assert result.step == 4
    records = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]


@pytest.mark.slow
def test_kill_resume_benchmark_short_form(tmp_path: Path) -> None:
    """Three real kill -9s of a CLI training run, resumed each time: nothing lost, final weights bit-identical."""
    out = tmp_path / "kill_resume.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "kill_resume.py"
    done = subprocess.run(
        [sys.executable, str(script), "--kills", "3", "--out", str(out), "--seed", "0", "--workdir", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["kills"] == 3
    assert result["survived"] is True
    assert result["unreadable_checkpoints"] == 0 and result["step_regressions"] == 0
    assert result["bit_identical"] is True
    assert result["training_state_identical"] is True and result["metrics_identical"] is True
    assert result["final_step"] == result["steps"]
    assert len(result["attempts"]) == 3 and all(a["error"] is None for a in result["attempts"])
