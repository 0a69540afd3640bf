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

from rvperceiver.config_schema import build
from rvperceiver.data.formats import DEFAULT_KEYS, detect_format, open_episodes
from rvperceiver.data.loading import WindowSplit, load_windows, windows_for_split
from rvperceiver.data.windows import WindowDataset
from rvperceiver.errors import CheckpointError, DataError, InputError
from rvperceiver.train.checkpoint import LEGACY_DIR, load_policy, run_has_checkpoint
from rvperceiver.progress import Passes, bar, note
from rvperceiver.train.config import TrainConfig, check_schedule
from rvperceiver.train.evaluate import evaluate
from rvperceiver.train.loop import CHECKPOINT_DIRNAME, TrainResult, check_output_dir, train
from rvperceiver.train.stats_cache import StatsCache
from rvperceiver.utils import atomic_write_text
from rvperceiver.views.adaptive import AdaptiveChoice, choose_view, default_candidates

__all__ = [
    "choose_view_for_windows",
    "dataset_view_statistics",
    "evaluate_checkpoint",
    "inspect_dataset",
    "predict_checkpoint",
    "train_from_config",
    "write_predictions",
]

VIEW_CHOICE_FILE = "view_choice.json"
SPLIT_FILE = "split.json"
LEARNING_CURVE_FILE = "learning_curve.png"
# What a run writes into its directory; --overwrite deletes exactly these (other files of the user's are kept).
RUN_OUTPUTS = (
    CHECKPOINT_DIRNAME,
    LEGACY_DIR,  # the version-1 layout's checkpoint/ and its leftovers
    LEGACY_DIR + ".old",
    LEGACY_DIR + ".tmp",
    "metrics.jsonl",
    "tensorboard",
    SPLIT_FILE,
    VIEW_CHOICE_FILE,
    LEARNING_CURVE_FILE,
)


def _frame_batches(dataset: Dataset, batch_size: int = 64, max_samples: int = 0) -> DataLoader:
    """The first ``max_samples`` (0 = all) examples of ``dataset`` in batches, streamed: a DataLoader is
    re-iterable, so the view statistics can make their passes without holding every frame in memory."""
    size = len(dataset)  # type: ignore[arg-type]
    if 0 < max_samples < size:
        dataset = Subset(dataset, range(max_samples))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


