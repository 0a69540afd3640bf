"""robomimic HDF5 datasets, read and written with plain h5py.

Layout (robomimic's ``docs/datasets/overview.md``): a ``data`` group with attrs ``total`` (number of samples)
and ``env_args`` (a JSON string with ``env_name``, ``type`` — robomimic's ``EnvType``: 1 robosuite, 2 gym,
3 ig_momart — and ``env_kwargs``); one ``data/demo_<n>`` group per demonstration with attr ``num_samples``,
datasets ``actions``/``rewards``/``dones``/``states`` and groups ``obs/<key>`` and ``next_obs/<key>``;
``mask/<filter>`` holds the demo names of a split as byte strings. Demos are ordered by their integer suffix, as
robomimic orders them.

What the writer adds: ``next_obs/<key>`` for every obs key (robomimic's ``SequenceDataset`` loads it by
default), step ``t`` holding the observation of step ``t + 1``. The observation after the last action is not
recorded, so the last step repeats its own observation (its ``dones`` entry is 1, which masks it out of
bootstrapped targets). Camera ``next_obs`` are HDF5 virtual datasets over ``obs`` in the same file, so they cost
no space; low-dimensional ones are plain copies. ``env_args`` always carries the three keys robomimic reads.
Episodes without ``dones`` get 0 at every step but 1 at the last; without ``rewards``, zeros (what robomimic's
``SequenceDataset`` assumes for a missing key).

What the reader keeps: ``obs/<image key>`` as frames (several cameras side by side, see
``rvperceiver.observation``), the target (``obs/<target key>`` or a demo-level dataset such as ``actions``) as the
trajectory to predict, and the demo-level per-step arrays and every obs key of rank <= 2 as ``extras`` (where
low-dim observation keys are found). Unnamed cameras (rank-4 obs) and ``next_obs`` are not loaded: they would
double or triple memory and nothing here uses them. LeRobot's name ``action`` finds robomimic's ``actions`` (and
the other way round), so one config can name the target in either format.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rvperceiver.data.episodes import Episode, EpisodeSet, check_consistent, validate_episode
from rvperceiver.errors import DataError, InputError
from rvperceiver.data.lazy import HDF5Frames, SideBySide
from rvperceiver.observation import combine_cameras

__all__ = ["read_robomimic", "write_robomimic", "robomimic_env_args", "DEFAULT_IMAGE_KEY", "DEFAULT_EE_KEY"]

DEFAULT_IMAGE_KEY = "agentview_image"
DEFAULT_EE_KEY = "robot0_eef_pos"

# Per-step datasets that robomimic stores directly under data/demo_<n>, not under obs/.
DEMO_LEVEL_KEYS = ("actions", "rewards", "dones", "states")

_DEMO_NAME = re.compile(r"^demo_(\d+)$")

# robomimic's EnvType (robomimic/envs/env_base.py), and the spellings of the type this project wrote before
# it recorded the integer (``"env_type": "gymnasium"``).
ENV_TYPES = {"robosuite": 1, "gym": 2, "gymnasium": 2, "ig_momart": 3}
GYM_ENV_TYPE = ENV_TYPES["gym"]


def _demo_sort_key(name: str) -> tuple[int, int, str]:
    match = _DEMO_NAME.match(name)
    return (0, int(match.group(1)), name) if match else (1, 0, name)


def _decode_names(raw: np.ndarray) -> list[str]:
    return [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in np.asarray(raw).ravel()]


def read_robomimic(
    path: str | os.PathLike[str],
    image_key: str = DEFAULT_IMAGE_KEY,
    ee_key: str = DEFAULT_EE_KEY,
    *,
    image_keys: Sequence[str] | None = None,
    target_key: str | None = None,
    streaming: bool = False,
) -> EpisodeSet:
    """Read every demo of a robomimic HDF5 file into an :class:`EpisodeSet`.

    With ``streaming`` the frames stay in the file: each episode's are an
    :class:`~rvperceiver.data.lazy.HDF5Frames` read per window (targets and low-dim arrays are read, they are small).

    ``image_keys`` (several cameras) and ``target_key`` (any float per-step array: an end-effector position,
    ``actions``, ...) are the current names of ``image_key`` and ``ee_key`` and win over them when given.

    Demos are read one at a time, so a file with many demos is fine as long as the chosen camera fits in memory.
    A missing, truncated or non-HDF5 file, a missing key, frames that are not uint8 ``[L, H, W, C]``, or a
    non-finite end-effector trajectory raises :class:`DataError` naming the file, demo and key.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"robomimic file {path} does not exist")
    if not path.is_file():
        raise DataError(f"robomimic dataset {path} is not a file (expected an .hdf5 file)")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"cannot open {path} as HDF5 (truncated, corrupt or not HDF5): {error}") from error
    cameras = tuple(image_keys) if image_keys else (image_key,)
    target = target_key if target_key is not None else ee_key
    try:
        with handle:
            return _read_open_file(handle, path, cameras, target, streaming)
    except (OSError, KeyError, RuntimeError) as error:
        # h5py raises these when a chunk or header is damaged part-way through the file.
        raise DataError(f"cannot read {path}: the HDF5 file is damaged ({error})") from error


