"""Streaming episodes against in-memory episodes, on a dataset several times larger than a memory budget.

    python benchmarks/bench_streaming.py [--budget-mb 256] [--factor 4] [--batches 40] [--out FILE.json]

1. Writes a robomimic HDF5 file whose frames, decoded, take ``factor`` × the budget: 96 × 96 × 3 frames, 50 per
   episode (a disc moving over a textured background; gzip per frame, as the project's writer stores them).
2. In a fresh process for each path (``data.streaming`` true / false), the same steps as training: open the file,
   cut windows (t_obs 2, t_pred 8), fit the policy's statistics in one streaming pass over every training sample
   (a DataLoader of batch 64), then draw ``batches`` shuffled batches of 32. Reports the process's peak RSS
   (``ru_maxrss``) above the RSS it had after its imports (torch alone is a few hundred MiB that no data path can
   save), the statistics pass's samples/s, and the batches' samples/s.
3. Times a training step of the CNN of ``configs/reacher_cnn.yaml`` on such a batch: the loader should deliver
   samples ≥ 5× faster than the model consumes them.

Timings on a shared machine are upper bounds; the RSS figures do not depend on load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
FRAME = (96, 96, 3)
LENGTH = 50
T_OBS, T_PRED, BATCH = 2, 8, 32


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def write_dataset(path: Path, episodes: int, seed: int = 0) -> Path:
    """Synthetic demos, written episode by episode (never more than one in memory)."""
    import h5py

    rng = np.random.default_rng(seed)
    height, width, _ = FRAME
    yy, xx = np.mgrid[0:height, 0:width]
    background = (rng.integers(0, 40, (height, width, 3)) + 100).astype(np.uint8)
    with h5py.File(path, "w") as handle:
        data = handle.create_group("data")
        data.attrs["total"] = episodes * LENGTH
        data.attrs["env_args"] = "{}"
        for e in range(episodes):
            start, velocity = rng.uniform(20, 76, 2), rng.uniform(-0.8, 0.8, 2)
            centres = start[None] + velocity[None] * np.arange(LENGTH)[:, None]
            frames = np.broadcast_to(background, (LENGTH, *FRAME)).copy()
            for t, (cy, cx) in enumerate(centres):
                frames[t][(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = (230, 40, 40)
            group = data.create_group(f"demo_{e}")
            group.attrs["num_samples"] = LENGTH
            obs = group.create_group("obs")
            obs.create_dataset("agentview_image", data=frames, chunks=(1, *FRAME), compression="gzip", compression_opts=4)
            obs.create_dataset("robot0_eef_pos", data=np.c_[centres / 100.0, np.zeros(LENGTH)].astype(np.float32))
    return path


def child(path: str, streaming: bool, batches: int, stats_samples: int) -> dict[str, Any]:
    """One path, measured in this (fresh) process."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from rvperceiver.data.loading import load_windows
    from rvperceiver.model import PolicyConfig, build_policy
    from rvperceiver.train.config import load_config

    torch.set_num_threads(1)
    baseline = _rss_bytes()
    started = time.perf_counter()
    windows = load_windows(path, t_obs=T_OBS, t_pred=T_PRED, valid_fraction=0.0, streaming=streaming)
    open_s = time.perf_counter() - started
    train = windows.train
    config: PolicyConfig = load_config(REPO_ROOT / "configs" / "reacher_cnn.yaml").policy
    policy = build_policy(config, train.frame_shape, train.target_shape)
    subset = Subset(train, range(0, len(train), max(1, len(train) // stats_samples)))
    loader = DataLoader(subset, batch_size=64, shuffle=False)
    started = time.perf_counter()
    policy.fit_statistics(loader, loader)
    stats_s = time.perf_counter() - started
    sampler = DataLoader(train, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(0))
    iterator = iter(sampler)
    next(iterator)  # the first batch pays for lazy handles opening
    started = time.perf_counter()
    for _ in range(batches):
        frames, _ = next(iterator)
    load_s = time.perf_counter() - started
    peak = _peak_rss_bytes()
    return {
        "streaming": streaming,
        "samples": len(train),
        "baseline_rss_mib": baseline / 2**20,
        "peak_rss_mib": peak / 2**20,
        "peak_above_baseline_mib": (peak - baseline) / 2**20,
        "open_s": open_s,
        "stats_samples": len(subset),
        "stats_samples_per_s": len(subset) / stats_s,
        "loader_samples_per_s": batches * BATCH / load_s,
    }


def model_samples_per_s(reps: int = 5) -> float:
    import torch

    from rvperceiver.model import build_policy
    from rvperceiver.train.config import load_config

    torch.set_num_threads(1)
    config = load_config(REPO_ROOT / "configs" / "reacher_cnn.yaml")
    torch.manual_seed(0)
    policy = build_policy(config.policy, (T_OBS, *FRAME), (T_PRED, 3))
    frames = torch.randint(0, 256, (BATCH, T_OBS, *FRAME), dtype=torch.uint8)
    targets = torch.randn(BATCH, T_PRED, 3)
    policy.fit_statistics([frames], targets)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    times = []
    for _ in range(reps + 1):
        started = time.perf_counter()
        loss = torch.nn.functional.mse_loss(policy(frames), policy.target_norm.normalize(targets))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return BATCH / float(np.median(times[1:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-mb", type=float, default=256.0, help="memory budget for the data, above imports")
    parser.add_argument("--factor", type=float, default=4.0, help="decoded dataset size / budget")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--stats-samples", type=int, default=2000, help="samples in the statistics pass")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--child", nargs=4, metavar=("PATH", "STREAMING", "BATCHES", "STATS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        path, streaming, batches, stats = args.child
        print(json.dumps(child(path, streaming == "1", int(batches), int(stats))))
        return 0

    episode_bytes = LENGTH * int(np.prod(FRAME))
    episodes = int(np.ceil(args.factor * args.budget_mb * 2**20 / episode_bytes))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_streaming_"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "large.hdf5"
    started = time.perf_counter()
    write_dataset(path, episodes)
    write_s = time.perf_counter() - started
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src") + os.pathsep + str(REPO_ROOT), OMP_NUM_THREADS="1")
    results = {}
    for streaming in (True, False):
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "1" if streaming else "0", str(args.batches), str(args.stats_samples)],
            env=env, capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"child ({'streaming' if streaming else 'in memory'}) failed:\n{done.stderr[-3000:]}")
        results["streaming" if streaming else "in_memory"] = json.loads(done.stdout.strip().splitlines()[-1])
    consumed = model_samples_per_s()
    record = {
        "dataset": {
            "episodes": episodes, "frames": episodes * LENGTH, "frame_shape": list(FRAME),
            "decoded_mib": episodes * episode_bytes / 2**20, "file_mib": path.stat().st_size / 2**20,
            "write_s": write_s,
        },
        "budget_mib": args.budget_mb,
        "model_samples_per_s": consumed,
        **results,
        "machine": platform.platform(),
        "python": platform.python_version(),
    }
    for name in ("streaming", "in_memory"):
        row = results[name]
        row["loader_over_model"] = row["loader_samples_per_s"] / consumed
        row["within_budget"] = row["peak_above_baseline_mib"] <= args.budget_mb
    print(f"dataset: {episodes} episodes x {LENGTH} frames of {FRAME}: {record['dataset']['decoded_mib']:.0f} MiB decoded "
          f"({args.factor:g}x the {args.budget_mb:g} MiB budget), {record['dataset']['file_mib']:.0f} MiB on disk")
    print(f"model (reacher_cnn, batch {BATCH}, 1 thread): {consumed:.0f} samples/s")
    print(f"{'path':10s} {'open s':>7s} {'peak RSS MiB':>13s} {'above imports':>14s} {'stats samples/s':>16s} "
          f"{'loader samples/s':>17s} {'loader/model':>13s}")
    for name in ("streaming", "in_memory"):
        row = results[name]
        print(f"{name:10s} {row['open_s']:7.1f} {row['peak_rss_mib']:13.0f} {row['peak_above_baseline_mib']:14.0f} "
              f"{row['stats_samples_per_s']:16.0f} {row['loader_samples_per_s']:17.0f} {row['loader_over_model']:12.1f}x")
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
