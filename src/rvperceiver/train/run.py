"""Workflows behind the CLI: train from a config, evaluate / predict / simulate a checkpoint, describe a dataset.

These join the packages that know nothing of each other (data readers, views, model, trainer, simulator) in
the one order that makes a run reproducible: the dataset is split by episode exactly as the config says, the
adaptive view (when asked for) is chosen on the training split only, and everything that decided the run — the
split, the view choice and its statistics — is written next to the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from rvperceiver.data.formats import DEFAULT_KEYS, detect_format, open_episodes
from rvperceiver.data.loading import WindowSplit, load_windows, windows_for_split
from rvperceiver.data.windows import WindowDataset
from rvperceiver.errors import CheckpointError, DataError, InputError
from rvperceiver.train.checkpoint import load_policy
from rvperceiver.train.config import TrainConfig, to_dict
from rvperceiver.train.evaluate import evaluate
from rvperceiver.train.loop import (
    CHECKPOINT_DIRNAME,
    TrainResult,
    check_output_dir,
    train,
)
from rvperceiver.train.stats_cache import StatsCache
from rvperceiver.utils import atomic_write_text
from rvperceiver.views.adaptive import AdaptiveChoice, choose_view, default_candidates

__all__ = [
    "choose_view_for_windows",
    "dataset_view_statistics",
    "evaluate_checkpoint",
    "inspect_dataset",
    "predict_checkpoint",
    "simulate_checkpoint",
    "train_from_config",
    "write_predictions",
]

VIEW_CHOICE_FILE = "view_choice.json"
SPLIT_FILE = "split.json"


def _frame_batches(dataset: Dataset, batch_size: int = 64, max_samples: int = 0) -> DataLoader:
    """The first ``max_samples`` (0 = all) examples of ``dataset`` in batches, streamed: a DataLoader is
    re-iterable, so the view statistics can make their passes without holding every frame in memory."""
    size = len(dataset)  # type: ignore[arg-type]
    if 0 < max_samples < size:
        dataset = Subset(dataset, range(max_samples))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


def choose_view_for_windows(dataset: WindowDataset, token_mode: str, patch_size: int, max_samples: int = 0) -> AdaptiveChoice:
    """The seed's adaptive choice (raw vs Fourier, by participation ratio) on the frames of ``dataset``."""
    batches = _frame_batches(dataset, max_samples=max_samples)
    return choose_view(batches, dataset.frame_shape, token_mode, default_candidates(token_mode, patch_size))


def _load_split(config: TrainConfig) -> WindowSplit:
    data = config.data
    if not data.path:
        raise DataError("data.path is empty: give the dataset in the config or as an override, data.path=FILE.hdf5")
    return load_windows(
        data.path,
        image_key=data.image_key,
        ee_key=data.ee_key,
        t_obs=data.t_obs,
        t_pred=data.t_pred,
        valid_fraction=data.valid_fraction,
        split_seed=data.split_seed,
        state_keys=data.state_keys,
    )


def train_from_config(
    config: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> TrainResult:
    """Split the dataset by episode, choose the view if ``view_choice: adaptive``, then run :func:`train`.

    A run directory that already holds a checkpoint is refused unless ``resume`` (continue it) or ``overwrite``
    (start afresh over it) is given, so a finished run is never clobbered by a repeated command.
    """
    out_dir = Path(config.out_dir) if config.out_dir else None
    if out_dir is not None and (out_dir / CHECKPOINT_DIRNAME).exists() and not (resume or overwrite):
        raise CheckpointError(
            f"run directory {out_dir} already holds a checkpoint; pass --resume to continue it or --overwrite to "
            f"start a new run over it"
        )
    if out_dir is not None:
        check_output_dir(out_dir, 0)  # an unusable out_dir fails here, before the data is read (space: in train)
        if overwrite and not resume:
            # The old run's checkpoint must go now: left in place until the new run's first save, a kill in
            # between followed by --resume would silently continue the old run.
            for name in (CHECKPOINT_DIRNAME, CHECKPOINT_DIRNAME + ".old", CHECKPOINT_DIRNAME + ".tmp"):
                shutil.rmtree(out_dir / name, ignore_errors=True)
    windows = _load_split(config)

    choice: AdaptiveChoice | None = None
    if config.view_choice == "adaptive":
        if resume and out_dir is not None and (out_dir / VIEW_CHOICE_FILE).exists():
            view = _recorded_view(out_dir / VIEW_CHOICE_FILE, type(config.policy.view))
        else:
            current = config.policy.view
            choice = choose_view_for_windows(windows.train, current.token_mode, current.patch_size)
            view = choice.view
        config = dataclasses.replace(config, policy=dataclasses.replace(config.policy, view=view))

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / SPLIT_FILE, json.dumps(windows.split_record(), indent=2) + "\n")
        if choice is not None:
            record = {
                "chosen": choice.chosen,
                "statistics": choice.statistics,
                "reason": choice.reason,
                "view": dataclasses.asdict(choice.view),
            }
            atomic_write_text(out_dir / VIEW_CHOICE_FILE, json.dumps(record, indent=2) + "\n")
            print(f"adaptive view: {choice.reason}")

    cache = StatsCache(config.data.path) if config.data.stats_cache else None
    return train(
        config, windows.train, windows.valid, out_dir=out_dir, resume=resume, progress=progress, stats_cache=cache
    )