def choose_view_for_windows(
    dataset: WindowDataset, token_mode: str, patch_size: int, max_samples: int = 0, progress: bool = False,
    rule: str | None = None,
) -> AdaptiveChoice:
    """The adaptive choice (raw vs Fourier, by ``rule``; default ``views.adaptive.DEFAULT_RULE``) on the windows
    of ``dataset`` (frames and their targets)."""
    batches = Passes(_frame_batches(dataset, max_samples=max_samples), "adaptive view statistics", enabled=progress)
    return choose_view(batches, dataset.frame_shape, token_mode, default_candidates(token_mode, patch_size), rule=rule)


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
        valid_episodes=data.valid_episodes,
        image_keys=data.image_keys or None,
        target_key=data.target_key,
        streaming=data.streaming,
        video_cache_bytes=data.video_cache_mb << 20,
    )


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def train_from_config(
    config: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> TrainResult:
    """Split the dataset by episode, choose the view if ``view_choice: adaptive``, then run :func:`train`.

    Runs never mix: a run directory that is not empty is refused unless ``resume`` (continue the run in it) or
    ``overwrite`` (delete the previous run's outputs, :data:`RUN_OUTPUTS`, and start afresh); ``resume`` needs a
    checkpoint there. A run that fails before its first checkpoint removes the directory it created, so a failed
    start leaves nothing behind. A schedule that cannot happen within ``steps`` is refused
    (:func:`~rvperceiver.train.config.check_schedule`). At the end the run directory gets ``learning_curve.png``.
    """
    check_schedule(config)
    out_dir = Path(config.out_dir) if config.out_dir else None
    created = False
    if out_dir is not None:
        _check_run_directory(out_dir, resume, overwrite)
        created = not out_dir.exists()
    try:
        result = _train_from_config(config, out_dir, resume, overwrite, progress)
    except BaseException:
        if created and out_dir is not None and not run_has_checkpoint(out_dir):
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    if out_dir is not None and _is_main_process():
        from rvperceiver.plotting import plot_learning_curve

        curve = plot_learning_curve(out_dir / "metrics.jsonl", out_dir / LEARNING_CURVE_FILE, title=str(out_dir))
        if curve is not None:
            note(f"learning curve: {curve}   (TensorBoard: tensorboard --logdir {out_dir})"
                 if config.tensorboard else f"learning curve: {curve}", progress)
    return result


def _check_run_directory(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse what would mix two runs in one directory, before anything is read or written."""
    has_checkpoint = run_has_checkpoint(out_dir)
    if resume:
        if not has_checkpoint:
            reason = "the run directory does not exist" if not out_dir.exists() else "the path does not exist"
            raise CheckpointError(
                f"--resume: no checkpoint at {out_dir / CHECKPOINT_DIRNAME} ({reason}); drop --resume to start a "
                "new run"
            )
        return
    if overwrite or not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise CheckpointError(f"run directory {out_dir} exists and is not a directory")
    entries = sorted(entry.name for entry in out_dir.iterdir())
    if not entries:
        return
    if has_checkpoint:
        raise CheckpointError(
            f"run directory {out_dir} already holds a checkpoint; pass --resume to continue it or --overwrite to "
            "start a new run over it (deleting the old run's outputs)"
        )
    listed = ", ".join(entries[:4]) + (", …" if len(entries) > 4 else "")
    raise CheckpointError(
        f"run directory {out_dir} is not empty ({listed}); a new run there would mix with what it holds: pass "
        "--overwrite to delete the old run's outputs and start afresh, or choose another --out"
    )


def _train_from_config(
    config: TrainConfig, out_dir: Path | None, resume: bool, overwrite: bool, progress: bool
) -> TrainResult:
    if out_dir is not None:
        check_output_dir(out_dir, 0)  # an unusable out_dir fails here, before the data is read (space: in train)
        if overwrite and not resume:
            # The old run's outputs go now: a checkpoint left until the new run's first save would be continued
            # by a --resume after a kill in between, and old metrics or TensorBoard events would mix with the new.
            for name in RUN_OUTPUTS:
                target = out_dir / name
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
    windows = _load_split(config)
    note(windows.describe(), progress)

    choice: AdaptiveChoice | None = None
    if config.view_choice == "adaptive":
        if resume and out_dir is not None and (out_dir / VIEW_CHOICE_FILE).exists():
            view = _recorded_view(out_dir / VIEW_CHOICE_FILE, type(config.policy.view))
        else:
            current = config.policy.view
            choice = choose_view_for_windows(windows.train, current.token_mode, current.patch_size, progress=progress)
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
            atomic_write_text(out_dir / VIEW_CHOICE_FILE, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
            note(f"adaptive view: {choice.reason}", progress)

    cache = StatsCache(config.data.path) if config.data.stats_cache else None
    if cache is not None and not resume:
        note(f"statistics cache: {cache.directory} (reused when data and view settings match; "
             "data.stats_cache=false turns it off)", progress)
    return train(
        config, windows.train, windows.valid, out_dir=out_dir, resume=resume, progress=progress, stats_cache=cache
    )


def _recorded_view(path: Path, view_type: type) -> Any:
    """The view an adaptive run chose, as recorded in its run directory (a resume must keep it)."""
    try:
        return build(view_type, json.loads(path.read_text(encoding="utf-8"))["view"], "view")
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
    loaded: tuple[torch.nn.Module, TrainConfig] | None = None,
) -> tuple[torch.nn.Module, TrainConfig, WindowDataset]:
    """Load a checkpoint (unless ``loaded`` already holds its policy and config) and the windows of ``data`` cut
    with the checkpoint's own horizons and split."""
    policy, config = loaded if loaded is not None else load_policy(checkpoint, device=device)
    if config.torch_threads is not None:  # as the run was trained: on shared cores fewer threads can be faster
        torch.set_num_threads(config.torch_threads)
    # Keys given here win; otherwise the checkpoint's own (cameras and target under their current names).
    keys: dict[str, Any] = {
        "image_key": image_key if image_key is not None else config.data.image_key,
        "ee_key": ee_key if ee_key is not None else config.data.target_key or config.data.ee_key,
        "image_keys": None if image_key is not None else config.data.image_keys or None,
        "streaming": config.data.streaming,
        "video_cache_bytes": config.data.video_cache_mb << 20,
    }
    if split == "all":  # every episode: no split to make, so a file with odd or empty masks is fine too
        episodes = open_episodes(data, **keys)
        dataset = WindowDataset(list(episodes), config.data.t_obs, config.data.t_pred, state_keys=config.data.state_keys)
    else:
        windows = load_windows(
            data,
            **keys,
            t_obs=config.data.t_obs,
            t_pred=config.data.t_pred,
            valid_fraction=config.data.valid_fraction,
            split_seed=config.data.split_seed,
            state_keys=config.data.state_keys,
            valid_episodes=config.data.valid_episodes,
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
    progress: bool = False,
    loaded: tuple[torch.nn.Module, TrainConfig] | None = None,
) -> dict[str, Any]:
    """MSE in metres, NMSE (1.0 = the mean predictor), spread ratio and collapse verdict over every sample.

    ``loaded``: the checkpoint's ``(policy, config)`` when the caller has already loaded it (``sim eval --demos``).
    """
    policy, config, dataset = _checkpoint_windows(checkpoint, data, image_key, ee_key, split, device, loaded)
    shown = _ProgressDataset(dataset, progress, "evaluate", config.batch_size)
    metrics = evaluate(policy, shown, dataclasses.replace(config, eval_batches=0))
    if metrics is None:
        raise DataError(f"{data}: the {split} split holds no sample")
    return {"checkpoint": str(checkpoint), "data": str(data), "split": split, "samples": len(dataset), **metrics.to_dict()}


class _ProgressDataset(Dataset):
    """A dataset that advances a progress bar every ``batch`` items fetched (the evaluator reads in order)."""

    def __init__(self, dataset: Dataset, enabled: bool, desc: str, batch: int) -> None:
        self.dataset, self.batch = dataset, max(1, batch)
        self.bar = bar(desc=desc, total=len(dataset), unit="sample", enabled=enabled)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        self.bar.update(1)
        if self.bar.n >= self.bar.total:
            self.bar.close()
        return item


@torch.no_grad()
def predict_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    image_key: str | None = None,
    ee_key: str | None = None,
    split: str = "all",
    device: str = "cpu",
    batch_size: int = 16,
    progress: bool = False,
) -> int:
    """Write the predicted EE trajectory (target units) of every sample to ``out``; returns how many.

    Streamed: one batch of frames is in memory at a time, and each batch's predictions are written out before the
    next is read (``.json``: one record per sample; ``.npz``: ``prediction``, ``target``, ``episode``, ``start``
    arrays, loadable with ``allow_pickle=False``, assembled from per-batch files on disk). The file appears
    atomically when complete.
    """
    out = Path(out)
    if out.suffix not in (".npz", ".json"):
        raise InputError(f"prediction output {out} must end in .npz or .json")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"--batch-size must be a positive integer, got {batch_size!r}")
    policy, _, dataset = _checkpoint_windows(checkpoint, data, image_key, ee_key, split, device)
    policy.eval()
    pairs = dataset.index.pairs
    names = [dataset.episodes[e].name for e in pairs[:, 0]]
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    batches = bar(loader, desc="predict", unit="batch", enabled=progress)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        if out.suffix == ".json":
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write("[")
                for observation, target in batches:
                    prediction = policy.predict_chunk(observation).float().cpu().numpy()
                    for p, t in zip(prediction, target.numpy()):
                        record = {"episode": names[written], "start": int(pairs[written, 1]),
                                  "prediction": p.tolist(), "target": t.tolist()}
                        handle.write(("," if written else "") + json.dumps(record))
                        written += 1
                handle.write("]\n")
        else:
            written = _predict_npz(policy, batches, tmp, names, pairs, device)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def _predict_npz(policy: torch.nn.Module, batches: Any, tmp: Path, names: list[str], pairs: np.ndarray,
                 device: str) -> int:
    """Predictions go to two float32 memory-mapped arrays on disk as they come, then into one ``.npz``."""
    import tempfile

    written = 0
    with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".predict-") as scratch:
        prediction_map = target_map = None
        for observation, target in batches:
            prediction = policy.predict_chunk(observation).float().cpu().numpy()
            if prediction_map is None:
                shape = (len(names), *prediction.shape[1:])
                prediction_map = np.lib.format.open_memmap(Path(scratch) / "p.npy", "w+", np.float32, shape)
                target_map = np.lib.format.open_memmap(Path(scratch) / "t.npy", "w+", np.float32, shape)
            prediction_map[written : written + len(prediction)] = prediction
            target_map[written : written + len(prediction)] = target.numpy()  # type: ignore[index]
            written += len(prediction)
        if prediction_map is None:
            raise DataError("no sample to predict: every episode is shorter than t_obs + t_pred")
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                prediction=prediction_map,
                target=target_map,
                episode=np.array(names, dtype=np.str_),
                start=pairs[:, 1].astype(np.int64),
            )
        del prediction_map, target_map
    return written


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
    """Per-view participation ratios of the between-example variance and the choice they imply (the seed's rule),
    and under ``adaptive`` the choice ``view_choice=adaptive`` makes (the default rule, which reads the targets)."""
    episodes = open_episodes(data, image_key=image_key, ee_key=ee_key)
    dataset = WindowDataset(list(episodes), t_obs, 1)
    choice = choose_view_for_windows(dataset, token_mode, patch_size, max_samples, rule="participation")
    adaptive = choose_view_for_windows(dataset, token_mode, patch_size, max_samples)
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
        "adaptive": {"rule": adaptive.rule, "chosen": adaptive.chosen, "statistics": adaptive.statistics,
                     "reason": adaptive.reason},
    }
