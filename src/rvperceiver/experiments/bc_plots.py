"""Pictures of the behaviour-cloning study: success vs budget with Wilson intervals, final-distance CDFs.

(Rollout strips are written by the closed loop itself, one per tier and model.) Matplotlib with the Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rvperceiver.experiments.bc_models import MODEL_LABELS  # noqa: E402

_REFERENCE_STYLE = {"expert": ":", "oracle": "--", "mean_predictor": "-.", "state_only": (0, (1, 3))}
_COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _colour(model: str) -> str:
    """One colour per model in every panel (the label table's order)."""
    return _COLOURS[list(MODEL_LABELS).index(model) % len(_COLOURS)]


def _figure_legend(fig: Any, axes: Any, bottom: float) -> None:
    """One legend under the panels: every label any panel drew, once, in the order first drawn."""
    handles: list[Any] = []
    labels: list[str] = []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, bottom, 1, 1))


def plot_success_vs_budget(summary: dict[str, Any], path: Path) -> Path:
    """One panel per tier: pooled success ≤ 2 cm against the training budget, Wilson 95% bars, references as lines."""
    tiers = list(summary["tiers"])
    fig, axes = plt.subplots(1, len(tiers), figsize=(4.8 * len(tiers), 3.8), squeeze=False)
    all_budgets = sorted({int(b) for t in tiers for m in summary["tiers"][t]["models"].values() for b in m})
    for ax, tier in zip(axes[0], tiers):
        info = summary["tiers"][tier]
        if not any(m != "adaptive_perceiver" for m in info["models"]):
            ax.text(0.5, 0.5, "references only\n(no model trained on this tier)", transform=ax.transAxes,
                    ha="center", va="center", fontsize=9, color="grey")
        for model, budgets in info["models"].items():
            if model == "adaptive_perceiver":
                continue  # the same run as one of the forced views
            xs = sorted(int(b) for b in budgets)
            rates = np.array([budgets[str(b)]["success"]["rate"] for b in xs])
            lo = np.array([budgets[str(b)]["success"]["lo"] for b in xs])
            hi = np.array([budgets[str(b)]["success"]["hi"] for b in xs])
            ax.errorbar(xs, 100 * rates, yerr=[100 * np.maximum(0, rates - lo), 100 * np.maximum(0, hi - rates)],
                        marker="o", capsize=3, color=_colour(model), label=MODEL_LABELS[model])
        for name, stats in info["references"].items():
            ax.axhline(100 * stats["success"]["rate"], linestyle=_REFERENCE_STYLE.get(name, ":"), color="grey",
                       linewidth=1, label=MODEL_LABELS[name])
        ax.set_xscale("log")
        if all_budgets:
            ax.set_xlim(all_budgets[0] / 1.5, all_budgets[-1] * 1.5)
            ax.set_xticks(all_budgets, [str(b) for b in all_budgets])
            ax.minorticks_off()
        ax.set_ylim(-3, 103)
        ax.set_title(tier)
        ax.set_xlabel("training steps")
        ax.set_ylabel("success ≤ 2 cm (%)")
        ax.grid(alpha=0.3)
    _figure_legend(fig, axes[0], bottom=0.16)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_final_distance_cdf(results: dict[str, Any], path: Path) -> Path:
    """One panel per tier: CDF of the final distance (pooled seeds, largest budget per model) and references."""
    tiers = list(results.get("references", {}))
    fig, axes = plt.subplots(1, len(tiers), figsize=(4.8 * len(tiers), 3.8), squeeze=False)
    for ax, tier in zip(axes[0], tiers):
        curves: dict[str, tuple[list[float], str]] = {}
        for name, ref in results["references"][tier].items():
            curves[MODEL_LABELS[name]] = (ref["final_distance"], _colour(name))
        for model in sorted({r["model"] for r in results.get("runs", []) if r["tier"] == tier}):
            runs = [r for r in results["runs"] if r["tier"] == tier and r["model"] == model]
            budget = max(int(b) for r in runs for b in r["budgets"])
            finals = [d for r in runs if str(budget) in r["budgets"] for d in r["budgets"][str(budget)]["closed_loop"]["final_distance"]]
            curves[f"{MODEL_LABELS[model]} @ {budget}"] = (finals, _colour(model))
        for label, (values, colour) in curves.items():
            xs = np.sort(1000 * np.asarray(values))
            ax.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", label=label, color=colour)
        for radius in (10, 20):
            ax.axvline(radius, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)
        ax.set_xlabel("final fingertip–target distance (mm; dotted: 1 and 2 cm)")
        ax.set_ylabel("fraction of episodes")
        ax.set_title(tier)
        ax.grid(alpha=0.3)
    _figure_legend(fig, axes[0], bottom=0.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(results: dict[str, Any], out: Path) -> dict[str, str]:
    from rvperceiver.experiments.bc_report import summarise

    summary = results.get("summary") or summarise(results)
    figures = {
        "success vs budget": plot_success_vs_budget(summary, out / "success_vs_budget.png"),
        "final-distance CDF": plot_final_distance_cdf(results, out / "final_distance_cdf.png"),
    }
    return {name: str(p.relative_to(out)) for name, p in figures.items()}
