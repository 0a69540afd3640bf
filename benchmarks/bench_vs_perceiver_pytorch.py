"""Training-step throughput and peak memory of our `PerceiverIO` against `perceiver_pytorch.Perceiver` (0.11.0).

Why `Perceiver` and not perceiver-pytorch's `PerceiverIO`: only `Perceiver` builds Fourier position features
itself (`fourier_encode_data`, `num_freq_bands`, `max_freq`, the same `linspace(1, max_freq/2, K)` bands over a
[-1, 1] grid as ours), and with `depth=1, self_per_cross_attn=S` it is exactly one cross-attend followed by S latent
self-attention layers, our encoder. Its `PerceiverIO` would need the position features concatenated by hand and
has no feed-forward after its decoder cross-attention; the decoders differ either way (theirs: mean over latents →
LayerNorm → Linear; ours: T learned queries cross-attending to the latents), and both are tiny next to the encoder.

Matched configuration (see `common.ModelShape`): 128 latents × 256 channels; the cross-attention has 1 head of
width 256 on both (theirs: `cross_heads=1, cross_dim_head=256`); 4 latent self-attention layers of 4 heads × 64
(theirs: `latent_heads=4, latent_dim_head=64`); feed-forward of 12·D² weights on both (their fixed GEGLU with
mult 4; our MLP with widening 6); 8 Fourier bands up to max_freq = the grid size, float32.

Three sides are timed in alternation in one process (ours as shipped, ours with `input_attention="materialised"`,
theirs), so the absorbed cross-attention is measured against both the materialised keys/values of our own model
and perceiver-pytorch. Rows (`cases_for`), each labelled in the output:
- the seed's `[B, 12288, 1]` with a 1-axis grid (17 position channels; the headline row);
- the token grid our scalar view really produces for one 64×64×3 frame, `(1, 64, 64, 3)` (4 axes, 68 position
  channels; theirs gets `[B, 1, 64, 64, 3, 1]` with `input_axis=4`);
- 4 and 8 cross heads of width 256/H (theirs `cross_heads=H, cross_dim_head=256/H`);
- cross width 64 on both (ours `cross_attention_channels=64`, theirs `cross_dim_head=64`);
- patch tokens: 4×4×3 patches of the frame, 256 tokens of c = 48 values on a (16, 16) grid;
- two cross-attends (ours `num_cross_attends=2`, the repeat sharing weights; theirs `depth=2`);
- one row that is NOT matched: each library at its own defaults for the cross width (ours 256, theirs 64).
The headline ratios are those of the first row; the frame-grid row has its own goal.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.common import (
    MODES,
    ModelShape,
    Mode,
    Variant,
    format_table,
    make_train_step,
    measure_step_memory,
    median,
    mib,
    parameter_count,
    perceiver_forward_flops,
    perceiver_pytorch_forward_flops,
    pick_device,
    spread,
    time_alternating,
    variants_for,
)
from rvperceiver.model import PerceiverConfig, PerceiverIO


def our_config(shape: ModelShape, max_freq: float | None, overrides: dict[str, Any] | None = None) -> PerceiverConfig:
    """The matched configuration; `overrides` sets opt-in `PerceiverConfig` fields (chunking, backend, width)."""
    return PerceiverConfig(
        **{
            "num_latents": shape.num_latents,
            "latent_channels": shape.latent_channels,
            "cross_heads": shape.cross_heads,
            "self_heads": shape.self_heads,
            "self_layers_per_block": shape.self_layers,
            "mlp_widening": shape.mlp_widening,
            "num_bands": shape.num_bands,
            "max_freq": max_freq,
            "output_steps": shape.output_steps,
            "output_channels": shape.output_channels,
            **(overrides or {}),
        }
    )


def _shape(shape: dict[str, Any] | ModelShape) -> ModelShape:
    return shape if isinstance(shape, ModelShape) else ModelShape(**shape)


def _variant(variant: dict[str, Any] | Variant) -> Variant:
    return variant if isinstance(variant, Variant) else Variant(**variant)


# Opt-in model settings timed against the shipped defaults (`none`) by `run_ablations`: name → PerceiverConfig
# overrides. All are switches of the model itself now; nothing is wrapped from outside.
ABLATION_OVERRIDES: dict[str, dict[str, Any]] = {
    "none": {},
    "materialised": {"input_attention": "materialised"},
    "cross_attend_chunk_4": {"cross_attend_chunk": 4},
    "math_sdpa": {"attention_backend": "math"},
    "math_sdpa_cross_only": {},  # + the encoder cross-attend's layer set to "math" after building (see build_ours)
    "cross_channels_64": {"cross_attention_channels": 64},
    "cross_channels_64_chunk_4": {"cross_attention_channels": 64, "cross_attend_chunk": 4},
}
ABLATIONS = tuple(ABLATION_OVERRIDES)


def _data(
    grid: tuple[int, ...], batch: int, shape: ModelShape, device: str, seed: int, channels: int = 1
) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, math.prod(grid), channels, generator=generator).to(device)
    targets = torch.randn(batch, shape.output_steps, shape.output_channels, generator=generator).to(device)
    return tokens, targets


def build_ours(
    grid: list[int], batch: int, shape: dict[str, Any] | ModelShape, variant: dict[str, Any] | Variant,
    max_freq: float, seed: int = 0, ablation: str = "none", overrides: dict[str, Any] | None = None,
    channels: int = 1,
) -> tuple[torch.nn.Module, Any]:
    """Our model and its train step; `ablation` names an `ABLATION_OVERRIDES` entry, `overrides` adds fields;
    `channels` values per token (1 = scalar tokens)."""
    shape, variant = _shape(shape), _variant(variant)
    if ablation not in ABLATION_OVERRIDES:
        raise ValueError(f"unknown ablation {ablation!r}; choose from {list(ABLATION_OVERRIDES)}")
    torch.manual_seed(seed)
    config = our_config(shape, max_freq, {**ABLATION_OVERRIDES[ablation], **(overrides or {})})
    model = PerceiverIO(config, channels, tuple(grid)).to(variant.device)
    if ablation == "math_sdpa_cross_only":
        model.encoder.first_cross_attend.backend = "math"
    tokens, targets = _data(tuple(grid), batch, shape, variant.device, seed, channels)
    return model, make_train_step(model, model, tokens, targets, variant)


def build_theirs(
    grid: list[int], batch: int, shape: dict[str, Any] | ModelShape, variant: dict[str, Any] | Variant,
    max_freq: float, seed: int = 0, cross_dim_head: int | None = None, channels: int = 1, depth: int = 1,
) -> tuple[torch.nn.Module, Any]:
    """perceiver-pytorch's Perceiver and its train step; `cross_dim_head` None = latent width / cross_heads
    (matched to our default), otherwise their per-head cross-attention width (their own default is 64);
    `depth` cross-attends (each followed by the latent layers)."""
    from perceiver_pytorch import Perceiver

    shape, variant = _shape(shape), _variant(variant)
    torch.manual_seed(seed)
    model = Perceiver(
        num_freq_bands=shape.num_bands,
        depth=depth,
        max_freq=float(max_freq),
        input_channels=channels,
        input_axis=len(grid),
        num_latents=shape.num_latents,
        latent_dim=shape.latent_channels,
        cross_heads=shape.cross_heads,
        latent_heads=shape.self_heads,
        cross_dim_head=shape.latent_channels // shape.cross_heads if cross_dim_head is None else cross_dim_head,
        latent_dim_head=shape.head_dim,
        num_classes=shape.output_steps * shape.output_channels,
        self_per_cross_attn=shape.self_layers,
    ).to(variant.device)
    tokens, targets = _data(tuple(grid), batch, shape, variant.device, seed, channels)
    tokens = tokens.reshape(batch, *grid, channels)  # their channels-last layout: [B, *axes, C]
    return model, make_train_step(model, model, tokens, targets, variant)


def build_ours_step(**kwargs: Any) -> Any:
    return build_ours(**kwargs)[1]


def build_theirs_step(**kwargs: Any) -> Any:
    return build_theirs(**kwargs)[1]


def _profile_top_ops(step: Any, top: int = 6) -> list[dict[str, Any]]:
    """The ops that took the most self CPU time in one step (where the time goes, for the report)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [
        {"op": e.key, "self_s": e.self_cpu_time_total / 1e6, "share": e.self_cpu_time_total / total, "calls": e.count}
        for e in events[:top]
    ]


