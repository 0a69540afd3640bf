"""Reading a LeRobot v3.0 dataset: parquet rows, video and embedded-image decoding, and the per-file decode cache."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rvperceiver.data.episodes import Episode, EpisodeSet, check_consistent, validate_episode
from rvperceiver.data.lerobot.layout import (
    _PIXEL_FORMATS,
    DEFAULT_EE_KEY,
    DEFAULT_IMAGE_KEY,
    INDEX_COLUMNS,
    TIMESTAMP_TOLERANCE_S,
    _format_path,
    _image_shape,
    _read_info,
)
from rvperceiver.data.lazy import SideBySide, VideoChunkCache, VideoFrames
from rvperceiver.errors import DataError, InputError
from rvperceiver.observation import combine_cameras

__all__ = ["read_lerobot"]


ALIASES = {"action": "actions", "actions": "action"}  # LeRobot's name <-> robomimic's


def read_lerobot(
    root: str | os.PathLike[str],
    image_key: str = DEFAULT_IMAGE_KEY,
    ee_key: str = DEFAULT_EE_KEY,
    *,
    image_keys: Sequence[str] | None = None,
    target_key: str | None = None,
    streaming: bool = False,
    video_cache_bytes: int = 256 << 20,
) -> EpisodeSet:
    """Read a LeRobot v3.0 dataset directory into an :class:`EpisodeSet`.

    ``image_keys`` (several cameras, placed side by side) and ``target_key`` (any numeric feature, e.g.
    ``action``) are the current names of ``image_key`` and ``ee_key`` and win over them when given. In memory
    (the default) every video file is decoded exactly once, however many episodes share it. With ``streaming``
    the frames stay in the videos: each episode's frames are a :class:`~rvperceiver.data.lazy.VideoFrames`
    decoded per chunk on demand through one cache of at most ``video_cache_bytes`` per process, and opening the
    dataset only checks that every video holds the last frame its episodes need (a file cut short is named with
    the first episode it loses). Episodes are named ``episode_<index:06d>``. Anything missing or inconsistent
    raises :class:`DataError` naming the file and key.
    """
    root = Path(root)
    info = _read_info(root)
    features = info["features"]
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or fps <= 0:
        raise DataError(f"{root / 'meta/info.json'}: 'fps' should be a positive number, got {fps!r}")
    cameras = tuple(image_keys) if image_keys else (image_key,)
    target = target_key if target_key is not None else ee_key
    if target not in features and ALIASES.get(target) in features:
        target = ALIASES[target]
    for role, key in [("image", key) for key in cameras] + [("target", target)]:
        if key not in features:
            raise DataError(
                f"{role} key {key!r} not found in the features of {root / 'meta/info.json'}; "
                f"features present: {sorted(features)}"
            )
    storages, shapes = {}, {}
    for key in cameras:
        storages[key] = features[key].get("dtype")
        if storages[key] not in ("video", "image"):
            raise DataError(
                f"{root / 'meta/info.json'}: image key {key!r} has dtype {storages[key]!r}; expected 'video' or "
                f"'image' (shape {features[key].get('shape')})"
            )
        shapes[key] = _image_shape(features[key], key, root)
    # Numeric per-frame features other than the chosen ones become extras (strings and images are skipped).
    extra_keys = [
        key
        for key, feature in features.items()
        if key not in INDEX_COLUMNS and key not in (*cameras, target) and _is_numeric_dtype(feature.get("dtype"))
    ]

    table = _read_episode_table(root)
    data_cache: dict[Path, pa.Table] = {}
    video_cache: dict[Path, _DecodedVideo] = {}
    chunk_cache = VideoChunkCache(video_cache_bytes) if streaming else None
    lazy_by_file: dict[str, list[VideoFrames]] = {}
    episodes: list[Episode] = []
    fallback_matches = 0
    for row in table:
        episode_index = int(row["episode_index"])
        name = f"episode_{episode_index:06d}"
        data_path = root / _format_path(
            info, "data_path", root, chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        if data_path not in data_cache:
            data_cache[data_path] = _read_parquet(data_path)
        rows = _episode_rows(data_cache[data_path], episode_index, int(row["length"]), data_path)
        ee = _numeric_column(rows, target, data_path, name).astype(np.float32)
        if ee.ndim == 1:
            ee = ee[:, None]
        extras = {
            key: _numeric_column(rows, key, data_path, name) for key in extra_keys if key in rows.column_names
        }
        camera_frames: list[Any] = []
        for key in cameras:
            if storages[key] == "video":
                video_row = _video_columns(row, key, root)
                video_path = root / _format_path(
                    info,
                    "video_path",
                    root,
                    video_key=key,
                    chunk_index=video_row["chunk_index"],
                    file_index=video_row["file_index"],
                )
                timestamps = _numeric_column(rows, "timestamp", data_path, name).astype(np.float64).reshape(-1)
                wanted = float(video_row["from_timestamp"]) + timestamps
                if streaming:
                    if not video_path.is_file():
                        raise DataError(f"LeRobot video {video_path} is missing")
                    lazy = VideoFrames(video_path, wanted, shapes[key], fps, name, chunk_cache)  # type: ignore[arg-type]
                    lazy_by_file.setdefault(str(video_path), []).append(lazy)
                    camera_frames.append(lazy)
                    continue
                if video_path not in video_cache:
                    video_cache[video_path] = _decode_video_file(video_path, shapes[key])
                frames, fallbacks = video_cache[video_path].frames_at(wanted, fps, name)
                fallback_matches += fallbacks
                camera_frames.append(frames)
            else:
                camera_frames.append(_decode_image_column(rows, key, shapes[key], data_path, name))
        if len(camera_frames) == 1:
            frames = camera_frames[0]
        elif streaming:
            frames = SideBySide(camera_frames, cameras)
        else:
            try:
                frames = combine_cameras(camera_frames, list(cameras))
            except InputError as error:
                raise DataError(f"{root}: episode {name!r}: {error}") from None
        episode = Episode(name=name, frames=frames, ee=ee, extras=extras)
        validate_episode(episode, str(root), "+".join(cameras), target)
        episodes.append(episode)
    check_consistent(episodes, str(root), target)
    for path, lazies in lazy_by_file.items():
        _check_video_reaches(path, lazies)

    meta = {
        "format": "lerobot",
        "codebase_version": info.get("codebase_version"),
        "fps": fps,
        "robot_type": info.get("robot_type"),
        "tasks": _read_tasks(root),
        "image_storage": storages[cameras[0]],
        "streaming": bool(streaming),
        # Frames matched within half a frame period but outside LeRobot's 1e-4 s tolerance (in-memory reads).
        "timestamp_fallback_matches": fallback_matches,
    }
    splits = _parse_splits(info.get("splits") or {}, [e.name for e in episodes], root)
    return EpisodeSet(episodes, str(root), "+".join(cameras), target, splits, meta, image_keys=cameras)


def _check_video_reaches(path: str, lazies: list[VideoFrames]) -> None:
    """A streaming read checks once that ``path`` decodes up to the last frame any of its episodes needs; if
    not, the error names the file and the first episode (in time order) whose last frame is missing."""
    ordered = sorted(lazies, key=lambda lazy: float(lazy.times[-1]))
    if ordered[-1].last_frame_readable():
        return
    lost = [lazy for lazy in ordered if not lazy.last_frame_readable()]
    first = lost[0]
    raise DataError(
        f"{path} is truncated or damaged: {first.episode} (and {len(lost) - 1} later episode(s) in this file) "
        f"needs frames up to {first.times[-1]:.3f} s that do not decode; nothing on disk was changed, re-encode "
        f"the video or drop those episodes"
    )


def _video_columns(row: Mapping[str, Any], image_key: str, root: Path) -> dict[str, Any]:
    """The episode's ``videos/<key>/chunk_index``, ``file_index`` and ``from_timestamp`` entries."""
    wanted = ("chunk_index", "file_index", "from_timestamp")
    missing = [f"videos/{image_key}/{column}" for column in wanted if row.get(f"videos/{image_key}/{column}") is None]
    if missing:
        raise DataError(
            f"{root / 'meta/episodes'}: episode {row.get('episode_index')} lacks {missing}, so its frames of "
            f"{image_key!r} cannot be located in the videos"
        )
    return {column: row[f"videos/{image_key}/{column}"] for column in wanted}


