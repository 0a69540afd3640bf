"""Pictures a user would rather look at than read: a run's learning curve, labelled rollouts, the demo's table.

Each function takes plain records (the run's ``metrics.jsonl``, the closed-loop rollouts, the demo's rows), draws
with matplotlib's Agg backend (no display needed) and writes the PNG atomically, so a half-written picture never
replaces a good one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LEARNING_CURVE_FILE",
    "plot_learning_curve",
    "plot_demo_table",
    "plot_rollout_strip",
    "world_to_pixel",
]

LEARNING_CURVE_FILE = "learning_curve.png"

# The sim's top-down camera (sim/reacher.py): 0.55 m above the origin, MuJoCo's default 45° vertical field of view.
# The arm's plane (z = 0.01 m) is 0.54 m away, so a frame spans ±0.54·tan(22.5°) = ±0.2237 m in x and y.
CAMERA_HEIGHT_M = 0.55
ARM_PLANE_Z_M = 0.01
CAMERA_FOVY_DEG = 45.0


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path, dpi: int = 110) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        _pyplot().close(figure)
    return path


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a crash
        if isinstance(record, dict):
            records.append(record)
    return records


def plot_learning_curve(metrics_path: str | Path, out: str | Path, title: str | None = None) -> Path | None:
    """Training loss, validation loss and NMSE, and the learning rate against the step, from ``metrics.jsonl``.

    NMSE 1.0 (the mean predictor) and the collapse threshold are drawn, so a flat curve at 1 reads as the
    seed's collapse at a glance. Returns None (and writes nothing) when the log holds no training record yet.
    """
    records = _read_metrics(Path(metrics_path))
    train = [r for r in records if r.get("kind") == "train" and "loss" in r]
    evals = [r for r in records if r.get("kind") == "eval"]
    if not train:
        return None
    plt = _pyplot()
    figure, (loss_ax, nmse_ax, lr_ax) = plt.subplots(1, 3, figsize=(13, 3.6))
    steps = [r["step"] for r in train]
    loss_ax.plot(steps, [r["loss"] for r in train], label="training loss", color="tab:blue")
    if evals:
        loss_ax.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o-", label="validation loss",
                     color="tab:orange")
    if all(r["loss"] > 0 for r in train):
        loss_ax.set_yscale("log")
    loss_ax.set(xlabel="step", ylabel="MSE (normalised targets)", title="loss")
    loss_ax.legend(fontsize=8)
    if evals:
        nmse_ax.plot([r["step"] for r in evals], [r["nmse"] for r in evals], "o-", color="tab:orange",
                     label="validation NMSE")
        nmse_ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="1.0 = predicting the mean")
        nmse_ax.axhline(0.5, color="tab:green", linestyle=":", linewidth=1, label="0.5 = 'learning' below")
        last = evals[-1]
        nmse_ax.annotate(f"{last['nmse']:.3f} [{last.get('verdict', '?')}]", (last["step"], last["nmse"]),
                         textcoords="offset points", xytext=(-10, 8), ha="right", fontsize=8)
        nmse_ax.legend(fontsize=8)
    else:
        nmse_ax.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=nmse_ax.transAxes)
    top = max([1.2] + [min(r["nmse"], 3.0) * 1.1 for r in evals if math.isfinite(r["nmse"])])
    nmse_ax.set(xlabel="step", ylabel="NMSE", title="validation NMSE", ylim=(0, top))
    lr_ax.plot(steps, [r.get("lr", float("nan")) for r in train], color="tab:purple")
    lr_ax.set(xlabel="step", ylabel="learning rate", title="learning rate")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, Path(out))


def world_to_pixel(xy: np.ndarray, image_size: int) -> np.ndarray:
    """Pixel coordinates (column, row; 0.5 = the first pixel's centre) of world points in the arm's plane, as the
    sim's top-down camera sees them: image +x is world +x, image up is world +y."""
    half = (CAMERA_HEIGHT_M - ARM_PLANE_Z_M) * math.tan(math.radians(CAMERA_FOVY_DEG / 2))
    xy = np.asarray(xy, dtype=np.float64)
    column = (xy[..., 0] / half + 1.0) / 2.0 * image_size
    row = (1.0 - xy[..., 1] / half) / 2.0 * image_size
    return np.stack([column, row], axis=-1)


def plot_rollout_strip(
    rollouts: Sequence[dict[str, Any]],
    out: str | Path,
    success_radius: float = 0.01,
) -> Path:
    """One row per closed-loop rollout, labelled with its seed, success and final distance.

    Each rollout is a dict with ``seed``, ``success``, ``final_distance`` (m), ``target`` (world xy), ``frames``
    (the uint8 ``[H, W, 3]`` frames to show), ``steps`` (their step numbers) and optionally ``goals`` (``[k, 2]``
    world xy per shown frame: the policy's predicted setpoint). On each frame the target is drawn as a circle of
    the success radius and the predicted setpoint as a cross.
    """
    plt = _pyplot()
    rows = len(rollouts)
    columns = max(len(r["frames"]) for r in rollouts)
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows + 0.4), squeeze=False)
    half = (CAMERA_HEIGHT_M - ARM_PLANE_Z_M) * math.tan(math.radians(CAMERA_FOVY_DEG / 2))
    for r, rollout in enumerate(rollouts):
        frames = rollout["frames"]
        size = int(np.asarray(frames[0]).shape[0])
        goals = rollout.get("goals")
        target_px = world_to_pixel(np.asarray(rollout["target"])[:2], size)
        radius_px = max(success_radius / half * size / 2, 1.0)
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(frames):
                ax.axis("off")
                continue
            ax.imshow(np.asarray(frames[c]), extent=(0, size, size, 0), interpolation="nearest")
            ax.add_patch(plt.Circle(tuple(target_px), radius_px, fill=False, color="yellow", linewidth=1.2))
            if goals is not None and len(goals) > c:
                goal_px = world_to_pixel(np.asarray(goals[c])[:2], size)
                ax.plot(goal_px[0], goal_px[1], marker="x", color="cyan", markersize=7, markeredgewidth=2)
            ax.set_xlim(0, size)
            ax.set_ylim(size, 0)
            ax.set_title(f"step {rollout['steps'][c]}", fontsize=7)
        verdict = "success" if rollout["success"] else "miss"
        colour = "tab:green" if rollout["success"] else "tab:red"
        axes[r][0].set_ylabel(
            f"seed {rollout['seed']}\n{verdict}\n{1000 * rollout['final_distance']:.1f} mm", fontsize=8, color=colour
        )
    figure.suptitle(
        f"closed-loop rollouts: yellow circle = target ({1000 * success_radius:g} mm success radius), "
        "cyan × = the setpoint the policy gave the controller at that step",
        fontsize=9,
    )
    figure.tight_layout()
    return _save(figure, Path(out))


