"""Task tiers on Gymnasium's Reacher-v5: the same environment, reset and drawn in different ways.

- ``stock``: Reacher-v5 as Gymnasium resets it (arm angles uniform in ±0.1 rad, target uniform in a 0.2 m disc).
- ``fixed-start``: the arm reset to q = 0 at rest, the target redrawn (from the env's own seeded generator) in an
  annulus the fingertip reaches without the elbow near its ±3 rad limit. Every episode then starts from the same
  picture but for the target dot: the seed's "examples that differ in a few pixels" at t = 0.
- ``arm-hidden``: stock resets, the arm drawn fully transparent, so frames differ only in the target dot throughout;
  the arm's state reaches the policy as a low-dimensional observation (joint angles and velocities), as
  proprioception does in most behaviour-cloning setups.
- ``arm-hidden-angles``: the arm hidden as on ``arm-hidden``, but started at rest anywhere in its joint range
  (shoulder uniform over a full turn, elbow uniform within ``SCATTERED_ELBOW`` rad) and given only its joint
  angles. On ``arm-hidden`` the state points at the goal: the start pose is near q = 0, so once the arm moves its
  angles and velocities lie along the way to the goal, and a state-only model predicts the setpoints with NMSE
  0.008 (``benchmarks/bc_state_only.py``). A scattered start and no velocities take that away: the angles say where
  the arm is, only the frame says where to go, at every step — the seed's premise (frames that differ in the
  target dot alone) with the frame needed throughout.

``target_scale`` draws the target sphere larger or smaller (0.5–4×, a dose axis for "few pixels"); it changes the
picture only (the target geom never collides, which :func:`apply_render_options` checks).

Everything goes through the installed Reacher-v5 (its XML, its ``reset``), with the changes made on the model
and state after loading; no XML is forked.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass

import gymnasium as gym
import mujoco
import numpy as np

from rvperceiver.errors import InputError
from rvperceiver.sim.reacher import arm_joint_state

ARM_GEOMS = ("root", "link0", "link1", "fingertip")
TARGET_GEOM = "target"
ARM_JOINTS = 2
TARGET_SCALE_RANGE = (0.25, 8.0)
JOINT_POS_KEY = "robot0_joint_pos"
JOINT_VEL_KEY = "robot0_joint_vel"
STATE_KEYS = (JOINT_POS_KEY, JOINT_VEL_KEY)
"""The low-dim observations a tier can give, as the demos store them (robomimic ``obs/<key>``), each ``[2]``."""
SCATTERED_ELBOW = 2.5
"""Half-range (rad) of the elbow on a scattered start: inside Reacher's ±3 rad limit, fingertip ≥ 6.7 cm out."""


@dataclass(frozen=True)
class Tier:
    """How episodes of one tier are reset and drawn.

    ``annulus`` (metres, inner and outer radius) is only used with ``fixed_start``; ``scattered_start`` resets the
    arm at rest to joint angles drawn over its range; ``state_keys`` names the low-dim observations the policy gets
    beside the frames (of :data:`STATE_KEYS`; empty: frames only).
    """

    name: str
    fixed_start: bool = False
    scattered_start: bool = False
    arm_visible: bool = True
    state_keys: tuple[str, ...] = ()
    annulus: tuple[float, float] = (0.07, 0.19)
    target_scale: float = 1.0

    def __post_init__(self) -> None:
        lo, hi = TARGET_SCALE_RANGE
        if not (isinstance(self.target_scale, (int, float)) and lo <= self.target_scale <= hi):
            raise InputError(f"tier {self.name!r}: target_scale must lie in [{lo}, {hi}], got {self.target_scale!r}")
        inner, outer = self.annulus
        if not 0.0 <= inner < outer <= 0.2:
            raise InputError(f"tier {self.name!r}: annulus must satisfy 0 <= inner < outer <= 0.2 m, got {self.annulus}")
        unknown = [key for key in self.state_keys if key not in STATE_KEYS]
        if unknown:
            raise InputError(f"tier {self.name!r}: unknown low-dim keys {unknown}; expected some of {list(STATE_KEYS)}")
        if self.fixed_start and self.scattered_start:
            raise InputError(f"tier {self.name!r}: fixed_start and scattered_start exclude each other")

    @property
    def low_dim(self) -> bool:
        """Whether the policy gets low-dim observations beside the frames."""
        return bool(self.state_keys)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


