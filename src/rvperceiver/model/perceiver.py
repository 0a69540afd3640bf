"""Perceiver IO: a latent array cross-attends to the input tokens, self-attends, and is read out by learned queries.

Shapes: tokens `[B, N, c]` on a token grid `grid_shape` (N = prod(grid_shape)) → latents `[B, L, D]` →
predictions `[B, output_steps, output_channels]`.

The input side is where the cost is (N ≈ 12k tokens against L = 64 latents). Each token is narrow (F = c + P,
its values and position features) while the attention is wide (A channels), and every key and value is a linear
map of the normalised token, so the encoder's cross-attends can attend in the token width without building keys
or values at all (`InputKeyValues`, `attention.absorbed_attention`), exactly; `PerceiverConfig.input_attention`
says when.
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
    absorbed_attention,
    absorbed_attention_weights,
    attention_weights,
    batched,
    make_linear,
    multi_head_attention,
)
from rvperceiver.model.config import PerceiverConfig
from rvperceiver.model.position import PositionFeatures


def _full_precision(x: Tensor) -> Tensor:
    """`x` in float32 if it is in a half-precision type (float64 stays float64, for exactness tests)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _truncated_normal_parameter(shape: tuple[int, ...], std: float) -> nn.Parameter:
    parameter = nn.Parameter(torch.empty(shape))
    nn.init.trunc_normal_(parameter, std=std, a=-2 * std, b=2 * std)
    return parameter


