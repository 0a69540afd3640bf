"""Closed loop on setpoints: the oracle gate, exact replay of recorded demos, receding horizon vs ensembling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvperceiver.errors import InputError
from rvperceiver.sim.closed_loop import (
    ClosedLoopConfig,
    check_seed_overlap,
    constant_chunk_fn,
    run_closed_loop,
)
from rvperceiver.sim.generate import SETPOINT_KEY, generate_demos
from rvperceiver.sim.tiers import TIERS


@pytest.mark.slow
@pytest.mark.parametrize("tier", list(TIERS))
def test_oracle_gate_on_the_evaluation_seeds(tier):
    """GATE: replaying the expert's future setpoints succeeds (2 cm at the last step) on >= 98% of 200 seeds."""
    config = ClosedLoopConfig(tier=tier, episodes=200, seed=100_000, t_pred=8, execute=4)
    oracle = run_closed_loop("oracle", config, train_seeds=range(0, 1000))
    expert = run_closed_loop("expert", config)
    assert oracle["success_rate"] >= 0.98
    assert expert["success_rate"] >= 0.98
    # With setpoint labels a perfect predictor *is* the expert: same final distance on every seed.
    assert [e["final_distance"] for e in oracle["episodes"]] == pytest.approx(
        [e["final_distance"] for e in expert["episodes"]], abs=1e-9
    )


def _recorded_oracle(episodes, t_pred):
    """A predictor that reads the next t_pred setpoints from the recorded demos (row t+1 = setpoint of step t)."""
    by_seed = {100 + i: episode.extras[SETPOINT_KEY] for i, episode in enumerate(episodes)}

    def run(step, seeds):
        chunks = []
        for seed in seeds:
            rows = by_seed[int(seed)]
            index = np.minimum(np.arange(step + 1, step + 1 + t_pred), len(rows) - 1)
            chunks.append(rows[index])
        return np.stack(chunks)

    run.uses_episode = True
    return run


@pytest.mark.parametrize("execute,ensemble", [(4, None), (8, None), (1, None)])
def test_replaying_recorded_setpoints_reproduces_the_demos(execute, ensemble):
    """The recorded setpoints, fed back through the same tracker, give the recorded fingertip path exactly."""
    episodes = generate_demos(3, seed=100, image_size=16, tier="fixed-start", episode_steps=30)
    config = ClosedLoopConfig(
        tier="fixed-start", episodes=3, seed=100, image_size=16, episode_steps=30, t_pred=8, execute=execute,
        ensemble=ensemble,
    )
    result = run_closed_loop(_recorded_oracle(episodes, 8), config, record_paths=True)
    recorded = np.stack([episode.ee[:, :2] for episode in episodes])
    np.testing.assert_allclose(result["paths"][:, :30], recorded, atol=1e-6)
    assert result["success_rate"] == 1.0


def test_a_lagging_predictor_does_not_reproduce_the_demos():
    """The same replay shifted by one step (the label misalignment the setpoint key avoids) drifts off the path."""
    episodes = generate_demos(2, seed=100, image_size=16, tier="fixed-start", episode_steps=30)
    shifted = _recorded_oracle(episodes, 8)

    def lagging(step, seeds):
        return shifted(max(0, step - 1), seeds)

    lagging.uses_episode = True
    config = ClosedLoopConfig(tier="fixed-start", episodes=2, seed=100, image_size=16, episode_steps=30)
    result = run_closed_loop(lagging, config, record_paths=True)
    recorded = np.stack([episode.ee[:, :2] for episode in episodes])
    assert np.abs(result["paths"][:, :30] - recorded).max() > 1e-3


def test_ensembling_averages_overlapping_chunks():
    """A constant predictor gives the same rollout whatever the executor; ensembling queries every step."""
    calls = []

    def constant(step, seeds):
        calls.append(step)
        return np.full((len(seeds), 4, 3), 0.1)

    constant.uses_episode = True
    base = dict(episodes=2, seed=7, image_size=16, episode_steps=12, t_pred=4)
    receding = run_closed_loop(constant, ClosedLoopConfig(**base, execute=4))
    assert calls == [0, 4, 8]
    calls.clear()
    ensembled = run_closed_loop(constant, ClosedLoopConfig(**base, ensemble=0.01))
    assert calls == list(range(12))
    assert [e["final_distance"] for e in receding["episodes"]] == pytest.approx(
        [e["final_distance"] for e in ensembled["episodes"]]
    )


