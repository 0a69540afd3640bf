"""How our training step scales with the number of input tokens N (seed layout `[B, N, 1]`, 1-axis grid).

With L latents ≪ N, every input-side cost of a Perceiver (key/value projection, QKᵀ, AV) is linear in N and the
latent part is constant, so the step time should grow at most linearly: 4× the tokens, ≤ 4.4× the time (10 % slack
for cache effects). The largest size (98,304 in the full and quick modes) shows that a batch of 16 trains
there, with its peak step memory. All sizes are timed round-robin in one process (size 1, size 2, ..., size 1, ...) so machine
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
    # The headline ratio is 4× the mode's token count over it (49,152 / 12,288); larger sizes show memory.
    reference = mode.tokens if mode.tokens in sizes and 4 * mode.tokens in sizes else sizes[0]
    compared = 4 * reference if 4 * reference in sizes else sizes[-1]
    largest = sizes[-1]
    memory: dict[str, float] = {}
    if measure_memory and mode.secondary_memory:
        # One fresh child per size; the quick mode measures the two sizes of the headline ratio and the largest.
        for n in sizes if mode.name == "full" else sorted({reference, compared, largest}):
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
    ratio = median(times[str(compared)]) / reference_time
    memory_ratio = (memory[str(compared)] / memory[str(reference)]) if memory else float("nan")
    print(f"\n## Scaling in N ({variant.label}, batch {mode.batch}, {mode.warmup} warm-up + "
          f"{mode.scaling_reps} round-robin reps, median; reference N = {reference})")
    print(format_table(["tokens N", "N / ref", "step time / ref", "samples/s", "GFLOP/s", "peak step MiB"], rows))
    print(f"step time ratio {compared}/{reference} = {ratio:.2f} (linear = {compared / reference:.1f}, goal ≤ "
          f"{1.1 * compared / reference:.1f}); peak memory ratio = {memory_ratio:.2f}; largest N = {largest}: "
          f"{median(times[str(largest)]):.2f} s/step, peak step memory {memory.get(str(largest), float('nan')):.0f} MiB")
    return {
        "variant": variant.label,
        "batch": mode.batch,
        "reference_tokens": reference,
        "compared_tokens": compared,
        "largest_tokens": largest,
        "largest_step_s": median(times[str(largest)]),
        "largest_peak_step_mib": memory.get(str(largest), float("nan")),
        "sizes": per_size,
        "step_time_ratio_largest_over_reference": ratio,
        "peak_memory_ratio_largest_over_reference": memory_ratio,
    }


def main() -> None:
    standard_main(__doc__, run)


if __name__ == "__main__":
    main()