def _read_open_file(
    handle: h5py.File, path: Path, image_keys: tuple[str, ...], ee_key: str, streaming: bool = False
) -> EpisodeSet:
    if "data" not in handle or not isinstance(handle["data"], h5py.Group):
        raise DataError(
            f"{path}: no 'data' group, so this is not a robomimic file; top-level keys: {sorted(handle.keys())}"
        )
    data = handle["data"]
    env_args = _parse_env_args(data.attrs.get("env_args"), path)
    demo_names = sorted((k for k in data.keys() if isinstance(data[k], h5py.Group)), key=_demo_sort_key)
    if not demo_names:
        raise DataError(f"{path}: the 'data' group holds no demos")

    episodes = [_read_demo(data[name], name, path, image_keys, ee_key, streaming) for name in demo_names]
    # The key as found (``action`` may have found ``actions``), so the set says what it holds.
    ee_key = _locate(data[demo_names[0]], ee_key, "target", f"{path}:data/{demo_names[0]}", image=False)[1].split("/")[-1]
    check_consistent(episodes, str(path), ee_key)

    splits: dict[str, list[str]] = {}
    if "mask" in handle and isinstance(handle["mask"], h5py.Group):
        for split_name, dataset in handle["mask"].items():
            if isinstance(dataset, h5py.Dataset):
                splits[split_name] = _decode_names(dataset[()])

    total = data.attrs.get("total")
    meta: dict[str, Any] = {
        "format": "robomimic",
        "env_args": env_args,
        "total": int(total) if total is not None else sum(e.length for e in episodes),
    }
    return EpisodeSet(episodes, str(path), "+".join(image_keys), ee_key, splits, meta, image_keys=image_keys)


def _parse_env_args(raw: Any, path: Path) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    try:
        parsed = json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: attr data.env_args is not valid JSON ({error})") from error
    if not isinstance(parsed, dict):
        raise DataError(f"{path}: attr data.env_args should be a JSON object, got {type(parsed).__name__}")
    return parsed


ALIASES = {"action": "actions", "actions": "action"}  # LeRobot's name <-> robomimic's


def _locate(group: h5py.Group, key: str, role: str, where: str, image: bool) -> tuple[h5py.Dataset, str]:
    """The dataset a key names: ``obs/<key>``, else (not for images) a demo-level ``<key>``, else its alias."""
    obs = group["obs"]
    candidates = [key] + ([ALIASES[key]] if key in ALIASES else [])
    for candidate in candidates:
        if candidate in obs and isinstance(obs[candidate], h5py.Dataset):
            return obs[candidate], f"obs/{candidate}"
        if not image and candidate in group and isinstance(group[candidate], h5py.Dataset):
            return group[candidate], candidate
    demo_level = sorted(k for k in group.keys() if k != "obs" and isinstance(group[k], h5py.Dataset))
    tail = "" if image else f"; demo-level keys present: {demo_level}"
    raise DataError(f"{role} key {key!r} not found in {where}/obs; obs keys present: {sorted(obs.keys())}{tail}")


