"""The behaviour-cloning study end to end at toy size, its statistics, and the budget-as-a-stop equivalence."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from rvperceiver.errors import ConfigError
from rvperceiver.experiments.bc import PROFILES, BCProfile, run_bc_study, study_commands
from rvperceiver.experiments.bc_stats import mcnemar_exact, rate, seed_claim_verdict, wilson_interval

TINY = dataclasses.replace(
    PROFILES["quick"],
    name="tiny",
    tiers=("fixed-start", "arm-hidden"),
    cells=(("fixed-start", "cnn"), ("arm-hidden", "cnn"), ("arm-hidden", "raw_perceiver"), ("arm-hidden", "fourier_perceiver")),
    budgets=(2, 4),
    n_demos=4,
    n_test_demos=1,
    t_pred=4,
    execute=2,
    batch_size=4,
    perceiver={"num_latents": 4, "latent_channels": 8, "self_heads": 2, "self_layers_per_block": 1, "num_bands": 2},
    cnn={"channels": [4], "kernel_sizes": [3], "strides": [2], "num_keypoints": 4, "mlp_channels": 8, "mlp_layers": 1},
    warmup_steps=1,
    eval_episodes=3,
    image_size=16,
    valid_fraction=0.25,
    episode_steps=25,  # the expert's plan takes 20 steps
    strip_episodes=1,
    torch_threads=None,
)


@pytest.mark.slow
def test_tiny_study_writes_results_report_commands_and_pictures(tmp_path):
    out = tmp_path / "bc"
    results = run_bc_study(TINY, out)
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["complete"] is True and on_disk["runs"] == json.loads(json.dumps(results["runs"]))
    assert sorted((r["tier"], r["model"]) for r in on_disk["runs"]) == sorted(TINY.cells)
    for run in on_disk["runs"]:
        assert set(run["budgets"]) == {"2", "4"}
        for budget in run["budgets"].values():
            closed = budget["closed_loop"]
            assert len(closed["final_distance"]) == TINY.eval_episodes and math.isfinite(budget["valid"]["nmse"])
    for tier in TINY.tiers:
        refs = on_disk["references"][tier]
        assert refs["oracle"]["success_rate"] == 1.0 and refs["expert"]["success_rate"] == 1.0
    summary = on_disk["summary"]
    assert "adaptive_perceiver" in summary["tiers"]["arm-hidden"]["models"]
    assert summary["seed_claim"]["verdict"] in ("supported", "refuted", "inconclusive")
    assert any(c["a"] == "fourier_perceiver" and c["b"] == "raw_perceiver" for c in summary["tiers"]["arm-hidden"]["comparisons"])
    report = (out / "report.md").read_text()
    assert "## The seed's claim" in report and "Wilson" in report and "commands.md" in report
    for name in ("success_vs_budget.png", "final_distance_cdf.png", "strips/arm-hidden_cnn.png", "strips/fixed-start_expert.png"):
        assert (out / name).stat().st_size > 0
    commands = (out / "commands.md").read_text()
    assert "rvperceiver sim generate --tier arm-hidden" in commands and "--execute 2" in commands
    # Parts run on disjoint seeds (one process each) merge into one study; the pooled episodes add up.
    import copy

    from rvperceiver.experiments.bc import merge_results

    second = copy.deepcopy(on_disk)
    second["seeds"] = [1]
    for run in second["runs"]:
        run["seed"] = 1
    merged = merge_results([on_disk, second])
    assert merged["complete"] and merged["seeds"] == [0, 1] and len(merged["runs"]) == 2 * len(TINY.cells)
    pooled = merged["summary"]["tiers"]["arm-hidden"]["models"]["cnn"]["4"]["success"]
    assert pooled["n"] == 2 * TINY.eval_episodes
    with pytest.raises(ConfigError, match="overlap"):
        merge_results([on_disk, on_disk])
    # A part stopped early (asked for seeds 0 and 1, finished seed 0 only) contributes the seed it finished.
    stopped = copy.deepcopy(on_disk)
    stopped.update(seeds=[0, 1], complete=False)
    stopped["runs"].append({**copy.deepcopy(on_disk["runs"][0]), "seed": 1, "budgets": []})
    merged = merge_results([stopped, second])
    assert merged["complete"] and merged["seeds"] == [0, 1] and len(merged["runs"]) == 2 * len(TINY.cells)
    # Whether a policy uses its frames: the state-only reference on the tier with the joint state, the
    # start-window error of every run at every budget, and both in the report.
    state_only = on_disk["references"]["arm-hidden"]["state_only"]
    assert len(state_only["final_distance"]) == TINY.eval_episodes and state_only["valid_nmse"] > 0
    assert "state_only" not in on_disk["references"]["fixed-start"]
    assert all(b["start_window_error"] > 0 for r in on_disk["runs"] for b in r["budgets"].values())
    report = (out / "report.md").read_text()
    assert "state-only MLP (the joint state, no frames)" in report and "start-window error (mm)" in report
    # The arm-hidden CNN was trained with the joint state beside the frames.
    config = (out / "work" / "runs" / "arm-hidden" / "cnn_seed0" / "config.yaml").read_text()
    assert "robot0_joint_pos" in config and "robot0_eef_setpoint" in config


def test_a_budget_is_a_stop_of_the_longer_run(tmp_path):
    """Constant LR after warm-up and a (seed, step) data order: 3 steps of a 6-step run = a 3-step run."""
    from rvperceiver.data.loading import load_windows
    from rvperceiver.experiments.bc import SETPOINT_KEY, cell_config
    from rvperceiver.sim.generate import generate_to_file
    from rvperceiver.train.loop import train

    data = tmp_path / "demos.hdf5"
    generate_to_file(data, 3, 0, image_size=16, valid_fraction=0.34, progress=False, tier="fixed-start", episode_steps=12)
    windows = load_windows(data, ee_key=SETPOINT_KEY, t_obs=1, t_pred=4, valid_fraction=0.34)
    profile = dataclasses.replace(TINY, budgets=(3, 6))
    long_config = cell_config("fixed-start", "cnn", profile, data, 0, tmp_path / "long")
    short_config = dataclasses.replace(long_config, steps=3, out_dir=str(tmp_path / "short"))
    stopped = train(long_config, windows.train, windows.valid, progress=False, stop_at_step=3).policy
    alone = train(short_config, windows.train, windows.valid, progress=False).policy
    for (name, a), b in zip(stopped.state_dict().items(), alone.state_dict().values()):
        assert torch.equal(a, b), name


def test_wilson_interval_and_mcnemar_known_values():
    lo, hi = wilson_interval(180, 200)
    assert lo == pytest.approx(0.8506, abs=1e-3) and hi == pytest.approx(0.9343, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(200, 200)[1] == 1.0
    test = mcnemar_exact([True] * 10 + [False] * 2, [False] * 10 + [True] * 2)
    assert (test["a_only"], test["b_only"]) == (10, 2)
    assert test["p"] == pytest.approx(2 * sum(math.comb(12, i) for i in range(3)) / 2**12)
    assert mcnemar_exact([True, False], [True, False])["p"] == 1.0


def test_decision_rule():
    def r(k, n=600):
        return rate([True] * k + [False] * (n - k))

    assert seed_claim_verdict({300: r(100), 1500: r(200)}, {300: r(300), 1500: r(420)})["verdict"] == "supported"
    assert seed_claim_verdict({300: r(300), 1500: r(400)}, {300: r(310), 1500: r(380)})["verdict"] == "refuted"
    assert seed_claim_verdict({300: r(400), 1500: r(500)}, {300: r(100), 1500: r(200)})["verdict"] == "refuted"
    assert seed_claim_verdict({300: r(100), 1500: r(200)}, {300: r(300), 1500: r(250)})["verdict"] == "inconclusive"
    assert seed_claim_verdict({300: r(100)}, {300: r(500)})["verdict"] == "inconclusive"


def test_decision_rule_ignores_budgets_where_both_views_sit_on_the_floor():
    def r(k, n=600):
        return rate([True] * k + [False] * (n - k))

    floor = rate([True] + [False] * 199)  # the mean predictor: 1 of 200
    both_at_floor = {300: r(6), 1500: r(7)}, {300: r(6), 1500: r(6)}
    assert seed_claim_verdict(*both_at_floor)["verdict"] == "refuted"  # the first version's reading
    verdict = seed_claim_verdict(*both_at_floor, floor=floor)
    assert verdict["verdict"] == "inconclusive"
    assert [row["informative"] for row in verdict["budgets"]] == [False, False]
    assert "floor at budget(s) [300, 1500]" in verdict["reason"]
    # One informative budget is not enough for a tie; two are.
    assert seed_claim_verdict({300: r(6), 1500: r(100)}, {300: r(6), 1500: r(110)}, floor)["verdict"] == "inconclusive"
    assert seed_claim_verdict({300: r(80), 1500: r(100)}, {300: r(90), 1500: r(110)}, floor)["verdict"] == "refuted"
    # A view that leaves the floor while the other stays makes a budget informative, and can support the claim.
    assert seed_claim_verdict({300: r(6), 1500: r(6)}, {300: r(200), 1500: r(300)}, floor)["verdict"] == "supported"


def test_study_commands_list_every_row(tmp_path):
    commands = study_commands(TINY, tmp_path, (0,))
    assert len(commands) == 2 * len(TINY.tiers) + 3 * len(TINY.cells) * len(TINY.budgets)
    assert isinstance(TINY, BCProfile)


@pytest.mark.slow
def test_a_study_continued_to_a_larger_budget_equals_a_fresh_one(tmp_path):
    """--reuse: the earlier budgets are kept, the run trains on from its checkpoint, and the new budget's scores
    are exactly those of a study run from nothing; a profile that differs elsewhere, or budgets that are not a
    continuation, or a work dir without the checkpoint, is one clear line."""
    from rvperceiver.errors import DataError
    from rvperceiver.experiments.bc import reusable_runs

    small = dataclasses.replace(TINY, tiers=("fixed-start",), cells=(("fixed-start", "cnn"),), budgets=(2,),
                                eval_episodes=2)
    longer = dataclasses.replace(small, budgets=(2, 4))
    run_bc_study(small, tmp_path / "short", work_dir=tmp_path / "work")
    earlier = tmp_path / "short" / "results.json"
    # A record from before start_window_error existed: it is recomputed from the budget's checkpoint.
    stripped = json.loads(earlier.read_text())
    del stripped["runs"][0]["budgets"]["2"]["start_window_error"]
    (tmp_path / "stripped.json").write_text(json.dumps(stripped))
    continued = run_bc_study(longer, tmp_path / "continued", work_dir=tmp_path / "work", reuse=tmp_path / "stripped.json")
    fresh = run_bc_study(longer, tmp_path / "fresh", work_dir=tmp_path / "fresh_work")
    (run,), (alone,) = continued["runs"], fresh["runs"]
    assert run["reused_budgets"] == [2] and continued["reused_from"]["runs"] == 1
    assert run["budgets"]["2"] == json.loads(earlier.read_text())["runs"][0]["budgets"]["2"]
    for key in ("valid", "start_window_error"):
        assert run["budgets"]["4"][key] == alone["budgets"]["4"][key], key
    assert run["budgets"]["4"]["closed_loop"]["final_distance"] == alone["budgets"]["4"]["closed_loop"]["final_distance"]
    assert "--reuse" in continued["command"]
    assert "`--reuse` kept those rows" in (tmp_path / "continued" / "report.md").read_text()

    previous = json.loads(earlier.read_text())
    with pytest.raises(ConfigError, match="differing in n_demos"):
        reusable_runs(previous, dataclasses.replace(longer, n_demos=5), [0], tmp_path / "work")
    with pytest.raises(ConfigError, match="not the start of"):
        reusable_runs(previous, dataclasses.replace(longer, budgets=(3, 4)), [0], tmp_path / "work")
    with pytest.raises(DataError, match="no checkpoint at step 2"):
        reusable_runs(previous, longer, [0], tmp_path / "empty_work")
    # A tier may be added: the earlier runs are kept, the new tier's cells train from nothing.
    wider = dataclasses.replace(longer, tiers=("fixed-start", "arm-hidden-angles"),
                                cells=(("fixed-start", "cnn"), ("arm-hidden-angles", "cnn")))
    assert set(reusable_runs(previous, wider, [0], tmp_path / "work")) == {("fixed-start", "cnn", 0)}


def _closed(successes: int, n: int = 20) -> dict:
    finals = [0.005] * successes + [0.1] * (n - successes)
    return {"final_distance": finals, "min_distance": finals}


def _fake_results(tiers: dict[str, dict[str, dict[int, int]]]) -> dict:
    """A results.json skeleton: per tier, per model, per budget, the number of 20 episodes that succeed (1 seed)."""
    runs = [
        {"tier": tier, "model": model, "seed": 0,
         "budgets": {str(b): {"closed_loop": _closed(k), "valid": {}, "train_wall_s": 1.0} for b, k in budgets.items()}}
        for tier, models in tiers.items() for model, budgets in models.items()
    ]
    return {"references": {tier: {"mean_predictor": _closed(0)} for tier in tiers}, "runs": runs}


def test_the_claim_is_decided_on_arm_hidden_angles_and_still_reported_on_arm_hidden():
    from rvperceiver.experiments.bc_report import render_report, summarise

    views = {"raw_perceiver": {300: 18, 1500: 19}, "fourier_perceiver": {300: 2, 1500: 3}}
    floors = {"raw_perceiver": {300: 0, 1500: 0}, "fourier_perceiver": {300: 0, 1500: 0}}
    both = summarise(_fake_results({"arm-hidden": floors, "arm-hidden-angles": views}))
    assert both["seed_claim"]["tier"] == "arm-hidden-angles" and both["seed_claim"]["verdict"] == "refuted"
    assert both["seed_claims"]["arm-hidden"]["verdict"] == "inconclusive"
    claim_goal = next(g for g in both["goals"] if g["goal"].startswith("seed's claim"))
    assert claim_goal["met"] is True and "refuted on arm-hidden-angles" in claim_goal["evidence"]
    # Without the deciding tier (results from before it existed) the claim is read on arm-hidden, as it was.
    old = summarise(_fake_results({"arm-hidden": floors}))
    assert old["seed_claim"]["tier"] == "arm-hidden" and list(old["seed_claims"]) == ["arm-hidden"]
    report = render_report({"profile": dataclasses.asdict(TINY), "seeds": [0], "command": "rvperceiver experiment bc",
                            "date": "2026-12-01", "summary": both, "references": {}, "runs": [], "data": {},
                            "machine": {}})
    assert "## The seed's claim on `arm-hidden-angles` (deciding tier;" in report
    assert "## The seed's claim on `arm-hidden` (reported, not deciding;" in report
