"""MuJoCo Reacher-v5 demos, the scripted expert, and closed-loop evaluation of trajectory policies."""

from rvperceiver.sim.evaluate import (
    closed_loop_eval,
    constant_policy_fn,
    mean_target_trajectory,
    offline_ee_error,
    policy_fn_from_policy,
)
from rvperceiver.sim.expert import ReacherExpert
from rvperceiver.sim.generate import generate_demos, generate_to_file, training_seed_range
from rvperceiver.sim.reacher import EPISODE_STEPS, SUCCESS_RADIUS_M, make_reacher, render_frame

__all__ = [
    "EPISODE_STEPS",
    "SUCCESS_RADIUS_M",
    "ReacherExpert",
    "closed_loop_eval",
    "constant_policy_fn",
    "generate_demos",
    "generate_to_file",
    "make_reacher",
    "mean_target_trajectory",
    "offline_ee_error",
    "policy_fn_from_policy",
    "render_frame",
    "training_seed_range",
]
