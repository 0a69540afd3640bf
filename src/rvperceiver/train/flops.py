"""FLOPs of one training step and model FLOPs utilisation (MFU) for the training log.

The step is counted, not modelled: one forward and backward pass of a real batch under
:class:`torch.utils.flop_counter.FlopCounterMode`, which sums the FLOPs of every matmul, convolution and attention
kernel the step dispatches (CPU flash attention with the rule torch has for CUDA's). That covers every backbone (Perceiver, CNN) and every input mode (scalar tokens, patches,
absorbed cross-attention) without a formula per model; elementwise work is not counted, as in the usual MFU. The
count runs once, in eval mode and inside a forked RNG, so it changes neither the weights, nor running statistics,
nor the random stream of the run (exact resume stays exact).

MFU is achieved FLOP/s over the device's data-sheet peak: the bf16 tensor-core peak when the step runs under bf16
autocast, the fp32 peak otherwise. Peaks are known for common NVIDIA cards only; on a CPU, or an unknown card, the
log carries FLOP/s and no MFU (a CPU's peak depends on its vector units and clocks; ``benchmarks/bench_flops.py``
measures a matmul ceiling instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["KNOWN_GPU_PEAKS", "count_step_flops", "gpu_peak_flops", "peak_flops"]

KNOWN_GPU_PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    # Dense (no sparsity) data-sheet peaks in FLOP/s: "bf16" the bf16 tensor-core peak with fp32 accumulation,
    # "fp32" the plain (non-TF32) fp32 peak. Matched by substring on the device name, most specific first.
    ("H200", {"bf16": 989e12, "fp32": 67e12}),
    ("H100 PCIe", {"bf16": 756e12, "fp32": 51e12}),
    ("H100", {"bf16": 989e12, "fp32": 67e12}),
    ("A100", {"bf16": 312e12, "fp32": 19.5e12}),
    ("L40S", {"bf16": 362e12, "fp32": 91.6e12}),
    ("L4", {"bf16": 121e12, "fp32": 30.3e12}),
    ("A10G", {"bf16": 70e12, "fp32": 31.2e12}),
    ("A10", {"bf16": 125e12, "fp32": 31.2e12}),
    ("RTX 4090", {"bf16": 165e12, "fp32": 82.6e12}),
    ("RTX 3090", {"bf16": 71e12, "fp32": 35.6e12}),
)


def gpu_peak_flops(name: str) -> dict[str, float] | None:
    """``{"bf16": …, "fp32": …}`` for a CUDA device name, or None when the card is not in the table."""
    for fragment, peaks in KNOWN_GPU_PEAKS:
        if fragment.lower() in name.lower():
            return dict(peaks)
    return None


def peak_flops(device: torch.device, bf16: bool) -> float | None:
    """The data-sheet peak for this device and precision, or None (CPU, unknown card)."""
    if device.type != "cuda":
        return None
    peaks = gpu_peak_flops(torch.cuda.get_device_name(device))
    return None if peaks is None else peaks["bf16" if bf16 else "fp32"]


def _cpu_attention_formulas() -> dict[object, Callable[..., int]]:
    """FLOP rules for the CPU flash-attention kernels, which the counter has none for (it has CUDA's): the same
    formulas torch applies to the CUDA flash kernel, so a step counts alike on both devices."""
    from torch.utils import flop_counter

    aten = torch.ops.aten
    forward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    backward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if forward is None or backward is None:
        return {}

    def forward_flops(query: Any, key: Any, value: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    def backward_flops(grad: Any, query: Any, key: Any, value: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
        return flop_counter.sdpa_backward_flop_count(grad, query, key, value)

    return {forward: forward_flops, backward: backward_flops}


def count_step_flops(model: nn.Module, loss_of: Callable[[], torch.Tensor]) -> float:
    """FLOPs of one forward + backward of ``loss_of()`` (which runs ``model`` on a batch and returns the loss).

    Gradients are cleared afterwards, the model is put back in its training mode and the RNG state of every
    device is restored, so the count leaves the run exactly as it found it.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    model.eval()
    try:
        counting = FlopCounterMode(display=False, custom_mapping=_cpu_attention_formulas())
        with torch.random.fork_rng(devices=devices), counting as counter:
            loss_of().backward()
        return float(counter.get_total_flops())
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
