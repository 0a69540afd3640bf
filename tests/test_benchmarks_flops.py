"""The analytic FLOP counts of `benchmarks.common` against `torch.utils.flop_counter.FlopCounterMode`."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import ModelShape, perceiver_forward_flops, perceiver_pytorch_forward_flops
from rvperceiver.model import PerceiverConfig, PerceiverIO

SHAPE = ModelShape(num_latents=8, latent_channels=32, cross_heads=1, self_heads=2, self_layers=2, mlp_widening=2,
                   num_bands=3, output_steps=4, output_channels=3)


def _counted_forward_flops(model: torch.nn.Module, inputs: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        model(inputs)
    return counter.get_total_flops()


@pytest.mark.parametrize("input_attention", ["absorbed", "materialised"])
@pytest.mark.parametrize(
    ("cross_heads", "cross_width", "channels", "grid", "kv_norm", "position", "num_cross_attends"),
    [
        (1, None, 1, (48,), "joint", "fourier", 1),
        (4, None, 3, (4, 6), "joint", "fourier", 2),
        (2, 16, 2, (2, 3, 4), "values", "fourier", 1),
        (1, None, 3, (30,), "joint", "none", 1),
        (2, None, 1, (5, 6), "values", "none", 3),
    ],
)
def test_forward_flop_formula_matches_the_flop_counter(
    input_attention: str, cross_heads: int, cross_width: int | None, channels: int, grid: tuple[int, ...],
    kv_norm: str, position: str, num_cross_attends: int,
) -> None:
    shape = ModelShape(**{**SHAPE.__dict__, "cross_heads": cross_heads})
    config = PerceiverConfig(
        num_latents=shape.num_latents, latent_channels=shape.latent_channels, cross_heads=cross_heads,
        self_heads=shape.self_heads, self_layers_per_block=shape.self_layers, mlp_widening=shape.mlp_widening,
        num_bands=shape.num_bands, output_steps=shape.output_steps, output_channels=shape.output_channels,
        cross_attention_channels=cross_width, kv_norm=kv_norm, position=position,
        num_cross_attends=num_cross_attends, input_attention=input_attention,
        attention_backend="math",  # the counter sees the math kernel's matmuls (it has no rule for CPU flash)
    )
    model = PerceiverIO(config, channels, grid).eval()
    batch, tokens = 3, math.prod(grid)
    positions = model.encoder.positions.channels
    expected = perceiver_forward_flops(
        shape, tokens, channels, positions, batch, cross_width=cross_width,
        absorbed=input_attention == "absorbed", num_cross_attends=num_cross_attends, kv_norm=kv_norm,
    )["total"]
    assert _counted_forward_flops(model, torch.randn(batch, tokens, channels)) == expected


def test_auto_flop_formula_follows_the_model_rule() -> None:
    for heads, width in ((1, 18), (8, 82), (8, 18)):
        shape = ModelShape(cross_heads=heads)
        config = PerceiverConfig(num_latents=shape.num_latents, latent_channels=shape.latent_channels, cross_heads=heads)
        auto = perceiver_forward_flops(shape, 1000, width - 17, 17, 2)
        chosen = perceiver_forward_flops(shape, 1000, width - 17, 17, 2, absorbed=config.absorbs_input_attention(width))
        assert auto == chosen


def test_perceiver_pytorch_flop_formula_matches_the_flop_counter() -> None:
    perceiver_pytorch = pytest.importorskip("perceiver_pytorch")
    torch.manual_seed(0)
    grid = (40,)
    model = perceiver_pytorch.Perceiver(
        num_freq_bands=SHAPE.num_bands, depth=1, max_freq=40.0, input_channels=1, input_axis=1,
        num_latents=SHAPE.num_latents, latent_dim=SHAPE.latent_channels, cross_heads=1, latent_heads=SHAPE.self_heads,
        cross_dim_head=SHAPE.latent_channels, latent_dim_head=SHAPE.head_dim,
        num_classes=SHAPE.output_steps * SHAPE.output_channels, self_per_cross_attn=SHAPE.self_layers,
    ).eval()
    counted = _counted_forward_flops(model, torch.randn(2, *grid, 1))
    shape = ModelShape(**{**SHAPE.__dict__, "mlp_widening": 6})  # their feed-forward is fixed at 12·D² weights
    expected = perceiver_pytorch_forward_flops(shape, 40, 1, 2 * SHAPE.num_bands + 1, 2)["total"]
    assert counted == expected
