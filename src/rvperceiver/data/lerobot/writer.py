"""Writing a LeRobot v3.0 dataset: parquet columns, video/PNG encoding, statistics and the metadata files.

What LeRobot's own writer produces (checked field by field against a dataset it wrote, in the tests): features
in ``info.json`` in the order image, state, extras, then the index columns; data parquet columns in that order
with the ``huggingface`` schema metadata of the ``datasets`` library; per-episode statistics as ``stats/<key>/<stat>``
columns of ``meta/episodes``; ``meta/tasks.parquet`` with the task string as the pandas index; videos with a
keyframe every ``gop`` frames (LeRobot encodes with ``g=2`` so that seeking to a timestamp decodes little).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
from rvperceiver.data.lerobot.stats import STAT_NAMES, PixelStats, vector_stats
from rvperceiver.errors import DataError, InputError

__all__ = ["write_lerobot"]

# Feature specs of the per-frame bookkeeping columns, as LeRobot records them.
_INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
# The pandas version whose ``to_parquet`` layout tasks.parquet reproduces (pandas itself is not needed to write it).
_PANDAS_LAYOUT_VERSION = "3.1.1"


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
    robot_type: str | None = None,
    feature_names: Mapping[str, Sequence[str]] | None = None,
    gop: int = 2,
    on_episode: Callable[[Episode], None] | None = None,
) -> Path:
    """Write episodes as a LeRobot v3.0 dataset directory and return its path.

    Episodes get indices 0..n-1 in the given order. ``episodes_per_file`` (default: all) sets how many share
    one data parquet and one video file. ``splits`` maps split names to episode names; a contiguous run of the
    given order is written as LeRobot writes splits (``"start:end"``), any other set as comma-joined runs
    (``"0:2,5:7"``; LeRobot does not parse splits, this project's reader does); by default ``train`` is all.
    Extras with 1 or 2 dimensions become per-frame columns; a per-step width of 1 is a scalar column (LeRobot's
    rule for shape ``[1]``), read back as ``[L]``. ``feature_names`` gives the ``names`` of vector features
    (default: ``x, y, z`` for a 3-wide state, else ``<key>_<i>``); ``gop`` is the keyframe interval;
    ``on_episode`` is called after each episode is written (progress). The dataset is built in a temporary
    sibling directory and renamed into place; ``overwrite=True`` replaces only an existing LeRobot dataset (a
    directory with ``meta/info.json``) or an empty directory, never anything else.
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
    if isinstance(gop, bool) or not isinstance(gop, int) or gop < 1:
        raise InputError(f"write_lerobot: gop must be a positive integer, got {gop!r}")
    if not isinstance(task, str) or not task:
        raise InputError(f"write_lerobot: task must be a non-empty string, got {task!r}")
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
    features = _features(episode_list[0], image_key, ee_key, image_storage, codec, fps, extra_specs, feature_names)

    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        options = _Options(fps, image_key, ee_key, image_storage, codec, gop, task, on_episode)
        _write_tree(staging, episode_list, options, features, episodes_per_file or len(episode_list))
        _write_info(staging, episode_list, options, features, split_ranges, robot_type)
        _swap_in(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def _swap_in(staging: Path, root: Path) -> None:
    """Rename the finished ``staging`` tree to ``root``; an old ``root`` is moved aside first, then deleted."""
    if not root.exists():
        os.replace(staging, root)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".old", dir=root.parent))
    os.replace(root, aside / "dataset")
    try:
        os.replace(staging, root)
    except BaseException:
        os.replace(aside / "dataset", root)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


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
        indices = sorted({position[name] for name in members})
        runs: list[str] = []
        start = 0
        for i in range(1, len(indices) + 1):
            if i == len(indices) or indices[i] != indices[i - 1] + 1:
                runs.append(f"{indices[start]}:{indices[i - 1] + 1}")
                start = i
        ranges[split_name] = ",".join(runs) if runs else "0:0"
    return ranges


@dataclass(frozen=True)
class _Options:
    fps: int
    image_key: str
    ee_key: str
    image_storage: str
    codec: str
    gop: int
    task: str
    on_episode: Callable[[Episode], None] | None


