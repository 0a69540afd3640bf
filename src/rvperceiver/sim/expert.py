"""The scripted Reacher expert.

:class:`SetpointExpert` (the demonstrator) plans a minimum-jerk setpoint path to the target and drives the arm
along it with a low-level tracker (:mod:`rvperceiver.sim.tracker`); the demos record the setpoints, so a policy
learns what the tracker was told, and closed-loop evaluation hands the policy's setpoints to the same tracker.
(An earlier controller aimed a PD straight at the target and was then aimed at predicted waypoints: a perfect
predictor reproduced only 84% of its demos, which is why labels and evaluation now go through one tracker.)
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from rvperceiver.errors import InputError
from rvperceiver.sim.kinematics import ArmGeometry
from rvperceiver.sim.reacher import ARM_JOINTS, target_position


# ---------------------------------------------------------------------------------------------------------------
# The setpoint expert: a planned end-effector path, followed by a low-level tracker
# ---------------------------------------------------------------------------------------------------------------


def minimum_jerk(phase: np.ndarray) -> np.ndarray:
    """``10τ³ − 15τ⁴ + 6τ⁵`` for τ clipped to [0, 1]: 0 → 1 with zero velocity and acceleration at both ends."""
    tau = np.clip(np.asarray(phase, dtype=np.float64), 0.0, 1.0)
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)


@dataclass(frozen=True)
class MinimumJerkPlanner:
    """Plans the fingertip's setpoint path to the target: minimum-jerk in joint space over ``duration_steps``.

    Interpolating the joints (not the fingertip's straight line) keeps every setpoint reachable: a straight line
    between two points of the workspace can pass through the disc around the base that the elbow limit excludes.
    The goal configuration is the inverse-kinematics solution nearest the start pose. ``plan[t]`` is the
    setpoint handed to the tracker at step ``t``, i.e. where the fingertip should be after that step; after
    ``duration_steps`` it stays at the goal.
    """

    duration_steps: int = 20

    def __post_init__(self) -> None:
        if isinstance(self.duration_steps, bool) or not isinstance(self.duration_steps, int) or self.duration_steps < 1:
            raise InputError(f"MinimumJerkPlanner: duration_steps must be an int >= 1, got {self.duration_steps!r}")

    def plan(self, geometry: ArmGeometry, start_q: np.ndarray, target_xy: np.ndarray, steps: int) -> np.ndarray:
        """Setpoints ``[steps, 2]`` (metres) from joint angles ``start_q`` to ``target_xy``."""
        start = np.asarray(start_q, dtype=np.float64)[:ARM_JOINTS]
        goal = geometry.inverse(np.asarray(target_xy, dtype=np.float64)[:2], near=start)
        phase = minimum_jerk((np.arange(steps) + 1.0) / self.duration_steps)
        joints = start[None, :] + phase[:, None] * (goal - start)[None, :]
        return geometry.forward(joints)


class SetpointExpert:
    """The demonstrator: plan at the start of an episode, then hand the tracker one setpoint per step.

    ``begin(env, steps)`` plans from the current state (call it right after the reset) and resets the tracker;
    ``act(env, step)`` returns ``(setpoint [2], action [2])``. A policy drives the same tracker with its own
    setpoints (:mod:`rvperceiver.sim.closed_loop`), so predicting the recorded setpoints reproduces the demo.
    """

    def __init__(self, planner: MinimumJerkPlanner | None = None, tracker: str = "inverse_dynamics") -> None:
        from rvperceiver.sim.tracker import make_tracker

        self.planner = planner or MinimumJerkPlanner()
        self.tracker_name = tracker
        self.tracker = make_tracker(tracker)
        self.plan: np.ndarray | None = None

    def begin(self, env: gym.Env, steps: int) -> np.ndarray:
        base = env.unwrapped
        geometry = ArmGeometry.from_model(base.model)
        self.plan = self.planner.plan(geometry, base.data.qpos[:ARM_JOINTS], target_position(env)[:2], steps)
        self.tracker.reset(base.model, base.data, float(base.dt))
        return self.plan

    def act(self, env: gym.Env, step: int) -> tuple[np.ndarray, np.ndarray]:
        if self.plan is None:
            raise InputError("SetpointExpert.act: call begin(env, steps) after each reset first")
        setpoint = self.plan[min(step, len(self.plan) - 1)]
        base = env.unwrapped
        return setpoint, self.tracker.action(base.model, base.data, setpoint)

    def describe(self) -> dict[str, object]:
        return {"planner": "minimum_jerk_joint", "duration_steps": self.planner.duration_steps, "tracker": self.tracker_name}
