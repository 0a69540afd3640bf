"""Windows of episodes as a torch Dataset: ``t_obs`` frames in, the next ``t_pred`` end-effector positions out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from rvperceiver.data.episodes import Episode, EpisodeSet, check_consistent, validate_episode
from rvperceiver.data.index import SampleIndex
from rvperceiver.errors import DataError

__all__ = ["WindowDataset"]


class WindowDataset(Dataset):
    """Sample ``i`` is ``(frames, target)`` for the ``i``-th ``(episode, start)`` of a :class:`SampleIndex`.

    ``frames`` is a uint8 tensor ``[t_obs, H, W, C]`` = ``episode.frames[start : start + t_obs]`` and ``target``
    a float32 tensor ``[t_pred, D]`` = ``episode.ee[start + t_obs : start + t_obs + t_pred]``: the positions
    *after* the last observed frame. Both are copies, so a consumer that edits them in place cannot corrupt the
    episodes. All episodes must share one frame shape and one end-effector width.
    """

    def __init__(
        self,
        episodes: Sequence[Episode] | EpisodeSet,
        t_obs: int,
        t_pred: int,
        skip_short: bool = False,
    ) -> None:
        source = episodes.source if isinstance(episodes, EpisodeSet) else "<episodes>"
        self.episodes: list[Episode] = list(episodes)
        check_consistent(self.episodes, source)
        for episode in self.episodes:
            validate_episode(episode, source)
        first = self.episodes[0]
        for episode in self.episodes[1:]:
            if episode.frame_shape != first.frame_shape:
                raise DataError(
                    f"{source}: episode {episode.name!r} has frames of shape {episode.frame_shape} (H, W, C) but "
                    f"episode {first.name!r} has {first.frame_shape}; one dataset needs one frame shape"
                )
        self.index = SampleIndex.build(
            [e.length for e in self.episodes], t_obs, t_pred, names=[e.name for e in self.episodes],
            skip_short=skip_short,
        )
        self.t_obs = self.index.t_obs
        self.t_pred = self.index.t_pred
        # float32 once here rather than per sample.
        self._ee = [np.ascontiguousarray(e.ee, dtype=np.float32) for e in self.episodes]

    @property
    def frame_shape(self) -> tuple[int, int, int, int]:
        """Shape of one sample's frames, ``(t_obs, H, W, C)``."""
        return (self.t_obs, *self.episodes[0].frame_shape)  # type: ignore[return-value]

    @property
    def target_shape(self) -> tuple[int, int]:
        """Shape of one sample's target, ``(t_pred, D)``."""
        return (self.t_pred, self.episodes[0].ee_dim)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        size = len(self.index)
        if not -size <= int(item) < size:
            raise IndexError(f"sample {item} out of range for a dataset of {size} samples")
        episode_id, start = self.index[int(item)]
        frames = self.episodes[episode_id].frames[start : start + self.t_obs]
        first_target = start + self.t_obs
        target = self._ee[episode_id][first_target : first_target + self.t_pred]
        return torch.from_numpy(frames.copy()), torch.from_numpy(target.copy())

    def targets_array(self) -> np.ndarray:
        """Every sample's target, float32 ``[M, t_pred, D]`` in sample order, without touching any frame."""
        pairs = self.index.pairs
        # One gather over the concatenated trajectories: row of (episode, step) = episode offset + step.
        episode_offsets = np.cumsum([0] + [len(ee) for ee in self._ee[:-1]])
        first_rows = episode_offsets[pairs[:, 0]] + pairs[:, 1] + self.t_obs
        rows = first_rows[:, None] + np.arange(self.t_pred, dtype=np.int64)[None, :]
        return np.concatenate(self._ee, axis=0)[rows]
