"""Hardware efficiency: achieved FLOP/s of our training step as a share of what this machine's matmul reaches.

The ceiling is measured, not quoted: a large square float32 matmul (`torch.mm`, n × n, 2n³ FLOPs) timed on the
same threads and under the same load as the step. The step's FLOPs are counted analytically (matmuls only, see
`common.perceiver_forward_flops`; a training step ≈ 3 × forward). On CUDA the step is also set against the card's
data-sheet peak (`rvperceiver.train.flops.KNOWN_GPU_PEAKS`): bf16 tensor-core peak for bf16 autocast, fp32 peak otherwise (MFU).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from benchmarks.bench_vs_perceiver_pytorch import build_ours
from benchmarks.common import (
    Mode,
    Variant,
    format_table,
    gpu_peak_flops,
    median,
    perceiver_forward_flops,
    standard_main,
    time_alternating,
    time_call,
)


def matmul_flops_per_s(size: int, reps: int, device: str, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)  # warm-up
    times = [time_call(lambda: torch.mm(a, b), device) for _ in range(reps)]
    flops = 2.0 * size**3
    return {"size": size, "median_flops_per_s": flops / median(times), "best_flops_per_s": flops / min(times)}


def formula_text() -> str:
    doc = inspect.getdoc(perceiver_forward_flops) or ""
    return doc.split("\n", 2)[2] if doc.count("\n") >= 2 else doc


def run(mode: Mode, variant: Variant, threads: int = 2, step_times: list[float] | None = None) -> dict[str, Any]:
    """`step_times`: seconds of the same step (seed layout, `mode.batch`, `mode.tokens`) measured elsewhere in this
    run (the comparison benchmark times exactly this step), so it is not timed twice."""
    device = variant.device
    dtype = torch.bfloat16 if variant.bf16 else torch.float32
    matmul = matmul_flops_per_s(mode.matmul_size, mode.matmul_reps, device, dtype)
    tokens = mode.tokens
    if step_times is None:
        _, step = build_ours([tokens], mode.batch, mode.model, variant, float(tokens))
        step_times = time_alternating({"step": step}, mode.warmup, mode.reps, device)["step"]
    times = step_times
    step_s = median(times)
    forward = perceiver_forward_flops(mode.model, tokens, 1, 2 * mode.model.num_bands + 1, mode.batch)
    train_flops = 3 * forward["total"]
    achieved = train_flops / step_s
    share = achieved / matmul["median_flops_per_s"]
    result: dict[str, Any] = {
        "variant": variant.label,
        "tokens": tokens,
        "batch": mode.batch,
        "matmul": matmul,
        "step_s": step_s,
        "step_s_all": times,
        "forward_flops_by_part": forward,
        "train_flops": train_flops,
        "achieved_flops_per_s": achieved,
        "share_of_measured_matmul": share,
    }
    rows = [[part, value / 1e9, value / forward["total"]] for part, value in forward.items() if part != "total"]
    print(f"\n## Hardware efficiency ({variant.label}, batch {mode.batch}, {tokens} tokens)")
    print("FLOP count (forward, per batch):\n" + formula_text())
    print(format_table(["part", "forward GFLOP", "share"], rows))
    summary = [["matmul " + str(mode.matmul_size) + "² " + str(dtype).replace("torch.", ""),
                matmul["median_flops_per_s"] / 1e9, matmul["best_flops_per_s"] / 1e9],
               ["training step (3 × forward)", achieved / 1e9, float("nan")]]
    print(format_table(["what", "GFLOP/s (median)", "GFLOP/s (best)"], summary))
    print(f"step achieves {share:.1%} of the measured matmul rate")
    if device == "cuda":
        peaks = gpu_peak_flops(torch.cuda.get_device_name(0))
        if peaks is not None:
            peak = peaks["bf16" if variant.bf16 else "fp32"]
            result["gpu_peak_flops"] = peak
            result["mfu"] = achieved / peak
            print(f"MFU against the data-sheet peak ({peak / 1e12:.0f} TFLOP/s): {result['mfu']:.1%}")
        else:
            result["mfu"] = float("nan")
            print("MFU: this GPU is not in rvperceiver.train.flops.KNOWN_GPU_PEAKS")
    return result


def main() -> None:
    standard_main(__doc__, run)


if __name__ == "__main__":
    main()
