"""Reacher-v5 wrapper: frame shape/dtype, determinism, the target moving the image, the enlarged target."""

from __future__ import annotations

import numpy as np
import pytest

from rvperceiver.errors import InputError
from rvperceiver.sim.reacher import (
    arm_joint_state,
    fingertip_position,
    make_reacher,
    render_frame,
    target_position,
)


@pytest.fixture(scope="module")
def env():
    environment = make_reacher(image_size=32)
    yield environment
    environment.close()


def test_frame_shape_dtype_and_body_positions(env):
    env.reset(seed=3)
    frame = render_frame(env)
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8
    assert frame.std() > 0  # not a blank frame
    tip, target = fingertip_position(env), target_position(env)
    assert tip.shape == (3,) and target.shape == (3,)
    assert tip[2] == pytest.approx(0.01) and np.linalg.norm(target[:2]) < 0.2
    angles, velocities = arm_joint_state(env)
    assert angles.shape == (2,) and velocities.shape == (2,)


def test_same_seed_same_frame_and_target_moves_the_image(env):
    env.reset(seed=11)
    first = render_frame(env)
    target_a = target_position(env)
    env.reset(seed=11)
    assert np.array_equal(render_frame(env), first)

    # Same arm pose, other target: only the pixels around the target may change.
    data = env.unwrapped.data
    env.reset(seed=12)
    target_b = target_position(env)
    assert np.linalg.norm(target_a[:2] - target_b[:2]) > 0.02
    import mujoco

    env.reset(seed=11)
    data.qpos[2:] = target_b[:2]
    mujoco.mj_forward(env.unwrapped.model, data)
    moved = render_frame(env)
    changed = np.any(moved != first, axis=-1)
    assert changed.any()
    assert changed.mean() < 0.05  # a small target: few pixels differ


def test_target_render_scale_enlarges_only_the_picture():
    small = make_reacher(image_size=32, seed=5)
    large = make_reacher(image_size=32, seed=5, target_render_scale=3.0)
    try:
        background = render_frame(small)
        enlarged = render_frame(large)
        assert np.any(enlarged != background)
        assert np.allclose(fingertip_position(small), fingertip_position(large))
        for _ in range(5):
            action = np.array([0.5, -0.5])
            small.step(action)
            large.step(action)
        assert np.allclose(fingertip_position(small), fingertip_position(large))
    finally:
        small.close()
        large.close()


@pytest.mark.parametrize("kwargs", [dict(image_size=4), dict(image_size=64.0), dict(target_render_scale=0.0)])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(InputError):
        make_reacher(**kwargs)
