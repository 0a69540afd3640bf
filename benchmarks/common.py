"""Shared machinery of the benchmarks: settings per run mode, timing, peak memory, FLOP counts, tables, machine info.

Timing rules that every benchmark follows:
- warm-up steps first (allocator, thread pools, lazy init and `torch.compile` are paid there, not measured);
- when two things are compared they are timed in the same process, in alternating repetitions (A, B, A, B, ...),
  so a change in machine load (the CPUs here are shared) hits both alike; the median of each side is reported;
- on CUDA every timed call ends with `torch.cuda.synchronize()`.

Peak memory on CPU is the growth of the peak resident set size (VmHWM in /proc/self/status, what ru_maxrss reads)
of a fresh child process from just before the first training step to after the last: one child per model, so one
model's allocations never hide the other's. The child resets its high-water mark after building the model (writing
5 to /proc/self/clear_refs, Linux), so the import and build peaks do not mask a smaller step peak, and runs with
glibc's `MALLOC_MMAP_THRESHOLD_` fixed (64 KiB; 4 KiB in smoke mode): every tensor above it is its own mapping,
returned to the OS when freed, so the high-water mark follows the live tensors rather than allocator caching.
On CUDA it is `torch.cuda.max_memory_allocated()` above the memory in use before the first step, in-process.
"""

from __future__ import annotations

import datetime
import importlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rvperceiver.train.flops import KNOWN_GPU_PEAKS, gpu_peak_flops  # noqa: F401  (re-exported for the benchmarks)

REPO_ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------------------------------
# run modes


@dataclass(frozen=True)
class ModelShape:
    """The Perceiver hyper-parameters every benchmark shares (the seed's setting unless the mode shrinks it).

    `mlp_widening=6` makes our MLP (D → 6D → D, 12·D² weights) match perceiver-pytorch's fixed GEGLU feed-forward
    (D → 8D, gated down to 4D → D, also 12·D²) in parameters and FLOPs, so the two models do the same work.
    """

    num_latents: int = 128
    latent_channels: int = 256
    cross_heads: int = 1
    self_heads: int = 4
    self_layers: int = 4
    mlp_widening: int = 6
    num_bands: int = 8
    output_steps: int = 8
    output_channels: int = 3

    @property
    def head_dim(self) -> int:
        return self.latent_channels // self.self_heads


@dataclass(frozen=True)
class Mode:
    """Sizes and repetition counts of one run mode (`full`, `quick`, `smoke`)."""

    name: str
    model: ModelShape
    batch: int
    frame: tuple[int, int, int]  # (H, W, C) of one camera frame: H·W·C scalar tokens
    scaling_tokens: tuple[int, ...]
    scaling_reps: int
    warmup: int
    reps: int
    memory_steps: int
    view_reps: int
    sim_episodes: int
    sim_steps: int
    pipeline_episodes: int
    pipeline_batches: int
    matmul_size: int
    matmul_reps: int
    profile: bool
    secondary_memory: bool  # also measure memory of the secondary cases (scaling sizes, 4-axis grid): 1 child each
    mmap_threshold: int

    @property
    def tokens(self) -> int:
        h, w, c = self.frame
        return h * w * c

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MODES: dict[str, Mode] = {
    "full": Mode(
        name="full", model=ModelShape(), batch=16, frame=(64, 64, 3),
        scaling_tokens=(3072, 6144, 12288, 24576, 49152, 98304), scaling_reps=4, warmup=2, reps=6, memory_steps=3,
        view_reps=20,
        sim_episodes=8, sim_steps=50, pipeline_episodes=8, pipeline_batches=40, matmul_size=4096, matmul_reps=5,
        profile=True, secondary_memory=True, mmap_threshold=65536,
    ),
    "quick": Mode(
        name="quick", model=ModelShape(), batch=16, frame=(64, 64, 3),
        scaling_tokens=(3072, 6144, 12288, 24576, 49152, 98304), scaling_reps=2, warmup=1, reps=3, memory_steps=2,
        view_reps=10,
        sim_episodes=4, sim_steps=50, pipeline_episodes=4, pipeline_batches=12, matmul_size=2048, matmul_reps=5,
        profile=True, secondary_memory=True, mmap_threshold=65536,
    ),
    "smoke": Mode(
        name="smoke",
        model=ModelShape(num_latents=8, latent_channels=32, self_heads=2, self_layers=1, num_bands=4),
        batch=2, frame=(8, 8, 3), scaling_tokens=(96, 192, 384, 768), scaling_reps=2, warmup=1, reps=2,
        memory_steps=1, view_reps=3, sim_episodes=2, sim_steps=12, pipeline_episodes=2, pipeline_batches=3,
        matmul_size=256, matmul_reps=2, profile=False, secondary_memory=False, mmap_threshold=4096,
    ),
}


