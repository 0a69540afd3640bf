"""Frames read on demand: arrays that look like ``[L, H, W, C]`` uint8 numpy arrays but read only the rows asked for.

A streaming :class:`~rvperceiver.data.episodes.EpisodeSet` holds these instead of decoded frames, so a dataset
far larger than memory trains with the same ``Episode`` / ``WindowDataset`` code: a window ``frames[s : s + t]``
reads ``t`` frames. Three sources:

- :class:`HDF5Frames`: an HDF5 dataset sliced per window (the file is opened once per process, so DataLoader
  workers forked from the parent each get their own handle, as h5py requires);
- :class:`VideoFrames`: frames of one episode inside a (LeRobot) video file, decoded per chunk of
  ``chunk_frames`` frames around the request, through a :class:`VideoChunkCache` bounded in bytes (least
  recently used chunks go first);
- :class:`SideBySide`: several cameras placed side by side along the width (``rvperceiver.observation``).

``np.asarray(frames)`` still gives the whole episode, for code that wants it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from rvperceiver.errors import DataError

__all__ = ["HDF5Frames", "LazyFrames", "SideBySide", "VideoChunkCache", "VideoFrames", "is_lazy"]


def is_lazy(frames: Any) -> bool:
    return isinstance(frames, LazyFrames)


class LazyFrames:
    """Base class: ``shape``, ``dtype``, ``ndim``, ``len()``, ``frames[i]``, ``frames[a:b]``, ``frames[[i, j]]``
    and ``np.asarray(frames)``, on top of one method, ``_take(sorted unique indices) -> [n, H, W, C]``."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return int(self.shape[0])

    def _take(self, indices: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, key: Any) -> np.ndarray:
        length = len(self)
        if isinstance(key, (int, np.integer)):
            index = int(key) + (length if key < 0 else 0)
            if not 0 <= index < length:
                raise IndexError(f"frame {key} out of range for {length} frames")
            return self._take(np.array([index]))[0]
        if isinstance(key, slice):
            indices = np.arange(length)[key]
        else:
            indices = np.asarray(key)
            if indices.dtype == bool:
                indices = np.flatnonzero(indices)
            indices = np.where(indices < 0, indices + length, indices).astype(np.int64)
            if indices.size and (indices.min() < 0 or indices.max() >= length):
                raise IndexError(f"frame indices out of range for {length} frames")
        if indices.size == 0:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)
        unique, inverse = np.unique(indices, return_inverse=True)
        taken = self._take(unique)
        return taken if unique.size == indices.size and np.array_equal(unique, indices) else taken[inverse]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


# ----------------------------------------------------------------------------------------------------------------
# HDF5
# ----------------------------------------------------------------------------------------------------------------

_HANDLES: dict[tuple[int, str], Any] = {}
_HANDLES_LOCK = threading.Lock()


def _hdf5_file(path: str) -> Any:
    """One read-only handle per (process, file): h5py handles must not cross a fork."""
    import h5py

    key = (os.getpid(), path)
    with _HANDLES_LOCK:
        handle = _HANDLES.get(key)
        if handle is None or not handle.id.valid:
            try:
                handle = h5py.File(path, "r")
            except OSError as error:
                raise DataError(f"cannot open {path} as HDF5 (truncated, corrupt or not HDF5): {error}") from error
            _HANDLES[key] = handle
        return handle


class HDF5Frames(LazyFrames):
    """``file[dataset]`` read per request (a contiguous run in one read)."""

    def __init__(self, path: str | os.PathLike[str], dataset: str, shape: Sequence[int], dtype: Any) -> None:
        self.path, self.dataset = str(path), dataset
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)

    def _take(self, indices: np.ndarray) -> np.ndarray:
        dataset = _hdf5_file(self.path)[self.dataset]
        first, last = int(indices[0]), int(indices[-1])
        try:
            if last - first + 1 == indices.size:
                return dataset[first : last + 1]
            return dataset[indices]  # sorted unique indices: h5py's fancy selection
        except (OSError, RuntimeError, KeyError) as error:
            raise DataError(f"cannot read {self.path}:{self.dataset} frames {first}..{last} ({error})") from error

    def __getstate__(self) -> dict[str, Any]:  # picklable for spawned DataLoader workers: no handle inside
        return dict(self.__dict__)


# ----------------------------------------------------------------------------------------------------------------
# Several cameras
# ----------------------------------------------------------------------------------------------------------------


class SideBySide(LazyFrames):
    """Cameras ``[L, H, W_k, C]`` as one ``[L, H, ΣW_k, C]`` image, read camera by camera."""

    def __init__(self, parts: Sequence[Any], names: Sequence[str]) -> None:
        first = tuple(parts[0].shape)
        for name, part in zip(names[1:], parts[1:]):
            shape = tuple(part.shape)
            if shape[0] != first[0] or shape[1] != first[1] or shape[3] != first[3]:
                raise DataError(
                    f"camera {name!r} has frames of shape {shape} but camera {names[0]!r} has {first}; cameras are "
                    f"placed side by side, so they need the same length, height and channels"
                )
        self.parts, self.names = list(parts), list(names)
        self.shape = (first[0], first[1], sum(int(p.shape[2]) for p in parts), first[3])
        self.dtype = np.dtype(parts[0].dtype)

    def _take(self, indices: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(part[indices]) for part in self.parts], axis=2)


