"""From a dataset path to train/validation window datasets: the one place that joins reader, split and index.

The CLI, the trainer's callers and the simulator's evaluation all cut a dataset the same way through
:func:`load_windows`, so an evaluation of a checkpoint sees exactly the validation episodes its training run
held out (the split is a function of the episode names, ``valid_fraction`` and ``split_seed``, or the
dataset's own masks when it has them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rvperceiver.data.episodes import EpisodeSet
from rvperceiver.data.formats import open_episodes
from rvperceiver.data.index import split_episodes
from rvperceiver.data.windows import WindowDataset
from rvperceiver.errors import DataError

__all__ = ["WindowSplit", "load_windows", "windows_for_split"]

SPLITS = ("train", "valid")


@dataclass
class WindowSplit:
    """Train and validation windows of one dataset, with the episode names that went to each side."""

    source: str
    train: WindowDataset
    valid: WindowDataset | None
    train_episodes: list[str]
    valid_episodes: list[str]
    episodes: EpisodeSet = field(repr=False)

    def split_record(self) -> dict[str, object]:
        """The split as plain JSON, for the run directory: which episode went where."""
        return {"source": self.source, "train": self.train_episodes, "valid": self.valid_episodes}


def load_windows(
    path: str | os.PathLike[str],
    *,
    image_key: str | None = None,
    ee_key: str | None = None,
    t_obs: int = 2,
    t_pred: int = 8,
    valid_fraction: float = 0.1,
    split_seed: int = 0,
    state_keys: tuple[str, ...] | list[str] = (),
) -> WindowSplit:
    """Open ``path`` (robomimic ``.hdf5`` or LeRobot v3 directory), split by episode, and index windows.

    ``state_keys`` names low-dim observations (robomimic ``obs/<key>``, LeRobot features such as
    ``observation.state``) that every sample then carries beside its frames (see :class:`WindowDataset`).

    Raises :class:`DataError` when a side of the split would hold no sample (e.g. every validation episode is
    shorter than ``t_obs + t_pred``), naming the side and the episodes.
    """
    episodes = open_episodes(path, image_key=image_key, ee_key=ee_key)
    try:
        train_names, valid_names = split_episodes(episodes.names, valid_fraction, split_seed, splits=episodes.splits)
    except DataError as error:
        raise DataError(f"{episodes.source}: {error}") from None
    train = _windows(episodes, train_names, "training", t_obs, t_pred, state_keys)
    valid = _windows(episodes, valid_names, "validation", t_obs, t_pred, state_keys) if valid_names else None
    if len(train) == 0:
        raise DataError(f"{episodes.source}: the training split ({len(train_names)} episodes) holds no sample")
    return WindowSplit(episodes.source, train, valid, train_names, valid_names, episodes)


def _windows(
    episodes: EpisodeSet, names: list[str], side: str, t_obs: int, t_pred: int, state_keys: tuple[str, ...] | list[str]
) -> WindowDataset:
    """The windows of one side of the split; an error says which file and which side it is about."""
    try:
        return WindowDataset(episodes.select(names), t_obs, t_pred, state_keys=tuple(state_keys))
    except DataError as error:
        raise DataError(f"{episodes.source}, {side} split: {error}") from None


def windows_for_split(windows: WindowSplit, which: str) -> WindowDataset:
    """The windows of one side of the split, ``train`` or ``valid``."""
    if which not in SPLITS:
        raise DataError(f"split must be one of {list(SPLITS)}, got {which!r}")
    if which == "train":
        return windows.train
    if windows.valid is None:
        raise DataError(f"{windows.source}: there is no validation split (valid_fraction was 0)")
    return windows.valid