def _is_numeric_dtype(name: Any) -> bool:
    try:
        return np.dtype(str(name)).kind in "biuf"
    except TypeError:
        return False


def _read_parquet(path: Path) -> pa.Table:
    if not path.is_file():
        raise DataError(f"LeRobot file {path} is missing")
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"cannot read parquet file {path} ({error})") from error


def _read_episode_table(root: Path) -> list[dict[str, Any]]:
    episode_dir = root / "meta" / "episodes"
    files = sorted(episode_dir.glob("chunk-*/file-*.parquet"))
    if not files:
        raise DataError(f"{root}: no episode metadata under {episode_dir} (expected chunk-XXX/file-XXX.parquet)")
    rows: list[dict[str, Any]] = []
    for path in files:
        rows.extend(_read_parquet(path).to_pylist())
    required = ("episode_index", "length", "data/chunk_index", "data/file_index")
    for row in rows:
        missing = [column for column in required if column not in row]
        if missing:
            raise DataError(f"{episode_dir}: episode metadata lacks columns {missing}; has {sorted(row)}")
    rows.sort(key=lambda r: int(r["episode_index"]))
    indices = [int(r["episode_index"]) for r in rows]
    if len(set(indices)) != len(indices):
        raise DataError(f"{episode_dir}: duplicate episode_index values")
    if not rows:
        raise DataError(f"{root}: the dataset has no episodes")
    return rows