def _recorded_view(path: Path, view_type: type) -> Any:
    """The view an adaptive run chose, as recorded in its run directory (a resume must keep it)."""
    try:
        return view_type(**json.loads(path.read_text(encoding="utf-8"))["view"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"{path} cannot be read back ({type(error).__name__}: {error}); it records the adaptive view this run "
            "chose, so the run cannot be resumed without it"
        ) from None


def _checkpoint_windows(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    image_key: str | None,
    ee_key: str | None,
    split: str,
    device: str,
) -> tuple[torch.nn.Module, TrainConfig, WindowDataset]:
    """Load a checkpoint and the windows of ``data`` cut with the checkpoint's own horizons and split."""
    policy, config = load_policy(checkpoint, device=device)
    image_key = image_key if image_key is not None else config.data.image_key
    ee_key = ee_key if ee_key is not None else config.data.ee_key
    if split == "all":  # every episode: no split to make, so a file with odd or empty masks is fine too
        episodes = open_episodes(data, image_key=image_key, ee_key=ee_key)
        dataset = WindowDataset(list(episodes), config.data.t_obs, config.data.t_pred, state_keys=config.data.state_keys)
    else:
        windows = load_windows(
            data,
            image_key=image_key,
            ee_key=ee_key,
            t_obs=config.data.t_obs,
            t_pred=config.data.t_pred,
            valid_fraction=config.data.valid_fraction,
            split_seed=config.data.split_seed,
            state_keys=config.data.state_keys,
        )
        dataset = windows_for_split(windows, split)
    expected_in, expected_out = tuple(policy.input_shape), tuple(policy.target_shape)
    if dataset.state_shape != policy.state_shape:
        raise DataError(
            f"{data}: samples have low-dim observations {dataset.state_shape} (keys {list(config.data.state_keys)}) "
            f"but the checkpoint {checkpoint} expects {policy.state_shape}"
        )
    if tuple(dataset.frame_shape) != expected_in or tuple(dataset.target_shape) != expected_out:
        raise DataError(
            f"{data}: samples have frames {tuple(dataset.frame_shape)} and targets {tuple(dataset.target_shape)} but "
            f"the checkpoint {checkpoint} expects frames {expected_in} and targets {expected_out}"
        )
    return policy, config, dataset


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    image_key: str | None = None,
    ee_key: str | None = None,
    split: str = "all",
    device: str = "cpu",
) -> dict[str, Any]:
    """MSE in metres, NMSE (1.0 = the mean predictor), spread ratio and collapse verdict over every sample."""
    policy, config, dataset = _checkpoint_windows(checkpoint, data, image_key, ee_key, split, device)
    metrics = evaluate(policy, dataset, dataclasses.replace(config, eval_batches=0))
    if metrics is None:
        raise DataError(f"{data}: the {split} split holds no sample")
    return {"checkpoint": str(checkpoint), "data": str(data), "split": split, "samples": len(dataset), **metrics.to_dict()}


@torch.no_grad()
def predict_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    image_key: str | None = None,
    ee_key: str | None = None,
    split: str = "all",
    device: str = "cpu",
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Predicted EE trajectories (target units) for every sample, with the sample's episode and start frame."""
    policy, _, dataset = _checkpoint_windows(checkpoint, data, image_key, ee_key, split, device)
    predictions, targets = [], []
    for observation, target in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        predictions.append(policy.predict_chunk(observation).float().cpu().numpy())
        targets.append(target.numpy())
    pairs = dataset.index.pairs
    return {
        "prediction": np.concatenate(predictions).astype(np.float32),
        "target": np.concatenate(targets).astype(np.float32),
        "episode": np.array([dataset.episodes[e].name for e in pairs[:, 0]], dtype=np.str_),
        "start": pairs[:, 1].astype(np.int64),
    }


def write_predictions(path: str | os.PathLike[str], predictions: dict[str, np.ndarray]) -> Path:
    """``.npz`` (numeric and fixed-width string arrays: loads with ``allow_pickle=False``) or ``.json``."""
    path = Path(path)
    if path.suffix == ".json":
        records = [
            {"episode": str(e), "start": int(s), "prediction": p.tolist(), "target": t.tolist()}
            for e, s, p, t in zip(predictions["episode"], predictions["start"], predictions["prediction"], predictions["target"])
        ]
        return atomic_write_text(path, json.dumps(records) + "\n")
    if path.suffix != ".npz":
        raise InputError(f"prediction output {path} must end in .npz or .json")
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **predictions)
    os.replace(tmp, path)
    return path


