"""Expert demonstrations on Reacher-v5: in memory (``generate_demos``) or as a robomimic HDF5 file.

Each episode records, per step, the frame rendered *before* acting (the observation the policy will see), the
measured fingertip xyz, the setpoint path (``robot0_eef_setpoint``: row t is where the tracker was told the
fingertip should be at step t, i.e. the setpoint it received at step t − 1; row 0 is the start position), the target
xyz, the arm joint angles and velocities, and the tracker's torque action. Training on ``robot0_eef_setpoint``
(the study's ``ee_key``) teaches a policy exactly what the low-level tracker received, so a perfect predictor
reproduces the demonstrations; ``robot0_eef_pos`` is the measured path. Demos are drawn from one task tier
(:mod:`rvperceiver.sim.tiers`).
Episode ``i`` uses env seed ``seed + i``, so a dataset is reproducible from ``(seed, n_episodes)`` alone and the
seed range can be checked against evaluation seeds. One environment (one GL context) serves all episodes:
rendering dominates the cost, and context creation alone takes most of a second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from rvperceiver.data.episodes import Episode
from rvperceiver.data.robomimic import GYM_ENV_TYPE, write_robomimic
from rvperceiver.errors import DataError, InputError
from rvperceiver.sim.expert import SetpointExpert
from rvperceiver.sim.reacher import (
    ENV_ID,
    EPISODE_STEPS,
    SUCCESS_RADIUS_M,
    arm_joint_state,
    fingertip_position,
    fingertip_target_distance,
    make_reacher,
    render_frame,
    target_position,
    top_down_camera,
)
from rvperceiver.sim.tiers import JOINT_POS_KEY, JOINT_VEL_KEY, Tier, get_tier, reset_episode

IMAGE_KEY = "agentview_image"
EE_KEY = "robot0_eef_pos"
TARGET_KEY = "target_pos"
ACTIONS_KEY = "actions"
REWARDS_KEY = "rewards"
# Steps per second of Reacher-v5 (frame_skip 2 x MuJoCo timestep 0.01 s): its metadata["render_fps"].
DEMO_FPS = 50
SETPOINT_KEY = "robot0_eef_setpoint"


@dataclass(frozen=True)
class _Rollout:
    episode: Episode
    final_distance: float


def _check_counts(n_episodes: int, seed: int, episode_steps: int) -> None:
    for name, value, minimum in (("n_episodes", n_episodes, 1), ("seed", seed, 0), ("episode_steps", episode_steps, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise InputError(f"generate_demos: {name} must be an int >= {minimum}, got {value!r}")


def _expert_rollout(
    env: gym.Env, expert: SetpointExpert, env_seed: int, name: str, episode_steps: int, tier: Tier
) -> _Rollout:
    reset_episode(env, env_seed, tier)
    plan = expert.begin(env, episode_steps)
    frames, ee, targets, joint_pos, joint_vel, actions, rewards = [], [], [], [], [], [], []
    for step in range(episode_steps):
        frames.append(render_frame(env))
        ee.append(fingertip_position(env))
        targets.append(target_position(env))
        angles, velocities = arm_joint_state(env)
        joint_pos.append(angles)
        joint_vel.append(velocities)
        _, action = expert.act(env, step)
        actions.append(action)
        rewards.append(env.step(action)[1])
    height = float(ee[0][2])
    setpoints = np.empty((episode_steps, 3))
    setpoints[0] = ee[0]
    setpoints[1:, :2], setpoints[1:, 2] = plan[: episode_steps - 1], height
    episode = Episode(
        name=name,
        frames=np.stack(frames),
        ee=np.asarray(ee, dtype=np.float32),
        extras={
            TARGET_KEY: np.asarray(targets, dtype=np.float32),
            JOINT_POS_KEY: np.asarray(joint_pos, dtype=np.float32),
            JOINT_VEL_KEY: np.asarray(joint_vel, dtype=np.float32),
            ACTIONS_KEY: np.asarray(actions, dtype=np.float32),
            REWARDS_KEY: np.asarray(rewards, dtype=np.float64),
            SETPOINT_KEY: setpoints.astype(np.float32),
        },
    )
    return _Rollout(episode, fingertip_target_distance(env))


def _iterate_rollouts(
    n_episodes: int,
    seed: int,
    image_size: int,
    tier: Tier,
    expert: SetpointExpert,
    episode_steps: int,
) -> Iterator[_Rollout]:
    env = make_reacher(image_size=image_size, tier=tier)
    try:
        for index in range(n_episodes):
            yield _expert_rollout(env, expert, seed + index, f"demo_{index}", episode_steps, tier)
    finally:
        env.close()


def _resolve(tier: str | Tier, target_render_scale: float, expert: SetpointExpert | None) -> tuple[Tier, SetpointExpert]:
    chosen = get_tier(tier, target_render_scale) if isinstance(tier, str) else tier
    if not isinstance(chosen, Tier):
        raise InputError(f"generate_demos: tier must be a tier name or a Tier, got {type(tier).__name__}")
    if target_render_scale != 1.0 and chosen.target_scale != target_render_scale:
        chosen = get_tier(chosen, target_render_scale)
    if expert is not None and not isinstance(expert, SetpointExpert):
        raise InputError(f"generate_demos: expert must be a SetpointExpert, got {type(expert).__name__}")
    return chosen, expert or SetpointExpert()


def generate_demos(
    n_episodes: int,
    seed: int,
    image_size: int = 64,
    *,
    tier: str | Tier = "stock",
    target_render_scale: float = 1.0,
    expert: SetpointExpert | None = None,
    episode_steps: int = EPISODE_STEPS,
    progress: bool = False,
) -> list[Episode]:
    """Roll out the scripted expert for ``n_episodes`` episodes (env seeds ``seed … seed+n_episodes-1``).

    Episodes are named ``demo_<i>``; ``frames`` is uint8 ``[L, H, W, 3]``, ``ee`` float32 ``[L, 3]`` measured
    fingertip xyz, and ``extras`` holds ``robot0_eef_setpoint`` ``[L, 3]`` (see the module docstring),
    ``target_pos`` ``[L, 3]``, ``robot0_joint_pos``/``robot0_joint_vel`` ``[L, 2]`` and ``actions`` ``[L, 2]``
    (the tracker's torques) and ``rewards`` ``[L]`` (the environment's reward for each action).
    ``target_render_scale`` overrides the tier's target scale.
    """
    _check_counts(n_episodes, seed, episode_steps)
    chosen, expert = _resolve(tier, target_render_scale, expert)
    rollouts = _iterate_rollouts(n_episodes, seed, image_size, chosen, expert, episode_steps)
    bar = tqdm(rollouts, total=n_episodes, desc="reacher demos", unit="ep", disable=not progress)
    return [rollout.episode for rollout in bar]


def split_by_position(names: list[str], valid_fraction: float) -> tuple[list[str], list[str]]:
    """Last ``ceil(valid_fraction · n)`` episodes are validation (none when the fraction is 0, never all).

    Episodes come from independent seeds, so a positional split is as unbiased as a shuffled one and stays
    readable: the validation seeds are the top of the range.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise InputError(f"valid_fraction must lie in [0, 1), got {valid_fraction!r}")
    n_valid = math.ceil(valid_fraction * len(names)) if valid_fraction > 0 else 0
    n_valid = min(n_valid, len(names) - 1)
    cut = len(names) - n_valid
    return names[:cut], names[cut:]


