"""The names under which observations travel from the data to the policy (LeRobot's naming).

A batch, and an observation given to ``Policy.select_action``, is a mapping with

- ``observation.image``: uint8 frames ``[..., H, W, C]`` (channels last). A dataset with several cameras gives
  them side by side along the width, in the order the config names them (:func:`combine_cameras`);
- ``observation.state``: float32 low-dimensional observations ``[..., S]`` (joint angles, velocities, ...), the
  configured low-dim keys concatenated along the last axis in the order named (:func:`combine_state`).

A bare frames tensor stands for ``{observation.image: frames}``, so image-only code keeps working unchanged.
This module imports neither the data code nor the model, so both can use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rvperceiver.errors import InputError

__all__ = ["IMAGE", "STATE", "OBSERVATION_KEYS", "combine_cameras", "combine_state", "split_observation"]

IMAGE = "observation.image"
STATE = "observation.state"
OBSERVATION_KEYS = (IMAGE, STATE)


def _concatenate(parts: Sequence[Any], axis: int) -> Any:
    if all(isinstance(p, torch.Tensor) for p in parts):
        return torch.cat(list(parts), dim=axis)
    return np.concatenate([np.asarray(p) for p in parts], axis=axis)


def combine_cameras(frames: Sequence[Any], names: Sequence[str]) -> Any:
    """Several cameras' frames ``[..., H, W, C]`` as one image, side by side along the width (one camera: itself).

    Side by side keeps the time axis meaning time for every view and backbone; the cameras must share H and C.
    """
    if len(frames) == 1:
        return frames[0]
    first = tuple(frames[0].shape)
    for name, item in zip(names[1:], frames[1:]):
        shape = tuple(item.shape)
        if len(shape) != len(first) or shape[:-2] != first[:-2] or shape[-1] != first[-1]:
            raise InputError(
                f"camera {name!r} has frames of shape {shape} but camera {names[0]!r} has {first}; cameras are "
                f"placed side by side, so they need the same leading dims, height and channels"
            )
    return _concatenate(frames, axis=-2)


def combine_state(values: Sequence[Any]) -> Any:
    """Low-dim observations ``[..., S_k]`` concatenated along the last axis, in the order given."""
    return values[0] if len(values) == 1 else _concatenate(values, axis=-1)


def split_observation(batch: Any) -> tuple[Any, Any | None]:
    """``(image, state or None)`` of a batch given as a mapping or as a bare frames tensor."""
    if isinstance(batch, Mapping):
        if IMAGE not in batch:
            raise InputError(
                f"observation has no {IMAGE!r} entry; keys given: {sorted(map(str, batch))} (expected "
                f"{list(OBSERVATION_KEYS)})"
            )
        return batch[IMAGE], batch.get(STATE)
    return batch, None
