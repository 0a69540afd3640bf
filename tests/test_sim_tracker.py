"""Kinematics, the minimum-jerk planner, the trackers and the tiers."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from rvperceiver.errors import InputError
from rvperceiver.sim.expert import MinimumJerkPlanner, SetpointExpert, minimum_jerk
from rvperceiver.sim.kinematics import ArmGeometry
from rvperceiver.sim.reacher import make_reacher, render_frame
from rvperceiver.sim.tiers import SCATTERED_ELBOW, TIERS, Tier, get_tier, reset_episode, state_vector
from rvperceiver.sim.tracker import InverseDynamicsTracker, PDTracker, make_tracker


@pytest.fixture(scope="module")
def env():
    env = gym.make("Reacher-v5")
    yield env
    env.close()


def test_forward_kinematics_matches_mujoco(env):
    base = env.unwrapped
    geometry = ArmGeometry.from_model(base.model)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform([-np.pi, -3.0], [np.pi, 3.0])
        base.data.qpos[:2] = q
        mujoco.mj_forward(base.model, base.data)
        np.testing.assert_allclose(geometry.forward(q), base.data.body("fingertip").xpos[:2], atol=1e-9)


def test_inverse_kinematics_round_trip_and_branch(env):
    geometry = ArmGeometry.from_model(env.unwrapped.model)
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = rng.uniform([-np.pi, 0.2], [np.pi, 2.9]) * np.array([1.0, rng.choice([-1.0, 1.0])])
        solution = geometry.inverse(geometry.forward(q), near=q + 0.05)
        np.testing.assert_allclose(solution, q, atol=1e-9)  # the branch nearest the reference
    inner, outer = geometry.reach
    assert inner == pytest.approx(0.0179, abs=1e-3) and outer == pytest.approx(0.21)
    # Out of reach: the nearest reachable pose, finite.
    assert np.linalg.norm(geometry.forward(geometry.inverse(np.array([0.0, 0.5]), np.zeros(2)))) == pytest.approx(0.21)
    with pytest.raises(InputError):
        geometry.inverse(np.array([np.nan, 0.0]), np.zeros(2))


def test_minimum_jerk_profile():
    values = minimum_jerk(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]))
    np.testing.assert_allclose(values, [0.0, 0.0, 0.5, 1.0, 1.0])
    with pytest.raises(InputError):
        MinimumJerkPlanner(0)


@pytest.mark.parametrize("tracker_name,max_rms_mm", [("inverse_dynamics", 1.0), ("pd", 25.0)])
def test_trackers_follow_the_planned_path(env, tracker_name, max_rms_mm):
    """Inverse dynamics reproduces the planned path to under a millimetre; PD lags (bench_tracker.py measures)."""
    errors = []
    for seed in range(5):
        reset_episode(env, seed, TIERS["fixed-start"])
        expert = SetpointExpert(tracker=tracker_name)
        expert.begin(env, 50)
        for step in range(50):
            setpoint, action = expert.act(env, step)
            assert action.shape == (2,) and np.all(np.abs(action) <= 1.0)
            env.step(action)
            errors.append(np.linalg.norm(env.unwrapped.data.body("fingertip").xpos[:2] - setpoint))
    rms_mm = 1000 * float(np.sqrt(np.mean(np.square(errors))))
    assert rms_mm < max_rms_mm
    assert 1000 * errors[-1] < 5.0


def test_tracker_needs_a_reset_and_a_finite_setpoint(env):
    tracker = InverseDynamicsTracker()
    with pytest.raises(InputError, match="reset"):
        tracker.action(env.unwrapped.model, env.unwrapped.data, np.zeros(2))
    tracker.reset(env.unwrapped.model, env.unwrapped.data, 0.02)
    with pytest.raises(InputError, match="finite"):
        tracker.action(env.unwrapped.model, env.unwrapped.data, np.array([np.inf, 0.0]))
    with pytest.raises(InputError, match="unknown tracker"):
        make_tracker("lqr")
    assert isinstance(make_tracker("pd"), PDTracker)


def test_fixed_start_resets_to_zero_with_the_target_in_the_annulus(env):
    tier = TIERS["fixed-start"]
    targets = []
    for seed in range(30):
        reset_episode(env, seed, tier)
        data = env.unwrapped.data
        assert np.all(data.qpos[:2] == 0.0) and np.all(data.qvel == 0.0)
        radius = float(np.linalg.norm(data.body("target").xpos[:2]))
        assert tier.annulus[0] <= radius <= tier.annulus[1]
        targets.append(data.qpos[2:].copy())
    reset_episode(env, 3, tier)
    np.testing.assert_array_equal(env.unwrapped.data.qpos[2:], targets[3])  # deterministic in the seed


def test_scattered_start_puts_the_arm_anywhere_at_rest_and_keeps_the_stock_target(env):
    """arm-hidden-angles: the start pose spans the joint range, independent of the target; the target is stock's."""
    tier = TIERS["arm-hidden-angles"]
    starts, targets = [], []
    for seed in range(200):
        reset_episode(env, seed, get_tier("stock"))
        stock_target = env.unwrapped.data.qpos[2:].copy()
        reset_episode(env, seed, tier)
        data = env.unwrapped.data
        assert np.all(data.qvel == 0.0)
        np.testing.assert_array_equal(data.qpos[2:], stock_target)
        starts.append(data.qpos[:2].copy())
        targets.append(data.body("target").xpos[:2].copy())
    starts, targets = np.array(starts), np.array(targets)
    assert starts[:, 0].min() < -2.5 and starts[:, 0].max() > 2.5  # the shoulder over (almost) a full turn
    assert np.abs(starts[:, 1]).max() <= SCATTERED_ELBOW and np.abs(starts[:, 1]).max() > 2.0
    # The start pose says nothing about the goal: no correlation between the angles and the target's coordinates.
    correlations = np.corrcoef(np.hstack([np.cos(starts), np.sin(starts), targets]).T)[:4, 4:]
    assert np.abs(correlations).max() < 0.25
    reset_episode(env, 7, tier)
    np.testing.assert_array_equal(env.unwrapped.data.qpos[:2], starts[7])  # deterministic in the seed


