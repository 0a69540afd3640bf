"""Attention building blocks: multi-head attention, cross- and self-attention layers, the MLP.

Every layer is pre-LayerNorm with residual connections, as in the Perceiver papers (appendix C): normalise, attend,
project back and add to the query; then normalise, MLP (Linear → GELU → Linear, width × `widening`), add.
Attention itself always goes through `F.scaled_dot_product_attention`, so the `[B, heads, queries, keys]` weight
array is never built in the forward pass (PyTorch picks a fused kernel where one exists). `attention_weights`
builds it explicitly, for plots and for testing the fused path against the textbook formula.

`absorbed_attention` is the same multi-head attention for a context whose keys and values are affine maps of
narrow tokens (the encoder's input): it attends in the tokens' width and never builds keys or values.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from rvperceiver.errors import ConfigError

# `PerceiverConfig.attention_backend` values → the SDPA kernels they allow ("auto": PyTorch's own choice).
SDPA_BACKENDS: dict[str, list[SDPBackend] | None] = {
    "auto": None,
    "math": [SDPBackend.MATH],
    "efficient": [SDPBackend.EFFICIENT_ATTENTION],
    "flash": [SDPBackend.FLASH_ATTENTION],
}


def _softmax(scores: Tensor) -> Tensor:
    """Softmax over the last axis in at least float32 (weights for plots must sum to one)."""
    return torch.softmax(scores.float() if scores.dtype in (torch.float16, torch.bfloat16) else scores, dim=-1)


def init_linear(linear: nn.Linear) -> None:
    """Fan-in scaled truncated normal weights (std 1/√fan_in, cut at ±2σ) and zero bias.

    This is DeepMind's `VarianceScaling(1.0)` choice: each output starts with roughly the variance of one input
    channel, whatever the fan-in. A fixed small std (0.02) would instead shrink a one-channel scalar value entering
    the key/value projection fifty-fold relative to a unit-variance feature.
    """
    std = 1.0 / math.sqrt(linear.in_features)
    nn.init.trunc_normal_(linear.weight, std=std, a=-2 * std, b=2 * std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def make_linear(in_features: int, out_features: int) -> nn.Linear:
    linear = nn.Linear(in_features, out_features)
    init_linear(linear)
    return linear


def split_heads(x: Tensor, heads: int) -> Tensor:
    """`[B, L, E]` → `[B, heads, L, E/heads]`."""
    batch, length, width = x.shape
    return x.view(batch, length, heads, width // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """`[B, heads, L, e]` → `[B, L, heads·e]`."""
    batch, heads, length, width = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * width)


@contextlib.contextmanager
def _only_backend(backend: str, device: torch.device) -> Iterator[None]:
    """Restrict SDPA to `backend`'s kernel; a kernel that cannot run here becomes one ConfigError naming the field."""
    if backend not in SDPA_BACKENDS:
        raise ConfigError(f"attention backend must be one of {list(SDPA_BACKENDS)}, got {backend!r}")
    kernels = SDPA_BACKENDS[backend]
    if kernels is None:
        yield
        return
    with sdpa_kernel(kernels):
        try:
            yield
        except RuntimeError as error:
            # The wording differs between PyTorch versions and devices ("No available kernel", "No viable backend").
            message = str(error)
            if "No available kernel" not in message and "No viable backend" not in message:
                raise
            raise ConfigError(
                f"PerceiverConfig.attention_backend={backend!r}: PyTorch has no such attention kernel for these "
                f"inputs on {device.type} (CPU has 'math' and 'flash'); use 'auto'"
            ) from None


def multi_head_attention(
    q: Tensor, k: Tensor, v: Tensor, heads: int, dropout_p: float = 0.0, backend: str = "auto"
) -> Tensor:
    """Scaled dot-product attention of `q [B, L, E]` over `k, v [B, N, E]` with `heads` heads → `[B, L, E]`.

    Keys and values are cast to the query's dtype, so a float32 key/value computation (see
    `perceiver.InputKeyValues`) can meet a half-precision query under autocast. `backend` (a `SDPA_BACKENDS` key)
    restricts which SDPA kernel runs; "auto" leaves the choice to PyTorch.
    """
    with _only_backend(backend, q.device):
        out = F.scaled_dot_product_attention(
            split_heads(q, heads),
            split_heads(k.to(q.dtype), heads),
            split_heads(v.to(q.dtype), heads),
            dropout_p=dropout_p,
        )
    return merge_heads(out)


def attention_weights(q: Tensor, k: Tensor, heads: int) -> Tensor:
    """The softmax attention weights `[B, heads, L, N]` that `multi_head_attention` applies, built explicitly."""
    qh = split_heads(q, heads)
    kh = split_heads(k.to(q.dtype), heads)
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(qh.shape[-1])
    return _softmax(scores)


