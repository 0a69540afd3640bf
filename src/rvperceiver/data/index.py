"""Which windows of which episodes are samples, and which episodes are for training vs validation.

A sample is ``(episode, start)``: observation frames ``start .. start+t_obs-1`` and targets
``ee[start+t_obs .. start+t_obs+t_pred-1]``. Samples never cross an episode boundary, and splits are made by
episode, never by frame: neighbouring frames are nearly identical, so a frame-level split would leak the
validation set into training.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rvperceiver.errors import DataError, InputError

__all__ = ["SampleIndex", "split_episodes"]


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class SampleIndex:
    """All ``(episode, start)`` pairs as an int64 array ``pairs`` ``[M, 2]``, ordered by episode then start."""

    pairs: np.ndarray
    episode_lengths: tuple[int, ...]
    t_obs: int
    t_pred: int

    @classmethod
    def build(
        cls,
        episode_lengths: Sequence[int],
        t_obs: int,
        t_pred: int,
        names: Sequence[str] | None = None,
        skip_short: bool = False,
    ) -> SampleIndex:
        """Index every window of ``t_obs + t_pred`` consecutive steps inside one episode.

        An episode with fewer steps has no sample; that is a :class:`DataError` naming it and its length unless
        ``skip_short`` is set, in which case it is skipped with a warning. ``names`` only improve the messages.
        """
        t_obs = _positive_int(t_obs, "t_obs")
        t_pred = _positive_int(t_pred, "t_pred")
        lengths = [int(n) for n in episode_lengths]
        if names is not None and len(names) != len(lengths):
            raise InputError(f"names has {len(names)} entries but episode_lengths has {len(lengths)}")
        if not lengths:
            raise DataError("no episodes to index")
        if any(n < 0 for n in lengths):
            raise InputError(f"episode lengths must be non-negative, got {lengths}")
        window = t_obs + t_pred

        def label(i: int) -> str:
            return f"episode {i} ({names[i]!r})" if names is not None else f"episode {i}"

        short = [i for i, n in enumerate(lengths) if n < window]
        if short and not skip_short:
            i = short[0]
            raise DataError(
                f"{label(i)} has {lengths[i]} steps, fewer than t_obs + t_pred = {t_obs} + {t_pred} = {window}, "
                f"so it holds no sample ({len(short)} such episodes; pass skip_short=True to skip them)"
            )
        if short:
            warnings.warn(
                f"skipping {len(short)} episodes shorter than t_obs + t_pred = {window}: "
                + ", ".join(f"{label(i)} length {lengths[i]}" for i in short[:8])
                + (", ..." if len(short) > 8 else ""),
                stacklevel=2,
            )
        counts = np.array([max(n - window + 1, 0) for n in lengths], dtype=np.int64)
        if counts.sum() == 0:
            raise DataError(f"no episode is at least t_obs + t_pred = {window} steps long; there are no samples")
        episode_ids = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
        # start = position within the run of each episode's samples.
        run_starts = np.repeat(np.cumsum(counts) - counts, counts)
        starts = np.arange(int(counts.sum()), dtype=np.int64) - run_starts
        pairs = np.stack([episode_ids, starts], axis=1).reshape(-1, 2)
        pairs.setflags(write=False)
        return cls(pairs=pairs, episode_lengths=tuple(lengths), t_obs=t_obs, t_pred=t_pred)

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    def __getitem__(self, item: int) -> tuple[int, int]:
        episode, start = self.pairs[item]
        return int(episode), int(start)

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.pairs if dtype is None else self.pairs.astype(dtype)


def split_episodes(
    names: Sequence[str],
    valid_fraction: float,
    seed: int,
    splits: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[str], list[str]]:
    """Split episode names into ``(train, valid)``, both in the order of ``names``.

    When ``splits`` has both ``train`` and ``valid`` (robomimic masks, LeRobot splits) they are used as given,
    after checking that every name exists, that they are disjoint and non-empty; ``valid_fraction`` is then
    ignored. Otherwise a permutation seeded by ``seed`` puts ``round(valid_fraction * n)`` episodes (at least
    one, at most ``n - 1``) into validation. ``valid_fraction == 0`` gives an empty validation list.
    """
    names = [str(name) for name in names]
    if not names:
        raise DataError("no episodes to split")
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise DataError(f"duplicate episode names {duplicates}")
    if splits is not None and "train" in splits and "valid" in splits:
        return _given_splits(names, splits)
    if not isinstance(valid_fraction, (int, float)) or not 0.0 <= float(valid_fraction) < 1.0:
        raise InputError(f"valid_fraction must be in [0, 1), got {valid_fraction!r}")
    if valid_fraction == 0:
        return list(names), []
    if len(names) == 1:
        raise DataError(
            f"only one episode ({names[0]!r}): no validation split is possible; use valid_fraction=0 or more "
            f"episodes"
        )
    n_valid = min(max(int(round(valid_fraction * len(names))), 1), len(names) - 1)
    order = np.random.default_rng(seed).permutation(len(names))
    valid_positions = set(order[:n_valid].tolist())
    train = [name for i, name in enumerate(names) if i not in valid_positions]
    valid = [name for i, name in enumerate(names) if i in valid_positions]
    return train, valid


def _given_splits(names: list[str], splits: Mapping[str, Sequence[str]]) -> tuple[list[str], list[str]]:
    known = set(names)
    chosen: dict[str, set[str]] = {}
    for split_name in ("train", "valid"):
        members = [str(name) for name in splits[split_name]]
        unknown = sorted(set(members) - known)
        if unknown:
            raise DataError(f"split {split_name!r} names episodes that do not exist: {unknown[:8]}")
        if not members:
            raise DataError(f"split {split_name!r} is empty")
        chosen[split_name] = set(members)
    overlap = sorted(chosen["train"] & chosen["valid"])
    if overlap:
        raise DataError(f"splits 'train' and 'valid' share episodes {overlap[:8]}; they must be disjoint")
    return [n for n in names if n in chosen["train"]], [n for n in names if n in chosen["valid"]]
