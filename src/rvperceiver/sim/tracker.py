"""Low-level trackers: an end-effector setpoint in, the Reacher's two torque commands out.

The scripted expert and every policy drive the arm through the same tracker, so a policy that predicts exactly
the setpoints the tracker received during the demonstrations reproduces the demonstrations (the oracle gate in
``tests/test_sim_closed_loop.py``). A setpoint ``s_t``, handed over at step ``t``, is where the fingertip should be
*after* that step. Both trackers first solve the arm's inverse kinematics for it (the branch nearest the current
pose) and then differ in how they turn the joint target into torques:

- ``pd``: joint-space PD on the joint error, torques saturating at the actuator limit;
- ``inverse_dynamics``: the constant acceleration that brings the joints to the target by the end of the step
  (blended with matching the setpoint path's velocity, so a held target is approached without ringing), turned
  into torques by the model's own mass matrix, bias and passive forces (``mj_mulM``, ``qfrc_bias``,
  ``qfrc_passive``).

Which one reproduces a planned path better is measured by ``benchmarks/bench_tracker.py``.
Trackers keep one piece of state per episode (the previous setpoint, for the path velocity): call
:meth:`reset` at the start of each episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from rvperceiver.errors import InputError
from rvperceiver.sim.kinematics import ArmGeometry

ARM_JOINTS = 2
TRACKERS = ("inverse_dynamics", "pd")


def _check_setpoint(setpoint: np.ndarray) -> np.ndarray:
    point = np.asarray(setpoint, dtype=np.float64).reshape(-1)
    if point.shape[0] < 2 or not np.all(np.isfinite(point[:2])):
        raise InputError(f"tracker: a setpoint must hold 2 finite coordinates (x, y in metres), got {setpoint!r}")
    return point[:2]


@dataclass
class _TrackerBase:
    _previous_joint_target: np.ndarray | None = field(default=None, init=False, repr=False)
    _geometry: ArmGeometry | None = field(default=None, init=False, repr=False)

    _dt: float = field(default=0.02, init=False, repr=False)

    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, dt: float) -> None:
        """Start an episode from the current state (the path velocity starts at rest); ``dt`` is one env step
        in seconds (Reacher-v5: 0.02 s, two physics steps of 0.01 s)."""
        if not dt > 0:
            raise InputError(f"tracker.reset: dt must be a positive number of seconds, got {dt!r}")
        self._geometry = ArmGeometry.from_model(model)
        self._previous_joint_target = data.qpos[:ARM_JOINTS].copy()
        self._dt = float(dt)

    def begin(self, env: Any) -> None:
        """:meth:`reset` from a Gymnasium MuJoCo env right after ``env.reset()`` (its model, data and step)."""
        base = env.unwrapped
        self.reset(base.model, base.data, float(base.dt))

    def act(self, env: Any, setpoint: Any) -> np.ndarray:
        """The torques (float32 ``[2]``) for ``setpoint`` (x, y in metres; a tensor or array) in ``env``'s state."""
        if hasattr(setpoint, "detach"):
            setpoint = setpoint.detach().cpu().numpy()
        base = env.unwrapped
        return self.action(base.model, base.data, setpoint)  # type: ignore[attr-defined]

    def _joint_target(self, model: mujoco.MjModel, data: mujoco.MjData, setpoint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(joint target, path velocity) for ``setpoint``; the velocity is the backward difference of targets."""
        if self._geometry is None or self._previous_joint_target is None:
            raise InputError("tracker: call reset(model, data, dt) at the start of each episode before action()")
        q = data.qpos[:ARM_JOINTS]
        target = self._geometry.inverse(_check_setpoint(setpoint), near=q)
        velocity = (target - self._previous_joint_target) / self._dt
        self._previous_joint_target = target
        return target, velocity


@dataclass
class PDTracker(_TrackerBase):
    """Joint PD in actuator units: ``ctrl = clip(kp·(q* − q) + kd·(q̇* − q̇), −1, 1)``."""

    kp: float = 10.0
    kd: float = 0.5
    name: str = field(default="pd", init=False)

    def action(self, model: mujoco.MjModel, data: mujoco.MjData, setpoint: np.ndarray) -> np.ndarray:
        target, velocity = self._joint_target(model, data, setpoint)
        q, qd = data.qpos[:ARM_JOINTS], data.qvel[:ARM_JOINTS]
        return np.clip(self.kp * (target - q) + self.kd * (velocity - qd), -1.0, 1.0).astype(np.float32)


@dataclass
class InverseDynamicsTracker(_TrackerBase):
    """One-step inverse dynamics: the acceleration ``a`` minimising
    ``(q + q̇·dt + ½·a·dt² − q*)² + w·dt²·(q̇ + a·dt − q̇*)²`` (end-of-step position error plus ``w`` times the
    velocity error), i.e. ``a = (½·e_p/dt² + w·e_v/dt) / (¼ + w)``, then ``τ = M·a + bias − passive``.
    ``w = 0`` is dead-beat on position; a small ``w`` damps the velocity ringing dead-beat leaves behind."""

    velocity_weight: float = 0.05
    name: str = field(default="inverse_dynamics", init=False)

    def action(self, model: mujoco.MjModel, data: mujoco.MjData, setpoint: np.ndarray) -> np.ndarray:
        target, velocity = self._joint_target(model, data, setpoint)
        mujoco.mj_forward(model, data)  # mass matrix and forces of the current state (the state is unchanged)
        dt = self._dt
        q, qd = data.qpos[:ARM_JOINTS], data.qvel[:ARM_JOINTS]
        position_error = target - q - qd * dt
        velocity_error = velocity - qd
        w = self.velocity_weight
        acceleration = (0.5 * position_error / dt**2 + w * velocity_error / dt) / (0.25 + w)
        full_acceleration = np.zeros(model.nv)
        full_acceleration[:ARM_JOINTS] = acceleration
        inertial = np.zeros(model.nv)
        mujoco.mj_mulM(model, data, inertial, full_acceleration)  # M·a (the target's slide joints get a = 0)
        force = (
            inertial[:ARM_JOINTS]
            + data.qfrc_bias[:ARM_JOINTS]
            - data.qfrc_passive[:ARM_JOINTS]
        )
        gear = model.actuator_gear[:ARM_JOINTS, 0]
        low, high = model.actuator_ctrlrange[:ARM_JOINTS, 0], model.actuator_ctrlrange[:ARM_JOINTS, 1]
        return np.clip(force / gear, low, high).astype(np.float32)


def make_tracker(name: str = "inverse_dynamics") -> PDTracker | InverseDynamicsTracker:
    """A fresh tracker by name (one per episode being simulated: trackers hold per-episode state)."""
    if name == "pd":
        return PDTracker()
    if name == "inverse_dynamics":
        return InverseDynamicsTracker()
    raise InputError(f"unknown tracker {name!r}; expected one of {', '.join(TRACKERS)}")
