"""In-memory episodes: the one shape every reader produces and every consumer (index, windows, writers) takes.

An episode is a camera image sequence plus the end-effector trajectory recorded alongside it. Readers for the
on-disk formats (robomimic HDF5, LeRobot v3) and the simulator all produce :class:`Episode` objects, so the
sample index and the window dataset never need to know where the data came from.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rvperceiver.data.lazy import LazyFrames
from rvperceiver.errors import DataError

__all__ = ["Episode", "EpisodeSet", "validate_episode", "check_consistent"]


@dataclass
class Episode:
    """One demonstration.

    ``frames`` is uint8 ``[L, H, W, C]`` (channels last): a numpy array, or for a streaming read a
    :class:`~rvperceiver.data.lazy.LazyFrames` that reads only the rows asked for; ``ee`` is float32 ``[L, D]``
    (the target per frame: an end-effector position, an action, ...), and ``extras`` holds any other per-step arrays the source had (actions, joint state, rewards, ...),
    each with ``L`` rows.
    """

    name: str
    frames: np.ndarray
    ee: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.frames.shape[0])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.frames.shape[1:])

    @property
    def ee_dim(self) -> int:
        return int(self.ee.shape[1])


@dataclass
class EpisodeSet:
    """The episodes of one dataset plus where they came from.

    ``splits`` maps a split name (``train``, ``valid``, ...) to episode names; it comes from robomimic's
    ``mask/*`` or LeRobot's ``splits`` and may be empty. ``meta`` holds format-specific facts (format name,
    ``env_args``, fps, ...).
    """

    episodes: list[Episode]
    source: str
    image_key: str
    ee_key: str
    splits: dict[str, list[str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    image_keys: tuple[str, ...] = ()  # every camera, in order; ``image_key`` joins them with "+"

    def __post_init__(self) -> None:
        if not self.image_keys:
            self.image_keys = (self.image_key,)

    @property
    def target_key(self) -> str:
        """The key the targets were read from (``ee_key`` is its older name)."""
        return self.ee_key

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self) -> Iterator[Episode]:
        return iter(self.episodes)

    def __getitem__(self, index: int) -> Episode:
        return self.episodes[index]

    @property
    def names(self) -> list[str]:
        return [episode.name for episode in self.episodes]

    @property
    def lengths(self) -> list[int]:
        return [episode.length for episode in self.episodes]

    def select(self, names: Sequence[str]) -> list[Episode]:
        """The episodes called ``names``, in that order; an unknown name is a :class:`DataError`."""
        by_name = {episode.name: episode for episode in self.episodes}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise DataError(
                f"{self.source}: episodes {unknown} are not in the dataset; it has {len(by_name)} episodes "
                f"({_preview(list(by_name))})"
            )
        return [by_name[name] for name in names]


def _preview(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (", ..." if len(names) > limit else "")


def validate_episode(
    episode: Episode, source: str = "<memory>", image_key: str = "frames", ee_key: str = "ee"
) -> None:
    """Raise :class:`DataError` unless ``episode`` has the shapes and dtypes every consumer relies on.

    Frames must be uint8 ``[L, H, W, C]`` with ``C`` in 1..4 (anything else is almost always a mistaken key or
    a channels-first layout, which would silently train on garbage); ``ee`` must be a finite 2-D real array
    with one row per frame. Messages name the file (``source``), the episode and the key.
    """
    where = f"{source}: episode {episode.name!r}"
    frames = episode.frames
    if not isinstance(frames, (np.ndarray, LazyFrames)) or frames.dtype != np.uint8 or frames.ndim != 4:
        shape = getattr(frames, "shape", None)
        dtype = getattr(frames, "dtype", type(frames).__name__)
        raise DataError(
            f"{where}, image key {image_key!r}: expected uint8 frames of shape [L, H, W, C], "
            f"got dtype {dtype} with shape {shape}"
        )
    if not 1 <= frames.shape[3] <= 4:
        raise DataError(
            f"{where}, image key {image_key!r}: expected channels-last frames [L, H, W, C] with C in 1..4, "
            f"got shape {tuple(frames.shape)} (channels-first data must be transposed)"
        )
    if frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise DataError(f"{where}, image key {image_key!r}: empty frames of shape {tuple(frames.shape)}")
    ee = episode.ee
    if not isinstance(ee, np.ndarray) or ee.ndim != 2 or not np.issubdtype(ee.dtype, np.number):
        shape = getattr(ee, "shape", None)
        dtype = getattr(ee, "dtype", type(ee).__name__)
        raise DataError(
            f"{where}, target key {ee_key!r}: expected a real array of shape [L, D], got dtype {dtype} with "
            f"shape {shape}"
        )
    if np.iscomplexobj(ee):
        raise DataError(f"{where}, target key {ee_key!r}: expected real values, got dtype {ee.dtype}")
    if ee.shape[0] != frames.shape[0]:
        raise DataError(
            f"{where}: {frames.shape[0]} frames under {image_key!r} but {ee.shape[0]} rows under {ee_key!r}; "
            f"both must have one row per time step"
        )
    if ee.shape[1] == 0:
        raise DataError(f"{where}, target key {ee_key!r}: zero-width target array {tuple(ee.shape)}")
    if not np.all(np.isfinite(ee)):
        bad = np.argwhere(~np.isfinite(ee))[0]
        raise DataError(
            f"{where}, target key {ee_key!r}: contains NaN/Inf (first at step {int(bad[0])}, dim {int(bad[1])})"
        )
    for key, value in episode.extras.items():
        if not isinstance(value, np.ndarray) or value.ndim == 0 or value.shape[0] != frames.shape[0]:
            shape = getattr(value, "shape", None)
            raise DataError(
                f"{where}, extra key {key!r}: expected an array with {frames.shape[0]} rows (one per step), "
                f"got shape {shape}"
            )


def check_consistent(episodes: Sequence[Episode], source: str = "<memory>", ee_key: str = "ee") -> None:
    """Raise :class:`DataError` if the episodes disagree on the end-effector width (or there are none)."""
    if not episodes:
        raise DataError(f"{source}: no episodes")
    names = [episode.name for episode in episodes]
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise DataError(f"{source}: duplicate episode names {duplicates}")
    first = episodes[0]
    for episode in episodes[1:]:
        if episode.ee.shape[1] != first.ee.shape[1]:
            raise DataError(
                f"{source}, target key {ee_key!r}: episode {episode.name!r} has width {episode.ee.shape[1]} but "
                f"episode {first.name!r} has width {first.ee.shape[1]}; all episodes must agree"
            )