@dataclass(frozen=True)
class Case:
    """One row of the comparison: an input layout and the configuration of each side.

    `our_overrides` are opt-in `PerceiverConfig` fields (empty = as shipped); `their_cross_dim_head` None means
    matched to our latent width (1 head × 256), an int is their per-head cross width (64 is their default).
    `label` says which kind of comparison the row is, so a row is never read as something it is not.
    """

    name: str
    label: str
    grid: tuple[int, ...]
    max_freq: float
    our_overrides: dict[str, Any] = field(default_factory=dict)
    their_cross_dim_head: int | None = None
    memory: bool = True
    channels: int = 1
    their_depth: int = 1


def _cross_width(shape: ModelShape, overrides: dict[str, Any]) -> int:
    return overrides.get("cross_attention_channels") or shape.latent_channels


SIDES = ("ours", "ours_materialised", "theirs")


def run_case(
    case: Case, mode: Mode, variant: Variant, threads: int, measure_memory: bool, profile: bool = False,
    memory_cache: dict[str, int] | None = None,
) -> dict[str, Any]:
    shape, grid, c = mode.model, case.grid, case.channels
    materialised = {**case.our_overrides, "input_attention": "materialised"}
    ours, our_step = build_ours(list(grid), mode.batch, shape, variant, case.max_freq, overrides=case.our_overrides,
                                channels=c)
    absorbed = ours.encoder.absorbed
    token_width = ours.encoder.token_width
    params_ours = parameter_count(ours)
    del ours
    _, materialised_step = build_ours(list(grid), mode.batch, shape, variant, case.max_freq, overrides=materialised,
                                      channels=c)
    theirs, their_step = build_theirs(
        list(grid), mode.batch, shape, variant, case.max_freq, cross_dim_head=case.their_cross_dim_head, channels=c,
        depth=case.their_depth,
    )
    params_theirs = parameter_count(theirs)
    del theirs
    steps = {"ours": our_step, "ours_materialised": materialised_step, "theirs": their_step}
    times = time_alternating(steps, mode.warmup, mode.reps, variant.device)
    step_s = {side: median(times[side]) for side in SIDES}
    tokens = math.prod(grid)
    position_channels = len(grid) * (2 * shape.num_bands + 1)
    cross_heads = case.our_overrides.get("cross_heads", shape.cross_heads)
    flop_shape = ModelShape(**{**shape.__dict__, "cross_heads": cross_heads})
    our_cross = _cross_width(shape, case.our_overrides)
    their_cross = (
        shape.latent_channels if case.their_cross_dim_head is None else case.their_cross_dim_head * cross_heads
    )
    repeats = case.our_overrides.get("num_cross_attends", 1)
    our_flops = perceiver_forward_flops(flop_shape, tokens, c, position_channels, mode.batch, cross_width=our_cross,
                                        absorbed=absorbed, num_cross_attends=repeats)["total"]
    materialised_flops = perceiver_forward_flops(flop_shape, tokens, c, position_channels, mode.batch,
                                                 cross_width=our_cross, absorbed=False,
                                                 num_cross_attends=repeats)["total"]
    their_flops = case.their_depth * perceiver_pytorch_forward_flops(
        flop_shape, tokens, c, position_channels, mode.batch, cross_width=their_cross
    )["total"]
    result: dict[str, Any] = {
        "case": case.name,
        "label": case.label,
        "grid": list(grid),
        "tokens": tokens,
        "token_channels": c,
        "position_channels": position_channels,
        "token_width": token_width,
        "absorbed_as_shipped": absorbed,
        "our_overrides": dict(case.our_overrides),
        "cross_heads": cross_heads,
        "cross_width_ours": our_cross,
        "cross_width_theirs": their_cross,
        "params_ours": params_ours,
        "params_theirs": params_theirs,
        "throughput_ratio": step_s["theirs"] / step_s["ours"],
        "throughput_ratio_materialised": step_s["theirs"] / step_s["ours_materialised"],
        "speedup_over_materialised": step_s["ours_materialised"] / step_s["ours"],
        "train_flops_ours": 3 * our_flops,
        "train_flops_ours_materialised": 3 * materialised_flops,
        "train_flops_theirs": 3 * their_flops,
        "flop_ratio_theirs_over_ours": their_flops / our_flops,
    }
    for side in SIDES:
        result[f"step_s_{side}"] = step_s[side]
        result[f"step_s_all_{side}"] = times[side]
        result[f"spread_{side}"] = spread(times[side])
        result[f"samples_per_s_{side}"] = mode.batch / step_s[side]
    if profile and variant.device == "cpu" and not variant.compile:
        result["top_ops_ours"] = _profile_top_ops(our_step)
        result["top_ops_theirs"] = _profile_top_ops(their_step)
    del our_step, materialised_step, their_step, steps
    if measure_memory:
        module = "benchmarks.bench_vs_perceiver_pytorch"
        common = {"grid": list(grid), "batch": mode.batch, "shape": shape.__dict__, "variant": variant.__dict__,
                  "max_freq": case.max_freq, "channels": c}
        requests = (
            ("build_ours_step", {**common, "overrides": dict(case.our_overrides)}),
            ("build_ours_step", {**common, "overrides": materialised}),
            ("build_theirs_step", {**common, "cross_dim_head": case.their_cross_dim_head, "depth": case.their_depth}),
        )
        cache = {} if memory_cache is None else memory_cache
        peaks = {}
        for side, (builder, kwargs) in zip(SIDES, requests):
            # The same model in the same setting needs the same memory: rows that share one side measure it once.
            key = json.dumps([builder, kwargs], sort_keys=True)
            if key not in cache:
                cache[key] = measure_step_memory(f"{module}:{builder}", kwargs, mode.memory_steps, threads,
                                                 mode.mmap_threshold)
            peaks[side] = cache[key]
            result[f"peak_step_mib_{side}"] = mib(peaks[side])
        theirs_peak = peaks["theirs"]
        result["peak_memory_ratio"] = peaks["ours"] / theirs_peak if theirs_peak > 0 else float("nan")
        result["peak_memory_ratio_materialised"] = (
            peaks["ours_materialised"] / theirs_peak if theirs_peak > 0 else float("nan")
        )
    return result