@dataclass(frozen=True)
class Variant:
    """How a model runs: device, bf16 autocast or float32, eager or `torch.compile`."""

    device: str = "cpu"
    bf16: bool = False
    compile: bool = False

    @property
    def label(self) -> str:
        return f"{self.device}/{'bf16' if self.bf16 else 'fp32'}/{'compiled' if self.compile else 'eager'}"


def variants_for(device: str) -> list[Variant]:
    """CPU: float32 eager only (the seed's setting). CUDA: float32 eager, bf16 eager, bf16 compiled."""
    if device == "cuda":
        return [Variant("cuda"), Variant("cuda", bf16=True), Variant("cuda", bf16=True, compile=True)]
    return [Variant("cpu")]


def pick_device(requested: str = "auto") -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    return requested


# ------------------------------------------------------------------------------------------------------------------
# timing


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], Any], device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def time_alternating(
    fns: dict[str, Callable[[], Any]], warmup: int, reps: int, device: str
) -> dict[str, list[float]]:
    """Seconds per call of each function, measured A, B, A, B, ... after `warmup` untimed rounds of each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(time_call(fn, device))
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> float:
    """(max − min) / median: how much the repetitions disagree (load on the shared CPUs shows up here)."""
    mid = median(values)
    return float((max(values) - min(values)) / mid) if mid > 0 else float("nan")


# ------------------------------------------------------------------------------------------------------------------
# training steps


def make_train_step(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    variant: Variant,
) -> Callable[[], torch.Tensor]:
    """One optimisation step: forward (autocast bf16 if asked), MSE, backward, AdamW step.

    The same recipe for every model, so differences come from the models, not from the loop around them.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    run_forward = torch.compile(forward) if variant.compile else forward

    def step() -> torch.Tensor:
        with torch.autocast(variant.device, dtype=torch.bfloat16, enabled=variant.bf16):
            prediction = run_forward(inputs)
        loss = F.mse_loss(prediction.float().reshape(targets.shape), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------------------------
# peak memory


def _resolve(target: str) -> Callable[..., Any]:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _maxrss_bytes() -> int:
    """This process's peak RSS in bytes: VmHWM from /proc/self/status where there is one, else ru_maxrss.

    VmHWM is preferred because `getrusage` also folds in the peak of the process image replaced by `exec`: a child
    started by a big parent would report the parent's RSS at fork as its own peak.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def _reset_peak_rss() -> int:
    """Reset the peak RSS to the current RSS where Linux allows it; returns the baseline to subtract (bytes)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return _maxrss_bytes()  # no reset: growth above the earlier peak only (a lower bound)
    return _maxrss_bytes()


def measure_step_memory_here(build: Callable[..., Callable[[], Any]], kwargs: dict[str, Any], steps: int) -> int:
    """Peak memory (bytes) that `steps` training steps add on top of the built model and its inputs.

    CPU: growth of this process's peak RSS (only meaningful in a fresh process, see `measure_step_memory`).
    CUDA: peak allocated bytes above those allocated before the first step.
    """
    step = build(**kwargs)
    device = kwargs.get("variant", {}).get("device", "cpu")
    if device == "cuda":
        synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        for _ in range(steps):
            step()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated() - before)
    before = _reset_peak_rss()
    for _ in range(steps):
        step()
    return _maxrss_bytes() - before


