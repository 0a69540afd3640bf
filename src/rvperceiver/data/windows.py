"""Windows of episodes as a torch Dataset: ``t_obs`` frames in, the next ``t_pred`` end-effector positions out.

With low-dim observation keys (``state_keys``) the input of a sample is the mapping of ``rvperceiver.observation``
(``observation.image`` frames and ``observation.state``, the named per-step arrays concatenated) instead of the
bare frames tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from rvperceiver.data.episodes import Episode, EpisodeSet, check_consistent, validate_episode
from rvperceiver.data.index import SampleIndex
from rvperceiver.errors import DataError
from rvperceiver.observation import IMAGE, STATE, combine_state

__all__ = ["WindowDataset"]


class WindowDataset(Dataset):
    """Sample ``i`` is ``(frames, target)`` for the ``i``-th ``(episode, start)`` of a :class:`SampleIndex`.

    ``frames`` is a uint8 tensor ``[t_obs, H, W, C]`` = ``episode.frames[start : start + t_obs]`` and ``target``
    a float32 tensor ``[t_pred, D]`` = ``episode.ee[start + t_obs : start + t_obs + t_pred]``: the positions
    *after* the last observed frame. Both are copies, so a consumer that edits them in place cannot corrupt the
    episodes. All episodes must share one frame shape and one end-effector width. ``state_keys`` names per-step
    arrays of ``episode.extras`` (low-dim observations such as joint angles); then the input is
    ``{observation.image: frames, observation.state: float32 [t_obs, S]}`` for the same steps as the frames.
    """

    def __init__(
        self,
        episodes: Sequence[Episode] | EpisodeSet,
        t_obs: int,
        t_pred: int,
        skip_short: bool = False,
        state_keys: Sequence[str] = (),
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
        self.state_keys = tuple(state_keys)
        self._state = [_state_array(e, self.state_keys, source) for e in self.episodes] if self.state_keys else None
        if self._state is not None:
            widths = {s.shape[1] for s in self._state}
            if len(widths) != 1:
                raise DataError(
                    f"{source}: low-dim observations {list(self.state_keys)} have widths {sorted(widths)} in "
                    f"different episodes; all episodes must agree"
                )

    @property
    def frame_shape(self) -> tuple[int, int, int, int]:
        """Shape of one sample's frames, ``(t_obs, H, W, C)``."""
        return (self.t_obs, *self.episodes[0].frame_shape)  # type: ignore[return-value]

    @property
    def target_shape(self) -> tuple[int, int]:
        """Shape of one sample's target, ``(t_pred, D)``."""
        return (self.t_pred, self.episodes[0].ee_dim)

    @property
    def state_shape(self) -> tuple[int, int] | None:
        """Shape of one sample's low-dim observations, ``(t_obs, S)``, or None without ``state_keys``."""
        return None if self._state is None else (self.t_obs, int(self._state[0].shape[1]))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[torch.Tensor | dict[str, torch.Tensor], torch.Tensor]:
        size = len(self.index)
        if not -size <= int(item) < size:
            raise IndexError(f"sample {item} out of range for a dataset of {size} samples")
        episode_id, start = self.index[int(item)]
        frames = self.episodes[episode_id].frames[start : start + self.t_obs]
        first_target = start + self.t_obs
        target = self._ee[episode_id][first_target : first_target + self.t_pred]
        observation = torch.from_numpy(frames.copy())
        if self._state is not None:
            state = self._state[episode_id][start : start + self.t_obs]
            return {IMAGE: observation, STATE: torch.from_numpy(state.copy())}, torch.from_numpy(target.copy())
        return observation, torch.from_numpy(target.copy())

    def targets_array(self) -> np.ndarray:
        """Every sample's target, float32 ``[M, t_pred, D]`` in sample order, without touching any frame."""
        return self._gather(self._ee, self.t_obs, self.t_pred)

    def states_array(self) -> np.ndarray | None:
        """Every sample's low-dim observations, float32 ``[M, t_obs, S]`` in sample order (None without
        ``state_keys``), without touching any frame."""
        return None if self._state is None else self._gather(self._state, 0, self.t_obs)

    def _gather(self, per_episode: list[np.ndarray], offset: int, length: int) -> np.ndarray:
        """Rows ``start + offset … start + offset + length - 1`` of every sample's episode, as one gather over the
        concatenated episodes (row of (episode, step) = episode offset + step)."""
        pairs = self.index.pairs
        episode_offsets = np.cumsum([0] + [len(a) for a in per_episode[:-1]])
        first_rows = episode_offsets[pairs[:, 0]] + pairs[:, 1] + offset
        rows = first_rows[:, None] + np.arange(length, dtype=np.int64)[None, :]
        return np.concatenate(per_episode, axis=0)[rows]


def _state_array(episode: Episode, keys: Sequence[str], source: str) -> np.ndarray:
    """The named per-step arrays of ``episode.extras`` as float32 ``[L, S]`` (1-D ones count as one column)."""
    source = "" if source == "<episodes>" else f"{source}: "  # load_windows prefixes the file and the split
    columns = []
    for key in keys:
        if key not in episode.extras:
            raise DataError(
                f"{source}low-dim observation key {key!r} not found in episode {episode.name!r}; per-step keys "
                f"present: {sorted(episode.extras)}"
            )
        value = np.asarray(episode.extras[key])
        if value.ndim == 1:
            value = value[:, None]
        if value.ndim != 2 or not np.issubdtype(value.dtype, np.number) or np.iscomplexobj(value):
            raise DataError(
                f"{source}episode {episode.name!r}, low-dim observation key {key!r}: expected a real array of "
                f"shape [L, S], got dtype {value.dtype} with shape {tuple(value.shape)}"
            )
        if not np.all(np.isfinite(value)):
            bad = np.argwhere(~np.isfinite(value))[0]
            raise DataError(
                f"{source}episode {episode.name!r}, low-dim observation key {key!r}: contains NaN/Inf (first at "
                f"step {int(bad[0])}, dim {int(bad[1])})"
            )
        columns.append(value.astype(np.float32))
    return np.ascontiguousarray(combine_state(columns))