def absorbed_queries(q: Tensor, key_weight: Tensor, heads: int) -> Tensor:
    """Per-head queries moved into the token width: `q [.., L, A]`, `key_weight [A, F]` → `[.., heads·L, F]`.

    Head h's logit of query l on token x is `q_lh · (W_h x + b_h)`; the bias term does not depend on the token and
    cancels in the softmax, so `(W_hᵀ q_lh) · x` gives the same weights. The heads are stacked along the query axis
    (head-major), so all of them attend to one shared copy of the tokens.
    """
    *lead, length, width = q.shape
    head_width = width // heads
    per_head = q.view(*lead, length, heads, head_width).transpose(-2, -3)  # [.., H, L, d]
    moved = torch.matmul(per_head, key_weight.to(q.dtype).view(heads, head_width, -1))  # [.., H, L, F]
    return moved.reshape(*lead, heads * length, key_weight.shape[1])


def absorbed_attention(
    q: Tensor,
    tokens: Tensor,
    key_weight: Tensor,
    value_weight: Tensor,
    value_bias: Tensor,
    heads: int,
    dropout_p: float = 0.0,
    backend: str = "auto",
    pad_multiple: int = 1,
) -> Tensor:
    """Multi-head attention over keys `tokens W_kᵀ + b_k` and values `tokens W_vᵀ + b_v`, never building either.

    `q` is `[B, L, A]` or `[L, A]` (shared by the batch), `tokens` `[B, N, F]`, `key_weight` and `value_weight`
    `[A, F]`, `value_bias` `[A]`; the result `[B, L, A]` equals `multi_head_attention(q, keys, values, heads)`.
    The queries are absorbed into the token width (`absorbed_queries`) and SDPA runs once over `[B, 1, H·L, F]`
    queries and the shared `[B, 1, N, F]` tokens with the heads' own scale 1/√(A/H). Each head's output is a
    weighted mean of tokens; its value projection is applied afterwards, on L rows instead of N. This is cheaper
    when the token width F is below the head width (see `PerceiverConfig.input_attention`), and nothing of size
    `[B, N, A]` exists in the forward or the backward pass.

    Attention dropout makes the weights sum to less or more than one, so the value bias can no longer be added
    once afterwards: a column of ones is then appended to the tokens (zero in the queries, so the logits stay the
    same) and its attended value, the surviving weight mass, multiplies the bias. `pad_multiple` pads the width
    with zeros to a multiple of it (exact), for fused kernels that want head widths in multiples of 8.
    """
    batch, _, width = tokens.shape
    head_width = q.shape[-1] // heads
    queries = absorbed_queries(q, key_weight, heads)
    if queries.dim() == 2:
        queries = queries.expand(batch, -1, -1)
    tokens = tokens.to(queries.dtype)
    with_mass = dropout_p > 0.0
    padded = -(-(width + int(with_mass)) // pad_multiple) * pad_multiple
    if with_mass:
        tokens = torch.cat([tokens, tokens.new_ones(batch, tokens.shape[1], 1)], dim=-1)
    if padded > tokens.shape[-1]:
        tokens = F.pad(tokens, (0, padded - tokens.shape[-1]))
    if padded > width:
        queries = F.pad(queries, (0, padded - width))
    with _only_backend(backend, q.device):
        attended = F.scaled_dot_product_attention(
            queries.unsqueeze(1),
            tokens.unsqueeze(1),
            tokens.unsqueeze(1),
            dropout_p=dropout_p,
            scale=1.0 / math.sqrt(head_width),
        )
    attended = attended.view(batch, heads, -1, padded)  # [B, H, L, padded]: per head, a weighted mean token
    per_head_weight = value_weight.to(attended.dtype).view(heads, head_width, width)
    out = torch.matmul(attended[..., :width], per_head_weight.transpose(1, 2))  # [B, H, L, d]
    bias = value_bias.to(attended.dtype).view(heads, 1, head_width)
    out = out + (bias * attended[..., width : width + 1] if with_mass else bias)
    return merge_heads(out)


def absorbed_attention_weights(q: Tensor, tokens: Tensor, key_weight: Tensor, heads: int) -> Tensor:
    """The weights `[B, heads, L, N]` that `absorbed_attention` applies, built explicitly (for plots and tests)."""
    batch = tokens.shape[0]
    queries = absorbed_queries(q, key_weight, heads)
    if queries.dim() == 2:
        queries = queries.expand(batch, -1, -1)
    scores = queries @ tokens.to(queries.dtype).transpose(-1, -2) / math.sqrt(q.shape[-1] // heads)
    return _softmax(scores).view(batch, heads, -1, tokens.shape[1])


class MLP(nn.Module):
    """LayerNorm → Linear(D, w·D) → GELU → Linear(w·D, D) → dropout (the residual is added by the caller)."""

    def __init__(self, channels: int, widening: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.expand = make_linear(channels, widening * channels)
        self.contract = make_linear(widening * channels, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.contract(F.gelu(self.expand(self.norm(x)))))


def batched(q: Tensor, batch: int) -> Tensor:
    """Queries `[L, A]` shared by the batch, as a `[B, L, A]` view; `[B, L, A]` unchanged."""
    return q.unsqueeze(0).expand(batch, -1, -1) if q.dim() == 2 else q


class LatentKeyValues(nn.Module):
    """The context side of a cross-attend to a `[B, N, D]` array of the model's own width (the decoder's latents):
    LayerNorm then one Linear(D, 2D) gives keys and values, attended with `multi_head_attention`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.proj = make_linear(channels, 2 * channels)

    def forward(self, context: Tensor) -> tuple[Tensor, Tensor]:
        keys, values = self.proj(self.norm(context)).chunk(2, dim=-1)
        return keys, values

    def attend(self, q: Tensor, context: Tensor, heads: int, dropout_p: float, backend: str) -> Tensor:
        keys, values = self(context)
        return multi_head_attention(batched(q, keys.shape[0]), keys, values, heads, dropout_p, backend)

    def attention_weights(self, q: Tensor, context: Tensor, heads: int) -> Tensor:
        keys, _ = self(context)
        return attention_weights(batched(q, keys.shape[0]), keys, heads)


class CrossAttentionLayer(nn.Module):
    """Queries of width D attend to a context; how the context is attended is up to the `key_values` module.

    `key_values.attend(q, *context, heads, dropout_p, backend)` returns the attended `[B, L, A]` for projected
    queries `q`, and `key_values.attention_weights(q, *context, heads)` the weights it applies. The context side
    is where inputs differ (latents vs. raw tokens with position features, which can be attended without building
    their keys and values), so it is pluggable while the query side (its own LayerNorm, projection, residual and
    MLP) is fixed. Queries may be `[L, D]`, one set shared by the whole batch (learned latents, decoder queries):
    they are then projected once and broadcast.

    `attention_channels` (A, None = D) is the width of queries, keys and values: the query projection maps D → A
    and the output projection A → D. The attention products cost 2·B·L·N·A, so a narrower A is the way to make a
    cross-attend over many tokens cheaper (the Perceiver paper sizes it by the smaller, key/value input).
    """

    def __init__(
        self,
        channels: int,
        key_values: nn.Module,
        heads: int,
        widening: int = 1,
        dropout: float = 0.0,
        backend: str = "auto",
        attention_channels: int | None = None,
    ) -> None:
        super().__init__()
        width = channels if attention_channels is None else attention_channels
        self.heads = heads
        self.dropout_p = dropout
        self.backend = backend
        self.q_norm = nn.LayerNorm(channels)
        self.q_proj = make_linear(channels, width)
        self.key_values = key_values
        self.o_proj = make_linear(width, channels)
        self.residual_dropout = nn.Dropout(dropout)
        self.mlp = MLP(channels, widening, dropout)

    def forward(self, query: Tensor, *context: Tensor | None) -> Tensor:
        q = self.q_proj(self.q_norm(query))
        dropout_p = self.dropout_p if self.training else 0.0
        attended = self.key_values.attend(q, *context, heads=self.heads, dropout_p=dropout_p, backend=self.backend)
        x = query + self.residual_dropout(self.o_proj(attended))  # a shared [L, D] query broadcasts over B
        return x + self.mlp(x)

    def attention_weights(self, query: Tensor, *context: Tensor | None) -> Tensor:
        """`[B, heads, L, N]` weights of this layer's attention (materialised: for plots and tests only)."""
        q = self.q_proj(self.q_norm(query))
        return self.key_values.attention_weights(q, *context, heads=self.heads)


class SelfAttentionLayer(nn.Module):
    """Self-attention over `[B, L, D]`: one LayerNorm (queries and keys are the same array), fused qkv projection."""

    def __init__(
        self, channels: int, heads: int, widening: int = 1, dropout: float = 0.0, backend: str = "auto"
    ) -> None:
        super().__init__()
        self.heads = heads
        self.dropout_p = dropout
        self.backend = backend
        self.norm = nn.LayerNorm(channels)
        self.qkv_proj = make_linear(channels, 3 * channels)
        self.o_proj = make_linear(channels, channels)
        self.residual_dropout = nn.Dropout(dropout)
        self.mlp = MLP(channels, widening, dropout)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv_proj(self.norm(x)).chunk(3, dim=-1)
        attended = multi_head_attention(q, k, v, self.heads, self.dropout_p if self.training else 0.0, self.backend)
        x = x + self.residual_dropout(self.o_proj(attended))
        return x + self.mlp(x)


class SelfAttentionBlock(nn.Module):
    """`num_layers` self-attention layers applied in sequence (each with its own weights)."""

    def __init__(
        self,
        num_layers: int,
        channels: int,
        heads: int,
        widening: int = 1,
        dropout: float = 0.0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            SelfAttentionLayer(channels, heads, widening, dropout, backend) for _ in range(num_layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
