"""From a dataset path to train/validation window datasets: the one place that joins reader, split and index.

The CLI, the trainer's callers and the simulator's evaluation all cut a dataset the same way through
:func:`load_windows`, so an evaluation of a checkpoint sees exactly the validation episodes its training run
held out (the split is a function of the episode names, ``valid_fraction`` and ``split_seed``, or the
dataset's own masks when it has them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
    decided_by: str = "valid_fraction"
    """What chose the validation episodes: ``valid_episodes`` (named by the user), ``file`` (the dataset's own
    train/valid masks or splits) or ``valid_fraction`` (a seeded draw), in that order of precedence."""

    def split_record(self) -> dict[str, object]:
        """The split as plain JSON, for the run directory: which episode went where."""
        return {
            "source": self.source,
            "decided_by": self.decided_by,
            "train": self.train_episodes,
            "valid": self.valid_episodes,
        }

    def describe(self) -> str:
        """One line saying how many episodes went where and what decided it."""
        why = {
            "valid_episodes": "named by data.valid_episodes",
            "file": "the file's own train/valid split (it wins over data.valid_fraction)",
            "valid_fraction": "a seeded draw (data.valid_fraction, data.split_seed)",
        }[self.decided_by]
        return (
            f"split: {len(self.train_episodes)} training / {len(self.valid_episodes)} validation episodes, {why}"
        )


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
    valid_episodes: Sequence[int | str] | None = None,
    image_keys: tuple[str, ...] | list[str] | None = None,
    target_key: str | None = None,
    streaming: bool = False,
    video_cache_bytes: int = 256 << 20,
) -> WindowSplit:
    """Open ``path`` (robomimic ``.hdf5`` or LeRobot v3 directory), split by episode, and index windows.

    ``image_keys`` / ``target_key`` / ``streaming``: see :func:`open_episodes`. ``state_keys`` names low-dim
    observations (robomimic ``obs/<key>``, LeRobot features such as
    ``observation.state``) that every sample then carries beside its frames (see :class:`WindowDataset`).

    Which episodes validate, in order of precedence: ``valid_episodes`` (episode names, or 0-based positions in
    the dataset's episode order, which a LeRobot copy of a robomimic file keeps, so the same positions split
    both alike); else the dataset's own train/valid masks or splits; else ``valid_fraction`` of the episodes
    drawn with ``split_seed``. Raises :class:`DataError` when a side of the split would hold no sample (e.g.
    every validation episode is shorter than ``t_obs + t_pred``), naming the side and the episodes.
    """
    episodes = open_episodes(
        path, image_key=image_key, ee_key=ee_key, image_keys=image_keys, target_key=target_key, streaming=streaming,
        video_cache_bytes=video_cache_bytes,
    )
    splits = episodes.splits
    decided_by = "file" if splits and "train" in splits and "valid" in splits else "valid_fraction"
    if valid_episodes is not None:
        chosen = _named_episodes(episodes, valid_episodes)
        splits = {"train": [n for n in episodes.names if n not in chosen], "valid": sorted(chosen, key=episodes.names.index)}
        decided_by = "valid_episodes"
    try:
        train_names, valid_names = split_episodes(episodes.names, valid_fraction, split_seed, splits=splits)
    except DataError as error:
        raise DataError(f"{episodes.source}: {error}") from None
    train = _windows(episodes, train_names, "training", t_obs, t_pred, state_keys)
    valid = _windows(episodes, valid_names, "validation", t_obs, t_pred, state_keys) if valid_names else None
    if len(train) == 0:
        raise DataError(f"{episodes.source}: the training split ({len(train_names)} episodes) holds no sample")
    return WindowSplit(episodes.source, train, valid, train_names, valid_names, episodes, decided_by)


def _named_episodes(episodes: EpisodeSet, wanted: Sequence[int | str]) -> set[str]:
    """Episode names from a list of names and/or 0-based positions; unknown ones fail naming what exists."""
    names = list(episodes.names)
    chosen: set[str] = set()
    for item in wanted:
        if isinstance(item, int) and not isinstance(item, bool):
            if not 0 <= item < len(names):
                raise DataError(
                    f"{episodes.source}: data.valid_episodes position {item} is outside 0..{len(names) - 1}"
                )
            chosen.add(names[item])
        elif str(item) in names:
            chosen.add(str(item))
        else:
            raise DataError(
                f"{episodes.source}: data.valid_episodes names {item!r}, which is not an episode here "
                f"(episodes are {names[0]!r} … {names[-1]!r}; positions 0..{len(names) - 1} work in every format)"
            )
    if not chosen or len(chosen) == len(names):
        raise DataError(
            f"{episodes.source}: data.valid_episodes must leave at least one episode on each side of the split "
            f"({len(chosen)} of {len(names)} named)"
        )
    return chosen


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