def measure_step_memory(
    target: str, kwargs: dict[str, Any], steps: int, threads: int, mmap_threshold: int = 65536
) -> int:
    """Run `measure_step_memory_here` for the step builder `module:function` in a fresh Python process.

    A fresh process per model is what makes peak RSS comparable: the high-water mark of a process never goes down,
    and a warm allocator would hide a second model's allocations inside the first one's freed pages.
    `kwargs` must be JSON (the builders take plain numbers and a `variant` dict).
    """
    if kwargs.get("variant", {}).get("device") == "cuda":
        return measure_step_memory_here(_resolve(target), kwargs, steps)
    request = json.dumps({"target": target, "kwargs": kwargs, "steps": steps, "threads": threads})
    env = dict(os.environ)
    env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.common", "--memory-child", request],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"memory child for {target} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return int(json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"])


def _memory_child(request_json: str) -> None:
    request = json.loads(request_json)
    torch.set_num_threads(int(request["threads"]))
    peak = measure_step_memory_here(_resolve(request["target"]), request["kwargs"], int(request["steps"]))
    print(json.dumps({"peak_bytes": peak}))


# ------------------------------------------------------------------------------------------------------------------
# FLOP counts (multiply and add counted separately: one multiply-accumulate = 2 FLOPs)


def perceiver_forward_flops(
    shape: ModelShape, tokens: int, input_channels: int, position_channels: int, batch: int,
    cross_width: int | None = None, absorbed: bool | None = None, num_cross_attends: int = 1,
    kv_norm: str = "joint",
) -> dict[str, float]:
    """Forward FLOPs of one batch through our `PerceiverIO`, by part (matrix products only: norms, softmax,
    activations and matrix-vector products omitted, as `torch.utils.flop_counter` counts them).

    N tokens, c input channels, P position channels, F = c + P, L latents, D width, A the cross-attends' width
    (`cross_width`, None = D), H cross heads, w MLP widening, S self-attention layers, T output queries,
    O output channels, B batch, R cross-attends (`num_cross_attends`; the first has shared queries, the repeats
    per-example ones):
      cross-attend, absorbed (`absorbed`, None = what `PerceiverConfig.input_attention="auto"` picks):
                     queries into the token width L·A·F (×B for a repeat), attention 2·B·H·L·N·F (scores and
                     weighted means at width F), value projection of the attended tokens B·L·F·A, and 2A·F to fold
                     the LayerNorm's shift into the bias (when there is a LayerNorm)
      cross-attend, materialised: K/V projection B·N·(c+2)·2A + N·P·2A + 2A·F (`kv_norm="joint"`: the position
                     columns are projected once per batch, each example adds its c value columns and two LayerNorm
                     columns) or B·N·c·2A + N·P·2A (`values`), attention 2·B·L·N·A
      both:          Q projection L·D·A (×B for a repeat), output projection B·L·A·D, MLP B·2w·L·D²
      self layer:    B·[(4 + 2w)·L·D² + 2·L²·D] (QKV + output projections, MLP, QKᵀ and AV), S per cross-attend
      decoder:       T·D² (queries shared) + B·[2·L·D² (K/V of the latents) + 2·T·L·D + T·D² + 2w·T·D² + T·D·O]
    each ×2 for FLOPs (one multiply-accumulate = 2). A training step costs ≈ 3× the forward (the backward computes
    two products per matmul). Without position features (P = 0) the materialised K/V projection is B·N·c·2A.
    """
    n, c, p = tokens, input_channels, position_channels
    lat, d, w, t, o, b = (
        shape.num_latents, shape.latent_channels, shape.mlp_widening, shape.output_steps, shape.output_channels, batch
    )
    a = d if cross_width is None else cross_width
    heads, width = shape.cross_heads, c + p
    if absorbed is None:
        absorbed = heads * lat * width <= a * (width + lat)
    repeats = num_cross_attends - 1
    query_rows = lat * (1 + repeats * b)  # rows through the query projection: shared first, per-example repeats
    has_norm = width > 1 if kv_norm == "joint" else c > 1
    if absorbed:
        kv = (1 + repeats) * 2 * a * width if has_norm else 0  # the LayerNorm shift folded into the bias: W β
        attention = (
            (1 + repeats) * b * 2 * heads * lat * n * width  # scores and weighted means over the tokens
            + query_rows * a * width  # queries into the token width
            + (1 + repeats) * b * lat * width * a  # value projection of the attended tokens
        )
    else:
        factored_joint = kv_norm == "joint" and p > 0
        per_example = c + 2 if factored_joint else c
        kv = (1 + repeats) * (b * n * per_example * 2 * a + n * p * 2 * a + (2 * a * width if factored_joint else 0))
        attention = (1 + repeats) * b * 2 * lat * n * a
    cross = {
        "cross_kv_projection": kv,
        "cross_attention": attention,
        "cross_q_out_mlp": query_rows * d * a + (1 + repeats) * (b * lat * a * d + b * 2 * w * lat * d * d),
    }
    self_layers = (1 + repeats) * shape.self_layers * b * ((4 + 2 * w) * lat * d * d + 2 * lat * lat * d)
    decoder = t * d * d + b * (2 * lat * d * d + 2 * t * lat * d + t * d * d + 2 * w * t * d * d + t * d * o)
    macs = {**cross, "self_attention_layers": self_layers, "decoder": decoder}
    flops = {name: 2.0 * value for name, value in macs.items()}
    flops["total"] = sum(flops.values())
    return flops


def perceiver_pytorch_forward_flops(
    shape: ModelShape, tokens: int, input_channels: int, position_channels: int, batch: int,
    cross_width: int | None = None,
) -> dict[str, float]:
    """The same count for `perceiver_pytorch.Perceiver` configured as in `bench_vs_perceiver_pytorch`.

    Differences from ours: the K/V projection sees the concatenated [values ‖ positions] of every example
    (B·N·(c+P)·2D), the latents are projected per example, the GEGLU feed-forward costs 12·L·D²
    (D → 8D, 4D → D), and the head is a mean over latents and one Linear(D, T·O). `cross_width` is their
    `cross_heads × cross_dim_head` (None = D, the matched setting).
    """
    n, c, p = tokens, input_channels, position_channels
    lat, d, b = shape.num_latents, shape.latent_channels, batch
    a = d if cross_width is None else cross_width
    ff = 12 * lat * d * d
    macs = {
        "cross_kv_projection": b * n * (c + p) * 2 * a,
        "cross_attention": b * 2 * lat * n * a,
        "cross_q_out_mlp": b * (2 * lat * d * a + ff),
        "self_attention_layers": shape.self_layers * b * (4 * lat * d * d + 2 * lat * lat * d + ff),
        "decoder": b * d * shape.output_steps * shape.output_channels,
    }
    flops = {name: 2.0 * value for name, value in macs.items()}
    flops["total"] = sum(flops.values())
    return flops


# ------------------------------------------------------------------------------------------------------------------
# output


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (so the printed output can be pasted into BENCHMARKS.md as is)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                return str(value)
            magnitude = abs(value)
            if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
                return f"{value:.3g}"
            return f"{value:.3f}" if magnitude < 10 else f"{value:.1f}"
        return str(value)

    text_rows = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) if text_rows else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(widths[i]) for i, h in enumerate(headers)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(r[i].ljust(widths[i]) for i in range(len(headers))) + " |" for r in text_rows]
    return "\n".join(lines)


