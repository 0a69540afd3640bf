"""Closed-loop and offline evaluation: oracle succeeds, far waypoint fails, seeds never overlap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvperceiver.errors import InputError
from rvperceiver.sim.evaluate import (
    closed_loop_eval,
    constant_policy_fn,
    mean_target_trajectory,
    offline_ee_error,
    policy_fn_from_policy,
)
from rvperceiver.sim.generate import generate_demos
from rvperceiver.sim.reacher import make_reacher, target_position

SEEDS = (100000, 100001)
T_OBS, T_PRED, REPLAN = 2, 8, 8
CALLS_PER_EPISODE = -(-50 // REPLAN)


def _target_oracle():
    """Returns each episode's true target, repeated: the policy_fn the expert would be."""
    targets = []
    for seed in SEEDS:
        env = make_reacher(image_size=32, seed=seed)
        targets.append(target_position(env))
        env.close()
    calls = {"n": 0, "observations": []}

    def policy_fn(frames: np.ndarray) -> np.ndarray:
        calls["observations"].append(frames)
        episode = calls["n"] // CALLS_PER_EPISODE
        calls["n"] += 1
        return np.repeat(targets[episode][None], T_PRED, axis=0)

    return policy_fn, calls


def test_target_oracle_succeeds_and_expert_reference(tmp_path):
    policy_fn, calls = _target_oracle()
    strip = tmp_path / "strip.png"
    result = closed_loop_eval(
        policy_fn, n_episodes=2, seed=SEEDS[0], t_obs=T_OBS, t_pred=T_PRED, replan_every=REPLAN, image_size=32,
        save_strip=strip, strip_episodes=1,
    )
    assert calls["n"] == 2 * CALLS_PER_EPISODE
    assert result["success_rate"] == 1.0
    assert result["mean_final_distance"] < 0.01
    assert [e["seed"] for e in result["episodes"]] == list(SEEDS)
    assert result["expert"]["success_rate"] == 1.0
    first = calls["observations"][0]
    assert first.shape == (T_OBS, 32, 32, 3) and first.dtype == np.uint8
    assert np.array_equal(first[0], first[1])  # padded by repeating the first frame
    assert not np.array_equal(calls["observations"][1][0], calls["observations"][1][1])
    assert strip.exists() and strip.stat().st_size > 0


def test_far_constant_waypoint_fails_and_references():
    far = np.tile([0.0, -0.3, 0.01], (T_PRED, 1))
    result = closed_loop_eval(
        constant_policy_fn(far), n_episodes=2, seed=SEEDS[0], t_pred=T_PRED, image_size=32,
        expert_reference=False, oracle_reference=True, mean_trajectory=far,
    )
    assert result["success_rate"] == 0.0 and result["mean_final_distance"] > 0.05
    assert result["mean_trajectory"]["success_rate"] == 0.0
    assert "expert" not in result
    assert 0.0 <= result["oracle"]["success_rate"] <= 1.0 and len(result["oracle"]["episodes"]) == 2


def test_overlapping_seeds_raise():
    with pytest.raises(InputError, match="overlap"):
        closed_loop_eval(constant_policy_fn(np.zeros((T_PRED, 3))), n_episodes=3, seed=10, train_seeds=range(0, 11))
    with pytest.raises(InputError, match="overlap"):
        closed_loop_eval(constant_policy_fn(np.zeros((T_PRED, 3))), n_episodes=3, seed=10, train_seeds=[12])


def test_bad_policy_output_and_arguments_raise():
    with pytest.raises(InputError, match="t_pred"):
        closed_loop_eval(lambda frames: np.zeros((3, 3)), n_episodes=1, image_size=32, expert_reference=False)
    with pytest.raises(InputError, match="NaN"):
        closed_loop_eval(lambda frames: np.full((T_PRED, 3), np.nan), n_episodes=1, image_size=32)
    with pytest.raises(InputError, match="replan_every"):
        closed_loop_eval(constant_policy_fn(np.zeros((T_PRED, 3))), replan_every=9)
    with pytest.raises(InputError, match="aim"):
        closed_loop_eval(constant_policy_fn(np.zeros((T_PRED, 3))), aim="nowhere")


