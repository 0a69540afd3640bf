"""Attention primitives: SDPA against the textbook formula, layer shapes, gradients, residual structure."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rvperceiver.errors import ConfigError
from rvperceiver.model.attention import (
    MLP,
    CrossAttentionLayer,
    LatentKeyValues,
    SelfAttentionBlock,
    SelfAttentionLayer,
    attention_weights,
    init_linear,
    merge_heads,
    multi_head_attention,
    split_heads,
)


def _manual_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax(q kᵀ / √e) v per head, written out with plain loops over heads."""
    batch, length, width = q.shape
    e = width // heads
    outputs = []
    for h in range(heads):
        qh, kh, vh = (t[..., h * e : (h + 1) * e] for t in (q, k, v))
        weights = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(e), dim=-1)
        outputs.append(weights @ vh)
    return torch.cat(outputs, dim=-1)


def test_sdpa_path_equals_manual_softmax_attention() -> None:
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 5, 8), torch.randn(2, 11, 8), torch.randn(2, 11, 8)
    for heads in (1, 2, 4):
        assert torch.allclose(multi_head_attention(q, k, v, heads), _manual_attention(q, k, v, heads), atol=1e-5)
    weights = attention_weights(q, k, 2)
    assert weights.shape == (2, 2, 5, 11)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 5), atol=1e-6)
    assert torch.allclose(merge_heads(weights @ split_heads(v, 2)), multi_head_attention(q, k, v, 2), atol=1e-5)


def test_split_and_merge_heads_are_inverse() -> None:
    x = torch.randn(3, 7, 12)
    assert split_heads(x, 4).shape == (3, 4, 7, 3)
    assert torch.equal(merge_heads(split_heads(x, 4)), x)


def test_init_linear_is_fan_in_truncated_normal_with_zero_bias() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(400, 300)
    init_linear(linear)
    std = 1 / math.sqrt(400)
    assert float(linear.weight.detach().abs().max()) <= 2 * std + 1e-7
    assert 0.8 * std < float(linear.weight.detach().std()) < 0.95 * std  # truncation at ±2σ leaves ≈ 0.88σ
    assert torch.equal(linear.bias, torch.zeros(300))


def _assert_every_parameter_has_a_gradient(module: torch.nn.Module) -> None:
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_cross_attention_layer_shapes_gradients_and_shared_queries() -> None:
    torch.manual_seed(0)
    layer = CrossAttentionLayer(16, LatentKeyValues(16), heads=2, widening=2)
    context = torch.randn(3, 9, 16)
    shared = torch.randn(4, 16, requires_grad=True)
    out = layer(shared, context)
    assert out.shape == (3, 4, 16)
    # A [L, D] query shared by the batch gives the same result as the same query repeated per example.
    assert torch.allclose(out, layer(shared.detach().expand(3, -1, -1), context), atol=1e-6)
    out.square().sum().backward()
    _assert_every_parameter_has_a_gradient(layer)
    assert shared.grad is not None and shared.grad.abs().sum() > 0
    assert layer.attention_weights(shared, context).shape == (3, 2, 4, 9)


def test_cross_attention_output_is_query_residual_plus_attention_plus_mlp() -> None:
    torch.manual_seed(0)
    layer = CrossAttentionLayer(8, LatentKeyValues(8), heads=1)
    query, context = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    keys, values = layer.key_values(context)
    q = layer.q_proj(layer.q_norm(query))
    x = query + layer.o_proj(_manual_attention(q, keys, values, 1))
    assert torch.allclose(layer(query, context), x + layer.mlp(x), atol=1e-5)


def test_self_attention_block_shapes_gradients_and_distinct_layers() -> None:
    torch.manual_seed(0)
    block = SelfAttentionBlock(num_layers=3, channels=16, heads=4)
    x = torch.randn(2, 6, 16)
    out = block(x)
    assert out.shape == x.shape
    out.square().sum().backward()
    _assert_every_parameter_has_a_gradient(block)
    weights = [layer.qkv_proj.weight for layer in block.layers]
    assert weights[0] is not weights[1] and not torch.equal(weights[0], weights[1])


def test_self_attention_layer_is_permutation_equivariant() -> None:
    torch.manual_seed(0)
    layer = SelfAttentionLayer(8, heads=2)
    x = torch.randn(1, 5, 8)
    order = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(layer(x)[:, order], layer(x[:, order]), atol=1e-5)


def test_mlp_widens_internally_and_keeps_width() -> None:
    mlp = MLP(8, widening=3)
    assert mlp.expand.out_features == 24 and mlp.contract.in_features == 24
    assert mlp(torch.randn(2, 4, 8)).shape == (2, 4, 8)


def test_dropout_only_acts_in_training_mode() -> None:
    torch.manual_seed(0)
    layer = SelfAttentionLayer(8, heads=2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    layer.train()
    assert not torch.equal(layer(x), layer(x))


# -- SDPA backend choice -------------------------------------------------------------------------------------------


def _kernels_enabled_during_sdpa(monkeypatch: pytest.MonkeyPatch, backend: str) -> dict[str, bool]:
    """Which SDPA kernels were allowed at the moment `multi_head_attention` called SDPA with `backend`."""
    seen: dict[str, bool] = {}
    real_sdpa = F.scaled_dot_product_attention

    def recording_sdpa(*args: object, **kwargs: object) -> torch.Tensor:
        seen.update(math=torch.backends.cuda.math_sdp_enabled(), flash=torch.backends.cuda.flash_sdp_enabled())
        return real_sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording_sdpa)
    q, k, v = torch.randn(2, 5, 8), torch.randn(2, 11, 8), torch.randn(2, 11, 8)
    multi_head_attention(q, k, v, 2, backend=backend)
    return seen


def test_backend_choice_restricts_sdpa_to_that_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _kernels_enabled_during_sdpa(monkeypatch, "math") == {"math": True, "flash": False}
    assert _kernels_enabled_during_sdpa(monkeypatch, "flash") == {"math": False, "flash": True}
    assert _kernels_enabled_during_sdpa(monkeypatch, "auto") == {"math": True, "flash": True}
    # The restriction ends with the call.
    assert torch.backends.cuda.math_sdp_enabled() and torch.backends.cuda.flash_sdp_enabled()


@pytest.mark.parametrize("backend", ["math", "flash"])
def test_every_cpu_backend_computes_the_same_attention(backend: str) -> None:
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 5, 8), torch.randn(2, 11, 8), torch.randn(2, 11, 8)
    expected = _manual_attention(q, k, v, 2)
    assert torch.allclose(multi_head_attention(q, k, v, 2, backend=backend), expected, atol=1e-5)


def test_a_kernel_missing_on_this_device_is_a_config_error() -> None:
    q = torch.randn(2, 5, 8)
    with pytest.raises(ConfigError, match="attention_backend='efficient'.*cpu"):
        multi_head_attention(q, q, q, 2, backend="efficient")
    with pytest.raises(ConfigError, match="'cudnn'"):
        multi_head_attention(q, q, q, 2, backend="cudnn")
