"""The training log's FLOP count and MFU peaks."""

from __future__ import annotations

import torch
from torch import nn

from rvperceiver.train.flops import count_step_flops, gpu_peak_flops, peak_flops


def test_a_step_is_counted_exactly_and_leaves_the_model_as_it_was() -> None:
    model = nn.Sequential(nn.Linear(64, 128), nn.Dropout(0.5), nn.ReLU(), nn.Linear(128, 8))
    model.train()
    x = torch.randn(32, 64)
    before = torch.random.get_rng_state()
    flops = count_step_flops(model, lambda: model(x).pow(2).mean())
    # forward 2·B·(64·128 + 128·8); backward: both weight gradients, and the input gradient of the second layer
    # only (the batch needs none)
    forward = 2 * 32 * (64 * 128 + 128 * 8)
    assert flops == forward + forward + 2 * 32 * 128 * 8
    assert model.training and all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.random.get_rng_state(), before)


def test_attention_is_counted_on_the_cpu_kernel_too() -> None:
    """The counter has no rule for CPU flash attention; ours applies torch's CUDA-flash rule to it."""
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    query = nn.Parameter(torch.randn(2, 4, 16, 8))
    key, value = torch.randn(2, 4, 32, 8), torch.randn(2, 4, 32, 8)
    holder = nn.Module()
    holder.query = query
    flops = count_step_flops(holder, lambda: torch.nn.functional.scaled_dot_product_attention(query, key, value).sum())
    shape = (2, 4, 16, 8)
    assert flops == sdpa_flop_count(shape, key.shape, value.shape) + sdpa_backward_flop_count(shape, shape, key.shape, value.shape)
    assert flops > 0


def test_peaks_by_device_name() -> None:
    assert gpu_peak_flops("NVIDIA H100 PCIe") == {"bf16": 756e12, "fp32": 51e12}  # not the SXM part's figures
    assert gpu_peak_flops("NVIDIA H100 80GB HBM3")["bf16"] == 989e12
    assert gpu_peak_flops("Some Future Card") is None
    assert peak_flops(torch.device("cpu"), bf16=False) is None
