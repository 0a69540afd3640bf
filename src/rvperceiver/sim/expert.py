"""Scripted Reacher expert: damped least-squares IK on the fingertip Jacobian, then joint-space PD.

The same low-level controller serves two roles: with the true target as goal it is the demonstrator, and with a
policy's predicted end-effector waypoint as goal it turns position predictions into torques during closed-loop
evaluation. Gains kp=2, kd=0.1 reached the target (< 1 cm at t = 50) on 100% of 100 seeds and 99.8% of 500
held-out seeds in the research notes; much lower gains or heavier damping fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np

from rvperceiver.errors import InputError
from rvperceiver.sim.reacher import ARM_JOINTS, FINGERTIP_BODY, target_position


@dataclass(frozen=True)
class ReacherExpert:
    """Torque controller driving the fingertip towards a planar goal.

    ``kp`` scales the joint step (normalised so its largest entry is at most 1, which bounds the torque far from
    the goal), ``kd`` damps the joint velocities, and ``damping`` is the λ of the damped pseudo-inverse that keeps
    the step finite near the arm's singular (stretched or folded) poses.
    """

    kp: float = 2.0
    kd: float = 0.1
    damping: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("kp", "kd", "damping"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise InputError(f"ReacherExpert: {name} must be a finite number >= 0, got {value!r}")

    def act_towards(self, env: gym.Env, goal_xy: np.ndarray) -> np.ndarray:
        """Torque action (float32 ``[2]`` in [-1, 1]) moving the fingertip towards world ``goal_xy`` (metres)."""
        return self.action_for(env.unwrapped.model, env.unwrapped.data, goal_xy)

    def action_for(self, model: mujoco.MjModel, data: mujoco.MjData, goal_xy: np.ndarray) -> np.ndarray:
        """:meth:`act_towards` on a bare model/data pair (e.g. a scratch copy used to look ahead)."""
        goal = np.asarray(goal_xy, dtype=np.float64).reshape(-1)
        if goal.shape[0] < 2 or not np.all(np.isfinite(goal[:2])):
            raise InputError(f"act_towards: goal_xy must hold 2 finite coordinates, got {goal_xy!r}")
        body_id = model.body(FINGERTIP_BODY).id
        jacobian_pos = np.zeros((3, model.nv))
        mujoco.mj_jacBody(model, data, jacobian_pos, None, body_id)
        jacobian = jacobian_pos[:2, :ARM_JOINTS]
        error = goal[:2] - data.body(FINGERTIP_BODY).xpos[:2]
        gram = jacobian @ jacobian.T + self.damping * np.eye(2)
        joint_step = jacobian.T @ np.linalg.solve(gram, error)
        joint_step = joint_step / max(1.0, float(np.abs(joint_step).max()))
        torque = self.kp * joint_step - self.kd * data.qvel[:ARM_JOINTS]
        return np.clip(torque, -1.0, 1.0).astype(np.float32)

    def act(self, env: gym.Env) -> np.ndarray:
        """The demonstrator's action: head for the true target."""
        return self.act_towards(env, target_position(env)[:2])
