"""One GPU, a few minutes: the training step under fp32 / bf16 autocast / bf16 + torch.compile, absorbed and
materialised cross-attention, with step time, peak memory, MFU, the SDPA kernel that ran and the bf16 error.

    benchmarks/gpu.sh                      # on a machine with one NVIDIA GPU (what it is for)
    benchmarks/gpu.sh --device cpu --mode smoke   # the CPU smoke test: tiny sizes, checks that everything runs

For every input path (`PerceiverConfig.input_attention`) and precision, the benchmark model (`common.ModelShape`:
128 latents × 256, 1 cross head, 4 latent layers × 4 heads, batch 16) trains on N = 12,288 scalar tokens in the
seed layout (the same step as `bench_vs_perceiver_pytorch`), then at the largest N of the run (98,304 in `quick`).
Printed per row:
- step time: median of the timed steps after warm-up (compilation happens in the warm-up);
- peak memory: `torch.cuda.max_memory_allocated()` above what was allocated before the first step (CPU: the peak
  RSS growth of a fresh process, as in `common.measure_step_memory`);
- MFU: the analytic training FLOPs (3 × `common.perceiver_forward_flops`) per second over the card's data-sheet
  peak (`rvperceiver.train.flops.KNOWN_GPU_PEAKS`: the bf16 tensor-core peak for bf16 rows, the fp32 peak for fp32 rows);
- SDPA kernel: the attention operators the profiler saw in one forward (flash, efficient, cudnn, math or the
  CPU flash kernel); on CUDA the absorbed path pads the token width to a multiple of 8 with zeros (exact), which
  the fused kernels want;
- bf16 error: max |bf16 − fp32| of the forward output, same weights and input, relative to max |fp32|.
The whole run is bounded by `--time-limit` (default 420 s): rows that would start after it are skipped and said so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.bench_vs_perceiver_pytorch import build_ours  # noqa: E402
from benchmarks.common import (  # noqa: E402
    MODES,
    Variant,
    format_table,
    gpu_peak_flops,
    machine_info,
    measure_step_memory,
    median,
    mib,
    perceiver_forward_flops,
    pick_device,
    time_alternating,
)

PATHS = ("absorbed", "materialised")
PRECISIONS = {"fp32": (False, False), "bf16": (True, False), "bf16+compile": (True, True)}
LARGEST_TOKENS = {"full": 98304, "quick": 98304, "smoke": 768}


def sdpa_kernels(model: torch.nn.Module, tokens: torch.Tensor, variant: Variant) -> list[str]:
    """Names of the attention operators that one forward runs (from the profiler's operator list)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if variant.device == "cuda" else [])
    with torch.no_grad(), torch.autocast(variant.device, dtype=torch.bfloat16, enabled=variant.bf16):
        with profile(activities=activities) as prof:
            model(tokens)
    names = {e.key for e in prof.key_averages()}
    wanted = ("flash", "efficient_attention", "cudnn_attention", "attention_math", "_scaled_dot_product")
    kernels = sorted(n.replace("aten::", "") for n in names if n.startswith("aten::") and any(w in n for w in wanted))
    return [k for k in kernels if k != "scaled_dot_product_attention"]


def bf16_error(model: torch.nn.Module, tokens: torch.Tensor, device: str) -> float:
    model.eval()
    with torch.no_grad():
        exact = model(tokens).float()
        with torch.autocast(device, dtype=torch.bfloat16):
            approx = model(tokens).float()
    model.train()
    return float((approx - exact).abs().max() / exact.abs().max())


def run_row(tokens: int, path: str, precision: str, mode_name: str, device: str, threads: int) -> dict[str, Any]:
    mode = MODES[mode_name]
    bf16, compiled = PRECISIONS[precision]
    variant = Variant(device, bf16=bf16, compile=compiled)
    overrides = {"input_attention": path}
    model, step = build_ours([tokens], mode.batch, mode.model, variant, float(tokens), overrides=overrides)
    probe = torch.randn(mode.batch, tokens, 1, generator=torch.Generator().manual_seed(5)).to(device)
    kernels = sdpa_kernels(model, probe, variant)
    error = bf16_error(model, probe, device) if bf16 else 0.0
    times = time_alternating({"step": step}, mode.warmup + (1 if compiled else 0), mode.reps, device)["step"]
    del model, step
    kwargs = {"grid": [tokens], "batch": mode.batch, "shape": mode.model.__dict__, "variant": variant.__dict__,
              "max_freq": float(tokens), "overrides": overrides}
    if device == "cuda":
        torch.cuda.empty_cache()
    peak = measure_step_memory("benchmarks.bench_vs_perceiver_pytorch:build_ours_step", kwargs, mode.memory_steps,
                               threads, mode.mmap_threshold)
    step_s = median(times)
    flops = 3 * perceiver_forward_flops(mode.model, tokens, 1, 2 * mode.model.num_bands + 1, mode.batch,
                                        absorbed=path == "absorbed")["total"]
    peaks = gpu_peak_flops(torch.cuda.get_device_name(0)) if device == "cuda" else None
    peak_flops = peaks["bf16" if bf16 else "fp32"] if peaks else math.nan
    return {"tokens": tokens, "path": path, "precision": precision, "step_s": step_s, "step_s_all": times,
            "samples_per_s": mode.batch / step_s, "peak_step_mib": mib(peak), "train_flops": flops,
            "achieved_tflops_per_s": flops / step_s / 1e12, "mfu": flops / step_s / peak_flops,
            "sdpa_kernels": kernels, "bf16_relative_error": error}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time-limit", type=float, default=420.0, help="seconds; later rows are skipped")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    parser.add_argument("--compile-on-cpu", action="store_true", help="also the torch.compile rows on CPU")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    torch.set_num_threads(args.threads)
    mode = MODES[args.mode]
    started = time.perf_counter()
    info = machine_info()
    print(f"# {info.get('gpu_name', info['cpu_model'])}, torch {info['torch_version']}, mode {mode.name}, "
          f"batch {mode.batch}")
    rows, skipped = [], []
    # On CPU (the smoke test) compiling takes minutes on shared cores; --compile-on-cpu includes it anyway.
    precisions = [p for p in PRECISIONS if device == "cuda" or p != "bf16+compile" or args.compile_on_cpu]
    for tokens in (mode.tokens, LARGEST_TOKENS[mode.name]):
        for path in PATHS:
            for precision in precisions:
                if time.perf_counter() - started > args.time_limit:
                    skipped.append(f"N={tokens} {path} {precision}")
                    continue
                try:
                    row = run_row(tokens, path, precision, mode.name, device, args.threads)
                except torch.OutOfMemoryError:
                    skipped.append(f"N={tokens} {path} {precision} (out of memory)")
                    torch.cuda.empty_cache()
                    continue
                rows.append(row)
                print(f"  N={tokens} {path} {precision}: {row['step_s'] * 1e3:.1f} ms/step, "
                      f"{row['peak_step_mib']:.0f} MiB", flush=True)
    table = [[r["tokens"], r["path"], r["precision"], r["step_s"] * 1e3, r["samples_per_s"], r["peak_step_mib"],
              r["achieved_tflops_per_s"], r["mfu"], ", ".join(r["sdpa_kernels"]), r["bf16_relative_error"]]
             for r in rows]
    print(format_table(["N", "input path", "precision", "step ms", "samples/s", "peak step MiB", "TFLOP/s",
                        "MFU", "SDPA kernels", "bf16 rel. error"], table))
    for row in skipped:
        print(f"skipped: {row}")
    print(f"wall {time.perf_counter() - started:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": info, "rows": rows, "skipped": skipped}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