class InputKeyValues(nn.Module):
    """The context side of an encoder cross-attend: the input tokens, each `z_n = [v_n ‖ p_n]` (c values, P position
    features), normalised and projected by one Linear(c + P, 2A) into a key and a value.

    `kv_norm="joint"` (DeepMind's semantics) normalises the whole z_n: `k_n, u_n = W (γ ∘ ẑ_n + β) + b` with
    `ẑ_n = (z_n − μ_n)/σ_n` over its F = c + P channels. `kv_norm="values"` normalises only v_n (not at all when
    c = 1, where a LayerNorm would output a constant and erase the signal), and a one-channel token without
    position features is left unnormalised under `joint` for the same reason. Either way every key and value is an
    affine map `W' x_n + b'` of an F-wide, affine-free normalised token x_n (`normalised_tokens`, `folded_weights`:
    the LayerNorm's γ and β are folded into W' and b').

    `attend` runs the attention in one of two exact ways (`absorbed`, chosen by `PerceiverConfig.input_attention`):
    - absorbed: SDPA over the F-wide x_n themselves, with the queries moved into that width
      (`attention.absorbed_attention`); no `[B, N, A]` keys or values exist.
    - materialised: keys and values `[B, N, A]` are built and attended. The position features are the same for
      every example, so their share of the projection (`W'_p p_n`) and their moments are computed once per
      forward, and μ_n, σ_n follow from the per-token moments of v_n and p_n by the pairwise (Chan et al.) merge:
      `(W'_v v_n + W'_p p_n − μ_n W'1) / σ_n + (W β + b)`. Each example then costs a projection of c + 2 inputs
      rather than c + P, and autograd keeps nothing of size `[B, N, 2A]` for the projection itself.

    Both run in float32 with autocast off up to the normalised tokens: normalisation statistics and fixed Fourier
    features lose precision in half precision, and the per-token work there is tiny.
    """

    def __init__(
        self, input_channels: int, position_channels: int, out_channels: int, kv_norm: str, absorbed: bool
    ) -> None:
        super().__init__()
        self.input_channels = input_channels
        self.position_channels = position_channels
        self.out_channels = out_channels
        self.kv_norm = kv_norm
        self.absorbed = absorbed
        total = input_channels + position_channels
        self.joint_norm = nn.LayerNorm(total) if kv_norm == "joint" and total > 1 else None
        self.value_norm = nn.LayerNorm(input_channels) if kv_norm == "values" and input_channels > 1 else None
        self.proj = make_linear(total, 2 * out_channels)

    # -- the absorbed path ------------------------------------------------------------------------------------
    def normalised_tokens(self, tokens: Tensor, positions: Tensor | None) -> Tensor:
        """The affine-free normalised tokens x_n `[B, N, c + P]` (float32) that keys and values are maps of."""
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            values = _full_precision(tokens)
            if self.value_norm is not None:
                values = F.layer_norm(values, (self.input_channels,), eps=self.value_norm.eps)
            if positions is not None:
                values = torch.cat([values, _full_precision(positions).expand(values.shape[0], -1, -1)], dim=-1)
            if self.joint_norm is not None:
                values = F.layer_norm(values, (values.shape[-1],), eps=self.joint_norm.eps)
            return values

    def folded_weights(self) -> tuple[Tensor, Tensor]:
        """`(W' [2A, F], b' [2A])` such that keys ‖ values = `W' x_n + b'` for the x_n of `normalised_tokens`."""
        weight, bias = self.proj.weight, self.proj.bias
        norm = self.joint_norm if self.joint_norm is not None else self.value_norm
        if norm is None:
            return weight, bias
        gain, shift = norm.weight, norm.bias
        if self.value_norm is not None:  # γ and β cover the value channels only
            gain = torch.cat([gain, gain.new_ones(self.position_channels)])
            shift = torch.cat([shift, shift.new_zeros(self.position_channels)])
        return weight * gain, F.linear(shift, weight, bias)

    # -- attending ------------------------------------------------------------------------------------------
    def attend(
        self, q: Tensor, tokens: Tensor, positions: Tensor | None, heads: int, dropout_p: float, backend: str
    ) -> Tensor:
        if not self.absorbed:
            keys, values = self(tokens, positions)
            return multi_head_attention(batched(q, keys.shape[0]), keys, values, heads, dropout_p, backend)
        weight, bias = self.folded_weights()
        width = self.out_channels
        return absorbed_attention(
            q,
            self.normalised_tokens(tokens, positions),
            weight[:width],
            weight[width:],
            bias[width:],
            heads,
            dropout_p,
            backend,
            pad_multiple=8 if tokens.is_cuda else 1,
        )

    def attention_weights(self, q: Tensor, tokens: Tensor, positions: Tensor | None, heads: int) -> Tensor:
        if not self.absorbed:
            keys, _ = self(tokens, positions)
            return attention_weights(batched(q, keys.shape[0]), keys, heads)
        weight, _ = self.folded_weights()
        return absorbed_attention_weights(
            q, self.normalised_tokens(tokens, positions), weight[: self.out_channels], heads
        )

    # -- the materialised path ----------------------------------------------------------------------------------
    def forward(self, tokens: Tensor, positions: Tensor | None) -> tuple[Tensor, Tensor]:
        """Keys and values `[B, N, A]` each (float32)."""
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            tokens = _full_precision(tokens)
            if positions is None:
                kv = self._without_positions(tokens)
            elif self.joint_norm is not None:
                kv = self._joint_factored(tokens, _full_precision(positions))
            else:
                kv = self._values_only(tokens, _full_precision(positions))
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
        c = self.input_channels
        # W_p p_n + b, once per forward, broadcast over the batch by baddbmm.
        position_term = F.linear(positions, self.proj.weight[:, c:], self.proj.bias)
        value_weight = self.proj.weight[:, :c].t()
        return torch.baddbmm(position_term, tokens, value_weight.expand(tokens.shape[0], -1, -1))

    def _joint_factored(self, tokens: Tensor, positions: Tensor) -> Tensor:
        c, p = self.input_channels, self.position_channels
        total = c + p
        norm = self.joint_norm
        assert norm is not None
        weight = self.proj.weight * norm.weight  # W' = W diag(γ), [2A, c + P]
        weight_sum = weight.sum(dim=1)  # W'1, [2A]
        constant = F.linear(norm.bias, self.proj.weight, self.proj.bias)  # Wβ + b, [2A]
        # The position-only terms, the same for every example.
        position_projection = F.linear(positions, weight[:, c:])  # [N, 2A]
        position_mean = positions.mean(dim=-1)
        position_sq_dev = (positions - position_mean[:, None]).square().sum(dim=-1)

        value_mean = tokens.mean(dim=-1, keepdim=True)  # [B, N, 1]
        if c > 1:
            value_sq_dev = (tokens - value_mean).square().sum(dim=-1, keepdim=True)
        else:
            value_sq_dev = torch.zeros_like(value_mean)
        delta = value_mean - position_mean[:, None]
        mean = position_mean[:, None] + delta * (c / total)
        sq_dev = value_sq_dev + position_sq_dev[:, None] + delta.square() * (c * p / total)
        inv_std = torch.rsqrt(sq_dev / total + norm.eps)  # [B, N, 1]

        # (W'_v v − μ W'1 + W'_p p) / σ + const, arranged so that the only [B, N, 2A] work is one scaled copy of
        # the shared position term and one fused multiply-add: the small per-token inputs [v/σ, −μ/σ, 1] meet the
        # weights [W'_v, W'1, const] in a batched matmul that accumulates onto it.
        small_inputs = torch.cat([tokens * inv_std, -mean * inv_std, torch.ones_like(inv_std)], dim=-1)
        small_weight = torch.cat([weight[:, :c], weight_sum[:, None], constant[:, None]], dim=1).t()
        scaled_positions = position_projection * inv_std
        return torch.baddbmm(scaled_positions, small_inputs, small_weight.expand(tokens.shape[0], -1, -1))


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
        self.token_width = input_channels + self.positions.channels
        self.absorbed = config.absorbs_input_attention(self.token_width)

        def cross_attend() -> CrossAttentionLayer:
            key_values = InputKeyValues(
                input_channels, self.positions.channels, attention_width, config.kv_norm, self.absorbed
            )
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
        batch as one piece saves nothing, because the backward pass rebuilds what the cross-attend keeps (the
        `[B, N, A]` keys and values when materialised) and needs its gradients at the same moment anyway. Split by
        examples, the backward holds one chunk's worth.
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

    def forward(self, tokens: Tensor, condition: Tensor | None = None) -> Tensor:
        positions = self.positions()
        latents = self._cross_attend(self.first_cross_attend, self.latents, tokens, positions)
        if condition is not None:  # a per-example offset of every latent, after the shared first read
            latents = latents + condition.to(latents.dtype).unsqueeze(1)
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

    takes_state = True

    def __init__(
        self,
        config: PerceiverConfig,
        input_channels: int,
        grid_shape: Sequence[int],
        state_shape: Sequence[int] | None = None,
    ) -> None:
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
        # Low-dim observations (`observation.state` [B, T_obs, S], normalised) condition the latents: an MLP of the
        # flattened state is added to every latent after the first cross-attend. Not extra input tokens: one token
        # among N = 24,576 is the needle in a haystack the seed studies, and the first read keeps its shared
        # learned queries (which the absorbed encoder computes once per batch, not once per example).
        self.state_shape = tuple(state_shape) if state_shape is not None else None
        self.state_encoder: nn.Module | None = None
        if self.state_shape is not None:
            width = config.latent_channels
            self.state_encoder = nn.Sequential(
                make_linear(math.prod(self.state_shape), width), nn.GELU(), make_linear(width, width)
            )

    def _check_tokens(self, tokens: Tensor) -> None:
        expected = f"[B, N={self.num_tokens}, c={self.input_channels}] (grid {self.grid_shape})"
        if not isinstance(tokens, Tensor):
            raise InputError(f"PerceiverIO tokens: expected a tensor {expected}, got {type(tokens).__name__}")
        if tokens.dim() != 3 or tuple(tokens.shape[1:]) != (self.num_tokens, self.input_channels):
            raise InputError(f"PerceiverIO tokens: expected shape {expected}, got {list(tokens.shape)}")
        if not tokens.is_floating_point():
            raise InputError(f"PerceiverIO tokens: expected a floating-point tensor, got {tokens.dtype}")

    def forward(self, tokens: Tensor, state: Tensor | None = None) -> Tensor:
        """``state [B, T_obs, S]`` is required exactly when the model was built with a ``state_shape``."""
        self._check_tokens(tokens)
        if (state is None) != (self.state_shape is None) or (
            state is not None and tuple(state.shape) != (tokens.shape[0], *self.state_shape)  # type: ignore[misc]
        ):
            want = f"[B={tokens.shape[0]}, {', '.join(map(str, self.state_shape))}]" if self.state_shape else "none"
            got = list(state.shape) if isinstance(state, Tensor) else None
            raise InputError(f"PerceiverIO state: expected {want}, got {got}")
        condition = self.state_encoder(state.flatten(1)) if self.state_encoder is not None and state is not None else None
        return self.decoder(self.encoder(tokens, condition))

    def attention_maps(self, tokens: Tensor) -> Tensor:
        """Weights `[B, cross_heads, num_latents, N]` of the first cross-attend, from the path it runs (for plots)."""
        self._check_tokens(tokens)
        return self.encoder.first_attention_weights(tokens)