class _EchoPolicy(torch.nn.Module):
    """Predicts the mean pixel value as every coordinate, so the wrapper's plumbing is checkable."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen: list[tuple[tuple[int, ...], torch.dtype]] = []

    def predict(self, frames: torch.Tensor) -> torch.Tensor:
        self.seen.append((tuple(frames.shape), frames.dtype))
        value = frames.float().mean() * self.scale
        return value.expand(frames.shape[0], T_PRED, 3)


def test_policy_fn_from_policy_wraps_a_module():
    policy = _EchoPolicy()
    fn = policy_fn_from_policy(policy)
    frames = np.full((T_OBS, 8, 8, 3), 7, dtype=np.uint8)
    out = fn(frames)
    assert isinstance(out, np.ndarray) and out.shape == (T_PRED, 3)
    assert np.allclose(out, 7.0)
    assert policy.seen == [((1, T_OBS, 8, 8, 3), torch.uint8)]
    assert not policy.training


def test_offline_error_and_mean_trajectory():
    episodes = generate_demos(2, seed=40, image_size=32)
    lookup, windows = {}, []
    for episode in episodes:
        for start in range(episode.length - T_OBS - T_PRED + 1):
            key = episode.frames[start : start + T_OBS].tobytes()
            lookup[key] = episode.ee[start + T_OBS : start + T_OBS + T_PRED]
            windows.append(lookup[key])
    # The setpoint expert holds the arm still once there, so later windows can share frames (their ee differ by
    # less than a micrometre).
    assert offline_ee_error(lambda frames: lookup[frames.tobytes()], episodes, T_OBS, T_PRED) == pytest.approx(0.0, abs=1e-6)

    mean = mean_target_trajectory(episodes, T_OBS, T_PRED)
    assert mean.shape == (T_PRED, 3)
    targets = np.stack(windows)
    assert len(windows) == 2 * (50 - T_OBS - T_PRED + 1)
    assert np.allclose(mean, targets.mean(axis=0), atol=1e-6)
    expected = np.linalg.norm(targets - mean, axis=2).mean()
    assert offline_ee_error(constant_policy_fn(mean), episodes, T_OBS, T_PRED) == pytest.approx(expected, rel=1e-5)


def _fitted_policy(rollout=None):
    from rvperceiver.data.windows import WindowDataset
    from rvperceiver.model import CNNConfig, PolicyConfig, build_policy
    from rvperceiver.model.rollout import RolloutConfig
    from rvperceiver.views import ViewConfig

    torch.manual_seed(0)
    windows = WindowDataset(generate_demos(2, seed=40, image_size=32), T_OBS, T_PRED)
    frames = torch.stack([windows[i][0] for i in range(0, len(windows), 4)])
    targets = torch.stack([windows[i][1] for i in range(0, len(windows), 4)])
    config = PolicyConfig(
        view=ViewConfig(token_mode="pixel", pre_norm="zscore"), backbone="cnn",
        cnn=CNNConfig(channels=(4,), kernel_sizes=(3,), strides=(2,), num_keypoints=4, mlp_channels=8),
        rollout=rollout or RolloutConfig(),
    )
    policy = build_policy(config, (T_OBS, 32, 32, 3), (T_PRED, 3))
    policy.fit_statistics([frames], targets)
    return policy


def test_a_policy_runs_through_its_own_select_action_with_the_same_result_as_its_chunk_function():
    from rvperceiver.model.rollout import RolloutConfig

    policy = _fitted_policy(RolloutConfig(n_action_steps=1))
    settings = dict(n_episodes=1, seed=SEEDS[0], t_obs=T_OBS, t_pred=T_PRED, replan_every=3, image_size=32,
                    expert_reference=False)
    calls = []
    original = policy.select_action
    policy.select_action = lambda observation: calls.append(1) or original(observation)
    through_policy = closed_loop_eval(policy, aim="step", **settings)
    assert len(calls) == 50  # one select_action per step: the loop is the policy's own per-step interface
    through_fn = closed_loop_eval(policy_fn_from_policy(policy), aim="step", **settings)
    assert through_policy["episodes"] == through_fn["episodes"]
    assert policy.config.rollout == RolloutConfig(n_action_steps=1)  # the evaluation's rollout was undone
    assert through_policy["settings"]["rollout"] == {"n_action_steps": 3, "temporal_ensemble_coeff": None, "setpoint": "next"}


def test_temporal_ensembling_predicts_every_step():
    from rvperceiver.model.rollout import RolloutConfig

    env = make_reacher(image_size=32, seed=SEEDS[0])
    target = target_position(env)
    env.close()
    calls = {"n": 0}

    def policy_fn(frames: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        return np.repeat(target[None], T_PRED, axis=0)

    result = closed_loop_eval(
        policy_fn, n_episodes=1, seed=SEEDS[0], t_obs=T_OBS, t_pred=T_PRED, image_size=32, expert_reference=False,
        rollout=RolloutConfig(temporal_ensemble_coeff=0.01),
    )
    assert calls["n"] == 50 and result["success_rate"] == 1.0
