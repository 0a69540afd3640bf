"""MuJoCo Reacher-v5 demos (the setpoint expert, task tiers), the low-level trackers, and closed-loop evaluation."""

from rvperceiver.sim.closed_loop import ClosedLoopConfig, evaluate_checkpoint, run_closed_loop
from rvperceiver.sim.expert import MinimumJerkPlanner, SetpointExpert
from rvperceiver.sim.generate import generate_demos, generate_to_file, training_seed_range
from rvperceiver.sim.reacher import EPISODE_STEPS, SUCCESS_RADIUS_M, make_reacher, render_frame
from rvperceiver.sim.tracker import make_tracker

__all__ = [
    "EPISODE_STEPS",
    "SUCCESS_RADIUS_M",
    "ClosedLoopConfig",
    "MinimumJerkPlanner",
    "SetpointExpert",
    "evaluate_checkpoint",
    "generate_demos",
    "generate_to_file",
    "make_reacher",
    "make_tracker",
    "render_frame",
    "run_closed_loop",
    "training_seed_range",
]