def _features(
    first: Episode,
    image_key: str,
    ee_key: str,
    image_storage: str,
    codec: str,
    fps: int,
    extra_specs: Mapping[str, tuple[str, list[int]]],
    feature_names: Mapping[str, Sequence[str]] | None,
) -> dict[str, dict[str, Any]]:
    """``info.json`` features in LeRobot's order: image, state, extras, then the index columns."""
    height, width, channels = first.frame_shape
    image: dict[str, Any] = {
        "dtype": image_storage,
        "shape": [height, width, channels],
        "names": ["height", "width", "channels"],
    }
    if image_storage == "video":
        image["info"] = {
            "video.height": height,
            "video.width": width,
            "video.codec": SUPPORTED_CODECS[codec][1],
            "video.pix_fmt": "yuv420p",
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": channels,
            "has_audio": False,
        }
    features: dict[str, dict[str, Any]] = {image_key: image}
    specs = {ee_key: ("float32", [first.ee_dim]), **extra_specs}
    for key, (dtype, shape) in specs.items():
        features[key] = {"dtype": dtype, "shape": shape, "names": _names(key, shape[0], ee_key, feature_names)}
    features.update({key: dict(spec) for key, spec in _INDEX_FEATURES.items()})
    return features


def _names(key: str, width: int, ee_key: str, given: Mapping[str, Sequence[str]] | None) -> list[str] | None:
    if given is not None and key in given:
        names = [str(name) for name in given[key]]
        if len(names) != width:
            raise InputError(f"write_lerobot: feature_names[{key!r}] has {len(names)} names for width {width}")
        return names
    if width == 1:
        return None  # a scalar column, as LeRobot records timestamp and the other index columns
    if key == ee_key and width == 3:
        return ["x", "y", "z"]
    return [f"{key.rsplit('.', 1)[-1]}_{i}" for i in range(width)]


def _write_tree(
    staging: Path,
    episodes: Sequence[Episode],
    options: _Options,
    features: Mapping[str, Mapping[str, Any]],
    episodes_per_file: int,
) -> None:
    """Data parquet, videos, per-episode metadata and ``stats.json``, one file group at a time."""
    image_key = options.image_key
    numeric_keys = [key for key in features if key != image_key]
    hf_metadata = json.dumps({"info": {"features": _hf_features(features)}})
    episode_rows: list[dict[str, Any]] = []
    all_values: dict[str, list[np.ndarray]] = {key: [] for key in numeric_keys}
    pixel_parts: list[PixelStats] = []
    global_index = 0
    for file_number, first in enumerate(range(0, len(episodes), episodes_per_file)):
        group = episodes[first : first + episodes_per_file]
        chunk_index, file_index = divmod(file_number, CHUNKS_SIZE)
        per_episode = []
        for position, episode in enumerate(group):
            values = _frame_values(episode, first + position, global_index, options)
            per_episode.append(values)
            global_index += episode.length
        columns: dict[str, pa.Array] = {}
        for key, feature in features.items():
            if key == image_key:
                if options.image_storage == "image":
                    columns[key] = _png_column(group, options.on_episode)
                continue
            columns[key] = _arrow_column(np.concatenate([values[key] for values in per_episode]), feature["shape"])
        table = pa.table(columns).replace_schema_metadata({"huggingface": hf_metadata})
        data_path = staging / DATA_PATH.format(chunk_index=chunk_index, file_index=file_index)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, data_path)
        if options.image_storage == "video":
            video_path = staging / VIDEO_PATH.format(video_key=image_key, chunk_index=chunk_index, file_index=file_index)
            _encode_video(video_path, group, options.fps, options.codec, options.gop, options.on_episode)
        frame_offset = 0
        for position, (episode, values) in enumerate(zip(group, per_episode)):
            pixels = PixelStats(episode.frame_shape[2]).update(episode.frames)
            pixel_parts.append(pixels)
            for key in numeric_keys:
                all_values[key].append(values[key])
            start = int(values["index"][0])
            row: dict[str, Any] = {
                "episode_index": first + position,
                "tasks": [options.task],
                "length": episode.length,
                "data/chunk_index": chunk_index,
                "data/file_index": file_index,
                "dataset_from_index": start,
                "dataset_to_index": start + episode.length,
            }
            if options.image_storage == "video":
                row[f"videos/{image_key}/chunk_index"] = chunk_index
                row[f"videos/{image_key}/file_index"] = file_index
                row[f"videos/{image_key}/from_timestamp"] = frame_offset / options.fps
                row[f"videos/{image_key}/to_timestamp"] = (frame_offset + episode.length) / options.fps
            stats = {image_key: pixels.as_dict(), **{key: vector_stats(values[key]) for key in numeric_keys}}
            for key in features:
                for name in STAT_NAMES:
                    row[f"stats/{key}/{name}"] = stats[key][name]
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = 0
            episode_rows.append(row)
            frame_offset += episode.length

    meta = staging / "meta"
    (staging / EPISODES_PATH).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), staging / EPISODES_PATH)
    _write_tasks(meta / "tasks.parquet", options.task)
    stats = {key: vector_stats(np.concatenate(parts)) for key, parts in all_values.items()}
    stats[image_key] = PixelStats.merged(pixel_parts).as_dict()
    (meta / "stats.json").write_text(json.dumps({key: stats[key] for key in features}, indent=4))