def inspect_dataset(
    data: str | os.PathLike[str], image_key: str | None = None, ee_key: str | None = None
) -> dict[str, Any]:
    """What a user checks first: format, keys, episodes and their lengths, frame shape, EE range, splits."""
    kind = detect_format(data)
    episodes = open_episodes(data, image_key=image_key, ee_key=ee_key)
    lengths = np.array(episodes.lengths)
    ee = np.concatenate([e.ee for e in episodes])
    first = episodes[0]
    return {
        "path": str(data),
        "format": kind,
        "image_key": episodes.image_key,
        "ee_key": episodes.ee_key,
        "default_keys": dict(zip(("image", "ee"), DEFAULT_KEYS[kind])),
        "episodes": len(episodes),
        "frames": int(lengths.sum()),
        "episode_length": {"min": int(lengths.min()), "mean": float(lengths.mean()), "max": int(lengths.max())},
        "image_shape": list(first.frames.shape[1:]),
        "image_dtype": str(first.frames.dtype),
        "scalar_tokens_per_frame": int(np.prod(first.frames.shape[1:])),
        "ee_dim": int(ee.shape[1]),
        "ee_min": ee.min(axis=0).tolist(),
        "ee_max": ee.max(axis=0).tolist(),
        "ee_std": ee.std(axis=0).tolist(),
        "splits": {name: len(names) for name, names in episodes.splits.items()},
        "extras": sorted(first.extras),
    }


def dataset_view_statistics(
    data: str | os.PathLike[str],
    image_key: str | None = None,
    ee_key: str | None = None,
    t_obs: int = 2,
    token_mode: str = "scalar",
    patch_size: int = 4,
    max_samples: int = 2048,
) -> dict[str, Any]:
    """Per-view participation ratios of the between-example variance and the adaptive choice they imply."""
    episodes = open_episodes(data, image_key=image_key, ee_key=ee_key)
    dataset = WindowDataset(list(episodes), t_obs, 1)
    choice = choose_view_for_windows(dataset, token_mode, patch_size, max_samples)
    tokens = int(np.prod(dataset.frame_shape)) // (1 if token_mode == "scalar" else dataset.frame_shape[-1])
    samples = len(dataset) if max_samples <= 0 else min(len(dataset), max_samples)
    return {
        "path": str(data),
        "samples": samples,
        "input_shape": list(dataset.frame_shape),
        "token_mode": token_mode,
        "participation_ratio": choice.statistics,
        "effective_tokens": {name: value * tokens for name, value in choice.statistics.items()}
        if token_mode != "patch"
        else None,
        "chosen": choice.chosen,
        "view": dataclasses.asdict(choice.view),
        "reason": choice.reason,
    }


def simulate_checkpoint(
    checkpoint: str | os.PathLike[str],
    episodes: int = 50,
    seed: int = 100_000,
    replan_every: int = 4,
    demos: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    save_strip: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Closed-loop Reacher evaluation of a checkpoint trained on ``rvperceiver sim generate`` demos.

    Render settings and the training seeds are read from the training file's ``env_args`` so the policy sees
    frames like those it was trained on and no evaluation seed was a training seed. The mean-trajectory
    predictor and the expert run on the same seeds for reference; ``demos`` adds the offline per-step EE error.
    """
    from rvperceiver.sim.evaluate import (
        closed_loop_eval,
        mean_target_trajectory,
        offline_ee_error,
        policy_fn_from_policy,
    )
    from rvperceiver.sim.generate import training_seed_range

    policy, config = load_policy(checkpoint, device=device)
    training = open_episodes(config.data.path, image_key=config.data.image_key, ee_key=config.data.ee_key)
    env_args = training.meta.get("env_args") or {}
    if "rvperceiver" not in env_args:
        raise DataError(
            f"{config.data.path}: no rvperceiver env_args; closed-loop evaluation needs demos made by "
            f"`rvperceiver sim generate`"
        )
    info = env_args["rvperceiver"]
    image_size = int(env_args["env_kwargs"]["width"])
    t_obs, t_pred = config.data.t_obs, config.data.t_pred
    result = closed_loop_eval(
        policy,
        n_episodes=episodes,
        seed=seed,
        t_obs=t_obs,
        t_pred=t_pred,
        replan_every=replan_every,
        image_size=image_size,
        train_seeds=training_seed_range(env_args),
        mean_trajectory=mean_target_trajectory(list(training), t_obs, t_pred),
        target_render_scale=float(info.get("target_render_scale", 1.0)),
        save_strip=save_strip,
        progress=progress,
    )
    result["checkpoint"] = str(checkpoint)
    result["view"] = to_dict(config)["policy"]["view"]
    if demos is not None:
        held_out = open_episodes(demos, image_key=config.data.image_key, ee_key=config.data.ee_key)
        result["offline_ee_error_m"] = offline_ee_error(policy_fn_from_policy(policy, device), list(held_out), t_obs, t_pred)
    return result