TIERS: dict[str, Tier] = {
    "stock": Tier("stock"),
    "fixed-start": Tier("fixed-start", fixed_start=True),
    "arm-hidden": Tier("arm-hidden", arm_visible=False, state_keys=STATE_KEYS),
    "arm-hidden-angles": Tier("arm-hidden-angles", scattered_start=True, arm_visible=False, state_keys=(JOINT_POS_KEY,)),
}


def state_vector(env: gym.Env, keys: tuple[str, ...]) -> np.ndarray:
    """The low-dim observation ``keys`` of ``env``'s current state, concatenated (float32), as the demos store it."""
    parts = dict(zip(STATE_KEYS, arm_joint_state(env)))
    return np.concatenate([parts[key] for key in keys]).astype(np.float32)


def get_tier(name: str, target_scale: float = 1.0) -> Tier:
    """The named tier, with ``target_scale`` applied; an unknown name is one clear line listing the known ones."""
    if isinstance(name, Tier):
        return name if target_scale == 1.0 else Tier(**{**name.to_dict(), "target_scale": float(target_scale)})
    if name not in TIERS:
        close = difflib.get_close_matches(str(name), list(TIERS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"unknown tier {name!r}{hint}; expected one of {', '.join(TIERS)}")
    base = TIERS[name]
    if target_scale == 1.0:
        return base
    return Tier(**{**base.to_dict(), "target_scale": float(target_scale), "annulus": tuple(base.annulus)})


def apply_render_options(env: gym.Env, tier: Tier) -> None:
    """Make the rendered picture the tier's: hide the arm and/or rescale the target (drawing only)."""
    model = env.unwrapped.model
    if not tier.arm_visible:
        for name in ARM_GEOMS:
            model.geom_rgba[model.geom(name).id, 3] = 0.0
    if tier.target_scale != 1.0:
        geom_id = model.geom(TARGET_GEOM).id
        if model.geom_contype[geom_id] != 0 or model.geom_conaffinity[geom_id] != 0:
            raise InputError(
                f"target_scale={tier.target_scale} would change the physics, because geom {TARGET_GEOM!r} collides "
                f"(contype={model.geom_contype[geom_id]}, conaffinity={model.geom_conaffinity[geom_id]})"
            )
        model.geom_size[geom_id] *= tier.target_scale
        model.geom_rbound[geom_id] *= tier.target_scale  # visibility culling uses the bounding radius


def reset_episode(env: gym.Env, seed: int, tier: Tier) -> None:
    """``env.reset(seed=seed)``, then the tier's start state. Deterministic in ``seed``.

    ``fixed-start`` sets the arm to q = 0, q̇ = 0 and redraws the target uniformly over the annulus's area with
    the env's own ``np_random`` (seeded by the reset), keeping Gymnasium's layout of ``qpos`` (arm, then target).
    A scattered start keeps the env's target and draws the arm's angles (at rest) from the same generator.
    """
    env.reset(seed=int(seed))
    if not (tier.fixed_start or tier.scattered_start):
        return
    base = env.unwrapped
    qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
    qvel[:] = 0.0
    if tier.scattered_start:
        qpos[0] = base.np_random.uniform(-np.pi, np.pi)
        qpos[1] = base.np_random.uniform(-SCATTERED_ELBOW, SCATTERED_ELBOW)
        base.set_state(qpos, qvel)
        return
    inner, outer = tier.annulus
    radius = float(np.sqrt(base.np_random.uniform(inner**2, outer**2)))
    angle = float(base.np_random.uniform(-np.pi, np.pi))
    qpos[:ARM_JOINTS] = 0.0
    qpos[-2:] = radius * np.cos(angle), radius * np.sin(angle)
    base.goal = qpos[-2:].copy()
    base.set_state(qpos, qvel)


def copy_state(source: gym.Env, destination: gym.Env) -> None:
    """Put ``destination`` (an env of the same model) in ``source``'s physical state, e.g. to render it."""
    src, dst = source.unwrapped, destination.unwrapped
    dst.data.qpos[:] = src.data.qpos
    dst.data.qvel[:] = src.data.qvel
    dst.data.time = src.data.time
    mujoco.mj_forward(dst.model, dst.data)
