"""End-to-end runs of the seed-claims study with the ultra-small 'test' profile."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from rvperceiver.errors import ConfigError
from rvperceiver.experiments.runner import rule_picks, run_experiment, train_run
from rvperceiver.experiments.tasks import Cell, get_profile, make_task, parse_seeds
from rvperceiver.views.adaptive import RULES

RUN_KEYS = {"cell", "task", "n_tokens", "view", "carrier", "noise", "phase", "axes", "beta1", "lr", "steps", "seed",
            "test_nmse", "learned", "escape_step", "curve", "rule_picks", "wall_time_s"}
CELL_KEYS = {"cell", "task", "n_tokens", "view", "carrier", "noise", "phase", "axes", "beta1", "lr", "steps", "n",
             "k_learned", "ci_low", "ci_high", "escape_step_median"}


def _load(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_tiny_difference_end_to_end_and_resume(tmp_path: Path) -> None:
    profile = get_profile("test")
    records = run_experiment("tiny-difference", "test", tmp_path)
    cells = profile.grid("tiny-difference")
    assert len(records) == sum(c.seeds for c in cells)
    saved = _load(tmp_path)
    runs = [r for r in saved if r["record"] == "run"]
    assert len(runs) == len(records)
    for r in runs:
        assert RUN_KEYS <= set(r), RUN_KEYS - set(r)
        assert r["learned"] == (r["test_nmse"] < 0.5)
        assert r["curve"][-1]["step"] == r["steps"]
        assert set(r["rule_picks"]) == set(RULES)
    cell_records = [r for r in saved if r["record"] == "cell"]
    assert {c["cell"] for c in cell_records} == {c.key for c in cells}
    for c in cell_records:
        assert CELL_KEYS <= set(c), CELL_KEYS - set(c)
        assert 0.0 <= c["ci_low"] <= c["k_learned"] / c["n"] <= c["ci_high"] <= 1.0
    assert [v["claim"] for v in saved if v["record"] == "verdict"] == ["R1", "R2", "R3", "R4", "R5"]
    report = (tmp_path / "report.md").read_text()
    assert "**R1**" in report and "## Which view wins" not in report or "confusion" not in report
    assert (tmp_path / "learned_vs_n_tiny-difference.png").stat().st_size > 1000

    # A second call finds every run in the log and trains nothing.
    again = run_experiment("tiny-difference", "test", tmp_path)
    assert [r["wall_time_s"] for r in again] == [r["wall_time_s"] for r in records]
    (tmp_path / "report.md").unlink()
    reported = run_experiment("tiny-difference", "test", tmp_path, report_only=True)
    assert len(reported) == len(records) and (tmp_path / "report.md").exists()


@pytest.mark.slow
def test_frequency_shift_and_theory_share_one_folder(tmp_path: Path) -> None:
    run_experiment("frequency-shift", "test", tmp_path, seeds=[0])
    theory = run_experiment("theory", "test", tmp_path)
    assert [r["n_tokens"] for r in theory] == [16, 64, 256]
    saved = _load(tmp_path)
    assert {r.get("experiment") for r in saved if r["record"] in ("run", "theory")} == {"frequency-shift", "theory"}
    confusion = [r for r in saved if r["record"] == "confusion"]
    assert len(confusion) == 1 and confusion[0]["task"] == "frequency-shift"
    assert confusion[0]["picks"]["participation"] == "raw"  # the seed's rule on a fixed-phase shift
    count = len(saved)
    run_experiment("theory", "test", tmp_path)  # replaces its own records, keeps the others
    assert len(_load(tmp_path)) == count
    report = (tmp_path / "report.md").read_text()
    assert "## Theory" in report and "## Which view wins" in report
    assert (tmp_path / "theory.png").stat().st_size > 1000


def test_same_seed_same_numbers_and_early_stop_is_exact() -> None:
    profile = get_profile("test")
    task = make_task("tiny-difference", 64, 0, profile.num_train, profile.num_test)
    cell = Cell("tiny-difference", 64, "centre-fft", carrier="token0", steps=40, seeds=1)
    first = train_run(cell, 0, task, profile)
    assert train_run(cell, 0, task, profile)["curve"] == first["curve"]
    assert train_run(cell, 1, task, profile)["curve"] != first["curve"]
    # Two 20-step segments through the trainer's resume (stop_below 0 never triggers) = one 40-step call.
    segmented = train_run(cell, 0, task, replace(profile, stop_below=0.0))
    assert segmented["curve"] == first["curve"] and not segmented["stopped_early"]
    # With a generous threshold the run stops at the first segment boundary.
    stopped = train_run(cell, 0, task, replace(profile, stop_below=10.0))
    assert stopped["stopped_early"] and stopped["steps_run"] == 2 * profile.eval_every
    assert stopped["curve"] == first["curve"][: len(stopped["curve"])]


def test_rule_picks_on_the_seeds_tasks() -> None:
    td = rule_picks(make_task("tiny-difference", 256, 0, 256, 16))
    assert {rule: p["chosen"] for rule, p in td.items()} == {r: "fourier" for r in RULES}
    shift = rule_picks(make_task("frequency-shift", 256, 0, 256, 16))
    assert shift["participation"]["chosen"] == "raw"
    assert shift["target-block"]["chosen"] == "fourier"


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="experiment 'tiny' does not exist"):
        run_experiment("tiny", "test", tmp_path)
    with pytest.raises(ConfigError, match="profile 'huge' does not exist"):
        run_experiment("theory", "huge", tmp_path)
    with pytest.raises(ConfigError, match="seed list is empty"):
        run_experiment("tiny-difference", "test", tmp_path, seeds=[])
    with pytest.raises(ConfigError, match=r"repeats \[1\]"):
        parse_seeds("0,1,1")
    with pytest.raises(ConfigError, match="not an integer"):
        parse_seeds("0,x")
    with pytest.raises(ConfigError, match="factor 'carrier' level 'middle' does not exist"):
        Cell("tiny-difference", 64, "fft", carrier="middle")
    with pytest.raises(ConfigError, match="factor 'noise' level 0.5 does not exist"):
        Cell("tiny-difference", 64, "fft", carrier="token0", noise=0.5)
    with pytest.raises(ConfigError, match="factor 'phase' level 'odd' does not exist"):
        Cell("frequency-shift", 64, "fft", phase="odd")
    with pytest.raises(ConfigError, match="factor 'axes' level 'diagonal' does not exist"):
        Cell("tiny-difference", 64, "fft", carrier="token0", axes="diagonal")


def test_job_orders_and_question_filter(tmp_path: Path) -> None:
    from rvperceiver.experiments.runner import _jobs

    profile = get_profile("standard")
    cells = profile.grid("tiny-difference")
    by_seed = _jobs(cells, None, profile, "cpu")
    assert len(by_seed) == sum(c.seeds for c in cells)
    first_long = next(i for i, job in enumerate(by_seed) if job[0].steps > 1000)
    assert all(job[0].steps > 1000 for job in by_seed[first_long:])  # escape runs after every short run
    assert [job[1] for job in by_seed[:3]] == [0, 0, 0]
    by_cell = _jobs(cells[:2], (0, 1, 2), profile, "cpu", "cell")
    assert [(job[0].key, job[1]) for job in by_cell[:3]] == [(by_cell[0][0].key, s) for s in (0, 1, 2)]
    with pytest.raises(ConfigError, match="questions"):
        run_experiment("tiny-difference", "test", tmp_path, questions=["R9"])
    with pytest.raises(ConfigError, match="order 'random' does not exist"):
        run_experiment("tiny-difference", "test", tmp_path, order="random")


def test_profiles_put_ten_seeds_on_verdict_cells() -> None:
    standard = get_profile("standard")
    for cell in standard.cells:
        r1_verdict = "R1" in cell.questions and cell.n_tokens == 12288  # smaller N: the escape curve, no verdict
        if r1_verdict or {"R3", "R4", "R5"} & set(cell.questions) or (cell.questions == ("R2",) and cell.lr == 1e-3):
            assert cell.seeds >= 10, cell.key
        if {"R1", "R2"} & set(cell.questions):
            assert cell.steps >= 5000
    keys = [c.key for c in standard.cells]
    assert len(keys) == len(set(keys))
    full = get_profile("full")
    assert max(c.n_tokens for c in full.cells) == 49152 and full.device == "cuda"


def test_demo_prints_a_comparison_table(tmp_path: Path) -> None:
    from rvperceiver.experiments import demo
    from rvperceiver.experiments.runner import DEMO_RUNS

    table = demo(tmp_path, n_tokens=64, profile="test")
    for view in ("raw+fourier-pos", "fft", "centre-fft"):
        assert view in table
    assert "Adaptive choice" in table and "fourier" in table
    assert (tmp_path / "demo.md").read_text().strip() == table.strip()
    records = _load(tmp_path)
    assert [(r["view"], r["beta1"]) for r in records] == list(DEMO_RUNS)
    assert all(f"{r['test_nmse']:.3f}" in table for r in records)