def mib(num_bytes: float) -> float:
    return num_bytes / 2**20


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags_of_interest() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f in {"avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"})
    except OSError:
        pass
    return []


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags_of_interest(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cuda_available": torch.cuda.is_available(),
    }
    try:
        import perceiver_pytorch  # noqa: F401
        from importlib.metadata import version

        info["perceiver_pytorch_version"] = version("perceiver-pytorch")
    except Exception:  # the comparison benchmark reports the import error itself
        info["perceiver_pytorch_version"] = None
    if torch.cuda.is_available():
        info["gpu_name"] = torch.cuda.get_device_name(0)
        info["gpu_peak_flops"] = gpu_peak_flops(info["gpu_name"])
    return info


def finite_or_nan(value: float) -> float:
    return float(value) if math.isfinite(value) else float("nan")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-child":
        _memory_child(sys.argv[2])
    else:
        raise SystemExit("usage: python -m benchmarks.common --memory-child REQUEST_JSON (internal)")


def standard_main(doc: str, run: Callable[[Mode, Variant, int], dict[str, Any]], per_variant: bool = True) -> None:
    """The command line every ``bench_*.py`` shares: ``--mode``, ``--device``, ``--threads``, ``--out``.

    ``run(mode, variant, threads)`` is called once per device variant (fp32, bf16, compiled on CUDA; fp32 on CPU)
    when ``per_variant``, else once for the plain variant of the chosen device.
    """
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    variants = variants_for(device) if per_variant else [Variant(device)]
    results = [run(MODES[args.mode], variant, args.threads) for variant in variants]
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results if per_variant else results[0], handle, indent=2)

