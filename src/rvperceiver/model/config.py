"""Configuration dataclasses of the model package.

Both configs validate themselves on construction, so a bad value fails where it is written (a YAML file, a
command-line override) with a `ConfigError` that names the field, rather than as a shape error deep in a forward
pass. They hold only plain JSON types (ints, floats, strings, tuples of ints) so checkpoints can store them as JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rvperceiver.errors import ConfigError

POSITION_KINDS = ("fourier", "learned", "none")
KV_NORM_KINDS = ("joint", "values")
ATTENTION_BACKENDS = ("auto", "math", "efficient", "flash")


def _require_positive_int(owner: str, name: str, value: Any) -> None:
    # bool is a subclass of int; `num_blocks=True` is almost certainly a mistake, so reject it explicitly.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{owner}.{name} must be a positive integer, got {value!r}")


def _require_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{owner}.{name} must be one of {list(choices)}, got {value!r}")


def _require_divides(owner: str, heads_name: str, heads: int, width_name: str, width: int) -> None:
    if width % heads != 0:
        raise ConfigError(
            f"{owner}.{heads_name}={heads} must divide {owner}.{width_name}={width} (each head gets an equal slice)"
        )


@dataclass
class PerceiverConfig:
    """Hyper-parameters of `PerceiverIO`.

    Sharing: the first cross-attend has its own weights and cross-attends 2..`num_cross_attends` share one set
    (sharing the first was unstable in the Perceiver paper). A single latent self-attention block of
    `self_layers_per_block` layers follows every cross-attend and is applied `num_blocks` times, always with the
    same weights (as in DeepMind's Perceiver IO code).

    `init_scale` is the standard deviation of the learned arrays (latents, output queries, learned positions),
    drawn from a normal truncated at ±2σ. Linear layers use fan-in scaling instead (see `attention.init_linear`).

    `position` chooses the features concatenated to every token's values: `fourier` (fixed sin/cos features of
    each grid axis, `num_bands` bands up to `max_freq`, None = the grid size of each axis, i.e. Nyquist),
    `learned` (a trainable `[N, learned_position_channels]` array) or `none`.

    `kv_norm` chooses what the encoder's key/value LayerNorm normalises:
    `joint` (default) normalises each token's concatenation [values ‖ position features], DeepMind's semantics,
    which keeps a one-channel value meaningful because it is normalised together with its position features;
    `values` normalises the values alone (and not at all when a token has a single channel, where a LayerNorm
    would output a constant) and passes the position features through unnormalised. Both run at the same cost:
    the position features' share of the key/value projection is computed once per forward, not per example
    (see `perceiver.InputKeyValues`).

    `cross_attend_chunk` (None = off) trades time for memory on long inputs: when set, in training with autograd
    on, every encoder cross-attend runs under activation checkpointing over chunks of that many examples. Its
    `[B, N, D]` keys and values are then never kept for the backward pass; the backward rebuilds them one chunk at
    a time, so the peak holds keys, values and their gradients for `cross_attend_chunk` examples instead of B.
    Outputs and gradients equal the unchunked path (up to float rounding); the price is one more key/value
    projection and cross-attention forward per step (see BENCHMARKS.md for the measured cost).

    `cross_attention_channels` (None = `latent_channels`, the shipped behaviour) is the width of the encoder
    cross-attends' queries, keys and values. Appendix C of the Perceiver paper gives them the channel count of
    the smaller input, the key/value side, rather than the latent width; perceiver-pytorch defaults to 1 head × 64.
    The QKᵀ and AV products over all N tokens scale with it, and at N = 12,288 they are about half of a training
    step's FLOPs, so 64 instead of 256 makes that part 4× cheaper; the keys and values held for the backward
    shrink by the same factor. It changes the model (other shapes, other parameters): it is a modelling choice,
    not a free speed-up. The decoder's cross-attend keeps the latent width (its key/value input is the latents).

    `attention_backend` restricts every attention of the model to one SDPA kernel (`torch.nn.attention.sdpa_kernel`
    around `F.scaled_dot_product_attention`): `auto` (default) lets PyTorch choose, `math` is the unfused reference,
    `efficient` and `flash` the fused kernels (CPU has only `flash` and `math`; an unavailable kernel is a
    ConfigError at the first forward). `auto` stays PyTorch's choice on CPU too, because the fused CPU kernel was
    measured faster: at the cross-attend's shape (16 examples, 1 head of width 256, 128 queries over 12,288 keys,
    2 shared threads) SDPA alone took 0.94× the math kernel's time forward + backward and 0.70× forward only, in
    all 5 alternating repetitions; 0.53× at head width 64. A whole training step of the benchmark model ran 0.67×
    as fast with `math` everywhere and 0.84× with `math` in the cross-attend only (noisy: 3 repetitions at load 5).
    `math` also holds the `[B, heads, L, N]` weights for the backward: 1.19× the step's peak memory.
    """

    num_latents: int = 64
    latent_channels: int = 128
    cross_heads: int = 1
    self_heads: int = 4
    self_layers_per_block: int = 2
    num_blocks: int = 1
    num_cross_attends: int = 1
    mlp_widening: int = 1
    dropout: float = 0.0
    position: str = "fourier"
    num_bands: int = 8
    max_freq: float | None = None
    learned_position_channels: int = 64
    kv_norm: str = "joint"
    init_scale: float = 0.02
    output_steps: int = 8
    output_channels: int = 3
    cross_attend_chunk: int | None = None
    attention_backend: str = "auto"
    cross_attention_channels: int | None = None

    @property
    def cross_attention_width(self) -> int:
        """Width of the encoder cross-attends' queries, keys and values (`cross_attention_channels` resolved)."""
        return self.latent_channels if self.cross_attention_channels is None else self.cross_attention_channels

    def __post_init__(self) -> None:
        owner = "PerceiverConfig"
        for name in (
            "num_latents",
            "latent_channels",
            "cross_heads",
            "self_heads",
            "self_layers_per_block",
            "num_blocks",
            "num_cross_attends",
            "mlp_widening",
            "num_bands",
            "learned_position_channels",
            "output_steps",
            "output_channels",
        ):
            _require_positive_int(owner, name, getattr(self, name))
        _require_divides(owner, "cross_heads", self.cross_heads, "latent_channels", self.latent_channels)
        _require_divides(owner, "self_heads", self.self_heads, "latent_channels", self.latent_channels)
        if self.cross_attend_chunk is not None:
            _require_positive_int(owner, "cross_attend_chunk", self.cross_attend_chunk)
        _require_choice(owner, "position", self.position, POSITION_KINDS)
        _require_choice(owner, "kv_norm", self.kv_norm, KV_NORM_KINDS)
        _require_choice(owner, "attention_backend", self.attention_backend, ATTENTION_BACKENDS)
        if self.cross_attention_channels is not None:
            _require_positive_int(owner, "cross_attention_channels", self.cross_attention_channels)
            _require_divides(
                owner, "cross_heads", self.cross_heads, "cross_attention_channels", self.cross_attention_channels
            )
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"{owner}.dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.max_freq is not None:
            if (
                isinstance(self.max_freq, bool)
                or not isinstance(self.max_freq, (int, float))
                or not math.isfinite(self.max_freq)
                or self.max_freq <= 0
            ):
                raise ConfigError(f"{owner}.max_freq must be None or a positive number, got {self.max_freq!r}")
        if (
            isinstance(self.init_scale, bool)
            or not isinstance(self.init_scale, (int, float))
            or not math.isfinite(self.init_scale)
            or self.init_scale <= 0
        ):
            raise ConfigError(f"{owner}.init_scale must be a positive number, got {self.init_scale!r}")