def _episode_rows(table: pa.Table, episode_index: int, length: int, path: Path) -> pa.Table:
    for column in ("episode_index", "frame_index"):
        if column not in table.column_names:
            raise DataError(f"{path}: column {column!r} missing; columns: {table.column_names}")
    episode_ids = table.column("episode_index").to_numpy()
    positions = np.flatnonzero(episode_ids == episode_index)
    if positions.size != length:
        raise DataError(
            f"{path}: episode {episode_index} should have {length} rows (meta/episodes says so) but has "
            f"{positions.size}"
        )
    rows = table.take(pa.array(positions))
    order = np.argsort(rows.column("frame_index").to_numpy(), kind="stable")
    if not np.array_equal(order, np.arange(order.size)):
        rows = rows.take(pa.array(order))
    return rows


def _numeric_column(rows: pa.Table, key: str, path: Path, episode: str) -> np.ndarray:
    """A scalar column as ``[L]`` or a (fixed-size) list column as ``[L, D]``."""
    if key not in rows.column_names:
        raise DataError(f"{path}: column {key!r} missing (episode {episode}); columns: {rows.column_names}")
    column = rows.column(key).combine_chunks()
    if column.null_count:
        raise DataError(f"{path}: column {key!r} has {column.null_count} null values in {episode}")
    kind = column.type
    if pa.types.is_fixed_size_list(kind):
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(column), kind.list_size)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        widths = np.unique(np.diff(column.offsets.to_numpy()))
        if widths.size > 1:
            raise DataError(f"{path}: list column {key!r} has rows of different lengths {widths.tolist()} in {episode}")
        width = int(widths[0]) if widths.size else 0
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), width)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return column.to_numpy(zero_copy_only=False)
    raise DataError(f"{path}: column {key!r} has type {kind}, not a number or a list of numbers ({episode})")


@dataclass
class _DecodedVideo:
    """All frames of one video file and their presentation times in seconds."""

    path: Path
    times: np.ndarray
    frames: np.ndarray
    error: str | None = None  # why decoding stopped early (a file cut short), if it did

    def frames_at(self, wanted: np.ndarray, fps: float, episode: str) -> tuple[np.ndarray, int]:
        """Frames whose timestamps match ``wanted``; returns them and how many needed the half-frame fallback.

        A match within 1e-4 s is exact by LeRobot's rule. Encoders and containers round timestamps to their
        own time base, so a frame within half a frame period is still unambiguous and is accepted; anything
        further means the frame is missing.
        """
        right = np.clip(np.searchsorted(self.times, wanted), 1, len(self.times) - 1) if len(self.times) > 1 else None
        if right is None:
            nearest = np.zeros(len(wanted), dtype=np.int64)
        else:
            left = right - 1
            nearest = np.where(np.abs(self.times[left] - wanted) <= np.abs(self.times[right] - wanted), left, right)
        error = np.abs(self.times[nearest] - wanted)
        missing = error >= 0.5 / fps
        if np.any(missing):
            first = int(np.argmax(missing))
            if self.error is not None:
                raise DataError(
                    f"{self.path} is truncated or damaged: decoding stopped after {len(self.times)} frames "
                    f"({self.times[-1]:.3f} s; {self.error}), but {episode} needs a frame at {wanted[first]:.3f} s "
                    f"(step {first}); nothing on disk was changed, re-encode the video or drop that episode"
                )
            raise DataError(
                f"{self.path}: no frame at {wanted[first]:.6f} s for {episode} step {first} (nearest decoded "
                f"frame at {self.times[nearest[first]]:.6f} s; the video has {len(self.times)} frames)"
            )
        fallbacks = int(np.count_nonzero(error > TIMESTAMP_TOLERANCE_S))
        if nearest.size and np.array_equal(nearest, np.arange(nearest[0], nearest[0] + nearest.size)):
            # Contiguous frames: a view into the decoded file, no copy.
            return self.frames[nearest[0] : nearest[0] + nearest.size], fallbacks
        return self.frames[nearest], fallbacks


