"""Which low-level tracker reproduces the expert's planned setpoint path best (`rvperceiver.sim.tracker`).

For every tier and tracker, the scripted expert plans its minimum-jerk setpoint path on env seeds
100000 … 100000+N-1 and the tracker follows it. Printed per row: RMS and worst distance between the setpoint handed
over at a step and the fingertip after it (path reproduction), final distance to the target, success within
1 cm / 2 cm at the last step. A second table feeds the trackers the same paths with Gaussian noise of σ mm added
to every setpoint (independently per step), a stand-in for a policy's prediction error, and reports the same.

    PYTHONPATH=src MUJOCO_GL=egl python benchmarks/bench_tracker.py --episodes 200 [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")


def measure(tier_name: str, tracker_name: str, episodes: int, noise_mm: float, steps: int = 50) -> dict[str, Any]:
    import gymnasium as gym

    from rvperceiver.sim.expert import SetpointExpert
    from rvperceiver.sim.tiers import get_tier, reset_episode

    env = gym.make("Reacher-v5")
    tier = get_tier(tier_name)
    rng = np.random.default_rng(0)
    path_errors, worst, finals = [], [], []
    start = time.perf_counter()
    for seed in range(100_000, 100_000 + episodes):
        reset_episode(env, seed, tier)
        expert = SetpointExpert(tracker=tracker_name)
        plan = expert.begin(env, steps)
        data, model = env.unwrapped.data, env.unwrapped.model
        errors = []
        for step in range(steps):
            setpoint = plan[step] + rng.normal(0.0, noise_mm / 1000.0, size=2) if noise_mm else plan[step]
            env.step(expert.tracker.action(model, data, setpoint))
            errors.append(np.linalg.norm(data.body("fingertip").xpos[:2] - plan[step]))
        path_errors.append(np.sqrt(np.mean(np.square(errors))))
        worst.append(max(errors))
        finals.append(np.linalg.norm(data.body("fingertip").xpos[:2] - data.body("target").xpos[:2]))
    env.close()
    finals_arr = np.array(finals)
    return {
        "tier": tier_name,
        "tracker": tracker_name,
        "noise_mm": noise_mm,
        "episodes": episodes,
        "path_rms_mm": 1000 * float(np.mean(path_errors)),
        "path_worst_mm": 1000 * float(np.max(worst)),
        "final_median_mm": 1000 * float(np.median(finals_arr)),
        "final_worst_mm": 1000 * float(np.max(finals_arr)),
        "success_1cm": float(np.mean(finals_arr < 0.01)),
        "success_2cm": float(np.mean(finals_arr < 0.02)),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--noise-mm", type=float, default=3.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from rvperceiver.sim.tiers import TIERS
    from rvperceiver.sim.tracker import TRACKERS

    rows = []
    for noise in (0.0, args.noise_mm):
        print(f"\n## setpoint noise σ = {noise} mm, {args.episodes} episodes per row")
        print("| tier | tracker | path RMS (mm) | path worst (mm) | final median (mm) | final worst (mm) | ≤1 cm | ≤2 cm |")
        print("|---|---|---|---|---|---|---|---|")
        for tier in TIERS:
            if tier == "arm-hidden":  # same physics and resets as stock; only the picture differs
                continue
            for tracker in TRACKERS:
                r = measure(tier, tracker, args.episodes, noise)
                rows.append(r)
                print(f"| {tier} | {tracker} | {r['path_rms_mm']:.2f} | {r['path_worst_mm']:.2f} | "
                      f"{r['final_median_mm']:.2f} | {r['final_worst_mm']:.2f} | {r['success_1cm']:.3f} | "
                      f"{r['success_2cm']:.3f} |", flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
