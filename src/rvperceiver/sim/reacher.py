"""Gymnasium Reacher-v5 rendered offscreen from a close top-down camera.

The stock Reacher camera is far away, so at 64 px the arm covers a handful of pixels. The camera used here looks
straight down from 0.55 m: the frame spans about ±0.23 m, image +x is world +x and image up is world +y, and the
arm (reach 0.21 m) and every target (radius < 0.2 m) stay inside it.

The target sphere (radius 9 mm) is about 2 px wide at 64 px, so two demonstrations differ in only a few pixels
besides the arm. That is the situation the project studies, so it is the default; ``target_render_scale`` enlarges
the drawn sphere for users who want an easier task. The target geom has ``contype == conaffinity == 0`` (it never
collides), so the scale changes the picture and nothing else; ``make_reacher`` checks this rather than assuming it.
"""

from __future__ import annotations

import os

# Must be set before mujoco creates a GL context; an explicit MUJOCO_GL (e.g. "osmesa") wins.
os.environ.setdefault("MUJOCO_GL", "egl")

from typing import Any  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from rvperceiver.errors import InputError  # noqa: E402

ENV_ID = "Reacher-v5"
EPISODE_STEPS = 50
"""Gymnasium's time limit for Reacher-v5; one step is 0.02 s (two 0.01 s physics steps)."""
SUCCESS_RADIUS_M = 0.01
"""A reach succeeds when the fingertip ends within this distance of the target (the research notes' criterion)."""
FINGERTIP_BODY = "fingertip"
TARGET_BODY = "target"
TARGET_GEOM = "target"
ARM_JOINTS = 2
"""qpos/qvel hold the two arm hinges first, then the target's two slide joints."""


def top_down_camera() -> dict[str, Any]:
    """Camera settings for a close top-down view (a fresh dict each call, since gymnasium may keep a reference)."""
    return dict(distance=0.55, elevation=-90.0, azimuth=90.0, lookat=np.array([0.0, 0.0, 0.0]))


def make_reacher(
    image_size: int = 64,
    seed: int | None = None,
    target_render_scale: float = 1.0,
    *,
    tier: Any = None,
) -> gym.Env:
    """Build Reacher-v5 rendering ``image_size``×``image_size`` RGB frames from the top-down camera.

    With ``seed`` the environment is also reset with it, so it is ready to step and render. ``tier`` (a name or
    :class:`rvperceiver.sim.tiers.Tier`) applies that tier's drawing (hidden arm, target scale) and, with
    ``seed``, its reset. Call ``env.close()`` when done (OSMesa otherwise complains at interpreter exit).
    """
    if tier is not None:
        from rvperceiver.sim.tiers import apply_render_options, get_tier, reset_episode

        chosen = get_tier(tier, target_render_scale) if isinstance(tier, str) else tier
        env = make_reacher(image_size)
        apply_render_options(env, chosen)
        if seed is not None:
            reset_episode(env, int(seed), chosen)
        return env
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise InputError(f"make_reacher: image_size must be an int >= 8, got {image_size!r}")
    if not np.isfinite(target_render_scale) or target_render_scale <= 0:
        raise InputError(f"make_reacher: target_render_scale must be a positive finite number, got {target_render_scale!r}")
    env = gym.make(
        ENV_ID,
        render_mode="rgb_array",
        width=int(image_size),
        height=int(image_size),
        default_camera_config=top_down_camera(),
    )
    if target_render_scale != 1.0:
        _scale_target_geom(env, float(target_render_scale))
    if seed is not None:
        env.reset(seed=int(seed))
    return env


def _scale_target_geom(env: gym.Env, scale: float) -> None:
    model = env.unwrapped.model
    geom_id = model.geom(TARGET_GEOM).id
    if model.geom_contype[geom_id] != 0 or model.geom_conaffinity[geom_id] != 0:
        raise InputError(
            f"make_reacher: target_render_scale={scale} would change the physics, because geom {TARGET_GEOM!r} "
            f"collides (contype={model.geom_contype[geom_id]}, conaffinity={model.geom_conaffinity[geom_id]})"
        )
    model.geom_size[geom_id] *= scale
    # The bounding radius is used for visibility culling; keep it consistent with the new size.
    model.geom_rbound[geom_id] *= scale


def fingertip_position(env: gym.Env) -> np.ndarray:
    """World xyz of the fingertip body (z is constant at 0.01 m), float64 copy."""
    return env.unwrapped.data.body(FINGERTIP_BODY).xpos.copy()


def target_position(env: gym.Env) -> np.ndarray:
    """World xyz of the target body, float64 copy."""
    return env.unwrapped.data.body(TARGET_BODY).xpos.copy()


def arm_joint_state(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """(angles, angular velocities) of the two arm hinges, float64 copies."""
    data = env.unwrapped.data
    return data.qpos[:ARM_JOINTS].copy(), data.qvel[:ARM_JOINTS].copy()


def render_frame(env: gym.Env) -> np.ndarray:
    """The current view as uint8 ``[H, W, 3]`` (a fresh, contiguous array)."""
    frame = env.render()
    return np.ascontiguousarray(frame, dtype=np.uint8)


def fingertip_target_distance(env: gym.Env) -> float:
    """Planar distance between fingertip and target in metres (both lie at z = 0.01)."""
    return float(np.linalg.norm(fingertip_position(env)[:2] - target_position(env)[:2]))
