"""Convert a dataset between robomimic HDF5 and LeRobot v3.0, keeping keys, splits and low-dimensional data.

Keys are renamed to each format's conventions, the same way in both directions, so a round trip gives back the
names it started from:

============================  =====================================  =============================================
role                          robomimic                              LeRobot
============================  =====================================  =============================================
camera (the image key)        ``agentview_image`` / ``<cam>_image``  ``observation.images.top`` / ``observation.images.<cam>``
target (the ee key)           ``robot0_eef_pos`` / ``<key>``         ``observation.state`` / ``observation.<key>``
actions, rewards, dones       ``actions``, ``rewards``, ``dones``    ``action``, ``next.reward``, ``next.done``
other observations            ``obs/<key>``                          ``observation.<key>``
anything else                 ``<key>`` (``states`` beside ``obs``)  ``<key>``
============================  =====================================  =============================================

Each format's default keys map onto the other's defaults (the project's camera and target under both names);
``to_image_key``/``to_ee_key`` choose others. robomimic keeps per-step observations as ``[L, D]``, LeRobot stores
a width-1 feature as a scalar column, so observations and actions read back from LeRobot as ``[L]`` become
``[L, 1]`` again. Values are copied unchanged: the target is float32 in both formats (the project's readers make
it so), every other array keeps its dtype. Frames are exact except through a lossy video codec. One camera is
converted, the one ``image_key`` names (the readers load one); other cameras stay behind.

What each format cannot hold travels in the other's metadata: LeRobot's fps, task, robot type and feature names
go into robomimic's ``env_args["rvperceiver"]["lerobot"]`` and come back from there; robomimic's ``env_args``
has no place in LeRobot (its fps comes from ``env_args``: ``rvperceiver.fps`` or robosuite's
``env_kwargs.control_freq``, else ``fps`` must be given). The destination is written to a temporary sibling and
renamed into place, so a failed conversion leaves nothing behind and an ``overwrite`` keeps the old dataset
until the new one is complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rvperceiver.data import lerobot, robomimic
from rvperceiver.data.episodes import Episode, EpisodeSet
from rvperceiver.data.formats import DEFAULT_KEYS, detect_format, open_episodes
from rvperceiver.data.lerobot.layout import SUPPORTED_CODECS, _read_info
from rvperceiver.errors import DataError, InputError

__all__ = ["ConvertConfig", "ConversionResult", "convert_dataset", "check_codec", "FORMATS"]

FORMATS = ("robomimic", "lerobot")
# robomimic demo-level names <-> LeRobot's names for the same per-step data.
_RENAMED = {"actions": "action", "rewards": "next.reward", "dones": "next.done"}
_CAMERA_SUFFIX = "_image"
_CAMERA_PREFIX = "observation.images."
_OBSERVATION_PREFIX = "observation."


@dataclass(frozen=True)
class ConvertConfig:
    """One conversion. ``None`` keys take the source format's defaults (``image_key``/``ee_key``) or the mapped
    names (``to_image_key``/``to_ee_key``); ``fps``/``task`` default to what the source records."""

    source: Path
    to: str
    out: Path
    image_key: str | None = None
    ee_key: str | None = None
    to_image_key: str | None = None
    to_ee_key: str | None = None
    image_storage: str = "video"
    codec: str = "libx264"
    fps: int | None = None
    task: str | None = None
    overwrite: bool = False
    verify: bool = False
    progress: bool = True


@dataclass
class ConversionResult:
    source: str
    source_format: str
    out: str
    to: str
    episodes: int
    frames: int
    keys: dict[str, str]
    splits: dict[str, int]
    verification: dict[str, Any] | None = field(default=None)


def check_codec(codec: str) -> None:
    """Raise :class:`InputError` unless ``codec`` is one the LeRobot writer sets up and PyAV here can encode."""
    import av

    try:
        av.codec.Codec(codec, "w")
        available = True
    except Exception:  # PyAV raises UnknownCodecError (a ValueError) or a plain ValueError, by version
        available = False
    if not available:
        usable = [name for name in sorted(SUPPORTED_CODECS) if _can_encode(name)]
        raise InputError(
            f"codec {codec!r}: this PyAV build ({av.__version__}) has no encoder of that name; "
            f"encoders it has among those supported: {', '.join(usable) or 'none'}"
        )
    if codec not in SUPPORTED_CODECS:
        raise InputError(f"codec {codec!r} is not one of the supported video codecs {', '.join(sorted(SUPPORTED_CODECS))}")


def _can_encode(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(codec, "w")
    except Exception:
        return False
    return True


def convert_dataset(config: ConvertConfig) -> ConversionResult:
    """Read ``config.source``, write it in format ``config.to`` at ``config.out``; see the module docstring."""
    source, out = Path(config.source), Path(config.out)
    if config.to not in FORMATS:
        raise InputError(f"the format to convert to must be one of {', '.join(FORMATS)}, got {config.to!r}")
    if source.exists() and out.exists() and source.resolve() == out.resolve():
        raise InputError(f"output {out} is the source itself; write the conversion to another path")
    _check_destination(out, config.to, config.overwrite)
    if config.to == "lerobot":
        if config.image_storage not in ("video", "image"):
            raise InputError(f"image storage must be 'video' or 'image', got {config.image_storage!r}")
        if config.image_storage == "video":
            check_codec(config.codec)
    if config.fps is not None and (isinstance(config.fps, bool) or not isinstance(config.fps, int) or config.fps <= 0):
        raise InputError(f"fps must be a positive integer, got {config.fps!r}")
    source_format = detect_format(source)
    dataset = open_episodes(source, config.image_key, config.ee_key)
    image_key = config.to_image_key or _mapped_image_key(dataset.image_key, source_format, config.to)
    ee_key = config.to_ee_key or _mapped_ee_key(dataset.ee_key, source_format, config.to)
    episodes = [_mapped_episode(e, source_format, config.to) for e in dataset]
    carried = _carried_lerobot_meta(dataset, source_format) if config.to == "lerobot" else {}
    if source_format == "robomimic" and isinstance(carried.get("features"), list):
        # Back to LeRobot from a file that came from it: drop what the robomimic writer added (rewards, dones).
        episodes = [_only(episode, set(carried["features"])) for episode in episodes]
    keys = {dataset.image_key: image_key, dataset.ee_key: ee_key}
    keys.update({key: _mapped_extra(key, source_format, config.to) for key in dataset[0].extras})
    keys = {key: name for key, name in keys.items() if name in (image_key, ee_key) or name in episodes[0].extras}

    bar = tqdm(total=len(episodes), desc=f"convert to {config.to}", unit="ep", disable=not config.progress)
    try:
        if config.to == "lerobot":
            _write_lerobot(dataset, episodes, carried, out, image_key, ee_key, keys, config, bar)
        else:
            _write_robomimic(dataset, episodes, source_format, out, image_key, ee_key, config, bar)
    finally:
        bar.close()
    result = ConversionResult(
        source=str(source),
        source_format=source_format,
        out=str(out),
        to=config.to,
        episodes=len(episodes),
        frames=int(sum(e.length for e in episodes)),
        keys=keys,
        splits={name: len(members) for name, members in dataset.splits.items()},
    )
    if config.verify:
        result.verification = verify_conversion(dataset, episodes, out, image_key, ee_key)
    return result


def _check_destination(out: Path, to: str, overwrite: bool) -> None:
    """Refuse before reading anything: an existing output without ``overwrite``, or one of the wrong kind."""
    if not out.exists():
        return
    if not overwrite:
        raise DataError(f"output {out} already exists; pass --overwrite to replace it")
    if to == "robomimic" and not out.is_file():
        raise DataError(f"output {out} exists and is not a file; refusing to replace it with an HDF5 file")
    if to == "lerobot":
        is_dataset = out.is_dir() and (out / "meta" / "info.json").is_file()
        if not (is_dataset or (out.is_dir() and not any(out.iterdir()))):
            raise DataError(
                f"output {out} exists and is not a LeRobot dataset (no meta/info.json); refusing to delete it even "
                "with --overwrite"
            )


# ----- key mapping -------------------------------------------------------------------------------------------


def _mapped_image_key(key: str, source_format: str, to: str) -> str:
    if source_format == to:
        return key
    if key == DEFAULT_KEYS[source_format][0]:
        return DEFAULT_KEYS[to][0]
    if to == "lerobot":
        return _CAMERA_PREFIX + (key[: -len(_CAMERA_SUFFIX)] if key.endswith(_CAMERA_SUFFIX) else key)
    camera = key[len(_CAMERA_PREFIX) :] if key.startswith(_CAMERA_PREFIX) else key
    return camera.replace(".", "_") + _CAMERA_SUFFIX


def _mapped_ee_key(key: str, source_format: str, to: str) -> str:
    if source_format == to:
        return key
    if key == DEFAULT_KEYS[source_format][1]:
        return DEFAULT_KEYS[to][1]
    return _mapped_extra(key, source_format, to)


def _mapped_extra(key: str, source_format: str, to: str) -> str:
    if source_format == to:
        return key
    if to == "lerobot":
        if key in _RENAMED:
            return _RENAMED[key]
        return key if key in robomimic.DEMO_LEVEL_KEYS else _OBSERVATION_PREFIX + key
    for robomimic_name, lerobot_name in _RENAMED.items():
        if key == lerobot_name:
            return robomimic_name
    return key[len(_OBSERVATION_PREFIX) :] if key.startswith(_OBSERVATION_PREFIX) else key


def _mapped_episode(episode: Episode, source_format: str, to: str) -> Episode:
    extras: dict[str, np.ndarray] = {}
    for key, value in episode.extras.items():
        name = _mapped_extra(key, source_format, to)
        if name in extras:
            raise DataError(f"{episode.name}: extras {key!r} and another key both map to {name!r}")
        if to == "robomimic" and source_format == "lerobot" and value.ndim == 1 and name not in ("rewards", "dones"):
            value = value[:, None]  # robomimic keeps per-step observations and actions as [L, D]
        extras[name] = value
    return Episode(episode.name, episode.frames, episode.ee, extras)


# ----- writing -----------------------------------------------------------------------------------------------


def _write_lerobot(
    dataset: EpisodeSet,
    episodes: list[Episode],
    carried: Mapping[str, Any],
    out: Path,
    image_key: str,
    ee_key: str,
    keys: Mapping[str, str],
    config: ConvertConfig,
    bar: tqdm,
) -> None:
    fps = config.fps or carried.get("fps") or _robomimic_fps(dataset)
    if fps is None:
        raise InputError(
            f"{dataset.source} does not record its frame rate (no env_args rvperceiver.fps or "
            "env_kwargs.control_freq); pass --fps"
        )
    names = carried.get("feature_names") or {}
    lerobot.write_lerobot(
        out,
        episodes,
        fps=int(fps),
        image_key=image_key,
        ee_key=ee_key,
        overwrite=config.overwrite,
        image_storage=config.image_storage,
        codec=config.codec,
        splits=_splits(dataset, episodes),
        task=config.task or carried.get("task") or "demonstration",
        robot_type=carried.get("robot_type"),
        feature_names={key: value for key, value in names.items() if key in keys.values() and value},
        on_episode=lambda _: bar.update(1),
    )


def _write_robomimic(
    dataset: EpisodeSet,
    episodes: list[Episode],
    source_format: str,
    out: Path,
    image_key: str,
    ee_key: str,
    config: ConvertConfig,
    bar: tqdm,
) -> None:
    if source_format == "robomimic":
        env_args = dict(dataset.meta.get("env_args") or {})
    else:
        env_args = {"rvperceiver": {"converted_from": "lerobot", "source": str(dataset.source),
                                    "fps": dataset.meta.get("fps"), "lerobot": _lerobot_meta(dataset)}}
    robomimic.write_robomimic(
        out,
        episodes,
        image_key=image_key,
        ee_key=ee_key,
        splits=_splits(dataset, episodes),
        env_args=env_args,
        overwrite=config.overwrite,
        on_episode=lambda _: bar.update(1),
    )


def _splits(dataset: EpisodeSet, episodes: list[Episode]) -> dict[str, list[str]] | None:
    return {name: list(members) for name, members in dataset.splits.items()} if dataset.splits else None


def _lerobot_meta(dataset: EpisodeSet) -> dict[str, Any]:
    """What a LeRobot dataset records that robomimic has no field for, to restore it on the way back."""
    info = _read_info(Path(dataset.source))
    features = info.get("features", {})
    names = {
        key: spec.get("names")
        for key, spec in features.items()
        if isinstance(spec, dict) and isinstance(spec.get("names"), list) and spec.get("dtype") not in ("video", "image")
    }
    tasks = dataset.meta.get("tasks") or []
    return {"fps": dataset.meta.get("fps"), "task": tasks[0] if tasks else None,
            "robot_type": dataset.meta.get("robot_type"), "feature_names": names, "features": list(features)}


def _only(episode: Episode, features: set[str]) -> Episode:
    extras = {key: value for key, value in episode.extras.items() if key in features}
    return Episode(episode.name, episode.frames, episode.ee, extras)


def _carried_lerobot_meta(dataset: EpisodeSet, source_format: str) -> dict[str, Any]:
    if source_format == "lerobot":
        return _lerobot_meta(dataset)
    carried = ((dataset.meta.get("env_args") or {}).get("rvperceiver") or {}).get("lerobot")
    return dict(carried) if isinstance(carried, dict) else {}


def _robomimic_fps(dataset: EpisodeSet) -> int | None:
    env_args = dataset.meta.get("env_args") or {}
    for value in ((env_args.get("rvperceiver") or {}).get("fps"), (env_args.get("env_kwargs") or {}).get("control_freq")):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and float(value).is_integer():
            return int(value)
    return None


# ----- verification ------------------------------------------------------------------------------------------


def verify_conversion(
    dataset: EpisodeSet, episodes: list[Episode], out: Path, image_key: str, ee_key: str
) -> dict[str, Any]:
    """Read the written dataset back: low-dimensional arrays must be equal, frames are compared as errors."""
    written = open_episodes(out, image_key, ee_key)
    if written.lengths != [e.length for e in episodes]:
        raise DataError(f"{out} has episode lengths {written.lengths}, expected {[e.length for e in episodes]}")
    low_dim_equal = True
    absolute_sum, absolute_max, pixels = 0.0, 0, 0
    for original, loaded in zip(episodes, written):
        low_dim_equal &= np.array_equal(original.ee, loaded.ee)
        for key, value in original.extras.items():
            back = loaded.extras.get(key)
            low_dim_equal &= back is not None and np.array_equal(np.reshape(back, value.shape), value)
        difference = np.abs(original.frames.astype(np.int16) - loaded.frames.astype(np.int16))
        absolute_sum += float(difference.sum())
        absolute_max = max(absolute_max, int(difference.max()))
        pixels += difference.size
    return {
        "low_dim_equal": bool(low_dim_equal),
        "frames_equal": absolute_max == 0,
        "frame_mean_abs_error": absolute_sum / pixels,
        "frame_max_abs_error": absolute_max,
    }
