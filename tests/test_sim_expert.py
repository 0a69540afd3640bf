"""Scripted Reacher expert: reaches the target within 1 cm and tracks arbitrary goals."""

from __future__ import annotations

import numpy as np
import pytest

from rvperceiver.errors import InputError
from rvperceiver.sim.expert import ReacherExpert
from rvperceiver.sim.reacher import EPISODE_STEPS, fingertip_position, fingertip_target_distance, make_reacher


@pytest.fixture(scope="module")
def env():
    environment = make_reacher(image_size=32)
    yield environment
    environment.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expert_reaches_target_within_1cm(env, seed):
    expert = ReacherExpert()
    env.reset(seed=seed)
    start = fingertip_target_distance(env)
    for _ in range(EPISODE_STEPS):
        action = expert.act(env)
        assert action.shape == (2,) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1.0)
        env.step(action)
    assert start > 0.01
    assert fingertip_target_distance(env) < 0.01


def test_act_towards_reaches_an_arbitrary_goal(env):
    expert = ReacherExpert()
    env.reset(seed=7)
    goal = np.array([0.05, 0.12])
    for _ in range(EPISODE_STEPS):
        env.step(expert.act_towards(env, goal))
    assert np.linalg.norm(fingertip_position(env)[:2] - goal) < 0.01


def test_bad_goal_and_gains_raise(env):
    env.reset(seed=0)
    with pytest.raises(InputError):
        ReacherExpert().act_towards(env, np.array([np.nan, 0.0]))
    with pytest.raises(InputError):
        ReacherExpert().act_towards(env, np.array([0.1]))
    with pytest.raises(InputError):
        ReacherExpert(kp=-1.0)