def _decode_video_file(path: Path, image_shape: tuple[int, int, int]) -> _DecodedVideo:
    """Decode every frame of ``path`` once, cropped to ``image_shape`` (the writer pads odd sizes to even)."""
    height, width, channels = image_shape
    if not path.is_file():
        raise DataError(f"LeRobot video {path} is missing")
    pixel_format = _PIXEL_FORMATS[channels]
    times: list[float] = []
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path} holds no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if frame.time is None:
                    raise DataError(f"{path}: decoded a frame without a timestamp")
                image = frame.to_ndarray(format=pixel_format)
                if image.ndim == 2:
                    image = image[:, :, None]
                if image.shape[0] < height or image.shape[1] < width:
                    raise DataError(
                        f"{path}: frames are {image.shape[1]}x{image.shape[0]} but info.json says "
                        f"{width}x{height}"
                    )
                frames.append(image[:height, :width])
                times.append(float(frame.time))
    except (av.FFmpegError, OSError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        if not frames:
            raise DataError(f"cannot decode video {path} ({error})") from error
        stopped: str | None = str(error)  # a file cut short: the episodes before the cut are still usable
    else:
        stopped = None
    if not frames:
        raise DataError(f"cannot decode video {path}: no frames decoded")
    order = np.argsort(np.asarray(times), kind="stable")
    return _DecodedVideo(path, np.asarray(times)[order], np.stack(frames)[order], stopped)


def _decode_image_column(
    rows: pa.Table, key: str, image_shape: tuple[int, int, int], path: Path, episode: str
) -> np.ndarray:
    if key not in rows.column_names:
        raise DataError(f"{path}: image column {key!r} missing; columns: {rows.column_names}")
    pixel_format = _PIXEL_FORMATS[image_shape[2]]
    frames = []
    for step, item in enumerate(rows.column(key).to_pylist()):
        encoded = item.get("bytes") if isinstance(item, dict) else item
        if not encoded:
            raise DataError(f"{path}: image {key!r} of {episode} step {step} has no embedded bytes")
        try:
            with av.open(io.BytesIO(encoded)) as container:
                image = next(container.decode(video=0)).to_ndarray(format=pixel_format)
        except (av.FFmpegError, StopIteration, OSError, ValueError) as error:
            raise DataError(f"{path}: cannot decode image {key!r} of {episode} step {step} ({error})") from error
        frames.append(image[:, :, None] if image.ndim == 2 else image)
    stacked = np.stack(frames)
    if stacked.shape[1:] != image_shape:
        raise DataError(
            f"{path}: images {key!r} of {episode} have shape {stacked.shape[1:]}, info.json says {image_shape}"
        )
    return stacked


def _read_tasks(root: Path) -> list[str]:
    path = root / "meta" / "tasks.parquet"
    if not path.is_file():
        return []
    table = _read_parquet(path)
    # LeRobot writes the task string as the pandas index, which pyarrow exposes as a column.
    for column in ("task", "__index_level_0__"):
        if column in table.column_names:
            return [str(task) for task in table.column(column).to_pylist()]
    return []


def _parse_splits(raw: Mapping[str, Any], names: Sequence[str], root: Path) -> dict[str, list[str]]:
    """LeRobot splits are ``"start:end"`` ranges of episode indices (several may be joined by commas)."""
    by_index = {int(name.rsplit("_", 1)[1]): name for name in names}
    splits: dict[str, list[str]] = {}
    for split_name, spec in raw.items():
        selected: list[str] = []
        for part in str(spec).split(","):
            try:
                start_text, end_text = part.split(":")
                start, end = int(start_text), int(end_text)
            except ValueError as error:
                raise DataError(
                    f"{root / 'meta/info.json'}: split {split_name!r} is {spec!r}; expected 'start:end'"
                ) from error
            selected.extend(by_index[i] for i in range(start, end) if i in by_index)
        splits[str(split_name)] = selected
    return splits
