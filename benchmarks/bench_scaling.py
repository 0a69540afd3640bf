"""How our training step scales with the number of input tokens N (seed layout `[B, N, 1]`, 1-axis grid).

With L latents ≪ N, every input-side cost of a Perceiver (key/value projection, QKᵀ, AV) is linear in N and the
latent part is constant, so the step time should grow at most linearly: 4× the tokens, ≤ 4.4× the time (10 % slack
for cache effects). All sizes are timed round-robin in one process (size 1, size 2, ..., size 1, ...) so machine
load drifts hit every size alike.
"""

from __future__ import annotations

from typing import Any

from benchmarks.bench_vs_perceiver_pytorch import build_ours
from benchmarks.common import (
    Mode,
    Variant,
    format_table,
    measure_step_memory,
    median,
    mib,
    perceiver_forward_flops,
    spread,
    standard_main,
    time_alternating,
)


def run(mode: Mode, variant: Variant, threads: int = 2, measure_memory: bool = True) -> dict[str, Any]:
    sizes = list(mode.scaling_tokens)
    steps = {}
    for n in sizes:
        _, steps[str(n)] = build_ours([n], mode.batch, mode.model, variant, float(n))
    times = time_alternating(steps, mode.warmup, mode.scaling_reps, variant.device)
    del steps
    largest = sizes[-1]
    reference = largest // 4 if largest // 4 in sizes else sizes[0]
    memory: dict[str, float] = {}
    if measure_memory and mode.secondary_memory:
        # One fresh child per size; the quick mode measures only the two sizes of the headline ratio.
        for n in sizes if mode.name == "full" else [reference, largest]:
            kwargs = {"grid": [n], "batch": mode.batch, "shape": mode.model.__dict__, "variant": variant.__dict__,
                      "max_freq": float(n)}
            peak = measure_step_memory("benchmarks.bench_vs_perceiver_pytorch:build_ours_step", kwargs,
                                       mode.memory_steps, threads, mode.mmap_threshold)
            memory[str(n)] = mib(peak)

    reference_time = median(times[str(reference)])
    position_channels = 2 * mode.model.num_bands + 1
    rows, per_size = [], []
    for n in sizes:
        t = median(times[str(n)])
        flops = 3 * perceiver_forward_flops(mode.model, n, 1, position_channels, mode.batch)["total"]
        entry = {
            "tokens": n,
            "step_s": t,
            "step_s_all": times[str(n)],
            "spread": spread(times[str(n)]),
            "samples_per_s": mode.batch / t,
            "time_over_reference": t / reference_time,
            "tokens_over_reference": n / reference,
            "train_flops": flops,
            "achieved_flops_per_s": flops / t,
            "peak_step_mib": memory.get(str(n), float("nan")),
        }
        per_size.append(entry)
        rows.append([n, entry["tokens_over_reference"], entry["time_over_reference"], entry["samples_per_s"],
                     entry["achieved_flops_per_s"] / 1e9, entry["peak_step_mib"]])
    ratio = median(times[str(largest)]) / reference_time
    memory_ratio = (memory[str(largest)] / memory[str(reference)]) if memory else float("nan")
    print(f"\n## Scaling in N ({variant.label}, batch {mode.batch}, {mode.warmup} warm-up + "
          f"{mode.scaling_reps} round-robin reps, median; reference N = {reference})")
    print(format_table(["tokens N", "N / ref", "step time / ref", "samples/s", "GFLOP/s", "peak step MiB"], rows))
    print(f"step time ratio {largest}/{reference} = {ratio:.2f} (linear = {largest / reference:.1f}, goal ≤ "
          f"{1.1 * largest / reference:.1f}); peak memory ratio = {memory_ratio:.2f}")
    return {
        "variant": variant.label,
        "batch": mode.batch,
        "reference_tokens": reference,
        "largest_tokens": largest,
        "sizes": per_size,
        "step_time_ratio_largest_over_reference": ratio,
        "peak_memory_ratio_largest_over_reference": memory_ratio,
    }


def main() -> None:
    standard_main(__doc__, run)


if __name__ == "__main__":
    main()