def run_ablations(
    mode: Mode, variant: Variant, threads: int = 2, ablations: tuple[str, ...] = ABLATIONS
) -> dict[str, Any]:
    """Our step in the seed layout with each `ABLATIONS` change, timed in alternation; memory in fresh children.

    Each setting is a `PerceiverConfig` field (`ABLATION_OVERRIDES`); not part of the headline comparison.
    """
    tokens = mode.tokens
    if ablations[0] != "none":
        ablations = ("none", *ablations)
    steps = {a: build_ours([tokens], mode.batch, mode.model, variant, float(tokens), ablation=a)[1] for a in ablations}
    times = time_alternating(steps, mode.warmup, mode.reps, variant.device)
    del steps
    rows, out = [], {}
    base_time = median(times["none"])
    base_peak = None
    for a in ablations:
        kwargs = {"grid": [tokens], "batch": mode.batch, "shape": mode.model.__dict__, "variant": variant.__dict__,
                  "max_freq": float(tokens), "ablation": a}
        peak = measure_step_memory("benchmarks.bench_vs_perceiver_pytorch:build_ours_step", kwargs,
                                   mode.memory_steps, threads, mode.mmap_threshold)
        base_peak = peak if base_peak is None else base_peak
        t = median(times[a])
        out[a] = {"step_s": t, "step_s_all": times[a], "peak_step_mib": mib(peak),
                  "speedup_vs_none": base_time / t, "memory_vs_none": peak / base_peak}
        rows.append([a, mode.batch / t, base_time / t, mib(peak), peak / base_peak])
    print(f"\n## Opt-in model settings against the shipped defaults ({variant.label}, batch {mode.batch}, "
          f"{tokens} tokens, seed layout)")
    print(format_table(["change", "samples/s", "speed vs none", "peak step MiB", "memory vs none"], rows))
    return out


