"""Run every benchmark, print their tables and write one JSON file with the headline ratios and the machine.

    python benchmarks/run.py [--quick | --smoke] [--device auto|cpu|cuda] [--threads 2] [--ablations] --out FILE.json

Modes: full (default; tens of minutes on 2 CPU cores), `--quick` (the same sizes with fewer repetitions; under
5 minutes on 2 cores), `--smoke` (tiny sizes; checks that everything runs, its numbers mean nothing).
On CUDA the model benchmarks run three times: float32 eager, bf16 autocast eager, bf16 autocast + torch.compile;
the headline keys come from the first (float32 eager) and every variant is kept under `variants`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks import (  # noqa: E402
    bench_flops,
    bench_input_pipeline,
    bench_preprocess,
    bench_scaling,
    bench_sim,
    bench_vs_perceiver_pytorch,
)
from benchmarks.common import MODES, machine_info, pick_device, variants_for  # noqa: E402

# Headline key → (goal, direction): "min" means the value should be at least the goal, "max" at most.
GOALS: dict[str, tuple[float, str]] = {
    "throughput_ratio_vs_perceiver_pytorch": (2.5, "min"),
    "peak_memory_ratio_vs_perceiver_pytorch": (0.4, "max"),
    "throughput_ratio_frame_grid_vs_perceiver_pytorch": (2.0, "min"),
    "step_time_ratio_49k_over_12k": (4.4, "max"),
    "preprocess_share_of_step": (0.03, "max"),
    "loader_over_model_rate": (5.0, "min"),
}


def _goal_report(headline: dict[str, float]) -> dict[str, dict[str, Any]]:
    report = {}
    for key, (goal, direction) in GOALS.items():
        value = headline[key]
        met = bool(math.isfinite(value) and (value >= goal if direction == "min" else value <= goal))
        report[key] = {"value": value, "goal": goal, "direction": direction, "met": met}
    return report


def _comparison_rows(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row against perceiver-pytorch with its label and the two ratio goals checked, so that an opt-in or
    unmatched row is never mistaken for the headline (the headline goals stay on the first, matched row)."""
    speed_goal, _ = GOALS["throughput_ratio_vs_perceiver_pytorch"]
    memory_goal, _ = GOALS["peak_memory_ratio_vs_perceiver_pytorch"]
    rows = []
    for case in cases:
        speed, memory = case["throughput_ratio"], case.get("peak_memory_ratio", float("nan"))
        rows.append({
            "case": case["case"], "label": case["label"], "our_overrides": case["our_overrides"],
            "absorbed_as_shipped": case["absorbed_as_shipped"], "throughput_ratio": speed,
            "throughput_ratio_materialised": case["throughput_ratio_materialised"], "peak_memory_ratio": memory,
            "throughput_goal_met": bool(speed >= speed_goal),
            "memory_goal_met": bool(math.isfinite(memory) and memory <= memory_goal),
        })
    return rows


def json_safe(value: Any) -> Any:
    """NaN/inf (a measurement that was skipped, e.g. memory at a size the quick mode leaves out) become null, so
    the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def run_all(mode_name: str, device: str, threads: int, ablations: bool = False) -> dict[str, Any]:
    mode = MODES[mode_name]
    torch.set_num_threads(threads)
    started = time.perf_counter()
    result: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                              "machine": machine_info(), "mode": mode.to_dict(), "variants": {}}
    for variant in variants_for(device):
        versus = bench_vs_perceiver_pytorch.run(mode, variant, threads)
        scaling = bench_scaling.run(mode, variant, threads)
        preprocess = bench_preprocess.run(mode, variant, threads)
        flops = bench_flops.run(mode, variant, threads, step_times=versus["cases"][0]["step_s_all_ours"])
        result["variants"][variant.label] = {
            "vs_perceiver_pytorch": versus, "scaling": scaling, "preprocess": preprocess, "flops": flops,
        }
        if ablations:
            result["variants"][variant.label]["candidate_changes"] = bench_vs_perceiver_pytorch.run_ablations(
                mode, variant, threads
            )
    sim = bench_sim.run(mode, image_size=mode.frame[0])
    episodes = sim.pop("_episodes")
    first = next(iter(result["variants"].values()))
    model_rate = mode.batch / first["preprocess"]["per_axes"]["flat"]["step_s"]
    pipeline = bench_input_pipeline.run(mode, variants_for(device)[0], episodes=episodes, model_rate=model_rate)
    result["sim"] = sim
    result["input_pipeline"] = pipeline

    headline = {
        "throughput_ratio_vs_perceiver_pytorch": first["vs_perceiver_pytorch"]["throughput_ratio"],
        "peak_memory_ratio_vs_perceiver_pytorch": first["vs_perceiver_pytorch"]["peak_memory_ratio"],
        "throughput_ratio_frame_grid_vs_perceiver_pytorch": first["vs_perceiver_pytorch"]["throughput_ratio_frame_grid"],
        "speedup_absorbed_over_materialised": first["vs_perceiver_pytorch"]["cases"][0]["speedup_over_materialised"],
        "largest_tokens_peak_step_mib": first["scaling"]["largest_peak_step_mib"],
        "step_time_ratio_49k_over_12k": first["scaling"]["step_time_ratio_largest_over_reference"],
        "preprocess_share_of_step": first["preprocess"]["preprocess_share_of_step"],
        "loader_over_model_rate": pipeline["loader_over_model_rate"],
        "sim_frames_per_s": sim["frames_per_s"],
        "flops_share_of_measured_matmul": first["flops"]["share_of_measured_matmul"],
    }
    if "mfu" in first["flops"]:
        headline["mfu"] = first["flops"]["mfu"]
    result.update(headline)
    result["headline_variant"] = next(iter(result["variants"]))
    result["goals"] = _goal_report(headline)
    result["vs_perceiver_pytorch_rows"] = _comparison_rows(first["vs_perceiver_pytorch"]["cases"])
    result["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["wall_s"] = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run all rvperceiver benchmarks and write their JSON summary.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer repetitions, same sizes (< 5 min on 2 cores)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes: checks that everything runs")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--ablations", action="store_true",
                        help="also time candidate model changes (bench_vs_perceiver_pytorch.ABLATIONS)")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    result = run_all(mode, pick_device(args.device), args.threads, args.ablations)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
    print(f"\n## Summary ({mode}, {result['headline_variant']}, {result['wall_s']:.0f} s)")
    for key, goal in result["goals"].items():
        sign = "≥" if goal["direction"] == "min" else "≤"
        print(f"{key}: {goal['value']:.3f} (goal {sign} {goal['goal']}) {'met' if goal['met'] else 'MISSED'}")
    print(f"sim_frames_per_s: {result['sim_frames_per_s']:.1f}")
    print(f"speedup_absorbed_over_materialised: {result['speedup_absorbed_over_materialised']:.2f}")
    print(f"largest_tokens_peak_step_mib: {result['largest_tokens_peak_step_mib']:.0f}")
    print(f"flops_share_of_measured_matmul: {result['flops_share_of_measured_matmul']:.3f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
