"""End-to-end runs of the experiments with the ultra-small 'test' profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rvperceiver.errors import ConfigError
from rvperceiver.experiments.runner import run_experiment, train_run
from rvperceiver.experiments.tasks import RunSpec, get_profile, make_task
from rvperceiver.views.adaptive import choose_view

REQUIRED = {"task", "n_tokens", "view", "beta1", "seed", "test_nmse", "steps_to_nmse_0.1", "collapsed", "wall_time_s"}


def _load(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_tiny_difference_end_to_end(tmp_path: Path) -> None:
    records = run_experiment("tiny-difference", "test", tmp_path)
    assert len(records) == len(get_profile("test").grid("tiny-difference"))
    saved = _load(tmp_path)
    assert len(saved) == len(records)
    for r in saved:
        assert REQUIRED <= set(r), REQUIRED - set(r)
        assert r["record"] == "run" and r["experiment"] == "tiny-difference"
        assert 0.0 <= r["test_nmse"] < 100 and isinstance(r["collapsed"], bool)
        assert r["curve"] and r["curve"][-1]["step"] == get_profile("test").steps
        assert 0.0 < r["view_participation_ratio"] <= 1.0 + 1e-9
        assert set(r["adaptive_statistics"]) == {"raw", "fourier"}
    raw = [r for r in saved if r["view"] == "raw+fourier-pos"]
    assert all(r["attention_on_carrier"] is not None and r["attention_on_carrier"] > 0 for r in raw)
    assert {r["task"] for r in saved} == {"tiny-difference", "tiny-difference-image"}
    report = (tmp_path / "report.md").read_text()
    for claim in ("R1", "R2", "R3", "R4", "R5"):
        assert f"**{claim}**" in report
    assert (tmp_path / "nmse_vs_n_tiny-difference.png").stat().st_size > 1000
    assert (tmp_path / "learning_curves_tiny-difference-image.png").stat().st_size > 1000
    assert list(tmp_path.glob("attention_tiny-difference-image_*.png"))


@pytest.mark.slow
def test_frequency_shift_and_theory_share_one_folder(tmp_path: Path) -> None:
    shift = run_experiment("frequency-shift", "test", tmp_path)
    assert {r["adaptive_chosen"] for r in shift if r["view"] == "adaptive"} == {"raw"}
    theory = run_experiment("theory", "test", tmp_path)
    assert [r["n_tokens"] for r in theory] == [16, 64, 256]
    saved = _load(tmp_path)
    assert {r["experiment"] for r in saved} == {"frequency-shift", "theory"}
    # Re-running an experiment replaces its own records and keeps the others.
    run_experiment("theory", "test", tmp_path)
    assert len(_load(tmp_path)) == len(saved)
    report = (tmp_path / "report.md").read_text()
    assert "## Theory" in report and "### frequency-shift: test NMSE" in report
    assert (tmp_path / "theory.png").stat().st_size > 1000


def test_same_seed_same_numbers(tmp_path: Path) -> None:
    profile = get_profile("test")
    task = make_task("tiny-difference", 64, 0, profile.num_train, profile.num_test)
    choice = choose_view(list(torch.split(task.train_inputs, 32)), task.input_shape)
    spec = RunSpec("tiny-difference", 64, "centre-fft", 0.9)
    first, attention_first = train_run(spec, 0, task, choice, profile)
    second, attention_second = train_run(spec, 0, task, choice, profile)
    assert first["curve"] == second["curve"]
    assert (attention_first == attention_second).all()
    other, _ = train_run(spec, 1, task, choice, profile)
    assert other["curve"] != first["curve"]


@pytest.mark.parametrize(("task_name", "expected"), [("tiny-difference", "fourier"), ("frequency-shift", "raw")])
def test_adaptive_choice_is_right_at_small_n(task_name: str, expected: str) -> None:
    for n in (64, 256):
        task = make_task(task_name, n, 0, 128, 16)
        choice = choose_view(list(torch.split(task.train_inputs, 64)), task.input_shape)
        assert choice.chosen == expected, (task_name, n, choice.statistics)


def test_unknown_names_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="experiment"):
        run_experiment("tiny", "test", tmp_path)
    with pytest.raises(ConfigError, match="profile"):
        run_experiment("theory", "huge", tmp_path)


def test_demo_prints_a_comparison_table(tmp_path: Path) -> None:
    from rvperceiver.experiments import demo
    from rvperceiver.experiments.runner import DEMO_RUNS

    table = demo(tmp_path, n_tokens=64, profile="test")
    for view in ("raw+fourier-pos", "fft", "centre-fft"):
        assert view in table
    assert "Adaptive choice: fourier" in table
    assert (tmp_path / "demo.md").read_text().strip() == table.strip()
    records = _load(tmp_path)
    assert [(r["view"], r["beta1"]) for r in records] == list(DEMO_RUNS)  # raw with both β1, spectral, adaptive
    assert all(f"{r['test_nmse']:.3f}" in table for r in records)

