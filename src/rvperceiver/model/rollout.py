"""Running a chunk-predicting policy one step at a time: observation history, chunk queue, receding horizon.

A policy here predicts ``t_pred`` future setpoints from the last ``t_obs`` observations. An environment loop wants
one setpoint per step, so something must keep the last ``t_obs`` observations (padding the start of an episode by
repeating its first observation, as the training windows never need to), decide when to predict a new chunk and
hand out its entries. :class:`ChunkRollout` is that state, for any ``predict_chunk`` function; ``Policy`` owns one
(``reset`` / ``select_action``), and the simulator's evaluation wraps its reference predictors in one, so every
agent is scored by the same loop.

Two ways to use the chunks, as in LeRobot's ACT:

- **receding horizon** (``n_action_steps = k``): predict, execute the first ``k`` setpoints, predict again;
- **temporal ensembling** (``temporal_ensemble_coeff = m``): predict every step and return, for the current step,
  the average of every chunk that covers it, the ``i``-th oldest weighted ``exp(-m·i)`` (ACT's weighting).

``setpoint="chunk_end"`` instead holds the chunk's *last* entry for the ``k`` steps: with a position controller
that lags its goal, heading for where the policy says the arm is going beats heading for the next waypoint.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from rvperceiver.config_schema import check_fields, require
from rvperceiver.errors import ConfigError, InputError
from rvperceiver.observation import IMAGE, OBSERVATION_KEYS, STATE

__all__ = ["SETPOINTS", "ChunkRollout", "RolloutConfig"]

SETPOINTS = ("next", "chunk_end")
ChunkFn = Callable[[dict[str, torch.Tensor] | None], Any]
"""A batch ``{observation.image: [B, t_obs, H, W, C], observation.state: [B, t_obs, S]}`` (or None for an agent
that needs no observation) -> chunk ``[B, t_pred, D]``."""


@dataclass
class RolloutConfig:
    """How a policy's chunks become one setpoint per step (see the module docstring).

    ``n_action_steps`` None = the whole chunk before predicting again (LeRobot's default); it must be in
    1..t_pred. ``temporal_ensemble_coeff`` None = no ensembling; set, it needs ``n_action_steps`` 1 (or None) and
    ``setpoint="next"``.
    """

    n_action_steps: int | None = None
    temporal_ensemble_coeff: float | None = None
    setpoint: Literal["next", "chunk_end"] = "next"

    def __post_init__(self) -> None:
        check_fields(self, "rollout")
        steps = self.n_action_steps
        require(steps is None or steps >= 1, "rollout.n_action_steps", "None or a positive integer", steps)
        coeff = self.temporal_ensemble_coeff
        if coeff is not None:
            require(math.isfinite(coeff), "rollout.temporal_ensemble_coeff", "None or a finite number", coeff)
            if steps not in (None, 1) or self.setpoint != "next":
                raise ConfigError(
                    "rollout.temporal_ensemble_coeff predicts every step, so it needs n_action_steps 1 (or None) "
                    f"and setpoint 'next'; got n_action_steps {steps!r}, setpoint {self.setpoint!r}"
                )

    def steps_per_chunk(self, t_pred: int) -> int:
        """How many steps one chunk serves before the next prediction."""
        if self.temporal_ensemble_coeff is not None:
            return 1
        steps = t_pred if self.n_action_steps is None else self.n_action_steps
        if steps > t_pred:
            raise ConfigError(f"rollout.n_action_steps is {steps} but the policy predicts only t_pred = {t_pred} steps")
        return steps


def _as_tensor(value: Any, key: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray) or np.isscalar(value) or isinstance(value, (list, tuple)):
        return torch.from_numpy(np.array(value))  # a copy: an env may reuse its observation buffer
    raise InputError(f"observation {key!r} must be an array or a tensor, got {type(value).__name__}")


class ChunkRollout:
    """``reset()`` at an episode start, then ``select_action(observation)`` once per step -> the next setpoint.

    ``observation`` is a mapping with ``observation.image`` (uint8 ``[H, W, C]``, or ``[B, H, W, C]`` for ``B``
    environments at once) and, for a policy trained with low-dim observations, ``observation.state`` (``[S]`` or
    ``[B, S]``); a bare frame stands for ``{observation.image: frame}``; None is for an agent that needs no
    observation. The setpoint is ``[D]`` (``[B, D]`` for batched observations), as ``predict_chunk`` made it.
    """

    def __init__(self, predict_chunk: ChunkFn, t_obs: int, t_pred: int, config: RolloutConfig | None = None) -> None:
        self.predict_chunk = predict_chunk
        self.t_obs, self.t_pred = int(t_obs), int(t_pred)
        self.config = config if config is not None else RolloutConfig()
        self.steps_per_chunk = self.config.steps_per_chunk(self.t_pred)
        self.reset()

    def reset(self) -> None:
        """Forget the episode: observation history, queued setpoints and the chunks being ensembled."""
        self._history: deque[dict[str, torch.Tensor] | None] = deque(maxlen=self.t_obs)
        self._queue: deque[Any] = deque()
        self._chunks: deque[tuple[int, Any]] = deque()  # (step predicted at, chunk) for temporal ensembling
        self._batched: bool | None = None
        self.step = 0

    def _observe(self, observation: Any) -> None:
        if observation is None:
            entry = None
        else:
            if not isinstance(observation, Mapping):
                observation = {IMAGE: observation}
            unknown = sorted(str(k) for k in observation if k not in OBSERVATION_KEYS)
            if unknown or IMAGE not in observation:
                raise InputError(
                    f"select_action: observation keys {sorted(map(str, observation))}; expected {IMAGE!r}"
                    f" (and {STATE!r} for a policy with low-dim observations)"
                )
            entry = {key: _as_tensor(value, key) for key, value in observation.items()}
            image = entry[IMAGE]
            if image.dim() not in (3, 4):
                raise InputError(
                    f"select_action: {IMAGE!r} must be one frame [H, W, C] or a batch [B, H, W, C], got shape "
                    f"{tuple(image.shape)}"
                )
            batched = image.dim() == 4
            if self._batched is not None and batched != self._batched:
                raise InputError("select_action: observations switched between batched and unbatched mid-episode")
            self._batched = batched
            if not batched:
                entry = {key: value.unsqueeze(0) for key, value in entry.items()}
        if not self._history:
            self._history.extend([entry] * self.t_obs)  # pad the episode start with its first observation
        else:
            self._history.append(entry)

    def _history_batch(self) -> dict[str, torch.Tensor] | None:
        if self._history[-1] is None:
            return None
        return {key: torch.stack([entry[key] for entry in self._history], dim=1) for key in self._history[-1]}

    def _predict(self) -> Any:
        chunk = self.predict_chunk(self._history_batch())
        if chunk.ndim != 3 or chunk.shape[1] != self.t_pred:
            raise InputError(f"predict_chunk must return [B, t_pred={self.t_pred}, D], got shape {tuple(chunk.shape)}")
        return chunk

    def select_action(self, observation: Any) -> Any:
        """Record ``observation`` and return the setpoint for this step (predicting a new chunk when due)."""
        self._observe(observation)
        if self.config.temporal_ensemble_coeff is not None:
            action = self._ensembled(self._predict())
        else:
            if not self._queue:
                chunk = self._predict()
                if self.config.setpoint == "next":
                    self._queue.extend(chunk[:, k] for k in range(self.steps_per_chunk))
                else:
                    self._queue.extend([chunk[:, -1]] * self.steps_per_chunk)
            action = self._queue.popleft()
        self.step += 1
        return action[0] if self._batched is False else action

    def _ensembled(self, chunk: Any) -> Any:
        self._chunks.append((self.step, chunk))
        while self.step - self._chunks[0][0] >= self.t_pred:  # chunks that no longer cover this step
            self._chunks.popleft()
        coeff = float(self.config.temporal_ensemble_coeff)  # type: ignore[arg-type]
        total, weight_sum = None, 0.0
        for age_rank, (start, old) in enumerate(self._chunks):  # oldest first: i = 0 gets exp(0) = 1
            weight = math.exp(-coeff * age_rank)
            term = old[:, self.step - start] * weight
            total = term if total is None else total + term
            weight_sum += weight
        return total / weight_sum
