"""The behaviour-cloning policy: input view → backbone → target normaliser, as one module.

Everything a trained policy needs at inference lives in its state dict: the view's input statistics, the network
weights and the target statistics. So a checkpoint restores exactly the preprocessing it was trained with, and the
same view can front either backbone (Perceiver IO or the CNN baseline) for a like-for-like comparison.

Two surfaces: the batch one the trainer uses (``forward`` / ``predict`` / ``predict_chunk`` on
``[B, t_obs, H, W, C]`` frames or an observation mapping, see ``rvperceiver.observation``) and the per-step one an
environment loop uses (``reset`` / ``select_action``, LeRobot's names), which keeps the observation history and the
predicted chunk in a :class:`~rvperceiver.model.rollout.ChunkRollout` configured by ``PolicyConfig.rollout``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rvperceiver.config_schema import build, check_fields, require_choice, to_plain
from rvperceiver.errors import ConfigError, InputError
from rvperceiver.model.cnn import SpatialSoftmaxCNN
from rvperceiver.model.config import CNNConfig, PerceiverConfig
from rvperceiver.model.perceiver import PerceiverIO
from rvperceiver.model.rollout import ChunkRollout, RolloutConfig
from rvperceiver.observation import IMAGE, STATE, split_observation
from rvperceiver.views.target import TARGET_NORM_MODES, TargetNormalizer
from rvperceiver.views.view import InputView, ViewConfig

BACKBONES = ("perceiver", "cnn")


@dataclass
class PolicyConfig:
    """Which view, which backbone (with its config) and which target normalisation make up a policy.

    Only the config of the chosen backbone is used; both are kept so one file can switch between them with a
    single override. Their `output_steps`/`output_channels` are set from the data's target shape when a `Policy`
    is built (see `Policy`). `rollout` says how `select_action` turns chunks into one setpoint per step; it does
    not change the network, so it may be changed after training (`Policy.set_rollout`).
    """

    view: ViewConfig = field(default_factory=ViewConfig)
    backbone: str = "perceiver"
    perceiver: PerceiverConfig = field(default_factory=PerceiverConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    target_norm: str = "zscore"
    rollout: RolloutConfig = field(default_factory=RolloutConfig)

    def __post_init__(self) -> None:
        check_fields(self, "PolicyConfig")
        require_choice("PolicyConfig.backbone", self.backbone, BACKBONES)
        require_choice("PolicyConfig.target_norm", self.target_norm, TARGET_NORM_MODES)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (tuples become lists), for `config.json` in checkpoints."""
        return to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyConfig:
        """Inverse of `to_dict`. Missing keys take their defaults; an unknown key is a `ConfigError`."""
        return build(cls, data, "PolicyConfig")


def _check_target_shape(target_shape: Sequence[int]) -> tuple[int, int]:
    shape = tuple(target_shape)
    if len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in shape):
        raise InputError(f"Policy target_shape must be (T_pred, D) with positive integers, got {target_shape!r}")
    return shape  # type: ignore[return-value]


def _check_state_shape(state_shape: Sequence[int] | None) -> tuple[int, int] | None:
    if state_shape is None:
        return None
    shape = tuple(state_shape)
    if len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in shape):
        raise InputError(f"Policy state_shape must be (T_obs, S) with positive integers, got {state_shape!r}")
    return shape  # type: ignore[return-value]


class _Part:
    """Re-iterable view of the image or the state part of batches (tensors, mappings or (input, target) tuples)."""

    def __init__(self, batches: Iterable[Any], part: str) -> None:
        self.batches, self.part = batches, part

    def __iter__(self) -> Any:
        for item in self.batches:
            observation = item[0] if isinstance(item, (tuple, list)) else item
            image, state = split_observation(observation)
            yield image if self.part == IMAGE else state


