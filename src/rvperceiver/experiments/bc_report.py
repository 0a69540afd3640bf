"""The behaviour-cloning study's report: mean ± sd over training seeds, one markdown table per study."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rvperceiver.experiments.bc_models import MODEL_LABELS, MODELS, PATCH_MODEL


def _mean_std(values: Sequence[float | None]) -> dict[str, Any] | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return None
    return {"mean": float(np.mean(finite)), "std": float(np.std(finite)), "n": len(finite), "values": finite}


def summarise(references: dict[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per table line: references first, then each learned model with mean/std over seeds."""
    rows: list[dict[str, Any]] = []
    for name in ("expert", "mean_trajectory", "oracle"):
        ref = references[name]
        closed = ref["closed_loop"]
        test, valid = ref.get("test"), ref.get("valid")
        rows.append(
            {
                "model": name,
                "label": MODEL_LABELS[name],
                "success_rate": _mean_std([closed["success_rate"]]),
                "mean_final_distance_m": _mean_std([closed["mean_final_distance"]]),
                "test_ee_error_m": _mean_std([test["ee_error_m"]]) if test else None,
                "valid_nmse": _mean_std([valid["nmse"]]) if valid else None,
                "verdicts": [valid["verdict"]] if valid else [],
                "train_wall_s": None,
            }
        )
    for name in (*MODELS, PATCH_MODEL):
        mine = [r for r in runs if r["model"] == name]
        if not mine:
            continue
        rows.append(
            {
                "model": name,
                "label": MODEL_LABELS[name],
                "same_run_as": mine[0].get("same_run_as"),
                "success_rate": _mean_std([r["closed_loop"]["success_rate"] for r in mine]),
                "mean_final_distance_m": _mean_std([r["closed_loop"]["mean_final_distance"] for r in mine]),
                "test_ee_error_m": _mean_std([r["test"]["ee_error_m"] for r in mine]),
                "valid_nmse": _mean_std([r["valid"].get("nmse") for r in mine]),
                "verdicts": [r["valid"].get("verdict") for r in mine],
                "train_wall_s": _mean_std([r["train_wall_s"] for r in mine]),
            }
        )
    return rows


def _fmt(stat: dict[str, Any] | None, scale: float = 1.0, digits: int = 2, percent: bool = False) -> str:
    if stat is None:
        return "–"
    mean, std = stat["mean"] * scale, stat["std"] * scale
    text = f"{mean:.0f}%" if percent else f"{mean:.{digits}f}"
    if stat["n"] > 1:
        text += f" ± {std:.0f}" if percent else f" ± {std:.{digits}f}"
    return text


def _load_note(machine: dict[str, Any]) -> str:
    """How to read the wall times: a 1-minute load at start above half the cores means other jobs were running."""
    load, cores = machine.get("load_average_at_start") or [], machine.get("cpu_count") or 1
    if load and load[0] <= 0.5 * cores:
        return "the cores were nearly idle at the start; other jobs may still have started later"
    return "the cores were shared, so wall times are upper bounds"