@pytest.mark.parametrize("tier, width", [("arm-hidden", 4), ("arm-hidden-angles", 2)])
def test_policy_sees_frames_and_low_dim_of_the_tier(tier, width):
    seen = {}

    def spy(batch):
        seen.setdefault("frames", batch["observation.image"])
        seen.setdefault("low_dim", batch["observation.state"])
        return np.zeros((len(batch["observation.image"]), 8, 2))

    spy.uses_state = True
    config = ClosedLoopConfig(tier=tier, episodes=3, seed=50, image_size=16, episode_steps=4)
    result = run_closed_loop(spy, config)
    assert tuple(seen["frames"].shape) == (3, 2, 16, 16, 3) and seen["frames"].dtype == torch.uint8
    assert tuple(seen["low_dim"].shape) == (3, 2, width) and seen["low_dim"].dtype == torch.float32
    assert set(result) >= {"success_rate", "strict_success_rate", "ever_within_rate", "median_final_distance"}
    assert len(result["episodes"]) == 3 and all("min_distance" in e for e in result["episodes"])


def test_mean_predictor_reference_fails_mostly():
    result = run_closed_loop(constant_chunk_fn(np.zeros((8, 3)) + [0.05, 0.0, 0.01]), ClosedLoopConfig(episodes=20))
    assert result["success_rate"] < 0.5


def test_bad_input_is_one_clear_line():
    with pytest.raises(InputError, match="overlap the training seeds"):
        check_seed_overlap(range(10, 20), range(0, 15))
    with pytest.raises(InputError, match="unknown tier 'arm-hiden'.*did you mean 'arm-hidden'"):
        ClosedLoopConfig(tier="arm-hiden")
    with pytest.raises(InputError, match="execute must be"):
        ClosedLoopConfig(execute=9, t_pred=8)
    with pytest.raises(InputError, match=r"must return \[B=1, t_pred=8"):
        run_closed_loop(lambda o: np.zeros((1, 3, 2)), ClosedLoopConfig(episodes=1, image_size=16, episode_steps=2))
    with pytest.raises(InputError, match="NaN"):
        run_closed_loop(lambda o: np.full((1, 8, 2), np.nan), ClosedLoopConfig(episodes=1, image_size=16, episode_steps=2))


@pytest.mark.slow
def test_cli_generate_train_and_closed_loop_on_arm_hidden(tmp_path, capsys):
    """The study's per-row commands: sim generate --tier, train with the joint state, sim eval --tier."""
    import json

    from rvperceiver.cli import main

    data = tmp_path / "demos.hdf5"
    assert main(["sim", "generate", "--tier", "arm-hidden", "--episodes", "3", "--seed", "0", "--image-size", "16",
                 "--valid-fraction", "0.34", "--out", str(data), "--quiet"]) == 0
    run = tmp_path / "run"
    assert main(["train", "data.path=" + str(data), "data.ee_key=robot0_eef_setpoint",
                 "data.state_keys=[robot0_joint_pos,robot0_joint_vel]", "data.t_obs=1", "data.t_pred=4",
                 "policy.backbone=cnn", "policy.view.token_mode=pixel", "policy.view.pre_norm=zscore", "steps=2",
                 "schedule.warmup_steps=0",
                 "batch_size=4", "eval_every=2", "checkpoint_every=2", "--out", str(run), "--quiet"]) == 0
    out = tmp_path / "closed.json"
    assert main(["sim", "eval", "--checkpoint", str(run), "--tier", "trained", "--episodes", "2", "--seed", "100000",
                 "--execute", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["tier"] == "arm-hidden" and len(result["episodes"]) == 2
    assert result["references"]["oracle"]["success_rate"] == 1.0
    # Evaluation seeds inside the training range: one clear line, exit status 2.
    assert main(["sim", "eval", "--checkpoint", str(run), "--tier", "arm-hidden", "--episodes", "2", "--seed", "1"]) == 2
    # A tier that gives other low-dim keys than the policy was trained on: one clear line naming both.
    capsys.readouterr()
    assert main(["sim", "eval", "--checkpoint", str(run), "--tier", "arm-hidden-angles", "--episodes", "2",
                 "--seed", "100000"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "observation.state = ['robot0_joint_pos']" in error[0]
    assert "data.state_keys=['robot0_joint_pos', 'robot0_joint_vel']" in error[0]
