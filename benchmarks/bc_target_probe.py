"""Can a model read where the target is from one arm-hidden frame? The seed's premise on a rendered camera image.

In the BC study the arm-hidden tier should decide the seed's claim, but it cannot: the joint velocities point at
the goal once the arm moves, so the frame matters only on the windows where the arm is at rest, and every
Perceiver there learned the state-only predictor (same start-window error). This probe takes the state away and
asks the perception question alone. Each example is one 64 x 64 x 3 frame of the arm-hidden tier just after a
reset (12,288 scalar tokens; frames differ only in the target dot, about 17 of 4,096 pixels), the label is the
target's (x, y). Training frames come from env seeds 0 …, validation frames from env seeds 300000 … (never the
same episodes). The models are the BC study's cells (:func:`rvperceiver.experiments.bc.cell_config`: raw scalar
tokens, the Fourier view, 4 x 4 patch tokens, the spatial-softmax CNN; same sizes, optimiser and batch), with one
output step of two channels. Scored at each budget (stops of one run): validation NMSE (1 = the mean predictor)
and RMSE per coordinate in millimetres.

Decision rule, written before the first run (2026-12-01, 17:20 UTC) and printed with the figures:

- *Supported* (the Fourier view reads the few pixels where raw tokens do not): at the largest budget the Fourier
  Perceiver's validation NMSE is below 0.5 on every training seed while the raw Perceiver's is above 0.8 on every
  seed.
- *Refuted*: the raw Perceiver is below 0.5 on every seed (raw tokens suffice), or the Fourier Perceiver is above
  0.8 on every seed (the view does not help).
- Otherwise *inconclusive*, with the per-seed figures.

    PYTHONPATH=src MUJOCO_GL=egl python benchmarks/bc_target_probe.py [--train 2000] [--valid 400] \
        [--budgets 500,2000] [--seeds 0,1,2] [--models raw_perceiver,fourier_perceiver,patch_perceiver,cnn] \
        [--work DIR] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

os.environ.setdefault("MUJOCO_GL", "egl")

VALID_SEED = 300_000
SUPPORT_BELOW, PLATEAU_ABOVE = 0.5, 0.8


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def frames_and_targets(seeds: range, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One arm-hidden frame per env seed, right after the tier's reset, and the target's (x, y) in metres."""
    from rvperceiver.sim.reacher import make_reacher, render_frame, target_position
    from rvperceiver.sim.tiers import get_tier, reset_episode

    tier = get_tier("arm-hidden")
    env = make_reacher(image_size, tier=tier)
    frames = np.empty((len(seeds), 1, image_size, image_size, 3), dtype=np.uint8)
    targets = np.empty((len(seeds), 1, 2), dtype=np.float32)
    try:
        for i, seed in enumerate(seeds):
            reset_episode(env, seed, tier)
            frames[i, 0] = render_frame(env)
            targets[i, 0] = target_position(env)[:2]
    finally:
        env.close()
    return torch.from_numpy(frames), torch.from_numpy(targets)