class Policy(nn.Module):
    """`forward(x [B, *input_shape]) -> [B, T_pred, D]` normalised predictions; `predict` gives target units.

    The target shape `(T_pred, D)` comes from the data and is authoritative: the backbone configs' `output_steps`
    and `output_channels` are replaced by it, and `self.config` holds the config as actually built (this is what a
    checkpoint should store). `state_shape` `(T_obs, S)` declares low-dim observations (`observation.state`),
    z-scored by `state_norm` and handed to backbones that take them (a backbone class with `takes_state = True`
    is built with `state_shape=` and called as `backbone(tokens, state=[B, T_obs, S])`).
    """

    def __init__(
        self,
        config: PolicyConfig,
        input_shape: Sequence[int],
        target_shape: Sequence[int],
        state_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(config, PolicyConfig):
            raise ConfigError(f"Policy needs a PolicyConfig, got {type(config).__name__}")
        steps, dim = _check_target_shape(target_shape)
        config = dataclasses.replace(
            config,
            perceiver=dataclasses.replace(config.perceiver, output_steps=steps, output_channels=dim),
            cnn=dataclasses.replace(config.cnn, output_steps=steps, output_channels=dim),
        )
        self.config = config
        self.target_shape: tuple[int, int] = (steps, dim)
        self.state_shape: tuple[int, int] | None = _check_state_shape(state_shape)
        self.view = InputView(config.view, tuple(input_shape))
        self.input_shape: tuple[int, ...] = self.view.input_shape
        backbone_class = PerceiverIO if config.backbone == "perceiver" else SpatialSoftmaxCNN
        backbone_config = config.perceiver if config.backbone == "perceiver" else config.cnn
        self.backbone: nn.Module
        self.state_norm: TargetNormalizer | None = None
        if self.state_shape is None:
            self.backbone = backbone_class(backbone_config, self.view.out_channels, self.view.grid_shape)
        else:
            if not getattr(backbone_class, "takes_state", False):
                raise ConfigError(
                    f"backbone {config.backbone!r} does not take low-dim observations ({STATE!r}); train it on "
                    f"images only (no data.state_keys) or pick a backbone that does"
                )
            self.backbone = backbone_class(
                backbone_config, self.view.out_channels, self.view.grid_shape, state_shape=self.state_shape
            )
            self.state_norm = TargetNormalizer(self.state_shape[1], "zscore")
        self.target_norm = TargetNormalizer(dim, config.target_norm)
        self._rollout: ChunkRollout | None = None

    @property
    def is_fitted(self) -> bool:
        state_fitted = self.state_norm is None or self.state_norm.is_fitted
        return self.view.is_fitted and self.target_norm.is_fitted and state_fitted

    def _split(self, x: Any) -> tuple[Tensor, Tensor | None]:
        image, state = split_observation(x)
        if (state is None) != (self.state_shape is None):
            expected = f"{STATE!r} of shape [B, {self.state_shape[0]}, {self.state_shape[1]}]" if self.state_shape else "none"
            raise InputError(
                f"this policy takes {IMAGE!r} and low-dim observations: {expected}; the batch "
                + ("has none" if state is None else f"has {STATE!r} of shape {tuple(state.shape)}")
            )
        if state is not None and tuple(state.shape[1:]) != self.state_shape:
            raise InputError(
                f"{STATE!r} has shape {tuple(state.shape)}; this policy expects [B, {self.state_shape[0]}, "  # type: ignore[index]
                f"{self.state_shape[1]}]"  # type: ignore[index]
            )
        return image, state

    def forward(self, x: Any) -> Tensor:
        """Normalised predictions `[B, T_pred, D]` (what the training loss compares with normalised targets).

        `x` is frames `[B, *input_shape]` or a mapping with `observation.image` (and `observation.state`).
        """
        image, state = self._split(x)
        tokens = self.view(image)
        if state is None:
            return self.backbone(tokens)
        state_z = self.state_norm.normalize(state.float())  # type: ignore[union-attr]
        if self.config.view.clip is not None:  # bounded like every z-scored input (ViewConfig.clip)
            state_z = state_z.clamp(-self.config.view.clip, self.config.view.clip)
        return self.backbone(tokens, state=state_z)

    def predict(self, x: Any) -> Tensor:
        """Predictions in target units (metres for end-effector positions)."""
        return self.target_norm.denormalize(self.forward(x))

    @torch.no_grad()
    def predict_chunk(self, batch: Any) -> Tensor:
        """The predicted chunk `[B, T_pred, D]` in target units for a batch of observation windows (LeRobot's
        `predict_action_chunk`); the batch is moved to the policy's device, gradients are off."""
        device = next(self.parameters()).device
        if isinstance(batch, Mapping):
            batch = {key: torch.as_tensor(value).to(device) for key, value in batch.items()}
        else:
            batch = torch.as_tensor(batch).to(device)
        return self.predict(batch)

    # ------------------------------------------------------------------------------------------------------------
    # Per-step use in an environment loop
    # ------------------------------------------------------------------------------------------------------------

    def _rollout_state(self) -> ChunkRollout:
        if self._rollout is None:
            if len(self.input_shape) != 4:
                raise InputError(
                    f"select_action needs a policy of frame sequences (input shape [T_obs, H, W, C]); this one takes "
                    f"{list(self.input_shape)}"
                )
            self._rollout = ChunkRollout(self.predict_chunk, self.input_shape[0], self.target_shape[0], self.config.rollout)
        return self._rollout

    def reset(self) -> None:
        """Start an episode: forget the observation history and the queued setpoints (LeRobot's `reset`)."""
        self._rollout_state().reset()

    def select_action(self, observation: Any) -> Tensor:
        """The setpoint for this step, `[D]` (or `[B, D]` for batched observations), in target units.

        `observation` holds this step's `observation.image` (uint8 `[H, W, C]` or `[B, H, W, C]`) and, for a policy
        with low-dim observations, `observation.state` (`[S]` or `[B, S]`); a bare frame is accepted. The last
        `t_obs` observations are kept (the first one repeated at an episode start) and a chunk is predicted when
        the queue runs out, as `config.rollout` says. Call `reset()` at every episode start.
        """
        return self._rollout_state().select_action(observation)

    def set_rollout(self, rollout: RolloutConfig) -> None:
        """Replace `config.rollout` (how chunks are executed; the network is unchanged) and reset the episode."""
        if not isinstance(rollout, RolloutConfig):
            raise ConfigError(f"set_rollout needs a RolloutConfig, got {type(rollout).__name__}")
        rollout.steps_per_chunk(self.target_shape[0])  # n_action_steps must fit the chunk
        self.config = dataclasses.replace(self.config, rollout=rollout)
        self._rollout = None

    # ------------------------------------------------------------------------------------------------------------
    # Pretrained directories (LeRobot's layout; the file code lives in rvperceiver.train.checkpoint)
    # ------------------------------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike[str], train_config: Any = None) -> Path:
        """Write `config.json` + `model.safetensors` (+ `train_config.json` given a TrainConfig) to `directory`,
        atomically; `from_pretrained(directory)` rebuilds this policy with its statistics."""
        from rvperceiver.train.checkpoint import save_pretrained  # late import: the I/O lives with the trainer

        return save_pretrained(directory, self, train_config)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], device: str | torch.device = "cpu") -> Policy:
        """The policy saved in `directory` (a pretrained directory, a step checkpoint, `checkpoints/last` or a run
        directory), in eval mode on `device`. A directory without `config.json`, or one of another model type,
        is a `CheckpointError` that says so."""
        from rvperceiver.train.checkpoint import load_pretrained

        policy = load_pretrained(directory, device)
        if not isinstance(policy, cls):
            raise ConfigError(f"{directory} holds a {type(policy).__name__}, not a {cls.__name__}")
        return policy

    def fit_statistics(self, input_batches: Iterable[Any], targets: Any) -> dict[str, Any]:
        """Fit the view's input statistics, the low-dim observation and the target normalisers; returns their
        summaries for logging.

        `input_batches` must be re-iterable when the view needs two passes (a list or a DataLoader); batches may be
        `(input, target)` tuples and inputs mappings (see `rvperceiver.observation`), as may `targets` (a tensor
        `[M, T, D]` or an iterable of batches).
        """
        summary = {"view": self.view.fit(_Part(input_batches, IMAGE)), "target": self.target_norm.fit(targets)}
        if self.state_norm is not None:
            summary["state"] = self.state_norm.fit(_Part(input_batches, STATE))
        return summary


def build_policy(
    config: PolicyConfig,
    input_shape: Sequence[int],
    target_shape: Sequence[int],
    state_shape: Sequence[int] | None = None,
) -> Policy:
    """A fresh, unfitted `Policy`; seed the global RNG first for a reproducible initialisation."""
    return Policy(config, input_shape, target_shape, state_shape)
