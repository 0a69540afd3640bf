"""Does a policy trained on lossless frames survive the same episodes re-encoded as video?

Train the spatial-softmax CNN on robomimic HDF5 frames (lossless), then score validation NMSE on the validation
episodes twice: as stored in the HDF5 file, and after ``rvperceiver convert --to lerobot`` re-encoded them as
LeRobot v3 video (lossy). Input views trained on the same data with the same seed:

- ``floor+clip`` (the default): per-pixel std floored at one grey level (1/255), z-scores clipped to ±10;
- ``floor 4/255`` and ``floor 8/255`` + the same clip: a floor at the codec's error scale (the ``convert`` round
  trip measures a mean 0.9-1.1/255 per value), so a pixel that hardly varies in training is not magnified by it;
- ``old``: std floored at 1e-6 and no clip (what the project used before issue 11);
- ``trained on video``: the default view trained on the video frames themselves (the camera stream it is scored
  on), as the reference for what a deploy-matched policy loses.

Printed per normalisation: NMSE on the HDF5 frames, on the video frames, their ratio (the issue's goal: ≤ 1.5×),
and the share of normalised inputs beyond |z| = 10 on the video frames before any clip, with the largest |z|.

    PYTHONPATH=src MUJOCO_GL=egl python benchmarks/bench_video_shift.py --episodes 60 --steps 400 --seeds 0,1,2 [--out FILE.json]
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

import torch
from torch.utils.data import DataLoader

os.environ.setdefault("MUJOCO_GL", "egl")


def _config(data: Path, steps: int, seed: int, view_options: dict[str, Any]) -> Any:
    from rvperceiver.train.config import from_dict

    view: dict[str, Any] = {"token_mode": "pixel", "pre_norm": "zscore", **view_options}
    return from_dict({
        "data": {"path": str(data), "t_obs": 1, "t_pred": 8, "valid_fraction": 0.2},
        "policy": {"view": view, "backbone": "cnn", "target_norm": "zscore"},
        "optim": {"lr": 1e-3},
        "schedule": {"warmup_steps": 20, "min_lr_ratio": 1.0},
        "steps": steps, "batch_size": 16, "eval_every": steps, "eval_batches": 0, "checkpoint_every": steps,
        "seed": seed, "device": "cpu", "tensorboard": False, "out_dir": "",
    })


@torch.no_grad()
def _beyond(policy: Any, dataset: Any, bound: float = 10.0) -> tuple[float, float]:
    """Share of normalised view inputs with |z| > bound (before any clip), and the largest |z|."""
    view = policy.view
    beyond, total, largest = 0, 0, 0.0
    for frames, _ in DataLoader(dataset, batch_size=64):
        image = frames["observation.image"] if isinstance(frames, dict) else frames
        tokens = view.layout.to_tokens(image)
        z = ((tokens - view.pre_mean) / view.pre_std).abs()
        beyond += int((z > bound).sum())
        total += z.numel()
        largest = max(largest, float(z.max()))
    return beyond / total, largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (rows report mean and range)")
    parser.add_argument("--tier", default="stock")
    parser.add_argument("--codec", default="libsvtav1", help="LeRobot's default encoder (libx264 also works)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on cores shared with other jobs)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from rvperceiver.data.convert import ConvertConfig, convert_dataset
    from rvperceiver.data.loading import load_windows
    from rvperceiver.sim.generate import generate_to_file
    from rvperceiver.train.evaluate import evaluate
    from rvperceiver.train.loop import train

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds {args.seeds!r}: expected distinct comma-separated integers")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        hdf5 = Path(tmp) / "demos.hdf5"
        video = Path(tmp) / "demos_lerobot"
        generate_to_file(hdf5, args.episodes, 0, image_size=64, valid_fraction=0.2, progress=False, tier=args.tier)
        convert_dataset(ConvertConfig(hdf5, "lerobot", video, codec=args.codec, progress=False))
        lossless = load_windows(hdf5, t_obs=1, t_pred=8, valid_fraction=0.2)
        lossy = load_windows(video, t_obs=1, t_pred=8, valid_fraction=0.2)
        # LeRobot names episodes episode_000004 where robomimic says demo_4: same episodes, same targets.
        same = len(lossless.valid) == len(lossy.valid) and bool(
            (abs(lossless.valid.targets_array() - lossy.valid.targets_array()) < 1e-6).all()
        )
        if not same:
            raise SystemExit(f"the validation splits differ: {lossless.valid_episodes} vs {lossy.valid_episodes}")
        variants = (
            ("floor 1/255 + clip 10 (the default)", {}, lossless),
            ("floor 4/255 + clip 10", {"std_floor": 4 / 255}, lossless),
            ("floor 8/255 + clip 10", {"std_floor": 8 / 255}, lossless),
            ("old (1e-6 floor, no clip)", {"std_floor": 1e-6, "clip": None}, lossless),
            ("default, trained on the video frames", {}, lossy),
        )
        for seed in seeds:
            for name, view_options, trained_on in variants:
                config = _config(hdf5, args.steps, seed, view_options)
                start = time.perf_counter()
                policy = train(config, trained_on.train, trained_on.valid, progress=False).policy.eval()
                seconds = time.perf_counter() - start
                on_hdf5 = evaluate(policy, lossless.valid, dataclasses.replace(config, eval_batches=0))
                on_video = evaluate(policy, lossy.valid, dataclasses.replace(config, eval_batches=0))
                share, largest = _beyond(policy, lossy.valid)
                rows.append({
                    "normalisation": name, "seed": seed, "nmse_hdf5": on_hdf5.nmse, "nmse_video": on_video.nmse,
                    "ratio": on_video.nmse / on_hdf5.nmse, "share_beyond_10": share, "largest_abs_z": largest,
                    "train_seconds": seconds,
                })
    print(f"\n## CNN trained {args.steps} steps on {args.episodes} episodes ({args.tier}); validation "
          f"episodes as HDF5 vs re-encoded as LeRobot video ({args.codec})")
    print(f"training seeds {seeds}; each cell: mean [min, max] over the seeds")
    print("| normalisation | NMSE on HDF5 | NMSE on video | ratio video / HDF5 | share of video inputs beyond 10σ (before clip) | largest |z| |")
    print("|---|---|---|---|---|---|")
    for name, _, _ in variants:
        mine = [r for r in rows if r["normalisation"] == name]

        def cell(key: str, fmt: str, mine: list[dict[str, Any]] = mine) -> str:
            values = [r[key] for r in mine]
            mean = sum(values) / len(values)
            return f"{mean:{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]" if len(values) > 1 else f"{mean:{fmt}}"

        print(f"| {name} | {cell('nmse_hdf5', '.3f')} | {cell('nmse_video', '.3f')} | {cell('ratio', '.2f')}× | "
              f"{cell('share_beyond_10', '.2%')} | {cell('largest_abs_z', '.3g')} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
