"""Is the BC study's CNN limited by its 200 demos? Success against the number of demos on one tier.

In the study's standard run the spatial-softmax CNN on ``fixed-start`` stops improving in validation NMSE long
before its last budget while its training loss keeps falling (it overfits 180 training episodes), and reaches
about 12% closed-loop success where the issue's goal is 90%. This script trains the study's own CNN cell
(:func:`rvperceiver.experiments.bc.cell_config`: same model, optimiser, batch, target, t_obs/t_pred) on demo sets
of several sizes made by the study's generator (env seeds from 0; the first ``n`` episodes of a larger set are the
smaller set's episodes, so the sets are nested), and scores every budget with the study's closed loop
(:func:`rvperceiver.experiments.bc.closed_loop_config`: 200 evaluation episodes from env seed 100000, the
demonstrator's tracker, execute 8 of 8). If success rises with the demos at a fixed budget, the study's ceiling
for this model is its data, not its training length or the harness.

    PYTHONPATH=src MUJOCO_GL=egl python benchmarks/bc_demo_dose.py --work /tmp/dose [--demos 200,1000] \
        [--budgets 1500,5000] [--seeds 0] [--tier fixed-start] [--model cnn] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("MUJOCO_GL", "egl")


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="directory for the demo files and checkpoints")
    parser.add_argument("--tier", default="fixed-start")
    parser.add_argument("--model", default="cnn", help="a model of the BC study (cnn, patch_perceiver, …)")
    parser.add_argument("--demos", default="200,1000", help="demo-set sizes (episodes, 10%% held out for validation)")
    parser.add_argument("--budgets", default="1500,5000", help="training steps at which to score (stops of one run)")
    parser.add_argument("--seeds", default="0", help="training seeds")
    parser.add_argument("--episodes", type=int, default=200, help="closed-loop evaluation episodes")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from rvperceiver.data.formats import open_episodes
    from rvperceiver.data.loading import load_windows
    from rvperceiver.experiments.bc import SETPOINT_KEY, cell_config, closed_loop_config, get_bc_profile, tier_state_keys
    from rvperceiver.experiments.statistics import wilson_interval
    from rvperceiver.sim.closed_loop import policy_chunk_fn, run_closed_loop
    from rvperceiver.sim.generate import generate_to_file, training_seed_range
    from rvperceiver.train.evaluate import evaluate
    from rvperceiver.train.loop import train

    budgets = _ints(args.budgets)
    base = dataclasses.replace(get_bc_profile("standard"), budgets=tuple(budgets), eval_episodes=args.episodes)
    work = Path(args.work)
    state_keys = tier_state_keys(args.tier)
    rows: list[dict[str, Any]] = []
    for n_demos in _ints(args.demos):
        profile = dataclasses.replace(base, n_demos=n_demos)
        data = work / f"{args.tier}_{n_demos}.hdf5"
        if not data.exists():
            start = time.perf_counter()
            generate_to_file(data, n_demos, profile.demo_seed, image_size=profile.image_size,
                             valid_fraction=profile.valid_fraction, progress=False, tier=args.tier,
                             episode_steps=profile.episode_steps)
            print(f"{data}: {n_demos} demos in {time.perf_counter() - start:.0f} s", flush=True)
        windows = load_windows(data, ee_key=SETPOINT_KEY, t_obs=profile.t_obs, t_pred=profile.t_pred,
                               valid_fraction=profile.valid_fraction, state_keys=state_keys)
        train_seeds = training_seed_range(open_episodes(data).meta.get("env_args") or {})
        for seed in _ints(args.seeds):
            run_dir = work / "runs" / f"{args.tier}_{args.model}_{n_demos}_seed{seed}"
            config = cell_config(args.tier, args.model, profile, data, seed, run_dir)
            wall = 0.0
            for index, budget in enumerate(budgets):
                start = time.perf_counter()
                result = train(config, windows.train, windows.valid, out_dir=run_dir, resume=index > 0,
                               progress=False, stop_at_step=budget)
                wall += time.perf_counter() - start
                policy = result.policy.eval()
                valid = evaluate(policy, windows.valid, dataclasses.replace(config, eval_batches=0))
                closed = run_closed_loop(policy_chunk_fn(policy), closed_loop_config(profile, args.tier),
                                         train_seeds=train_seeds, label=args.model)
                losses = result.train_losses
                row = {
                    "demos": n_demos, "train_windows": len(windows.train), "seed": seed, "steps": budget,
                    "train_loss_last": float(np.mean(losses[-max(1, len(losses) // 10):])) if losses else None,
                    "valid_nmse": valid.nmse, "success_2cm": closed["success_rate"],
                    "success_1cm": closed["strict_success_rate"], "ever_2cm": closed["ever_within_rate"],
                    "median_final_distance_m": closed["median_final_distance"], "train_wall_s": wall,
                }
                rows.append(row)
                print(f"{n_demos} demos, seed {seed}, {budget} steps: valid NMSE {row['valid_nmse']:.3f}, "
                      f"success {100 * row['success_2cm']:.1f}% ({wall:.0f} s training)", flush=True)

    print(f"\n## {args.model} on {args.tier}: closed-loop success against the number of demos "
          f"({args.episodes} evaluation episodes per seed, Wilson 95%)")
    print("| demos | steps | seeds | valid NMSE (mean) | success ≤ 2 cm | ≤ 1 cm | ever ≤ 2 cm | median final (mm) |")
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for n_demos in _ints(args.demos):
        for budget in budgets:
            group = [r for r in rows if r["demos"] == n_demos and r["steps"] == budget]
            k = sum(round(r["success_2cm"] * args.episodes) for r in group)
            n = args.episodes * len(group)
            lo, hi = wilson_interval(k, n)
            strict = sum(r["success_1cm"] for r in group) / len(group)
            ever = sum(r["ever_2cm"] for r in group) / len(group)
            nmse = sum(r["valid_nmse"] for r in group) / len(group)
            median = sorted(r["median_final_distance_m"] for r in group)[len(group) // 2]
            summary.append({"demos": n_demos, "steps": budget, "k": k, "n": n, "lo": lo, "hi": hi, "valid_nmse": nmse})
            print(f"| {n_demos} | {budget} | {len(group)} | {nmse:.3f} | {100 * k / n:.1f}% [{100 * lo:.1f}, "
                  f"{100 * hi:.1f}] | {100 * strict:.1f}% | {100 * ever:.1f}% | {1000 * median:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "summary": summary, "args": vars(args)}, indent=2) + "\n",
                                  encoding="utf-8")


if __name__ == "__main__":
    main()
