"""The behaviour-cloning policy: input view → backbone → target normaliser, as one module.

Everything a trained policy needs at inference lives in its state dict: the view's input statistics, the network
weights and the target statistics. So a checkpoint restores exactly the preprocessing it was trained with, and the
same view can front either backbone (Perceiver IO or the CNN baseline) for a like-for-like comparison.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from rvperceiver.errors import ConfigError, InputError
from rvperceiver.model.cnn import SpatialSoftmaxCNN
from rvperceiver.model.config import CNNConfig, PerceiverConfig
from rvperceiver.model.perceiver import PerceiverIO
from rvperceiver.views.target import TARGET_NORM_MODES, TargetNormalizer
from rvperceiver.views.view import InputView, ViewConfig

BACKBONES = ("perceiver", "cnn")


@dataclass
class PolicyConfig:
    """Which view, which backbone (with its config) and which target normalisation make up a policy.

    Only the config of the chosen backbone is used; both are kept so one file can switch between them with a
    single override. Their `output_steps`/`output_channels` are set from the data's target shape when a `Policy`
    is built (see `Policy`).
    """

    view: ViewConfig = field(default_factory=ViewConfig)
    backbone: str = "perceiver"
    perceiver: PerceiverConfig = field(default_factory=PerceiverConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    target_norm: str = "zscore"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"PolicyConfig.backbone must be one of {list(BACKBONES)}, got {self.backbone!r}")
        if self.target_norm not in TARGET_NORM_MODES:
            raise ConfigError(
                f"PolicyConfig.target_norm must be one of {list(TARGET_NORM_MODES)}, got {self.target_norm!r}"
            )
        for name, kind in (("view", ViewConfig), ("perceiver", PerceiverConfig), ("cnn", CNNConfig)):
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise ConfigError(f"PolicyConfig.{name} must be a {kind.__name__}, got {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (tuples become lists), for `config.json` in checkpoints."""

        def plain(value: Any) -> Any:
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyConfig:
        """Inverse of `to_dict`. Missing keys take their defaults; an unknown key is a `ConfigError`."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"PolicyConfig.from_dict expects a mapping, got {type(data).__name__}")
        _reject_unknown_keys("PolicyConfig", data, [f.name for f in dataclasses.fields(cls)])
        kwargs: dict[str, Any] = {}
        for name, kind in (("view", ViewConfig), ("perceiver", PerceiverConfig), ("cnn", CNNConfig)):
            if name in data:
                kwargs[name] = _build_section(f"PolicyConfig.{name}", kind, data[name])
        for name in ("backbone", "target_norm"):
            if name in data:
                kwargs[name] = data[name]
        return cls(**kwargs)


def _reject_unknown_keys(owner: str, data: Mapping[str, Any], known: Sequence[str]) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {sorted(known)}"
            raise ConfigError(f"{owner}: unknown key {key!r}{hint}")


def _build_section(owner: str, kind: type, data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{owner} expects a mapping, got {type(data).__name__}")
    _reject_unknown_keys(owner, data, [f.name for f in dataclasses.fields(kind)])
    try:
        return kind(**data)
    except ConfigError:
        raise
    except ValueError as error:  # ViewConfig reports bad values as InputError; in a config they are config errors
        raise ConfigError(f"{owner}: {error}") from None


def _check_target_shape(target_shape: Sequence[int]) -> tuple[int, int]:
    shape = tuple(target_shape)
    if len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in shape):
        raise InputError(f"Policy target_shape must be (T_pred, D) with positive integers, got {target_shape!r}")
    return shape  # type: ignore[return-value]


class Policy(nn.Module):
    """`forward(x [B, *input_shape]) -> [B, T_pred, D]` normalised predictions; `predict` gives target units.

    The target shape `(T_pred, D)` comes from the data and is authoritative: the backbone configs' `output_steps`
    and `output_channels` are replaced by it, and `self.config` holds the config as actually built (this is what a
    checkpoint should store).
    """

    def __init__(self, config: PolicyConfig, input_shape: Sequence[int], target_shape: Sequence[int]) -> None:
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
        self.view = InputView(config.view, tuple(input_shape))
        self.input_shape: tuple[int, ...] = self.view.input_shape
        self.backbone: nn.Module
        if config.backbone == "perceiver":
            self.backbone = PerceiverIO(config.perceiver, self.view.out_channels, self.view.grid_shape)
        else:
            self.backbone = SpatialSoftmaxCNN(config.cnn, self.view.out_channels, self.view.grid_shape)
        self.target_norm = TargetNormalizer(dim, config.target_norm)

    @property
    def is_fitted(self) -> bool:
        return self.view.is_fitted and self.target_norm.is_fitted

    def forward(self, x: Tensor) -> Tensor:
        """Normalised predictions `[B, T_pred, D]` (what the training loss compares with normalised targets)."""
        return self.backbone(self.view(x))

    def predict(self, x: Tensor) -> Tensor:
        """Predictions in target units (metres for end-effector positions)."""
        return self.target_norm.denormalize(self.forward(x))

    def fit_statistics(self, input_batches: Iterable[Any], targets: Any) -> dict[str, Any]:
        """Fit the view's input statistics and the target normaliser; returns their summaries for logging.

        `input_batches` must be re-iterable when the view needs two passes (a list or a DataLoader); batches may be
        `(input, target)` tuples, as may `targets` (a tensor `[M, T, D]` or an iterable of batches).
        """
        return {"view": self.view.fit(input_batches), "target": self.target_norm.fit(targets)}


def build_policy(config: PolicyConfig, input_shape: Sequence[int], target_shape: Sequence[int]) -> Policy:
    """A fresh, unfitted `Policy`; seed the global RNG first for a reproducible initialisation."""
    return Policy(config, input_shape, target_shape)
