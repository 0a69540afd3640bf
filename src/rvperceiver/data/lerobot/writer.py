"""Writing a LeRobot v3.0 dataset: parquet columns, video/PNG encoding, and ``meta/stats.json``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rvperceiver.data.episodes import Episode, EpisodeSet, check_consistent, validate_episode
from rvperceiver.data.lerobot.layout import (
    _PIXEL_FORMATS,
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_EE_KEY,
    DEFAULT_IMAGE_KEY,
    EPISODES_PATH,
    INDEX_COLUMNS,
    SUPPORTED_CODECS,
    VIDEO_PATH,
)
from rvperceiver.errors import DataError, InputError

__all__ = ["write_lerobot"]


def write_lerobot(
    root: str | os.PathLike[str],
    episodes: Sequence[Episode] | EpisodeSet,
    fps: int = 50,
    image_key: str = DEFAULT_IMAGE_KEY,
    ee_key: str = DEFAULT_EE_KEY,
    overwrite: bool = False,
    *,
    image_storage: str = "video",
    codec: str = "libx264",
    episodes_per_file: int | None = None,
    splits: Mapping[str, Sequence[str]] | None = None,
    task: str = "demonstration",
) -> Path:
    """Write episodes as a LeRobot v3.0 dataset directory and return its path.

    Episodes get indices 0..n-1 in the given order. ``episodes_per_file`` (default: all) sets how many share
    one data parquet and one video file. ``splits`` maps split names to episode names; each must be a
    contiguous run of the given order (LeRobot stores splits as ``start:end``); by default ``train`` is all.
    Extras with 1 or 2 dimensions become per-frame columns. The dataset is built in a temporary sibling
    directory and renamed into place; ``overwrite=True`` replaces only an existing LeRobot dataset (a directory
    with ``meta/info.json``) or an empty directory, never anything else.
    """
    root = Path(root)
    episode_list = list(episodes.episodes if isinstance(episodes, EpisodeSet) else episodes)
    if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
        raise InputError(f"write_lerobot: fps must be a positive integer, got {fps!r}")
    if image_storage not in ("video", "image"):
        raise InputError(f"write_lerobot: image_storage must be 'video' or 'image', got {image_storage!r}")
    if codec not in SUPPORTED_CODECS:
        raise InputError(f"write_lerobot: codec must be one of {sorted(SUPPORTED_CODECS)}, got {codec!r}")
    if episodes_per_file is not None and (not isinstance(episodes_per_file, int) or episodes_per_file < 1):
        raise InputError(f"write_lerobot: episodes_per_file must be a positive integer, got {episodes_per_file!r}")
    _check_destination(root, overwrite)
    for episode in episode_list:
        validate_episode(episode, str(root), image_key, ee_key)
    check_consistent(episode_list, str(root), ee_key)
    frame_shape = episode_list[0].frame_shape
    for episode in episode_list:
        if episode.frame_shape != frame_shape:
            raise DataError(
                f"{root}: episode {episode.name!r} has frames {episode.frame_shape} but {episode_list[0].name!r} "
                f"has {frame_shape}; one LeRobot feature needs one shape"
            )
    channels = frame_shape[2]
    if image_storage == "video" and channels not in (1, 3):
        raise DataError(
            f"{root}: image key {image_key!r} has {channels} channels; video supports 1 or 3 "
            f"(use image_storage='image' for {channels}-channel frames)"
        )
    extra_specs = _extra_specs(episode_list, root, image_key, ee_key)
    split_ranges = _split_ranges(splits, [e.name for e in episode_list], root)

    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        _write_tree(
            staging,
            episode_list,
            fps,
            image_key,
            ee_key,
            image_storage,
            codec,
            episodes_per_file or len(episode_list),
            extra_specs,
            split_ranges,
            task,
        )
        if root.exists():
            shutil.rmtree(root)
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def _check_destination(root: Path, overwrite: bool) -> None:
    if not root.exists():
        return
    if not overwrite:
        raise DataError(f"{root} already exists; pass overwrite=True to replace it")
    is_dataset = root.is_dir() and (root / "meta" / "info.json").is_file()
    is_empty_dir = root.is_dir() and not any(root.iterdir())
    if not (is_dataset or is_empty_dir):
        raise DataError(
            f"{root} exists and is not a LeRobot dataset (no meta/info.json); refusing to delete it even with "
            f"overwrite=True"
        )


def _extra_specs(
    episodes: Sequence[Episode], root: Path, image_key: str, ee_key: str
) -> dict[str, tuple[str, list[int]]]:
    """Feature dtype and shape per extra key; every episode must have the same extras."""
    first = episodes[0]
    specs: dict[str, tuple[str, list[int]]] = {}
    for key, value in first.extras.items():
        if key in INDEX_COLUMNS or key in (image_key, ee_key):
            raise DataError(f"{root}: extra key {key!r} clashes with a LeRobot column of the same name")
        if value.ndim not in (1, 2) or value.dtype.kind not in "biuf":
            raise DataError(
                f"{root}: extra {key!r} of episode {first.name!r} has shape {value.shape} and dtype {value.dtype}; "
                f"LeRobot columns need a 1-D or 2-D numeric array"
            )
        specs[key] = (value.dtype.name, [1] if value.ndim == 1 else [int(value.shape[1])])
    for episode in episodes[1:]:
        if sorted(episode.extras) != sorted(specs):
            raise DataError(
                f"{root}: episode {episode.name!r} has extras {sorted(episode.extras)} but {first.name!r} has "
                f"{sorted(specs)}; LeRobot features are shared by all episodes"
            )
        for key, value in episode.extras.items():
            shape = [1] if value.ndim == 1 else [int(value.shape[1])] if value.ndim == 2 else None
            if shape != specs[key][1] or value.dtype.name != specs[key][0]:
                raise DataError(
                    f"{root}: extra {key!r} of episode {episode.name!r} has shape {value.shape}, dtype "
                    f"{value.dtype}; episode {first.name!r} has per-step shape {specs[key][1]}, dtype {specs[key][0]}"
                )
    return specs


def _split_ranges(
    splits: Mapping[str, Sequence[str]] | None, names: Sequence[str], root: Path
) -> dict[str, str]:
    if splits is None:
        return {"train": f"0:{len(names)}"}
    position = {name: i for i, name in enumerate(names)}
    ranges: dict[str, str] = {}
    for split_name, members in splits.items():
        unknown = [name for name in members if name not in position]
        if unknown:
            raise DataError(f"{root}: split {split_name!r} names episodes {unknown} that are not being written")
        indices = sorted(position[name] for name in members)
        if indices and indices != list(range(indices[0], indices[0] + len(indices))):
            raise DataError(
                f"{root}: split {split_name!r} is not a contiguous run of episodes in the written order; "
                f"LeRobot stores splits as 'start:end' ranges"
            )
        ranges[split_name] = f"{indices[0]}:{indices[-1] + 1}" if indices else "0:0"
    return ranges


def _write_tree(
    staging: Path,
    episodes: Sequence[Episode],
    fps: int,
    image_key: str,
    ee_key: str,
    image_storage: str,
    codec: str,
    episodes_per_file: int,
    extra_specs: Mapping[str, tuple[str, list[int]]],
    split_ranges: Mapping[str, str],
    task: str,
) -> None:
    height, width, channels = episodes[0].frame_shape
    ee_dim = episodes[0].ee_dim
    episode_rows: list[dict[str, Any]] = []
    global_index = 0
    for file_number, first in enumerate(range(0, len(episodes), episodes_per_file)):
        group = episodes[first : first + episodes_per_file]
        chunk_index, file_index = divmod(file_number, CHUNKS_SIZE)
        columns = _data_columns(group, first, global_index, fps, ee_key, extra_specs)
        if image_storage == "image":
            columns[image_key] = _png_column(group, image_key, staging)
        data_path = staging / DATA_PATH.format(chunk_index=chunk_index, file_index=file_index)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), data_path)
        if image_storage == "video":
            video_path = staging / VIDEO_PATH.format(
                video_key=image_key, chunk_index=chunk_index, file_index=file_index
            )
            _encode_video(video_path, [e.frames for e in group], fps, codec)
        frame_offset = 0
        for position, episode in enumerate(group):
            row: dict[str, Any] = {
                "episode_index": first + position,
                "tasks": [task],
                "length": episode.length,
                "data/chunk_index": chunk_index,
                "data/file_index": file_index,
                "dataset_from_index": global_index,
                "dataset_to_index": global_index + episode.length,
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
            }
            if image_storage == "video":
                row[f"videos/{image_key}/chunk_index"] = chunk_index
                row[f"videos/{image_key}/file_index"] = file_index
                row[f"videos/{image_key}/from_timestamp"] = frame_offset / fps
                row[f"videos/{image_key}/to_timestamp"] = (frame_offset + episode.length) / fps
            episode_rows.append(row)
            frame_offset += episode.length
            global_index += episode.length

    meta = staging / "meta"
    (meta / EPISODES_PATH.split("meta/", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), staging / EPISODES_PATH)
    pq.write_table(
        pa.table({"task_index": pa.array([0], pa.int64()), "task": pa.array([task], pa.string())}),
        meta / "tasks.parquet",
    )
    image_feature: dict[str, Any] = {
        "dtype": image_storage,
        "shape": [height, width, channels],
        "names": ["height", "width", "channels"],
    }
    if image_storage == "video":
        image_feature["info"] = {
            "video.height": height,
            "video.width": width,
            "video.codec": SUPPORTED_CODECS[codec][1],
            "video.pix_fmt": "yuv420p",
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": channels,
            "has_audio": False,
        }
    features: dict[str, Any] = {
        image_key: image_feature,
        ee_key: {"dtype": "float32", "shape": [ee_dim], "names": None},
    }
    for key, (dtype, shape) in extra_specs.items():
        features[key] = {"dtype": dtype, "shape": shape, "names": None}
    features.update(
        {
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "frame_index": {"dtype": "int64", "shape": [1], "names": None},
            "episode_index": {"dtype": "int64", "shape": [1], "names": None},
            "index": {"dtype": "int64", "shape": [1], "names": None},
            "task_index": {"dtype": "int64", "shape": [1], "names": None},
        }
    )
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": None,
        "total_episodes": len(episodes),
        "total_frames": global_index,
        "total_tasks": 1,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": dict(split_ranges),
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if image_storage == "video" else None,
        "features": features,
    }
    (meta / "info.json").write_text(json.dumps(info, indent=2))
    (meta / "stats.json").write_text(json.dumps(_stats(episodes, image_key, ee_key, extra_specs), indent=2))


def _data_columns(
    group: Sequence[Episode],
    first_episode_index: int,
    first_global_index: int,
    fps: int,
    ee_key: str,
    extra_specs: Mapping[str, tuple[str, list[int]]],
) -> dict[str, pa.Array]:
    lengths = [e.length for e in group]
    total = sum(lengths)
    frame_index = np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])
    columns: dict[str, pa.Array] = {
        "timestamp": pa.array((frame_index / fps).astype(np.float32)),
        "frame_index": pa.array(frame_index),
        "episode_index": pa.array(np.repeat(np.arange(len(group), dtype=np.int64) + first_episode_index, lengths)),
        "index": pa.array(np.arange(total, dtype=np.int64) + first_global_index),
        "task_index": pa.array(np.zeros(total, dtype=np.int64)),
    }
    ee = np.concatenate([e.ee for e in group]).astype(np.float32)
    columns[ee_key] = pa.FixedSizeListArray.from_arrays(pa.array(ee.reshape(-1)), ee.shape[1])
    for key in extra_specs:
        values = np.concatenate([e.extras[key] for e in group])
        columns[key] = (
            pa.array(values)
            if values.ndim == 1
            else pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
        )
    return columns


def _png_column(group: Sequence[Episode], image_key: str, staging: Path) -> pa.Array:
    """Frames as the struct LeRobot's ``dtype: "image"`` features use: encoded bytes plus a (here empty) path."""
    encoded: list[dict[str, Any]] = []
    for episode in group:
        height, width, channels = episode.frame_shape
        for frame in episode.frames:
            context = av.CodecContext.create("png", "w")
            context.width, context.height, context.pix_fmt = width, height, _PIXEL_FORMATS[channels]
            image = frame[:, :, 0] if channels == 1 else frame
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=_PIXEL_FORMATS[channels])
            packets = context.encode(video_frame) + context.encode(None)
            encoded.append({"bytes": b"".join(bytes(p) for p in packets), "path": None})
    return pa.array(encoded, pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


def _encode_video(path: Path, clips: Sequence[np.ndarray], fps: int, codec: str) -> None:
    """Encode the clips one after another into one yuv420p stream, frame ``i`` at ``i / fps`` seconds.

    yuv420p needs even sizes, so odd heights/widths are padded by repeating the last row/column; the reader
    crops back to the shape in info.json.
    """
    height, width, channels = clips[0].shape[1:]
    pad_h, pad_w = height % 2, width % 2
    options, _ = SUPPORTED_CODECS[codec]
    source_format = _PIXEL_FORMATS[channels]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(path), "w") as container:
            stream = container.add_stream(codec, rate=Fraction(fps, 1))
            stream.width, stream.height = width + pad_w, height + pad_h
            stream.pix_fmt = "yuv420p"
            stream.options = dict(options)
            frame_number = 0
            for clip in clips:
                for image in clip:
                    if pad_h or pad_w:
                        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
                    plane = image[:, :, 0] if channels == 1 else image
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(plane), format=source_format)
                    frame.pts = frame_number
                    frame.time_base = Fraction(1, fps)
                    frame_number += 1
                    for packet in stream.encode(frame):
                        container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    except av.FFmpegError as error:
        raise DataError(f"cannot encode {path} with {codec} ({error})") from error