# Perceiver-pytorch's own default per-head cross-attention width (`cross_dim_head=64`, 1 cross head).
THEIR_DEFAULT_CROSS_DIM_HEAD = 64
NARROW_CROSS = 64  # the narrow cross width of the rows that compare at it (= theirs by default)


PATCH = 4  # the patch rows: 4×4×3 patches of the frame, c = 48 values per token


def cases_for(mode: Mode) -> list[Case]:
    h, w, c = mode.frame
    tokens = mode.tokens
    seed, frame = (tokens,), (1, h, w, c)
    narrow = {"cross_attention_channels": NARROW_CROSS}
    width = mode.model.latent_channels
    secondary = mode.secondary_memory
    cases = [
        Case("seed: [B, N, 1], 1-axis grid", f"matched, 1 cross head × {width} (as shipped)", seed, float(tokens)),
        Case(f"frame grid (1, {h}, {w}, {c}), 4 axes", f"matched, 1 cross head × {width} (as shipped)", frame,
             float(max(h, w)), memory=secondary),
    ]
    for heads in (4, 8):
        cases.append(Case("seed: [B, N, 1], 1-axis grid", f"matched, {heads} cross heads × {width // heads}", seed,
                          float(tokens), {"cross_heads": heads}, width // heads, memory=False))
    cases += [
        Case("seed: [B, N, 1], 1-axis grid", f"matched, cross width {NARROW_CROSS} on both (opt-in for ours)", seed,
             float(tokens), narrow, NARROW_CROSS, memory=False),
        Case(f"patches {PATCH}×{PATCH}×{c} of the frame: ({h // PATCH}, {w // PATCH}) grid, c = {PATCH * PATCH * c}",
             f"matched, 1 cross head × {width}", (h // PATCH, w // PATCH), float(max(h, w) // PATCH),
             memory=False, channels=PATCH * PATCH * c),
        Case("seed: [B, N, 1], 1-axis grid", "matched, 2 cross-attends (ours shares the repeat; theirs depth=2)",
             seed, float(tokens), {"num_cross_attends": 2}, memory=False, their_depth=2),
        Case("seed: [B, N, 1], 1-axis grid",
             f"NOT matched: each library's defaults (ours cross width {width}, theirs cross_dim_head="
             f"{THEIR_DEFAULT_CROSS_DIM_HEAD})", seed, float(tokens), {}, THEIR_DEFAULT_CROSS_DIM_HEAD, memory=False),
    ]
    if mode.name == "smoke":  # every code path once (materialised as shipped: 8 heads), in a few minutes
        return [cases[0], cases[1], cases[3], cases[5], cases[6]]
    return cases


def run(mode: Mode, variant: Variant, threads: int = 2, measure_memory: bool = True,
        headline_only: bool = False) -> dict[str, Any]:
    """Every row of ``cases_for(mode)``; ``headline_only``: the two headline rows (seed layout, frame grid)."""
    memory_cache: dict[str, int] = {}
    cases = cases_for(mode)[:2] if headline_only else cases_for(mode)
    results = [
        run_case(case, mode, variant, threads, measure_memory and case.memory, profile=mode.profile and i == 0,
                 memory_cache=memory_cache)
        for i, case in enumerate(cases)
    ]
    rows = []
    for r in results:
        rows.append([
            r["case"], r["label"], r["token_width"], "absorbed" if r["absorbed_as_shipped"] else "materialised",
            r["samples_per_s_ours"], r["samples_per_s_ours_materialised"], r["samples_per_s_theirs"],
            r["throughput_ratio"], r["throughput_ratio_materialised"], r["flop_ratio_theirs_over_ours"],
            r.get("peak_step_mib_ours", float("nan")), r.get("peak_step_mib_ours_materialised", float("nan")),
            r.get("peak_step_mib_theirs", float("nan")), r.get("peak_memory_ratio", float("nan")),
        ])
    print(f"\n## Train step vs perceiver_pytorch.Perceiver ({variant.label}, batch {mode.batch}, {mode.tokens} "
          f"tokens unless said, {mode.warmup} warm-up + {mode.reps} alternating reps of the three sides, median)")
    print(format_table(
        ["input", "configuration", "F = c + P", "ours as shipped", "samples/s ours", "samples/s ours materialised",
         "samples/s theirs", "speed ratio (ours/theirs)", "materialised/theirs", "FLOP ratio (theirs/ours)",
         "peak MiB ours", "peak MiB materialised", "peak MiB theirs", "memory ratio (ours/theirs)"],
        rows,
    ))
    for r in results:
        for side in ("ours", "theirs"):
            if f"top_ops_{side}" in r:
                ops = ", ".join(f"{o['op']} {o['share']:.0%}" for o in r[f"top_ops_{side}"])
                print(f"top ops ({r['case']}, {side}): {ops}")
    primary = results[0]
    return {
        "variant": variant.label,
        "batch": mode.batch,
        "cases": results,
        "throughput_ratio": primary["throughput_ratio"],
        "peak_memory_ratio": primary.get("peak_memory_ratio", float("nan")),
        "throughput_ratio_frame_grid": results[1]["throughput_ratio"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the result dict as JSON here")
    parser.add_argument("--ablations", nargs="?", const=",".join(ABLATIONS), default=None,
                        help=f"only the candidate model changes (comma list; default all of {', '.join(ABLATIONS)})")
    parser.add_argument("--headline-only", action="store_true",
                        help="only the two headline rows (seed layout and frame grid, as shipped), about 3 min on 2 "
                        "quiet CPU cores: a re-time when the full run was made under load")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mode = MODES[args.mode]
    variants = variants_for(pick_device(args.device))
    if args.ablations:
        chosen = tuple(a.strip() for a in args.ablations.split(",") if a.strip())
        unknown = sorted(set(chosen) - set(ABLATIONS))
        if unknown:
            parser.error(f"--ablations: unknown {unknown}; choose from {list(ABLATIONS)}")
        results: list[Any] = [run_ablations(mode, variant, args.threads, chosen) for variant in variants]
    else:
        results = [run(mode, variant, args.threads, headline_only=args.headline_only) for variant in variants]
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
