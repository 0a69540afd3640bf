"""Configuration dataclasses of the model package.

Both configs validate themselves on construction, so a bad value fails where it is written (a YAML file, a
command-line override) with a `ConfigError` that names the field, rather than as a shape error deep in a forward
pass. They hold only plain JSON types (ints, floats, strings, tuples of ints) so checkpoints can store them as JSON.
The field types are checked from the type hints by `rvperceiver.config_schema.check_fields`; the
`__post_init__`s below add the ranges, choices and the rules that tie fields together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rvperceiver.config_schema import check_fields, require, require_choice
from rvperceiver.errors import ConfigError

POSITION_KINDS = ("fourier", "learned", "none")
KV_NORM_KINDS = ("joint", "values")
ATTENTION_BACKENDS = ("auto", "math", "efficient", "flash")
INPUT_ATTENTION_KINDS = ("auto", "absorbed", "materialised")


def _require_positive_ints(owner: str, config: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        require(value >= 1, f"{owner}.{name}", "a positive integer", value)


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
        check_fields(self, owner)
        _require_positive_ints(owner, self, (
            "num_latents", "latent_channels", "cross_heads", "self_heads", "self_layers_per_block", "num_blocks",
            "num_cross_attends", "mlp_widening", "num_bands", "learned_position_channels", "output_steps",
            "output_channels",
        ))
        _require_divides(owner, "cross_heads", self.cross_heads, "latent_channels", self.latent_channels)
        _require_divides(owner, "self_heads", self.self_heads, "latent_channels", self.latent_channels)
        if self.cross_attend_chunk is not None:
            _require_positive_ints(owner, self, ("cross_attend_chunk",))
        require_choice(f"{owner}.position", self.position, POSITION_KINDS)
        require_choice(f"{owner}.kv_norm", self.kv_norm, KV_NORM_KINDS)
        require_choice(f"{owner}.attention_backend", self.attention_backend, ATTENTION_BACKENDS)
        require_choice(f"{owner}.input_attention", self.input_attention, INPUT_ATTENTION_KINDS)
        if self.cross_attention_channels is not None:
            _require_positive_ints(owner, self, ("cross_attention_channels",))
            _require_divides(
                owner, "cross_heads", self.cross_heads, "cross_attention_channels", self.cross_attention_channels
            )
        require(0.0 <= self.dropout < 1.0, f"{owner}.dropout", "a number in [0, 1)", self.dropout)
        require(
            self.max_freq is None or (math.isfinite(self.max_freq) and self.max_freq > 0),
            f"{owner}.max_freq", "None or a positive number", self.max_freq,
        )
        require(
            math.isfinite(self.init_scale) and self.init_scale > 0, f"{owner}.init_scale", "a positive number",
            self.init_scale,
        )


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
        check_fields(self, owner)  # JSON and YAML give lists: stored as tuples, so configs stay hashable and equal
        for name in ("channels", "kernel_sizes", "strides"):
            value = getattr(self, name)
            require(len(value) > 0, f"{owner}.{name}", "a non-empty list of positive integers", value)
            for item in value:
                require(item >= 1, f"{owner}.{name}[]", "a positive integer", item)
        if not len(self.channels) == len(self.kernel_sizes) == len(self.strides):
            raise ConfigError(
                f"{owner}.channels, kernel_sizes and strides must have equal lengths, got "
                f"{len(self.channels)}, {len(self.kernel_sizes)} and {len(self.strides)}"
            )
        _require_positive_ints(
            owner, self, ("num_keypoints", "mlp_channels", "mlp_layers", "output_steps", "output_channels")
        )