def _read_demo(
    group: h5py.Group, name: str, path: Path, image_keys: tuple[str, ...], ee_key: str, streaming: bool = False
) -> Episode:
    where = f"{path}:data/{name}"
    if "obs" not in group or not isinstance(group["obs"], h5py.Group):
        raise DataError(f"{where} has no 'obs' group; keys present: {sorted(group.keys())}")
    obs = group["obs"]
    present = sorted(obs.keys())
    cameras = [_locate(group, key, "image", where, image=True) for key in image_keys]
    target, target_name = _locate(group, ee_key, "target", where, image=False)

    if streaming:
        camera_frames: list[Any] = [
            HDF5Frames(path, f"data/{name}/{location}", dataset.shape, dataset.dtype) for dataset, location in cameras
        ]
    else:
        camera_frames = [dataset[()] for dataset, _ in cameras]
    for key, frames in zip(image_keys, camera_frames):
        validate_episode(Episode(name, frames, np.zeros((len(frames), 1), np.float32)), str(path), key, ee_key)
    if len(camera_frames) == 1:
        frames = camera_frames[0]
    elif streaming:
        frames = SideBySide(camera_frames, list(image_keys))
    else:
        try:
            frames = combine_cameras(camera_frames, list(image_keys))
        except InputError as error:
            raise DataError(f"{where}: {error}") from None
    raw_ee = target[()]
    taken = {f"obs/{k}" for k in image_keys} | {target_name}
    extras: dict[str, np.ndarray] = {}
    for key in DEMO_LEVEL_KEYS:
        if key in group and isinstance(group[key], h5py.Dataset) and key not in taken:
            extras[key] = group[key][()]
    for key in present:
        if f"obs/{key}" in taken or key in extras:
            continue
        dataset = obs[key]
        if isinstance(dataset, h5py.Dataset) and dataset.ndim <= 2:
            extras[key] = dataset[()]

    if raw_ee.ndim == 1:  # a scalar per step (a gripper command, a reward) is a one-column target
        raw_ee = raw_ee[:, None]
    episode = Episode(name=name, frames=frames, ee=raw_ee, extras=extras)
    validate_episode(episode, str(path), "+".join(image_keys), ee_key)
    episode.ee = np.ascontiguousarray(raw_ee, dtype=np.float32)
    num_samples = group.attrs.get("num_samples")
    if num_samples is not None and int(num_samples) != episode.length:
        raise DataError(
            f"{where}: attr num_samples is {int(num_samples)} but obs/{image_keys[0]} has {episode.length} frames"
        )
    return episode


def write_robomimic(
    path: str | os.PathLike[str],
    episodes: Sequence[Episode] | EpisodeSet,
    image_key: str = DEFAULT_IMAGE_KEY,
    ee_key: str = DEFAULT_EE_KEY,
    splits: Mapping[str, Sequence[str]] | None = None,
    env_args: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    on_episode: Callable[[Episode], None] | None = None,
) -> Path:
    """Write episodes as a robomimic HDF5 file and return its path.

    The file is written next to ``path`` under a temporary name and renamed into place, so a crash never leaves
    a half-written dataset behind. Frames are gzip-compressed one frame per chunk (reading a window touches
    only its frames). Episodes named ``demo_<n>`` keep their names; otherwise all are renamed ``demo_<i>`` by
    position (robomimic requires that pattern) and ``splits`` is translated accordingly. ``extras`` named
    ``actions``/``rewards``/``dones``/``states`` go beside ``obs``, the rest under ``obs/``. When ``episodes``
    is an :class:`EpisodeSet` and ``splits``/``env_args`` are None, the set's own are written. ``on_episode`` is
    called after each demo is written (progress).
    """
    path = Path(path)
    if isinstance(episodes, EpisodeSet):
        if splits is None:
            splits = episodes.splits
        if env_args is None and episodes.meta.get("format") == "robomimic":
            env_args = episodes.meta.get("env_args")
        episode_list = list(episodes.episodes)
    else:
        episode_list = list(episodes)
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists; pass overwrite=True to replace it")
    if path.exists() and not path.is_file():
        raise DataError(f"{path} exists and is not a file; refusing to replace it")
    if "/" in image_key or "/" in ee_key:
        raise DataError(f"HDF5 keys may not contain '/': image key {image_key!r}, ee key {ee_key!r}")
    for episode in episode_list:
        validate_episode(episode, str(path), image_key, ee_key)
        for key in episode.extras:
            if key in (image_key, ee_key) or "/" in key or not key:
                raise DataError(
                    f"{path}: episode {episode.name!r} has extra key {key!r}, which clashes with the image/ee "
                    f"keys or is not a valid HDF5 name"
                )
    check_consistent(episode_list, str(path), ee_key)

    keep_names = all(_DEMO_NAME.match(episode.name) for episode in episode_list)
    demo_names = [e.name if keep_names else f"demo_{i}" for i, e in enumerate(episode_list)]
    renamed = {episode.name: demo for episode, demo in zip(episode_list, demo_names)}
    masks = _translate_splits(splits or {}, renamed, path)
    env_json = json.dumps(robomimic_env_args(env_args, path))

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(temp_name, "w") as handle:
            data = handle.create_group("data")
            data.attrs["total"] = int(sum(e.length for e in episode_list))
            data.attrs["env_args"] = env_json
            for episode, demo_name in zip(episode_list, demo_names):
                _write_demo(data.create_group(demo_name), episode, image_key, ee_key)
                if on_episode is not None:
                    on_episode(episode)
            for split_name, names in masks.items():
                handle[f"mask/{split_name}"] = np.array(names, dtype="S")
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.remove(temp_name)
        raise
    return path


