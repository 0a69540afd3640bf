"""Planar two-link kinematics of the Reacher arm, read from the MuJoCo model rather than hard-coded.

The expert plans in joint space and hands the tracker end-effector setpoints; the tracker turns a setpoint back
into joint angles. Both need the same closed-form inverse kinematics, with one rule for the elbow branch (the
solution nearest a reference configuration) so that a setpoint path planned on one branch is tracked on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from rvperceiver.errors import InputError

SHOULDER_BODY = "body1"
FINGERTIP_BODY = "fingertip"
ELBOW_JOINT = "joint1"


@dataclass(frozen=True)
class ArmGeometry:
    """Link lengths (metres) and the elbow's joint limit (radians); the shoulder hinge is unlimited."""

    upper: float
    lower: float
    elbow_limit: float

    @classmethod
    def from_model(cls, model: mujoco.MjModel) -> ArmGeometry:
        upper = float(np.linalg.norm(model.body(SHOULDER_BODY).pos[:2]))
        lower = float(np.linalg.norm(model.body(FINGERTIP_BODY).pos[:2]))
        joint = model.joint(ELBOW_JOINT)
        limit = float(min(abs(joint.range[0]), abs(joint.range[1]))) if joint.limited[0] else float(np.pi)
        return cls(upper, lower, limit)

    @property
    def reach(self) -> tuple[float, float]:
        """(innermost, outermost) fingertip radius the arm can reach within the elbow limit."""
        inner = np.sqrt(self.upper**2 + self.lower**2 + 2 * self.upper * self.lower * np.cos(self.elbow_limit))
        return float(inner), self.upper + self.lower

    def forward(self, q: np.ndarray) -> np.ndarray:
        """Fingertip xy ``[..., 2]`` for joint angles ``q [..., 2]`` (the arm's base is at the origin)."""
        q = np.asarray(q, dtype=np.float64)
        a, b = q[..., 0], q[..., 0] + q[..., 1]
        return np.stack(
            [self.upper * np.cos(a) + self.lower * np.cos(b), self.upper * np.sin(a) + self.lower * np.sin(b)], axis=-1
        )

    def inverse(self, xy: np.ndarray, near: np.ndarray) -> np.ndarray:
        """Joint angles reaching ``xy [2]``, on the elbow branch nearest ``near [2]``; shoulder unwrapped near it.

        A point outside the reachable annulus gives the nearest reachable configuration (the elbow at its limit
        inside, the arm stretched outside), so a setpoint a policy predicts slightly out of reach stays finite.
        """
        xy = np.asarray(xy, dtype=np.float64)
        near = np.asarray(near, dtype=np.float64)
        if xy.shape != (2,) or not np.all(np.isfinite(xy)):
            raise InputError(f"ArmGeometry.inverse: xy must be 2 finite coordinates, got {xy!r}")
        radius_sq = float(xy @ xy)
        cos_elbow = (radius_sq - self.upper**2 - self.lower**2) / (2 * self.upper * self.lower)
        elbow = float(np.arccos(np.clip(cos_elbow, np.cos(self.elbow_limit), 1.0)))
        heading = float(np.arctan2(xy[1], xy[0]))
        best, best_cost = near, np.inf
        for sign in (1.0, -1.0):
            q2 = sign * elbow
            q1 = heading - np.arctan2(self.lower * np.sin(q2), self.upper + self.lower * np.cos(q2))
            q1 = near[0] + _wrap(q1 - near[0])
            candidate = np.array([q1, q2])
            cost = float(np.sum((candidate - near) ** 2))
            if cost < best_cost:
                best, best_cost = candidate, cost
        return best


def _wrap(angle: float) -> float:
    """Angle in (-π, π]."""
    return float(np.arctan2(np.sin(angle), np.cos(angle)))