def plot_demo_table(records: Sequence[dict[str, Any]], header: str, out: str | Path) -> Path:
    """The demo's comparison as a picture: test NMSE per view (log scale, 1.0 = the mean predictor), each bar
    labelled with its verdict and the step at which NMSE first fell below 0.1."""
    plt = _pyplot()
    labels = [f"{r['view']}\nβ1 = {r['beta1']}" for r in records]
    values = [max(float(r["test_nmse"]), 1e-4) for r in records]
    colours = {"collapsed": "tab:red", "partial": "tab:orange", "learning": "tab:green"}
    figure, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(records)), 4.2))
    bars = ax.bar(range(len(records)), values, color=[colours.get(r["verdict"], "grey") for r in records])
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.text(len(records) - 0.5, 1.05, "1.0 = predicting the mean", ha="right", va="bottom", fontsize=8, color="grey")
    for bar_, record in zip(bars, records):
        steps = record.get("steps_to_nmse_0.1")
        ax.annotate(
            f"{record['test_nmse']:.3f}\n{record['verdict']}\n"
            + ("never < 0.1" if steps is None else f"< 0.1 at step {steps}"),
            (bar_.get_x() + bar_.get_width() / 2, bar_.get_height()),
            textcoords="offset points", xytext=(0, 3), ha="center", va="bottom", fontsize=8,
        )
    ax.set_xticks(range(len(records)), labels, fontsize=8)
    ax.set_ylabel("test NMSE (log scale)")
    ax.set_ylim(min(values) / 3, 6.0)
    ax.set_title(header, fontsize=9)
    figure.tight_layout()
    return _save(figure, Path(out))