def verdict(final_nmse: dict[str, list[float]]) -> str:
    raw, fourier = final_nmse.get("raw_perceiver"), final_nmse.get("fourier_perceiver")
    if not raw or not fourier:
        return "not decided: the rule needs both the raw and the Fourier Perceiver"
    shown = f"raw {', '.join(f'{v:.3f}' for v in raw)}; Fourier {', '.join(f'{v:.3f}' for v in fourier)}"
    if all(v < SUPPORT_BELOW for v in fourier) and all(v > PLATEAU_ABOVE for v in raw):
        return f"supported ({shown})"
    if all(v < SUPPORT_BELOW for v in raw):
        return f"refuted: raw tokens read the target on every seed ({shown})"
    if all(v > PLATEAU_ABOVE for v in fourier):
        return f"refuted: the Fourier view stays on the plateau on every seed ({shown})"
    return f"inconclusive ({shown})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000, help="training frames (env seeds 0 …)")
    parser.add_argument("--valid", type=int, default=400, help=f"validation frames (env seeds {VALID_SEED} …)")
    parser.add_argument("--budgets", default="500,2000", help="training steps at which to score")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds")
    parser.add_argument("--models", default="raw_perceiver,fourier_perceiver,patch_perceiver,cnn")
    parser.add_argument("--work", default=None, help="checkpoints go here (default: a temporary directory)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from rvperceiver.experiments.bc import cell_config, get_bc_profile
    from rvperceiver.train.config import from_dict, to_dict
    from rvperceiver.train.evaluate import evaluate
    from rvperceiver.train.loop import train

    budgets, models = _ints(args.budgets), [m for m in args.models.split(",") if m.strip()]
    profile = dataclasses.replace(get_bc_profile("standard"), budgets=tuple(budgets))
    start = time.perf_counter()
    x_train, y_train = frames_and_targets(range(args.train), profile.image_size)
    x_valid, y_valid = frames_and_targets(range(VALID_SEED, VALID_SEED + args.valid), profile.image_size)
    differing = (x_train != x_train[:1]).any(dim=-1).flatten(1).sum(dim=1).float().median().item()
    print(f"{args.train} training / {args.valid} validation frames in {time.perf_counter() - start:.0f} s; median "
          f"pixels differing from the first frame: {differing:.0f} of {profile.image_size ** 2}", flush=True)
    train_set, valid_set = TensorDataset(x_train, y_train), TensorDataset(x_valid, y_valid)
    scratch = tempfile.TemporaryDirectory() if args.work is None else None
    work = Path(args.work) if args.work is not None else Path(scratch.name)  # type: ignore[union-attr]

    rows: list[dict[str, Any]] = []
    for seed in _ints(args.seeds):
        for model in models:
            base = cell_config("fixed-start", model, profile, Path("frames"), seed, work)
            raw = to_dict(base)
            raw["data"].update(t_pred=1, state_keys=[])
            for backbone in ("perceiver", "cnn"):
                raw["policy"][backbone].update(output_steps=1, output_channels=2)
            out_dir = work / f"{model}_seed{seed}"
            raw["out_dir"] = str(out_dir)
            config = from_dict(raw)
            wall = 0.0
            for index, budget in enumerate(budgets):
                began = time.perf_counter()
                result = train(config, train_set, valid_set, out_dir=out_dir, resume=index > 0, progress=False,
                               stop_at_step=budget)
                wall += time.perf_counter() - began
                metrics = evaluate(result.policy.eval(), valid_set, dataclasses.replace(config, eval_batches=0))
                row = {"model": model, "seed": seed, "steps": budget, "valid_nmse": metrics.nmse,
                       "rmse_mm": 1000 * metrics.rmse_m, "spread": metrics.spread, "train_wall_s": wall}
                rows.append(row)
                print(f"{model} seed {seed} @ {budget}: valid NMSE {metrics.nmse:.3f}, RMSE {row['rmse_mm']:.1f} mm "
                      f"({wall:.0f} s)", flush=True)

    if scratch is not None:
        scratch.cleanup()
    mean_rmse = 1000 * float(torch.sqrt(((y_valid - y_train.mean(dim=0)) ** 2).mean()))  # per coordinate, as rmse_m
    print(f"\n## Target read from one arm-hidden frame ({args.train} training frames, {args.valid} validation; "
          f"mean predictor RMSE {mean_rmse:.1f} mm)")
    print("| model | steps | valid NMSE per seed | RMSE per coordinate (mm) per seed |")
    print("|---|---|---|---|")
    for model in models:
        for budget in budgets:
            group = [r for r in rows if r["model"] == model and r["steps"] == budget]
            nmse = ", ".join(f"{r['valid_nmse']:.3f}" for r in group)
            rmse = ", ".join(f"{r['rmse_mm']:.1f}" for r in group)
            print(f"| {model} | {budget} | {nmse} | {rmse} |")
    final = {m: [r["valid_nmse"] for r in rows if r["model"] == m and r["steps"] == budgets[-1]] for m in models}
    decided = f"{verdict(final)}, at {budgets[-1]} steps"
    print(f"\nDecision rule (written before the run; NMSE at {budgets[-1]} steps, every seed): Fourier < "
          f"{SUPPORT_BELOW} and raw > {PLATEAU_ABOVE} supports the seed; raw < {SUPPORT_BELOW} or Fourier > "
          f"{PLATEAU_ABOVE} refutes it. Verdict: **{decided}**")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "mean_predictor_rmse_mm": mean_rmse, "verdict": decided,
                                              "pixels_differing_median": differing, "args": vars(args)}, indent=2)
                                  + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