def _stats(
    episodes: Sequence[Episode], image_key: str, ee_key: str, extra_specs: Mapping[str, tuple[str, list[int]]]
) -> dict[str, dict[str, Any]]:
    """meta/stats.json: per-dimension mean/std/min/max/count; images per channel in [0, 1] as [C, 1, 1]."""

    def summary(values: np.ndarray) -> dict[str, Any]:
        values = values.astype(np.float64)
        return {
            "mean": values.mean(axis=0).tolist(),
            "std": values.std(axis=0).tolist(),
            "min": values.min(axis=0).tolist(),
            "max": values.max(axis=0).tolist(),
            "count": [int(values.shape[0])],
        }

    stats = {ee_key: summary(np.concatenate([e.ee for e in episodes]))}
    for key in extra_specs:
        stats[key] = summary(np.concatenate([e.extras[key] for e in episodes]).reshape(-1, extra_specs[key][1][0]))
    channels = episodes[0].frame_shape[2]
    pixel_sum = np.zeros(channels)
    pixel_square = np.zeros(channels)
    pixel_min = np.full(channels, np.inf)
    pixel_max = np.full(channels, -np.inf)
    count = 0
    for episode in episodes:  # streamed per episode so the whole video never sits in float64
        frames = episode.frames.reshape(-1, channels).astype(np.float64) / 255.0
        pixel_sum += frames.sum(axis=0)
        pixel_square += (frames**2).sum(axis=0)
        pixel_min = np.minimum(pixel_min, frames.min(axis=0))
        pixel_max = np.maximum(pixel_max, frames.max(axis=0))
        count += frames.shape[0]
    mean = pixel_sum / count
    std = np.sqrt(np.maximum(pixel_square / count - mean**2, 0.0))

    def per_channel(values: np.ndarray) -> list[list[list[float]]]:
        return [[[float(v)]] for v in values]

    stats[image_key] = {
        "mean": per_channel(mean),
        "std": per_channel(std),
        "min": per_channel(pixel_min),
        "max": per_channel(pixel_max),
        "count": [sum(e.length for e in episodes)],
    }
    return stats
