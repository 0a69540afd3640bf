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
INPUT_ATTENTION_KINDS = ("auto", "absorbed", "materialised")


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
    would output a constant) and passes the position features through unnormalised.

    `input_attention` chooses how the encoder's cross-attends attend to the tokens; both ways are exact (equal
    outputs and gradients up to float rounding) and share their parameters, so it can change between saving and
    loading. `absorbed` runs the attention in the token width F = c + P (values and position features) with the
    queries moved into that width, and never builds keys or values; `materialised` builds `[B, N, A]` keys and
    values and attends at width A. `auto` (default) absorbs unless that costs more arithmetic (the rule is in
    `absorbs_input_attention`). Every other field's setting is covered by both (see `perceiver.InputKeyValues`).

    `cross_attend_chunk` (None = off) trades time for memory on long inputs: when set, in training with autograd
    on, every encoder cross-attend runs under activation checkpointing over chunks of that many examples, so the
    backward rebuilds what it needs one chunk at a time (mostly useful with `materialised`, whose `[B, N, A]` keys
    and values it then never keeps for the whole batch). Outputs and gradients equal the unchunked path; the price
    is one more cross-attend forward per step.

    `cross_attention_channels` (None = `latent_channels`, the shipped behaviour) is the width A of the encoder
    cross-attends' queries, keys and values. Appendix C of the Perceiver paper gives them the channel count of
    the smaller input, the key/value side, rather than the latent width; perceiver-pytorch defaults to 1 head × 64.
    It changes the model (other shapes, other parameters): it is a modelling choice, not a free speed-up. The
    decoder's cross-attend keeps the latent width (its key/value input is the latents).

    `attention_backend` restricts every attention of the model to one SDPA kernel (`torch.nn.attention.sdpa_kernel`
    around `F.scaled_dot_product_attention`): `auto` (default) lets PyTorch choose, `math` is the unfused reference
    (it also keeps the `[B, heads, L, N]` weights for the backward), `efficient` and `flash` the fused kernels
    (CPU has only `flash` and `math`; an unavailable kernel is a ConfigError at the first forward). BENCHMARKS.md
    has the measured costs of these options.
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
    input_attention: str = "auto"

    def absorbs_input_attention(self, token_width: int) -> bool:
        """Whether the encoder cross-attends run absorbed for tokens of `token_width` = c + P channels.

        `auto` absorbs when that does no more attention arithmetic than building keys and values: per example,
        absorbed costs 4·H·L·N·F multiply-adds (scores and weighted sums of H·L queries over N tokens of width F),
        materialised 4·N·F·A (the key/value projection) + 4·L·N·A (scores and weighted sums at width A), so the
        rule is H·L·F ≤ A·(F + L), roughly F ≤ A/H for L ≫ A/H. Memory favours absorbing in every case.
        """
        if self.input_attention != "auto":
            return self.input_attention == "absorbed"
        heads, latents, width = self.cross_heads, self.num_latents, self.cross_attention_width
        return heads * latents * token_width <= width * (token_width + latents)

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
        _require_choice(owner, "input_attention", self.input_attention, INPUT_ATTENTION_KINDS)
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
