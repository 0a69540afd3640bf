"""Frames per second of expert demonstration generation (`rvperceiver.sim.generate.generate_demos`).

Each frame is one MuJoCo step of Reacher-v5 with the scripted expert (DLS IK + joint PD) plus one offscreen render
of the top-down camera, which dominates. One untimed one-episode call first pays the imports and the GL context.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from benchmarks.common import MODES, Mode, format_table

os.environ.setdefault("MUJOCO_GL", "egl")


def run(mode: Mode, image_size: int = 64, seed: int = 0) -> dict[str, Any]:
    from rvperceiver.sim.generate import generate_demos

    generate_demos(1, seed=seed, image_size=image_size, episode_steps=2)  # warm-up: imports, GL context
    start = time.perf_counter()
    episodes = generate_demos(mode.sim_episodes, seed=seed, image_size=image_size, episode_steps=mode.sim_steps)
    seconds = time.perf_counter() - start
    frames = sum(e.length for e in episodes)
    result = {
        "episodes": mode.sim_episodes,
        "steps_per_episode": mode.sim_steps,
        "image_size": image_size,
        "frames": frames,
        "seconds": seconds,
        "frames_per_s": frames / seconds,
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
    }
    print(f"\n## Demo generation (Reacher-v5, {image_size}×{image_size} frames, MUJOCO_GL={result['mujoco_gl']})")
    print(format_table(["episodes", "frames", "seconds", "frames/s"],
                       [[mode.sim_episodes, frames, seconds, result["frames_per_s"]]]))
    result["_episodes"] = episodes  # handed to the input-pipeline benchmark by run.py; dropped before JSON
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    mode = MODES[args.mode]
    result = run(mode, image_size=mode.frame[0])
    result.pop("_episodes")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