def demo_env_args(
    n_episodes: int,
    seed: int,
    image_size: int,
    tier: Tier,
    expert: SetpointExpert,
    episode_steps: int,
) -> dict[str, Any]:
    """robomimic ``env_args`` describing how the demos were made (JSON-serialisable).

    ``type`` is robomimic's ``EnvType.GYM_TYPE`` (2), so robomimic rebuilds the environment with
    ``gym.make(env_name, **env_kwargs)``; ``rvperceiver`` records the generator's settings and the frame rate.
    """
    camera = {key: (value.tolist() if isinstance(value, np.ndarray) else value) for key, value in top_down_camera().items()}
    return {
        "env_name": ENV_ID,
        "type": GYM_ENV_TYPE,
        "env_kwargs": {
            "render_mode": "rgb_array",
            "width": int(image_size),
            "height": int(image_size),
            "default_camera_config": camera,
        },
        "rvperceiver": {
            "generator": "rvperceiver.sim.generate",
            "fps": DEMO_FPS,
            "seed": int(seed),
            "n_episodes": int(n_episodes),
            "episode_steps": int(episode_steps),
            "target_render_scale": float(tier.target_scale),
            "tier": tier.to_dict(),
            "expert": expert.describe(),
            "setpoint_key": SETPOINT_KEY,
        },
    }