# ----------------------------------------------------------------------------------------------------------------
# Video
# ----------------------------------------------------------------------------------------------------------------


class VideoChunkCache:
    """Decoded chunks of video files, least recently used evicted beyond ``max_bytes`` (per process)."""

    def __init__(self, max_bytes: int = 256 << 20, chunk_frames: int = 32) -> None:
        if max_bytes < 1 or chunk_frames < 1:
            raise DataError(f"VideoChunkCache needs max_bytes >= 1 and chunk_frames >= 1, got {max_bytes}, {chunk_frames}")
        self.max_bytes, self.chunk_frames = int(max_bytes), int(chunk_frames)
        self._chunks: OrderedDict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.bytes = 0
        self.decoded_chunks = 0  # misses, for benchmarks and tests

    def __getstate__(self) -> dict[str, Any]:  # a worker process starts with an empty cache
        state = dict(self.__dict__)
        state["_chunks"], state["bytes"] = OrderedDict(), 0
        return state

    def chunk(self, path: str, index: int, fps: float, shape: tuple[int, int, int], decode: Any) -> tuple[np.ndarray, np.ndarray]:
        key = (path, index)
        found = self._chunks.get(key)
        if found is not None:
            self._chunks.move_to_end(key)
            return found
        found = decode(path, index * self.chunk_frames / fps, (index + 1) * self.chunk_frames / fps, fps, shape)
        self.decoded_chunks += 1
        self._chunks[key] = found
        self.bytes += found[1].nbytes
        while self.bytes > self.max_bytes and len(self._chunks) > 1:
            _, (_, frames) = self._chunks.popitem(last=False)
            self.bytes -= frames.nbytes
        return found


def decode_span(path: str, start_s: float, end_s: float, fps: float, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(times, frames)`` of every frame of ``path`` whose time lies in ``[start_s - ½ frame, end_s - ½ frame)``,
    decoded from the key frame before ``start_s``; frames cropped to ``shape`` (H, W, C)."""
    import av

    from rvperceiver.data.lerobot.layout import _PIXEL_FORMATS

    height, width, channels = shape
    half = 0.5 / fps
    times: list[float] = []
    frames: list[np.ndarray] = []
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            if start_s > half:
                container.seek(int(max(start_s - half, 0.0) / stream.time_base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.time is None:
                    raise DataError(f"{path}: decoded a frame without a timestamp")
                if frame.time < start_s - half:
                    continue
                if frame.time >= end_s - half:
                    break
                image = frame.to_ndarray(format=_PIXEL_FORMATS[channels])
                image = image[:, :, None] if image.ndim == 2 else image
                frames.append(image[:height, :width])
                times.append(float(frame.time))
    except (av.FFmpegError, OSError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        if not frames:  # nothing decoded in the span: the caller names the episode that needed it
            return np.empty(0), np.empty((0, height, width, channels), np.uint8)
    if not frames:
        return np.empty(0), np.empty((0, height, width, channels), np.uint8)
    order = np.argsort(np.asarray(times), kind="stable")
    return np.asarray(times)[order], np.stack(frames)[order]


class VideoFrames(LazyFrames):
    """The frames of one episode in a video file: the frame nearest each of ``times`` (seconds in the file),
    within half a frame period, decoded chunk by chunk through ``cache``."""

    def __init__(
        self, path: str | os.PathLike[str], times: np.ndarray, shape: tuple[int, int, int], fps: float,
        episode: str, cache: VideoChunkCache,
    ) -> None:
        self.path, self.times = str(path), np.asarray(times, dtype=np.float64)
        self.fps, self.episode, self.cache = float(fps), episode, cache
        self.shape, self.dtype = (len(self.times), *shape), np.dtype(np.uint8)

    def _take(self, indices: np.ndarray) -> np.ndarray:
        wanted = self.times[indices]
        out = np.empty((len(indices), *self.shape[1:]), dtype=np.uint8)
        chunk_ids = np.floor(wanted * self.fps / self.cache.chunk_frames + 0.5 / self.cache.chunk_frames).astype(np.int64)
        for chunk_id in np.unique(chunk_ids):
            times, frames = self.cache.chunk(self.path, int(chunk_id), self.fps, self.shape[1:], decode_span)
            mask = chunk_ids == chunk_id
            out[mask] = self._match(times, frames, wanted[mask], indices[mask])
        return out

    def _match(self, times: np.ndarray, frames: np.ndarray, wanted: np.ndarray, steps: np.ndarray) -> np.ndarray:
        if times.size:
            nearest = np.abs(times[None, :] - wanted[:, None]).argmin(axis=1)
            missing = np.abs(times[nearest] - wanted) >= 0.5 / self.fps
        else:
            nearest, missing = np.zeros(len(wanted), np.int64), np.ones(len(wanted), bool)
        if missing.any():
            first = int(np.argmax(missing))
            raise DataError(
                f"{self.path}: no frame at {wanted[first]:.6f} s for {self.episode} step {int(steps[first])}: the video "
                f"is truncated or damaged there (nothing on disk was changed; re-encode or drop that episode)"
            )
        return frames[nearest]

    def last_frame_readable(self) -> bool:
        """Whether the episode's last frame decodes (a cheap check for a video cut short)."""
        try:
            self._take(np.array([len(self) - 1]))
            return True
        except DataError:
            return False
