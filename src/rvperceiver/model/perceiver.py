"""Perceiver IO: a latent array cross-attends to the input tokens, self-attends, and is read out by learned queries.

Shapes: tokens `[B, N, c]` on a token grid `grid_shape` (N = prod(grid_shape)) → latents `[B, L, D]` →
predictions `[B, output_steps, output_channels]`.

The input side is where the cost is (N ≈ 12k tokens against L = 64 latents), and most of it would be spent
projecting the position features, which are the same for every example. `InputKeyValues` therefore projects them
once per forward pass and combines them with each example's values exactly, also under a LayerNorm that spans
values and positions (see its docstring for the algebra).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from rvperceiver.errors import ConfigError, InputError
from rvperceiver.model.attention import (
    CrossAttentionLayer,
    LatentKeyValues,
    SelfAttentionBlock,
    make_linear,
)
from rvperceiver.model.config import PerceiverConfig
from rvperceiver.model.position import PositionFeatures


def _truncated_normal_parameter(shape: tuple[int, ...], std: float) -> nn.Parameter:
    parameter = nn.Parameter(torch.empty(shape))
    nn.init.trunc_normal_(parameter, std=std, a=-2 * std, b=2 * std)
    return parameter


def _cache_key(*tensors: Tensor | None) -> tuple:
    """Identity of the current contents of some tensors: storage, in-place version counter, dtype and device.

    Optimiser steps and `load_state_dict` modify parameters in place, which bumps `_version`; `.to()` gives new
    storage. Either way the key changes and a cached result derived from the old contents is not reused.
    """
    return tuple(
        None if t is None else (t.data_ptr(), t._version, t.dtype, t.device, tuple(t.shape)) for t in tensors
    )


class InputKeyValues(nn.Module):
    """Keys and values of the input tokens: LayerNorm and Linear over each token's [values ‖ position features].

    With `kv_norm="joint"` (DeepMind's semantics) the projection of token n is
    `W (γ ∘ (z_n − μ_n)/σ_n + β) + b` with `z_n = [v_n ‖ p_n]`, μ_n and σ_n its mean and standard deviation
    over the c + P channels. Writing W' = W diag(γ), split into value and position columns W'_v, W'_p, this equals

        (W'_v v_n + W'_p p_n − μ_n W'1) / σ_n + (W β + b)

    and μ_n, σ_n follow exactly from the per-token mean and squared deviation of v_n and of p_n by the pairwise
    (Chan et al.) merge. W'_p p_n and the position moments are the same for every example: they are computed once
    per forward (`[N, 2D]`), so each example costs a projection of c + 2 inputs instead of c + P (3 vs 69 in scalar
    mode with 4 axes × 8 bands), with results equal to the direct computation up to rounding (tested).

    Cost, honestly: with few position channels the projection is memory-bound (writing the `[B, N, 2D]` keys and
    values dominates), so the gain is modest; the layout below keeps it to one scaled copy plus one fused
    multiply-add, and autograd stores nothing of size `[B, N, 2D]`. On a shared 2-core CPU (B = 8, N = 12,288,
    D = 128) the key/value stage ran ~1.5× faster than the direct form at 8 bands and ~4× at 64 bands, and a whole
    forward + backward 1.2–1.5× faster; not measured on a GPU.

    With `kv_norm="values"` only the values are normalised (not at all when c = 1, where a LayerNorm outputs a
    constant and would erase the signal) and the projection splits trivially: `W_v LN(v_n) + W_p p_n + b`.

    Under `joint`, a token of a single channel without position features is left unnormalised for the same reason.

    In eval mode without autograd (closed-loop control, validation) the position part is also cached across calls,
    keyed on the identity and version of the tensors it derives from, so a weight update or a reload invalidates it.
    All of this runs in float32 with autocast off: the per-token work is tiny, and normalisation statistics and
    fixed Fourier features lose precision in half precision.
    """

    def __init__(self, input_channels: int, position_channels: int, out_channels: int, kv_norm: str) -> None:
        super().__init__()
        self.input_channels = input_channels
        self.position_channels = position_channels
        self.out_channels = out_channels
        self.kv_norm = kv_norm
        total = input_channels + position_channels
        self.joint_norm = nn.LayerNorm(total) if kv_norm == "joint" and total > 1 else None
        self.value_norm = nn.LayerNorm(input_channels) if kv_norm == "values" and input_channels > 1 else None
        self.proj = make_linear(total, 2 * out_channels)
        self._position_cache: tuple[tuple, tuple[Tensor, ...]] | None = None

    def train(self, mode: bool = True) -> InputKeyValues:
        self._position_cache = None
        return super().train(mode)

    # -- the position part, shared by every example ------------------------------------------------------------
    def _position_part(self, positions: Tensor) -> tuple[Tensor, ...]:
        c = self.input_channels
        if self.joint_norm is None:
            # `values` mode: W_p p_n + b, the bias folded in so the per-example step is a single fused multiply-add.
            return (F.linear(positions, self.proj.weight[:, c:], self.proj.bias),)
        gamma = self.joint_norm.weight
        projected = F.linear(positions, self.proj.weight[:, c:] * gamma[c:])
        mean = positions.mean(dim=-1)
        squared_deviation = (positions - mean[:, None]).square().sum(dim=-1)
        return projected, mean, squared_deviation

    def position_part(self, positions: Tensor) -> tuple[Tensor, ...]:
        """The position-only terms (cached in eval mode without autograd, recomputed otherwise)."""
        if self.training or torch.is_grad_enabled():
            self._position_cache = None
            return self._position_part(positions)
        tensors = [positions, self.proj.weight, self.proj.bias]
        if self.joint_norm is not None:
            tensors.append(self.joint_norm.weight)
        key = _cache_key(*tensors)
        if self._position_cache is None or self._position_cache[0] != key:
            self._position_cache = (key, self._position_part(positions))
        return self._position_cache[1]

    # -- forward ----------------------------------------------------------------------------------------------
    def forward(self, tokens: Tensor, positions: Tensor | None) -> tuple[Tensor, Tensor]:
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            tokens = tokens.float()
            if positions is None:
                kv = self._without_positions(tokens)
            elif self.joint_norm is not None:
                kv = self._joint_factored(tokens, positions.float())
            else:
                kv = self._values_only(tokens, positions.float())
        keys, values = kv.chunk(2, dim=-1)
        return keys, values

    def _without_positions(self, tokens: Tensor) -> Tensor:
        if self.joint_norm is not None:
            tokens = self.joint_norm(tokens)
        elif self.value_norm is not None:
            tokens = self.value_norm(tokens)
        return self.proj(tokens)

    def _values_only(self, tokens: Tensor, positions: Tensor) -> Tensor:
        if self.value_norm is not None:
            tokens = self.value_norm(tokens)
        (position_term,) = self.position_part(positions)  # [N, 2D], broadcast over the batch by baddbmm
        value_weight = self.proj.weight[:, : self.input_channels].t()
        return torch.baddbmm(position_term, tokens, value_weight.expand(tokens.shape[0], -1, -1))

    def _joint_factored(self, tokens: Tensor, positions: Tensor) -> Tensor:
        c, p = self.input_channels, self.position_channels
        total = c + p
        norm = self.joint_norm
        assert norm is not None
        weight = self.proj.weight * norm.weight  # W' = W diag(γ), [2D, c + P]
        weight_sum = weight.sum(dim=1)  # W'1, [2D]
        constant = F.linear(norm.bias, self.proj.weight, self.proj.bias)  # Wβ + b, [2D]
        position_projection, position_mean, position_sq_dev = self.position_part(positions)

        value_mean = tokens.mean(dim=-1, keepdim=True)  # [B, N, 1]
        if c > 1:
            value_sq_dev = (tokens - value_mean).square().sum(dim=-1, keepdim=True)
        else:
            value_sq_dev = torch.zeros_like(value_mean)
        delta = value_mean - position_mean[:, None]
        mean = position_mean[:, None] + delta * (c / total)
        sq_dev = value_sq_dev + position_sq_dev[:, None] + delta.square() * (c * p / total)
        inv_std = torch.rsqrt(sq_dev / total + norm.eps)  # [B, N, 1]

        # (W'_v v − μ W'1 + W'_p p) / σ + const, arranged so that the only [B, N, 2D] work is one scaled copy of
        # the shared position term and one fused multiply-add: the small per-token inputs [v/σ, −μ/σ, 1] meet the
        # weights [W'_v, W'1, const] in a batched matmul that accumulates onto it. Autograd then keeps nothing of
        # size [B, N, 2D] for the backward pass.
        small_inputs = torch.cat([tokens * inv_std, -mean * inv_std, torch.ones_like(inv_std)], dim=-1)
        small_weight = torch.cat([weight[:, :c], weight_sum[:, None], constant[:, None]], dim=1).t()
        scaled_positions = position_projection * inv_std
        return torch.baddbmm(scaled_positions, small_inputs, small_weight.expand(tokens.shape[0], -1, -1))

    def reference(self, tokens: Tensor, positions: Tensor | None) -> tuple[Tensor, Tensor]:
        """The same keys and values computed the plain way (concatenate per example, normalise, project).

        Not used in training; it is the definition the fast path is tested against.
        """
        tokens = tokens.float()
        if positions is None:
            return self._without_positions(tokens).chunk(2, dim=-1)
        if self.value_norm is not None:
            tokens = self.value_norm(tokens)
        joined = torch.cat([tokens, positions.float().expand(tokens.shape[0], -1, -1)], dim=-1)
        if self.joint_norm is not None:
            joined = self.joint_norm(joined)
        keys, values = self.proj(joined).chunk(2, dim=-1)
        return keys, values


class PerceiverEncoder(nn.Module):
    """Learned latents; cross-attends to the tokens, each followed by the shared latent self-attention block.

    Weight sharing is explicit module reuse: `first_cross_attend` is used once, `repeated_cross_attend` (present
    only when `num_cross_attends > 1`) for every later cross-attend, and the single `latent_block` is applied
    `num_blocks` times after every cross-attend.
    """

    def __init__(self, config: PerceiverConfig, input_channels: int, grid_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.config = config
        self.positions = PositionFeatures(
            config.position,
            grid_shape,
            num_bands=config.num_bands,
            max_freq=config.max_freq,
            learned_channels=config.learned_position_channels,
            init_scale=config.init_scale,
        )
        width = config.latent_channels
        self.latents = _truncated_normal_parameter((config.num_latents, width), config.init_scale)

        attention_width = config.cross_attention_width

        def cross_attend() -> CrossAttentionLayer:
            key_values = InputKeyValues(input_channels, self.positions.channels, attention_width, config.kv_norm)
            return CrossAttentionLayer(
                width,
                key_values,
                config.cross_heads,
                config.mlp_widening,
                config.dropout,
                config.attention_backend,
                attention_width,
            )

        self.first_cross_attend = cross_attend()
        self.repeated_cross_attend = cross_attend() if config.num_cross_attends > 1 else None
        self.latent_block = SelfAttentionBlock(
            config.self_layers_per_block,
            width,
            config.self_heads,
            config.mlp_widening,
            config.dropout,
            config.attention_backend,
        )

    def _latent_transformer(self, latents: Tensor) -> Tensor:
        for _ in range(self.config.num_blocks):
            latents = self.latent_block(latents)
        return latents

    def _cross_attend(
        self, layer: CrossAttentionLayer, query: Tensor, tokens: Tensor, positions: Tensor | None
    ) -> Tensor:
        """One cross-attend; checkpointed per chunk of `config.cross_attend_chunk` examples when that is set.

        Only in training with autograd on, and only when the batch is larger than a chunk: checkpointing the whole
        batch as one piece saves nothing, because the backward pass rebuilds the `[B, N, D]` keys and values and
        needs their gradients at the same moment anyway. Split by examples, the backward holds one chunk's worth.
        A query of shape `[L, D]` (the learned latents) is shared by every chunk; `[B, L, D]` is split with the
        tokens. `checkpoint` (non-reentrant) replays the RNG state, so dropout masks match between the forward
        and its recomputation.
        """
        chunk = self.config.cross_attend_chunk
        batch = tokens.shape[0]
        if chunk is None or batch <= chunk or not (self.training and torch.is_grad_enabled()):
            return layer(query, tokens, positions)
        token_chunks = tokens.split(chunk)
        query_chunks = query.split(chunk) if query.dim() == 3 else (query,) * len(token_chunks)
        parts = [
            checkpoint(layer, query_part, token_part, positions, use_reentrant=False)
            for query_part, token_part in zip(query_chunks, token_chunks)
        ]
        return torch.cat(parts)

    def forward(self, tokens: Tensor) -> Tensor:
        positions = self.positions()
        latents = self._cross_attend(self.first_cross_attend, self.latents, tokens, positions)
        latents = self._latent_transformer(latents)
        for _ in range(self.config.num_cross_attends - 1):
            assert self.repeated_cross_attend is not None
            latents = self._latent_transformer(self._cross_attend(self.repeated_cross_attend, latents, tokens, positions))
        return latents

    def first_attention_weights(self, tokens: Tensor) -> Tensor:
        return self.first_cross_attend.attention_weights(self.latents, tokens, self.positions())


class PerceiverDecoder(nn.Module):
    """One learned query per output step cross-attends to the latents (with query residual and MLP); a final
    Linear maps each query to `output_channels`."""

    def __init__(self, config: PerceiverConfig) -> None:
        super().__init__()
        width = config.latent_channels
        self.queries = _truncated_normal_parameter((config.output_steps, width), config.init_scale)
        self.cross_attend = CrossAttentionLayer(
            width,
            LatentKeyValues(width),
            config.cross_heads,
            config.mlp_widening,
            config.dropout,
            config.attention_backend,
        )
        self.head = make_linear(width, config.output_channels)

    def forward(self, latents: Tensor) -> Tensor:
        return self.head(self.cross_attend(self.queries, latents))


class PerceiverIO(nn.Module):
    """Perceiver IO regressor: `forward(tokens [B, N, input_channels]) -> [B, output_steps, output_channels]`.

    `grid_shape` is the token grid the N tokens were flattened from (row-major); it only shapes the position
    features, so `PerceiverIO` works on any tokenisation (scalar, pixel, patch, plain arrays).
    """

    def __init__(self, config: PerceiverConfig, input_channels: int, grid_shape: Sequence[int]) -> None:
        super().__init__()
        if not isinstance(config, PerceiverConfig):
            raise ConfigError(f"PerceiverIO needs a PerceiverConfig, got {type(config).__name__}")
        if isinstance(input_channels, bool) or not isinstance(input_channels, int) or input_channels <= 0:
            raise ConfigError(f"PerceiverIO input_channels must be a positive integer, got {input_channels!r}")
        self.config = config
        self.input_channels = input_channels
        self.grid_shape = tuple(grid_shape)
        self.encoder = PerceiverEncoder(config, input_channels, self.grid_shape)  # validates grid_shape
        self.num_tokens = math.prod(self.grid_shape)
        self.decoder = PerceiverDecoder(config)

    def _check_tokens(self, tokens: Tensor) -> None:
        expected = f"[B, N={self.num_tokens}, c={self.input_channels}] (grid {self.grid_shape})"
        if not isinstance(tokens, Tensor):
            raise InputError(f"PerceiverIO tokens: expected a tensor {expected}, got {type(tokens).__name__}")
        if tokens.dim() != 3 or tuple(tokens.shape[1:]) != (self.num_tokens, self.input_channels):
            raise InputError(f"PerceiverIO tokens: expected shape {expected}, got {list(tokens.shape)}")
        if not tokens.is_floating_point():
            raise InputError(f"PerceiverIO tokens: expected a floating-point tensor, got {tokens.dtype}")

    def forward(self, tokens: Tensor) -> Tensor:
        self._check_tokens(tokens)
        return self.decoder(self.encoder(tokens))

    def attention_maps(self, tokens: Tensor) -> Tensor:
        """Weights `[B, cross_heads, num_latents, N]` of the first cross-attend (materialised; for plots only)."""
        self._check_tokens(tokens)
        return self.encoder.first_attention_weights(tokens)
