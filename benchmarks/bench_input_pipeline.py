"""Samples/s a DataLoader over `WindowDataset` delivers, against samples/s the model consumes in training.

Demonstrations (from the simulator, or given by the caller) are written to a temporary robomimic HDF5 file and a
temporary LeRobot v3 directory (H.264 video), read back with `open_episodes`, windowed (`t_obs=1`, `t_pred=8`) and
served by a shuffling `DataLoader` with `num_workers=0`: on the two shared cores of this machine a worker process
would compete with the training step it feeds, so the in-process rate is the honest one. Reading a dataset
(HDF5 decompression or video decoding) happens once, in `open_episodes`; its rate is reported separately.

The model's rate is the training step of the full policy (scalar view with the seed's rfft + Perceiver IO) at the
same batch size, unless the caller passes one already measured.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.bench_preprocess import build_view
from benchmarks.bench_vs_perceiver_pytorch import our_config
from benchmarks.common import (
    Mode,
    Variant,
    format_table,
    make_train_step,
    median,
    standard_main,
    time_alternating,
)
from rvperceiver.data import (
    Episode,
    WindowDataset,
    open_episodes,
    write_lerobot,
    write_robomimic,
)
from rvperceiver.model import PerceiverIO

T_OBS, T_PRED = 1, 8


def model_samples_per_s(mode: Mode, variant: Variant) -> float:
    """Training samples/s of the policy (view + Perceiver IO + backward + AdamW) at `mode.batch`."""
    device = variant.device
    view = build_view(mode, "flat", device)
    torch.manual_seed(0)
    policy = nn.Sequential(view, PerceiverIO(our_config(mode.model, None), view.out_channels, view.grid_shape))
    policy = policy.to(device)
    frames = torch.randint(0, 256, (mode.batch, T_OBS, *mode.frame), dtype=torch.uint8).to(device)
    targets = torch.randn(mode.batch, mode.model.output_steps, mode.model.output_channels).to(device)
    step = make_train_step(policy, policy, frames, targets, variant)
    times = time_alternating({"step": step}, mode.warmup, mode.reps, device)["step"]
    return mode.batch / median(times)


def loader_rate(dataset: WindowDataset, batch: int, batches: int, seed: int = 0) -> tuple[float, int]:
    """Samples/s of iterating `batches` shuffled batches (epochs repeat as needed), and the sample count."""
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0,
                        generator=torch.Generator().manual_seed(seed))
    delivered, served = 0, 0
    start = time.perf_counter()
    while served < batches:
        for frames, target in loader:
            delivered += frames.shape[0]
            served += 1
            if served >= batches:
                break
    return delivered / (time.perf_counter() - start), delivered


def synthetic_episodes(mode: Mode, seed: int = 0) -> list[Episode]:
    """Random-frame episodes, for when the simulator cannot run (no GL). Noise compresses worse than renders."""
    generator = torch.Generator().manual_seed(seed)
    episodes = []
    for i in range(mode.pipeline_episodes):
        frames = torch.randint(0, 256, (mode.sim_steps, *mode.frame), generator=generator, dtype=torch.uint8)
        ee = torch.randn(mode.sim_steps, 3, generator=generator)
        episodes.append(Episode(name=f"demo_{i}", frames=frames.numpy(), ee=ee.numpy()))
    return episodes


def run(
    mode: Mode,
    variant: Variant,
    episodes: list[Episode] | None = None,
    model_rate: float | None = None,
) -> dict[str, Any]:
    source = "given"
    if episodes is None:
        try:
            from rvperceiver.sim.generate import generate_demos

            os.environ.setdefault("MUJOCO_GL", "egl")
            episodes = generate_demos(mode.pipeline_episodes, seed=0, image_size=mode.frame[0],
                                      episode_steps=mode.sim_steps)
            source = "simulator"
        except Exception as error:  # no GL context on this machine: fall back to random frames, and say so
            print(f"simulator unavailable ({type(error).__name__}: {error}); using synthetic episodes")
            episodes = synthetic_episodes(mode)
            source = "synthetic"
    if model_rate is None:
        model_rate = model_samples_per_s(mode, variant)
    frames_total = sum(e.length for e in episodes)
    results: dict[str, Any] = {"episodes": len(episodes), "frames": frames_total, "episode_source": source,
                               "model_samples_per_s": model_rate, "batch": mode.batch, "formats": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="rvp-bench-") as tmp:
        paths = {
            "robomimic": write_robomimic(Path(tmp) / "demos.hdf5", episodes),
            "lerobot": write_lerobot(Path(tmp) / "lerobot", episodes),
        }
        for name, path in paths.items():
            start = time.perf_counter()
            episode_set = open_episodes(path)
            open_s = time.perf_counter() - start
            dataset = WindowDataset(episode_set, T_OBS, T_PRED)
            rate, delivered = loader_rate(dataset, mode.batch, mode.pipeline_batches)
            entry = {
                "open_s": open_s,
                "decoded_frames_per_s": frames_total / open_s,
                "windows": len(dataset),
                "samples_timed": delivered,
                "loader_samples_per_s": rate,
                "loader_over_model_rate": rate / model_rate,
            }
            results["formats"][name] = entry
            rows.append([name, entry["decoded_frames_per_s"], rate, model_rate, entry["loader_over_model_rate"]])
    print(f"\n## Input pipeline ({len(episodes)} {source} episodes, {frames_total} frames, batch {mode.batch}, "
          f"num_workers=0, model: {variant.label})")
    print(format_table(["format", "read frames/s (once)", "loader samples/s", "model samples/s", "loader / model"],
                       rows))
    results["loader_over_model_rate"] = min(e["loader_over_model_rate"] for e in results["formats"].values())
    return results


def main() -> None:
    standard_main(__doc__, lambda mode, variant, threads: run(mode, variant), per_variant=False)


if __name__ == "__main__":
    main()