def robomimic_env_args(env_args: Mapping[str, Any] | None, path: str | os.PathLike[str] = "<memory>") -> dict[str, Any]:
    """``env_args`` with the three keys robomimic's ``EnvUtils`` reads: ``env_name``, ``type``, ``env_kwargs``.

    Other keys are kept. A missing ``type`` is taken from an older ``env_type`` spelling (``"gymnasium"`` ->
    2) or defaults to 2 (gym): the environments this project makes are Gymnasium ones, and robomimic's gym
    wrapper builds them with ``gym.make(env_name, **env_kwargs)``. A missing ``env_name`` becomes ``""`` (the
    environment is unknown; robomimic's readers of the data do not need it).
    """
    completed: dict[str, Any] = dict(env_args or {})
    env_type = completed.get("type", completed.get("env_type", GYM_ENV_TYPE))
    if isinstance(env_type, str):
        if env_type.lower() not in ENV_TYPES:
            raise DataError(
                f"{path}: env_args type {env_type!r} is not one of robomimic's env types {sorted(ENV_TYPES)}"
            )
        env_type = ENV_TYPES[env_type.lower()]
    if isinstance(env_type, bool) or not isinstance(env_type, int) or env_type not in ENV_TYPES.values():
        raise DataError(f"{path}: env_args type {env_type!r} is not one of robomimic's EnvType values 1, 2, 3")
    completed["type"] = env_type
    completed.setdefault("env_name", "")
    if not isinstance(completed.setdefault("env_kwargs", {}), dict):
        raise DataError(f"{path}: env_args env_kwargs should be an object, got {completed['env_kwargs']!r}")
    return completed


def _translate_splits(
    splits: Mapping[str, Sequence[str]], renamed: Mapping[str, str], path: Path
) -> dict[str, list[str]]:
    masks: dict[str, list[str]] = {}
    for split_name, names in splits.items():
        if not split_name or "/" in split_name:
            raise DataError(f"{path}: split name {split_name!r} is not a valid HDF5 name")
        unknown = [name for name in names if name not in renamed]
        if unknown:
            raise DataError(f"{path}: split {split_name!r} names episodes {unknown} that are not being written")
        masks[split_name] = [renamed[name] for name in names]
    return masks


def _write_demo(group: h5py.Group, episode: Episode, image_key: str, ee_key: str) -> None:
    group.attrs["num_samples"] = episode.length
    obs = group.create_group("obs")
    next_obs = group.create_group("next_obs")
    height, width, channels = episode.frames.shape[1:]
    obs.create_dataset(
        image_key,
        data=episode.frames,
        chunks=(1, height, width, channels),
        compression="gzip",
        compression_opts=4,
    )
    obs.create_dataset(ee_key, data=episode.ee)
    for key, value in episode.extras.items():
        (group if key in DEMO_LEVEL_KEYS else obs).create_dataset(key, data=value)
    for key, dataset in obs.items():
        if dataset.ndim >= 3:  # images: a view of obs, no second copy
            next_obs.create_virtual_dataset(key, _shifted_by_one(dataset))
        else:
            next_obs.create_dataset(key, data=_next_steps(dataset[()]))
    if "dones" not in episode.extras:
        # The demonstration ends at its last step; robomimic's datasets mark that step done.
        dones = np.zeros(episode.length, dtype=np.int64)
        dones[-1] = 1
        group.create_dataset("dones", data=dones)
    if "rewards" not in episode.extras:
        # Unknown rewards: zeros, the value robomimic's SequenceDataset substitutes for a missing key anyway.
        group.create_dataset("rewards", data=np.zeros(episode.length, dtype=np.float64))


def _next_steps(values: np.ndarray) -> np.ndarray:
    """Step ``t`` holds step ``t + 1``; the last step repeats itself (no observation follows it)."""
    return np.concatenate([values[1:], values[-1:]])


def _shifted_by_one(source: h5py.Dataset) -> h5py.VirtualLayout:
    """A virtual layout reading ``source[t + 1]`` at ``t`` (the last step repeats), in the same file ("." )."""
    length = source.shape[0]
    layout = h5py.VirtualLayout(shape=source.shape, dtype=source.dtype)
    origin = h5py.VirtualSource(".", source.name, shape=source.shape)
    if length > 1:
        layout[: length - 1] = origin[1:]
    layout[length - 1] = origin[length - 1]
    return layout