def render_report(results: dict[str, Any]) -> str:
    """The markdown report: setup, the table, the adaptive choice, and where everything else is."""
    prof = results["profile"]
    settings = results["closed_loop_settings"]
    adaptive = results["adaptive_choice"]
    machine = results["machine"]
    lines = [
        "# Behaviour cloning on Reacher-v5 from 64×64 top-down frames",
        "",
        *(
            []
            if results.get("complete", True)
            else ["**Incomplete: the study was still running (or was stopped) when this was written.**", ""]
        ),
        f"Profile `{prof['name']}`: {prof['n_demos']} expert demos (env seeds {prof['demo_seed']}–"
        f"{prof['demo_seed'] + prof['n_demos'] - 1}, {results['data']['train_windows']} training windows, "
        f"{results['data']['valid_windows']} validation windows), t_obs = {prof['t_obs']}, t_pred = {prof['t_pred']}; "
        f"every learned model trained for {prof['steps']} Adam steps of batch {prof['batch_size']} "
        f"(training seeds {', '.join(map(str, results['seeds']))}). Closed loop: {prof['eval_episodes']} episodes on env "
        f"seeds {prof['eval_seed']}–{prof['eval_seed'] + prof['eval_episodes'] - 1}, re-planning every {settings['replan_every']} steps, "
        f"controller aiming at the chunk's last waypoint; success = fingertip within "
        f"{settings['success_radius'] * 100:.0f} cm of the target after {settings['episode_steps']} steps. "
        f"Offline EE error: mean Euclidean error per predicted step on {prof['n_test_demos']} held-out demos "
        f"(env seeds from {prof['test_seed']}); validation NMSE on the validation split (1.0 = the mean predictor).",
        *(
            [
                "",
                "The patch-token row is a diagnostic: the same Perceiver (same size, learning rate and steps) on "
                "non-overlapping 4×4 patches (2 × 16 × 16 = 512 tokens of 48 values, raw identity view, z-scored) "
                "instead of one token per pixel channel, to tell apart a failure of the Perceiver on these frames "
                "from a failure of scalar tokenisation.",
            ]
            if any(r["model"] == PATCH_MODEL for r in results["runs"])
            else []
        ),
        "",
        "| model | closed-loop success | mean final distance (mm) | offline EE error (mm) | validation NMSE | "
        "collapse verdict | train wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["summary"]:
        label = row["label"]
        if row.get("same_run_as"):
            label += f" → chose **{adaptive['chosen']}** (= the {MODEL_LABELS[row['same_run_as']]} run)"
        verdicts = ", ".join(v for v in row["verdicts"] if v) or "–"
        lines.append(
            f"| {label} | {_fmt(row['success_rate'], 100, percent=True)} | {_fmt(row['mean_final_distance_m'], 1000, 1)} "
            f"| {_fmt(row['test_ee_error_m'], 1000, 1)} | {_fmt(row['valid_nmse'], 1, 3)} | {verdicts} | "
            f"{_fmt(row['train_wall_s'], 1, 0)} |"
        )
    stats = ", ".join(f"{k} {v:.4g}" for k, v in adaptive["statistics"].items())
    lines += [
        "",
        f"Adaptive rule (participation ratio of the between-example variance, training split): {stats} → "
        f"**{adaptive['chosen']}**. Its two candidates are exactly the raw and forced-Fourier views above, so the "
        f"adaptive row is that run, not a separate one.",
        "",
        "Per-run details (parameters, seconds per step, train-loss start/end, spread ratio, per-episode distances) "
        "are in `results.json`.",
        "",
    ]
    run_lines = []
    for run in results["runs"]:
        if run.get("same_run_as"):
            continue
        valid = run["valid"]
        run_lines.append(
            f"- `{run['model']}` seed {run['seed']}: {run['parameters']:,} parameters, "
            f"{run['seconds_per_step']:.2f} s/step, train loss {run['train_loss_first']:.3f} → {run['train_loss_last']:.3f}, "
            f"validation spread {valid.get('spread', float('nan')):.3f}, test NMSE {run['test']['nmse']:.3f}"
            + (f", rollouts: `{run['strip']}`" if run.get("strip") else "")
        )
    lines += ["## Runs", "", *run_lines, ""]
    lines += [
        "## Reproduce",
        "",
        f"`{results['command']}`",
        "",
        f"Machine: {machine['platform']}, {machine['cpu_count']} CPU cores ({machine['torch_threads']} torch threads), "
        f"torch {machine['torch']}, GPU: {machine['cuda'] or 'none'}. "
        f"Load average at start: {', '.join(f'{v:.1f}' for v in machine.get('load_average_at_start', []))} "
        f"({_load_note(machine)}). Date: {results['date']}. "
        f"Study wall time: {results['wall_time_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)