def _write_info(
    staging: Path,
    episodes: Sequence[Episode],
    options: _Options,
    features: Mapping[str, Any],
    split_ranges: Mapping[str, str],
    robot_type: str | None,
) -> None:
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(episodes),
        "total_frames": int(sum(e.length for e in episodes)),
        "total_tasks": 1,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": options.fps,
        "splits": dict(split_ranges),
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if options.image_storage == "video" else None,
        "features": features,
    }
    (staging / "meta" / "info.json").write_text(json.dumps(info, indent=4))


def _frame_values(episode: Episode, episode_index: int, first_index: int, options: _Options) -> dict[str, np.ndarray]:
    """Every numeric per-frame column of one episode: the state, the extras and the index columns."""
    length = episode.length
    frame_index = np.arange(length, dtype=np.int64)
    values = {options.ee_key: episode.ee.astype(np.float32)}
    values.update(episode.extras)
    values.update(
        {
            "timestamp": (frame_index / options.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(length, episode_index, dtype=np.int64),
            "index": frame_index + first_index,
            "task_index": np.zeros(length, dtype=np.int64),
        }
    )
    return values


def _arrow_column(values: np.ndarray, shape: Sequence[int]) -> pa.Array:
    """A scalar column for shape ``[1]`` (LeRobot's rule), else a fixed-size list column."""
    if list(shape) == [1]:
        return pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), int(shape[0]))


def _hf_features(features: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The ``datasets`` library's record of the data columns (the ``huggingface`` parquet schema metadata)."""
    records: dict[str, Any] = {}
    for key, feature in features.items():
        if feature["dtype"] == "video":
            continue
        if feature["dtype"] == "image":
            records[key] = {"_type": "Image"}
        elif list(feature["shape"]) == [1]:
            records[key] = {"dtype": feature["dtype"], "_type": "Value"}
        else:
            value = {"dtype": feature["dtype"], "_type": "Value"}
            records[key] = {"feature": value, "length": int(feature["shape"][0]), "_type": "List"}
    return records


def _write_tasks(path: Path, task: str) -> None:
    """``meta/tasks.parquet`` as pandas writes LeRobot's task table: ``task_index`` with the task as the index.

    LeRobot reads it with ``pd.read_parquet`` and looks tasks up by index (``tasks.iloc[i].name``,
    ``task in tasks.index``), so the pandas metadata naming ``task`` as the index column is what matters.
    """
    pandas_metadata = {
        "index_columns": ["task"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "str", "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "object", "numpy_type": "str", "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": _PANDAS_LAYOUT_VERSION,
    }
    table = pa.table({"task_index": pa.array([0], pa.int64()), "task": pa.array([task], pa.large_string())})
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_metadata)}), path)


def _png_column(group: Sequence[Episode], on_episode: Callable[[Episode], None] | None) -> pa.Array:
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
        if on_episode is not None:
            on_episode(episode)
    return pa.array(encoded, pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


def _encode_video(
    path: Path,
    group: Sequence[Episode],
    fps: int,
    codec: str,
    gop: int,
    on_episode: Callable[[Episode], None] | None = None,
) -> None:
    """Encode the episodes' frames one after another into one yuv420p stream, frame ``i`` at ``i / fps`` seconds.

    yuv420p needs even sizes, so odd heights/widths are padded by repeating the last row/column; the reader
    crops back to the shape in info.json.
    """
    height, width, channels = group[0].frame_shape
    pad_h, pad_w = height % 2, width % 2
    options, _ = SUPPORTED_CODECS[codec]
    source_format = _PIXEL_FORMATS[channels]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(path), "w") as container:
            stream = container.add_stream(codec, rate=Fraction(fps, 1))
            stream.width, stream.height = width + pad_w, height + pad_h
            stream.pix_fmt = "yuv420p"
            # A keyframe exactly every gop frames: keyint_min = gop stops scene cuts from adding more.
            stream.options = {**options, "g": str(gop), "keyint_min": str(gop)}
            frame_number = 0
            for episode in group:
                for image in episode.frames:
                    if pad_h or pad_w:
                        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
                    plane = image[:, :, 0] if channels == 1 else image
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(plane), format=source_format)
                    frame.pts = frame_number
                    frame.time_base = Fraction(1, fps)
                    frame_number += 1
                    for packet in stream.encode(frame):
                        container.mux(packet)
                if on_episode is not None:
                    on_episode(episode)
            for packet in stream.encode(None):
                container.mux(packet)
    except av.FFmpegError as error:
        raise DataError(f"cannot encode {path} with {codec} ({error})") from error
