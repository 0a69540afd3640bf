"""rvperceiver.model: Perceiver IO (attention, position features, encoder/decoder), the CNN baseline, the policy.

`PerceiverIO` and `SpatialSoftmaxCNN` map tokens `[B, N, c]` (from an `InputView`) to `[B, T_pred, D]`;
`Policy` joins a view, one of them and a target normaliser into the module that is trained and saved, and steps
in an environment loop through `reset` / `select_action` (`rollout.py`).
"""

from __future__ import annotations

from rvperceiver.model.cnn import SpatialSoftmax, SpatialSoftmaxCNN
from rvperceiver.model.config import KV_NORM_KINDS, POSITION_KINDS, CNNConfig, PerceiverConfig
from rvperceiver.model.perceiver import InputKeyValues, PerceiverDecoder, PerceiverEncoder, PerceiverIO
from rvperceiver.model.policy import BACKBONES, Policy, PolicyConfig, build_policy
from rvperceiver.model.position import PositionFeatures, fourier_features, grid_positions
from rvperceiver.model.rollout import ChunkRollout, RolloutConfig

__all__ = [
    "BACKBONES",
    "KV_NORM_KINDS",
    "POSITION_KINDS",
    "CNNConfig",
    "ChunkRollout",
    "InputKeyValues",
    "PerceiverConfig",
    "PerceiverDecoder",
    "PerceiverEncoder",
    "PerceiverIO",
    "Policy",
    "PolicyConfig",
    "PositionFeatures",
    "RolloutConfig",
    "SpatialSoftmax",
    "SpatialSoftmaxCNN",
    "build_policy",
    "fourier_features",
    "grid_positions",
]
