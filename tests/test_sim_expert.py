"""The scripted setpoint expert: reaches the target through its tracker, and records what the tracker was told."""

from __future__ import annotations

import numpy as np
import pytest

from rvperceiver.errors import InputError
from rvperceiver.sim.expert import SetpointExpert
from rvperceiver.sim.reacher import EPISODE_STEPS, fingertip_position, fingertip_target_distance, make_reacher


@pytest.fixture(scope="module")
def env():
    environment = make_reacher(image_size=32)
    yield environment
    environment.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expert_reaches_the_target_within_1cm(env, seed):
    env.reset(seed=seed)
    expert = SetpointExpert()
    plan = expert.begin(env, EPISODE_STEPS)
    assert plan.shape == (EPISODE_STEPS, 2)
    start = fingertip_target_distance(env)
    for step in range(EPISODE_STEPS):
        setpoint, action = expert.act(env, step)
        np.testing.assert_array_equal(setpoint, plan[step])  # the label is exactly what the tracker was given
        assert action.shape == (2,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
        env.step(action)
    assert start > 0.01
    assert fingertip_target_distance(env) < 0.01
    assert np.linalg.norm(fingertip_position(env)[:2] - plan[-1]) < 0.005  # it ends where the plan ends


def test_act_before_begin_is_refused(env):
    env.reset(seed=0)
    with pytest.raises(InputError, match="begin"):
        SetpointExpert().act(env, 0)
    with pytest.raises(InputError, match="unknown tracker"):
        SetpointExpert(tracker="dls")
