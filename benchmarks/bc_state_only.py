"""How much of the arm-hidden setpoint chunks can be predicted without looking at the frames at all?

On the ``arm-hidden`` tier a policy gets the joint state (angles, velocities) beside a frame in which only the
target dot is drawn. The next ``t_pred`` setpoints depend on where the arm is (in the state) and on where the
target is (only in the frame). A predictor of the state alone therefore reaches some validation NMSE without
knowing the target; a model whose NMSE is near that figure has not used the frame, however low the figure is.

The BC study now reports both checks itself (:mod:`rvperceiver.experiments.bc_references`); this script runs
them on demos and checkpoints made before it did. It fits two *state-only* predictors on the BC study's arm-hidden windows (same demos, same split, same
target: ``robot0_eef_setpoint``, t_obs 1, t_pred 8) — least squares on ``[state, 1]`` and a small MLP (per training
seed) — and reports their validation NMSE with the project's own metric, then runs the MLP through the study's
closed loop (200 evaluation episodes, the tracker, execute 8 of 8). Compare with the study's rows: a learned model
is using the image only where its NMSE is clearly below the state-only one and its success above the floor.

The windows that need the frame are the first of each episode: the arm is at rest, so the state says nothing about
where it will go. ``--checkpoints RUN_DIR ...`` scores the study's trained policies (and the state-only MLP and
the mean predictor) on exactly those: the distance between the predicted and the demonstrated last setpoint of the
chunk at step 0 of each validation episode.

    PYTHONPATH=src MUJOCO_GL=egl python benchmarks/bc_state_only.py --data DEMOS.hdf5 [--checkpoints RUN_DIR ...] [--out FILE.json]
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

from rvperceiver.experiments.bc import SETPOINT_KEY, tier_state_keys  # noqa: E402  (the study's own keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="arm-hidden demos, e.g. the BC study's WORK/data/arm-hidden/demos.hdf5")
    parser.add_argument("--seeds", default="0,1,2", help="MLP training seeds")
    parser.add_argument("--steps", type=int, default=3000, help="MLP Adam steps of batch 256")
    parser.add_argument("--episodes", type=int, default=200, help="closed-loop episodes (env seeds 100000 …)")
    parser.add_argument("--checkpoints", nargs="*", default=[], metavar="RUN_DIR",
                        help="trained policies (e.g. the study's WORK/runs/arm-hidden/*) to score on the start windows")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    from rvperceiver.data.formats import open_episodes
    from rvperceiver.data.loading import load_windows
    from rvperceiver.experiments.bc_references import (
        constant_predictor,
        fit_state_only,
        policy_predictor,
        predictor_nmse,
        start_items,
        start_window_error,
    )
    from rvperceiver.experiments.statistics import wilson_interval
    from rvperceiver.experiments.bc import closed_loop_config, get_bc_profile
    from rvperceiver.sim.closed_loop import policy_chunk_fn, run_closed_loop
    from rvperceiver.sim.generate import recorded_tier, training_seed_range
    from rvperceiver.train.checkpoint import load_policy

    env_args = open_episodes(args.data).meta.get("env_args") or {}
    made_on = recorded_tier(env_args)
    if made_on is None:
        raise SystemExit(f"{args.data}: no rvperceiver.tier in env_args; expected demos made by `rvperceiver sim generate`")
    tier = made_on.name
    windows = load_windows(args.data, ee_key=SETPOINT_KEY, t_obs=1, t_pred=8, valid_fraction=0.1,
                           state_keys=tier_state_keys(tier))
    train_seeds = training_seed_range(env_args)
    x_train, y_train = windows.train.states_array(), windows.train.targets_array()
    design = np.hstack([x_train.reshape(len(x_train), -1), np.ones((len(x_train), 1))])
    coef, *_ = np.linalg.lstsq(design, y_train.reshape(len(y_train), -1), rcond=None)

    def linear(batch: Any) -> np.ndarray:
        state = np.asarray(batch["observation.state"], dtype=np.float64).reshape(len(batch["observation.state"]), -1)
        return (np.hstack([state, np.ones((len(state), 1))]) @ coef).reshape(len(state), *y_train.shape[1:])

    rows: dict[str, Any] = {"windows": {"train": len(windows.train), "valid": len(windows.valid)},
                            "linear_valid_nmse": predictor_nmse(linear, windows.valid), "mlp": []}
    starts = {"mean predictor": start_window_error(constant_predictor(y_train.mean(axis=0)), windows.valid)}
    profile = dataclasses.replace(get_bc_profile("standard"), eval_episodes=args.episodes)
    config = closed_loop_config(profile, tier)  # the study's own closed loop
    for seed in seeds:
        start = time.perf_counter()
        model = fit_state_only(windows.train, seed=seed, steps=args.steps)
        closed = run_closed_loop(policy_chunk_fn(model), config, train_seeds=train_seeds, label="state-only MLP")
        starts[f"state-only MLP (seed {seed})"] = start_window_error(policy_predictor(model), windows.valid)
        rows["mlp"].append({"seed": seed, "valid_nmse": predictor_nmse(policy_predictor(model), windows.valid),
                            "success_2cm": closed["success_rate"], "success_1cm": closed["strict_success_rate"],
                            "ever_2cm": closed["ever_within_rate"],
                            "median_final_distance_m": closed["median_final_distance"],
                            "seconds": time.perf_counter() - start})
    for run in args.checkpoints:
        policy, _ = load_policy(run)
        starts[Path(run).name] = start_window_error(policy_predictor(policy), windows.valid)
    rows["start_window_final_setpoint_error_m"] = starts

    k = sum(round(r["success_2cm"] * args.episodes) for r in rows["mlp"])
    n = args.episodes * len(rows["mlp"])
    lo, hi = wilson_interval(k, n)
    rows["pooled_success_2cm"] = {"k": k, "n": n, "lo": lo, "hi": hi}
    print(f"\n## State-only predictors on {tier} ({rows['windows']['train']} train / {rows['windows']['valid']} "
          f"valid windows; target {SETPOINT_KEY}, t_obs 1, t_pred 8)")
    print(f"least squares on [state, 1]: valid NMSE {rows['linear_valid_nmse']:.3f}")
    print("| MLP seed | valid NMSE | success ≤ 2 cm | ≤ 1 cm | ever ≤ 2 cm | median final (mm) |")
    print("|---|---|---|---|---|---|")
    for r in rows["mlp"]:
        print(f"| {r['seed']} | {r['valid_nmse']:.3f} | {100 * r['success_2cm']:.1f}% | {100 * r['success_1cm']:.1f}% | "
              f"{100 * r['ever_2cm']:.1f}% | {1000 * r['median_final_distance_m']:.1f} |")
    print(f"pooled success ≤ 2 cm: {k}/{n} = {100 * k / n:.1f}% [Wilson 95% {100 * lo:.1f}, {100 * hi:.1f}]")
    print(f"\n## Start windows ({len(start_items(windows.valid))} validation episodes, arm at rest): predicted vs "
          "demonstrated last setpoint of the first chunk")
    print("| predictor | mean error (mm) |")
    print("|---|---|")
    for name, error in starts.items():
        print(f"| {name} | {1000 * error:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