def test_a_tier_gives_the_low_dim_keys_it_names(env):
    reset_episode(env, 5, TIERS["arm-hidden"])
    env.step(np.array([0.5, -0.5], dtype=np.float32))
    data = env.unwrapped.data
    both = state_vector(env, TIERS["arm-hidden"].state_keys)
    angles = state_vector(env, TIERS["arm-hidden-angles"].state_keys)
    assert both.dtype == np.float32 and both.shape == (4,) and angles.shape == (2,)
    np.testing.assert_allclose(both, np.concatenate([data.qpos[:2], data.qvel[:2]]), rtol=1e-6)
    np.testing.assert_allclose(angles, data.qpos[:2], rtol=1e-6)
    assert TIERS["arm-hidden-angles"].low_dim and not TIERS["fixed-start"].low_dim
    with pytest.raises(InputError, match=r"unknown low-dim keys \['robot0_eef_pos'\]; expected some of"):
        Tier("mine", state_keys=("robot0_eef_pos",))
    with pytest.raises(InputError, match="fixed_start and scattered_start exclude each other"):
        Tier("mine", fixed_start=True, scattered_start=True)


def test_arm_hidden_angles_frames_differ_only_at_the_target():
    """The arm is drawn nowhere, whatever its (scattered) pose: two episodes differ in the target dots alone."""
    env = make_reacher(32, tier="arm-hidden-angles")
    try:
        shots = []
        for seed in (1, 2):
            reset_episode(env, seed, TIERS["arm-hidden-angles"])
            shots.append(render_frame(env).astype(int))
        changed = int((np.abs(shots[0] - shots[1]).sum(-1) > 0).sum())
        assert 0 < changed <= 12
    finally:
        env.close()


def test_arm_hidden_frames_differ_only_at_the_target():
    hidden = make_reacher(32, tier="arm-hidden")
    stock = make_reacher(32, tier="stock")
    try:
        frames = {}
        for name, env in (("hidden", hidden), ("stock", stock)):
            shots = []
            for seed in (1, 2):
                reset_episode(env, seed, get_tier("stock"))
                shots.append(render_frame(env).astype(int))
            frames[name] = shots
        changed_hidden = int((np.abs(frames["hidden"][0] - frames["hidden"][1]).sum(-1) > 0).sum())
        changed_stock = int((np.abs(frames["stock"][0] - frames["stock"][1]).sum(-1) > 0).sum())
        assert 0 < changed_hidden < changed_stock
        assert changed_hidden <= 12  # two target dots of about 2 px each at 32 px
    finally:
        hidden.close()
        stock.close()


def test_target_scale_and_unknown_tier():
    assert get_tier("stock", 3.0).target_scale == 3.0
    def changed_pixels(scale):
        env = make_reacher(32, tier=get_tier("arm-hidden", scale))
        try:
            shots = []
            for seed in (1, 2):
                reset_episode(env, seed, get_tier("arm-hidden"))
                shots.append(render_frame(env).astype(int))
            return int((np.abs(shots[0] - shots[1]).sum(-1) > 0).sum())
        finally:
            env.close()

    assert changed_pixels(4.0) > 4 * changed_pixels(1.0) > 0
    with pytest.raises(InputError, match="unknown tier 'stok'.*expected one of stock, fixed-start, arm-hidden, arm-hidden-angles"):
        get_tier("stok")
    with pytest.raises(InputError, match="target_scale"):
        get_tier("stock", 100.0)


def test_begin_and_act_on_an_env_match_reset_and_action(env):
    """The env-level shorthand the README's own-loop example uses gives the same torques as the model/data calls."""
    import torch

    env.reset(seed=3)
    base = env.unwrapped
    short, long = make_tracker(), make_tracker()
    short.begin(env)
    long.reset(base.model, base.data, float(base.dt))
    setpoint = np.array([0.08, 0.1, 0.0])
    np.testing.assert_array_equal(short.act(env, torch.tensor(setpoint)), long.action(base.model, base.data, setpoint))
