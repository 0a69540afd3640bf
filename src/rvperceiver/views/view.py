"""The input view: tokenise → normalise → transform → normalise, with its dataset statistics as buffers.

Keeping the statistics in the module's state dict means a saved model always preprocesses exactly as it was
trained, and the same view can front any backbone.

The seed's recipe is ``pre_norm="centre"`` + ``transform="rfft"``: subtracting each token's dataset mean removes
the common part (the seed's "all X2 become 0"), so what reaches the transform is the per-example difference, and
an orthonormal DFT spreads a one-token difference evenly over every bin whatever the length N.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rvperceiver.config_schema import check_fields, require, require_choice, to_plain
from rvperceiver.errors import InputError
from rvperceiver.observation import split_observation
from rvperceiver.views.stats import RunningMoments, data_std_floor, participation_ratio
from rvperceiver.views.tokenize import TOKEN_MODES, TokenLayout
from rvperceiver.views.transforms import TRANSFORM_KINDS, forward_transform, inverse_transform, output_channel_factor

NORM_MODES: tuple[str, ...] = ("none", "centre", "zscore")
TRANSFORM_AXES: tuple[str, ...] = ("flat", "grid")
_STAT_BUFFERS: tuple[str, ...] = ("pre_mean", "pre_std", "post_mean", "post_std")


@dataclass
class ViewConfig:
    """How raw examples become tokens for the backbone. Validated on construction.

    ``std_floor`` is the smallest std a z-score divides by; None = the data's own resolution (1/255 for uint8
    frames, :func:`rvperceiver.views.stats.data_std_floor`). ``clip`` bounds every z-scored value to
    ``[-clip, clip]`` (None = no bound), so a token that was constant in training and changes at deployment
    (video compression, lighting) moves a bounded amount instead of 10⁵σ. ``centre`` keeps data units and is
    not clipped.
    """

    token_mode: str = "scalar"
    patch_size: int = 4
    transform: str = "identity"
    transform_axes: str = "flat"
    pre_norm: str = "none"
    post_norm: str = "none"
    std_floor: float | None = None
    clip: float | None = 10.0

    def __post_init__(self) -> None:
        # Bad values raise InputError (as the view's other checks do); in a config file they read as config errors.
        check_fields(self, "ViewConfig", InputError)
        for name, choices in (
            ("token_mode", TOKEN_MODES),
            ("transform", TRANSFORM_KINDS),
            ("transform_axes", TRANSFORM_AXES),
            ("pre_norm", NORM_MODES),
            ("post_norm", NORM_MODES),
        ):
            require_choice(f"ViewConfig.{name}", getattr(self, name), choices, InputError)
        require(self.patch_size >= 1, "ViewConfig.patch_size", "a positive integer", self.patch_size, InputError)
        require(
            self.std_floor is None or self.std_floor > 0, "ViewConfig.std_floor",
            "None (the data's resolution) or a positive number", self.std_floor, InputError,
        )
        require(
            self.clip is None or self.clip > 0, "ViewConfig.clip", "None (no bound) or a positive number of σ",
            self.clip, InputError,
        )

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


def _example_input(item: Any) -> torch.Tensor:
    """Batches may be tensors, numpy arrays, observation mappings (``observation.image``), or ``(input, target,
    ...)`` tuples as a DataLoader yields them."""
    if isinstance(item, (tuple, list)):
        if not item:
            raise InputError("fit: got an empty tuple where a batch was expected")
        item = item[0]
    if isinstance(item, Mapping):  # an observation mapping: the view reads its frames
        item = split_observation(item)[0]
    if isinstance(item, np.ndarray):
        item = torch.from_numpy(item)
    if not isinstance(item, torch.Tensor):
        raise InputError(f"fit: batches must be tensors, arrays or (input, target) tuples, got {type(item).__name__}")
    return item


class InputView(nn.Module):
    """``forward(x [B, *input_shape]) -> [B, N, out_channels]`` with statistics fitted by :meth:`fit`."""

    pre_mean: torch.Tensor
    pre_std: torch.Tensor
    post_mean: torch.Tensor
    post_std: torch.Tensor
    fitted: torch.Tensor

    def __init__(self, config: ViewConfig, input_shape: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        if not isinstance(config, ViewConfig):
            raise InputError(f"InputView expects a ViewConfig, got {type(config).__name__}")
        self.config = config
        self.layout = TokenLayout.from_input_shape(tuple(input_shape), config.token_mode, config.patch_size)
        n, c = self.layout.num_tokens, self.layout.token_channels
        self._out_channels = c * output_channel_factor(config.transform)
        self.register_buffer("pre_mean", torch.zeros(n, c))
        self.register_buffer("pre_std", torch.ones(n, c))
        self.register_buffer("post_mean", torch.zeros(n, self._out_channels))
        self.register_buffer("post_std", torch.ones(n, self._out_channels))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------------------------------------------------
    # properties

    @property
    def num_tokens(self) -> int:
        return self.layout.num_tokens

    @property
    def token_channels(self) -> int:
        return self.layout.token_channels

    @property
    def out_channels(self) -> int:
        return self._out_channels

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return self.layout.grid_shape

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.layout.input_shape

    @property
    def needs_statistics(self) -> bool:
        return self.config.pre_norm != "none" or self.config.post_norm != "none"

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    def extra_repr(self) -> str:
        cfg = self.config
        return (
            f"input_shape={self.input_shape}, tokens={self.num_tokens}x{self.out_channels}, mode={cfg.token_mode}, "
            f"{cfg.pre_norm} → {cfg.transform}({cfg.transform_axes}) → {cfg.post_norm}"
        )

    # ------------------------------------------------------------------------------------------------------------
    # the pipeline pieces

    def _transform_dims(self) -> tuple[int, ...]:
        if self.config.transform_axes == "flat":
            return (1,)
        return tuple(range(1, len(self.grid_shape) + 1))

    def _apply_transform(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, N, c]`` → ``[B, N, out_channels]`` (complex: channel pairs (re, im) next to each other)."""
        b = tokens.shape[0]
        n, c = self.num_tokens, self.token_channels
        shaped = tokens if self.config.transform_axes == "flat" else tokens.reshape(b, *self.grid_shape, c)
        out = forward_transform(shaped, self.config.transform, self._transform_dims())
        return out.reshape(b, n, self.out_channels)

    def _invert_transform(self, values: torch.Tensor) -> torch.Tensor:
        b = values.shape[0]
        n, c = self.num_tokens, self.token_channels
        shape: tuple[int, ...] = (b, n) if self.config.transform_axes == "flat" else (b, *self.grid_shape)
        if self.config.transform in ("complex", "dual"):
            shaped = values.reshape(*shape, c, 2)
        else:
            shaped = values.reshape(*shape, c)
        out = inverse_transform(shaped, self.config.transform, self._transform_dims())
        return out.reshape(b, n, c)

    def _normalise(self, values: torch.Tensor, mode: str, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        if mode == "centre":
            return values - mean
        if mode == "zscore":
            z = (values - mean) / std
            return z if self.config.clip is None else z.clamp(-self.config.clip, self.config.clip)
        return values

    @staticmethod
    def _denormalise(values: torch.Tensor, mode: str, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        if mode == "centre":
            return values + mean
        if mode == "zscore":
            return values * std + mean
        return values

    def _require_fitted(self, action: str) -> None:
        if self.needs_statistics and not self.is_fitted:
            raise InputError(
                f"InputView.{action}: pre_norm={self.config.pre_norm!r} / post_norm={self.config.post_norm!r} "
                "need dataset statistics; call fit() first (or load a fitted state dict)"
            )

    def _pre(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._normalise(tokens, self.config.pre_norm, self.pre_mean, self.pre_std)

    # ------------------------------------------------------------------------------------------------------------
    # public API

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Raw tokens ``[B, N, c]`` (no normalisation, no transform); checks shape, dtype, NaN/Inf and range."""
        return self.layout.to_tokens(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._require_fitted("forward")
        with torch.autocast(device_type=x.device.type, enabled=False):
            tokens = self.layout.to_tokens(x)
            values = self._apply_transform(self._pre(tokens))
            return self._normalise(values, self.config.post_norm, self.post_mean, self.post_std)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`forward`: returns float ``[B, *input_shape]`` in the token scale (uint8 frames → [0, 1])."""
        self._require_fitted("inverse")
        expected = (self.num_tokens, self.out_channels)
        if not isinstance(y, torch.Tensor) or y.ndim != 3 or tuple(y.shape[1:]) != expected:
            got = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise InputError(f"InputView.inverse: expected shape [B, {expected[0]}, {expected[1]}], got {got}")
        with torch.autocast(device_type=y.device.type, enabled=False):
            values = self._denormalise(y.float(), self.config.post_norm, self.post_mean, self.post_std)
            tokens = self._invert_transform(values)
            tokens = self._denormalise(tokens, self.config.pre_norm, self.pre_mean, self.pre_std)
            return self.layout.from_tokens(tokens)

    @torch.no_grad()
    def fit(self, batches: Iterable[Any]) -> dict[str, float]:
        """Fit the statistics by streaming ``batches`` (tensors ``[B, *input_shape]`` or ``(input, ...)`` tuples).

        Pass 1 gathers per-token mean/std of the raw tokens (always stored in ``pre_mean``/``pre_std``). Pass 2,
        only for ``post_norm="zscore"``, gathers the moments of the pre-normalised, transformed tokens; it calls
        ``iter(batches)`` again, so ``batches`` must be re-iterable. A ``centre`` post-norm needs no second pass:
        the transform is linear, so the mean of the transformed tokens is the transform of the mean.
        Returns a few summary numbers for logging.
        """
        two_passes = self.config.post_norm == "zscore"
        if two_passes and isinstance(batches, Iterator):
            raise InputError(
                "InputView.fit needs two passes for post_norm='zscore', but got a one-shot iterator; "
                "pass a re-iterable such as a list or a DataLoader"
            )
        device = self.pre_mean.device
        n, c = self.num_tokens, self.token_channels

        raw = RunningMoments((n, c))
        input_dtype: torch.dtype | None = None
        for item in batches:
            example = _example_input(item)
            input_dtype = input_dtype or example.dtype
            raw.update(self.layout.to_tokens(example.to(device)))
        if raw.count == 0 or input_dtype is None:
            raise InputError("InputView.fit got no examples: the iterable of batches was empty")
        floor = self.config.std_floor if self.config.std_floor is not None else data_std_floor(input_dtype)
        self.pre_mean.copy_(raw.mean.to(device, torch.float32))
        self.pre_std.copy_(raw.std(floor).to(device, torch.float32))

        summary: dict[str, float] = {
            "examples": float(raw.count), "passes": 2.0 if two_passes else 1.0, "std_floor": float(floor)
        }
        raw_var_per_token = raw.var.sum(dim=-1)
        summary["raw_total_variance"] = float(raw_var_per_token.sum())
        if summary["raw_total_variance"] > 0:
            summary["raw_participation_ratio"] = participation_ratio(raw_var_per_token)

        if self.config.post_norm == "none":
            self.post_mean.zero_()
            self.post_std.fill_(1.0)
        elif self.config.post_norm == "centre":
            pre_normed_mean = self._pre(self.pre_mean.unsqueeze(0))
            self.post_mean.copy_(self._apply_transform(pre_normed_mean)[0])
            self.post_std.fill_(1.0)
        else:
            post = RunningMoments((n, self.out_channels))
            for item in batches:
                tokens = self.layout.to_tokens(_example_input(item).to(device))
                post.update(self._apply_transform(self._pre(tokens)))
            if post.count != raw.count:
                raise InputError(
                    f"InputView.fit: the second pass saw {post.count} examples but the first saw {raw.count}; "
                    "the batches must be the same on every iteration"
                )
            self.post_mean.copy_(post.mean.to(device, torch.float32))
            self.post_std.copy_(post.std(floor).to(device, torch.float32))
            post_var_per_token = post.var.sum(dim=-1)
            if float(post_var_per_token.sum()) > 0:
                summary["post_participation_ratio"] = participation_ratio(post_var_per_token)
        self.fitted.fill_(True)
        return summary

    # ------------------------------------------------------------------------------------------------------------

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # PyTorch would report a generic size mismatch; say instead which token counts disagree.
        for name in _STAT_BUFFERS:
            key = prefix + name
            if key not in state_dict:
                continue
            got = tuple(state_dict[key].shape)
            want = tuple(getattr(self, name).shape)
            if got != want:
                got_tokens = got[0] if got else "?"
                raise InputError(
                    f"InputView statistics {key!r} have shape {list(got)} ({got_tokens} tokens), but this view has "
                    f"{want[0]} tokens of {want[1]} channels (shape {list(want)}); the statistics were fitted for a "
                    "different input shape, token mode or transform"
                )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