def training_seed_range(env_args: dict[str, Any]) -> range:
    """The env seeds a dataset written by :func:`generate_to_file` was made from (for overlap checks)."""
    try:
        info = env_args["rvperceiver"]
        start, count = int(info["seed"]), int(info["n_episodes"])
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(
            f"env_args has no rvperceiver.seed / rvperceiver.n_episodes (not written by generate_to_file): {error}"
        ) from error
    return range(start, start + count)


def recorded_tier(env_args: dict[str, Any]) -> Tier | None:
    """The tier (with its target scale) a dataset written by :func:`generate_to_file` was made on; None when the
    file does not say (not made by it)."""
    info = ((env_args or {}).get("rvperceiver") or {}).get("tier")
    if not isinstance(info, dict) or "name" not in info:
        return None
    return get_tier(info["name"], float(info.get("target_scale", 1.0)))


def generate_to_file(
    path: str | Path,
    n_episodes: int,
    seed: int,
    image_size: int = 64,
    valid_fraction: float = 0.1,
    overwrite: bool = False,
    progress: bool = True,
    *,
    tier: str | Tier = "stock",
    target_render_scale: float = 1.0,
    expert: SetpointExpert | None = None,
    episode_steps: int = EPISODE_STEPS,
) -> dict[str, Any]:
    """Generate demos and write them as robomimic HDF5 with ``mask/train`` and ``mask/valid``.

    Returns ``path``, ``episodes``, ``frames``, ``seconds`` (generation only, not the write), ``frames_per_second``,
    ``write_seconds``, ``expert_success_rate`` (final fingertip–target distance < 1 cm),
    ``expert_mean_final_distance``, ``train_episodes`` and ``valid_episodes``.
    """
    path = Path(path)
    _check_counts(n_episodes, seed, episode_steps)
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists; pass overwrite=True to replace it")
    chosen, expert = _resolve(tier, target_render_scale, expert)
    split_by_position([f"demo_{i}" for i in range(n_episodes)], valid_fraction)  # validate before the work

    start = time.perf_counter()
    rollouts = list(
        tqdm(
            _iterate_rollouts(n_episodes, seed, image_size, chosen, expert, episode_steps),
            total=n_episodes,
            desc=f"reacher demos -> {path.name}",
            unit="ep",
            disable=not progress,
        )
    )
    seconds = time.perf_counter() - start
    episodes = [rollout.episode for rollout in rollouts]
    final = np.array([rollout.final_distance for rollout in rollouts])
    train_names, valid_names = split_by_position([episode.name for episode in episodes], valid_fraction)

    write_start = time.perf_counter()
    write_robomimic(
        path,
        episodes,
        image_key=IMAGE_KEY,
        ee_key=EE_KEY,
        splits={"train": train_names, "valid": valid_names},
        env_args=demo_env_args(n_episodes, seed, image_size, chosen, expert, episode_steps),
        overwrite=overwrite,
    )
    frames = int(sum(episode.length for episode in episodes))
    return {
        "path": str(path),
        "episodes": n_episodes,
        "frames": frames,
        "seconds": seconds,
        "frames_per_second": frames / seconds if seconds > 0 else float("inf"),
        "write_seconds": time.perf_counter() - write_start,
        "expert_success_rate": float(np.mean(final < SUCCESS_RADIUS_M)),
        "expert_success_rate_2cm": float(np.mean(final < 0.02)),
        "tier": chosen.name,
        "expert_mean_final_distance": float(final.mean()),
        "train_episodes": len(train_names),
        "valid_episodes": len(valid_names),
    }