@dataclass
class CNNConfig:
    """Hyper-parameters of the `SpatialSoftmaxCNN` baseline.

    `channels`, `kernel_sizes` and `strides` describe the conv stack layer by layer (equal lengths); each conv is
    padded by kernel//2 (an odd kernel at stride 1 keeps the size) and followed by a ReLU. `num_keypoints` 1×1-conv
    maps are turned into expected (x, y) image coordinates by a spatial softmax; an MLP of `mlp_layers` hidden layers
    of width `mlp_channels` maps the keypoints to `output_steps × output_channels` numbers.
    """

    channels: tuple[int, ...] = (32, 32, 32)
    kernel_sizes: tuple[int, ...] = (5, 3, 3)
    strides: tuple[int, ...] = (2, 1, 1)
    num_keypoints: int = 32
    mlp_channels: int = 256
    mlp_layers: int = 2
    output_steps: int = 8
    output_channels: int = 3

    def __post_init__(self) -> None:
        owner = "CNNConfig"
        # JSON and YAML give lists; store tuples so the config stays hashable and compares equal after a round trip.
        for name in ("channels", "kernel_sizes", "strides"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or len(value) == 0:
                raise ConfigError(f"{owner}.{name} must be a non-empty list of positive integers, got {value!r}")
            for item in value:
                _require_positive_int(owner, name + "[]", item)
            setattr(self, name, tuple(value))
        if not len(self.channels) == len(self.kernel_sizes) == len(self.strides):
            raise ConfigError(
                f"{owner}.channels, kernel_sizes and strides must have equal lengths, got "
                f"{len(self.channels)}, {len(self.kernel_sizes)} and {len(self.strides)}"
            )
        for name in ("num_keypoints", "mlp_channels", "mlp_layers", "output_steps", "output_channels"):
            _require_positive_int(owner, name, getattr(self, name))
