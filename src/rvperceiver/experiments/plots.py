"""PNG plots of the experiments: NMSE vs N per view, learning curves, attention maps, the theory curves.

Matplotlib with the non-interactive Agg backend, so plots work headless. Every function writes one file and
returns its path.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rvperceiver.experiments.report import interval, mean_spread  # noqa: E402

__all__ = [
    "plot_nmse_vs_n",
    "plot_learning_curves",
    "plot_attention_map",
    "plot_theory",
    "plot_learned_vs_n",
    "plot_escape_steps",
]


def _label(view: str, beta1: float) -> str:
    return f"{view}, β1={beta1}"


def plot_nmse_vs_n(runs: list[dict[str, Any]], task: str, path: Path) -> Path:
    """Mean test NMSE (± sd over seeds) against N, one line per (view, β1)."""
    groups: dict[tuple[str, float], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r["task"] == task:
            groups[(r["view"], r["beta1"])][r["n_tokens"]].append(r["test_nmse"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (view, beta), by_n in sorted(groups.items()):
        sizes = sorted(by_n)
        stats = [mean_spread(by_n[n]) for n in sizes]
        ax.errorbar(
            sizes,
            [m for m, _ in stats],
            yerr=[s for _, s in stats],
            marker="o",
            capsize=3,
            linestyle="-" if beta == 0.9 else "--",
            label=_label(view, beta),
        )
    ax.set_xscale("log", base=2)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.axhline(0.1, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("N (tokens)")
    ax.set_ylabel("test NMSE (1.0 = mean predictor)")
    ax.set_title(f"{task}: test NMSE vs N")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_learning_curves(runs: list[dict[str, Any]], task: str, path: Path) -> Path:
    """Test NMSE against training step, one panel per N, one line per run."""
    task_runs = [r for r in runs if r["task"] == task and r.get("curve")]
    sizes = sorted({r["n_tokens"] for r in task_runs})
    fig, axes = plt.subplots(1, max(len(sizes), 1), figsize=(5 * max(len(sizes), 1), 4), squeeze=False)
    for ax, n in zip(axes[0], sizes):
        for r in sorted((r for r in task_runs if r["n_tokens"] == n), key=lambda r: (r["view"], r["beta1"], r["seed"])):
            steps = [p["step"] for p in r["curve"]]
            values = [max(p["test_nmse"], 1e-4) for p in r["curve"]]
            ax.plot(steps, values, linestyle="-" if r["beta1"] == 0.9 else "--", label=f"{_label(r['view'], r['beta1'])}, s{r['seed']}")
        ax.set_yscale("log")
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(f"{task}, N = {n}")
        ax.set_xlabel("step")
        ax.set_ylabel("test NMSE")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_attention_map(
    attention: np.ndarray, title: str, path: Path, marks: list[tuple[int, int]] | None = None, image: np.ndarray | None = None
) -> Path:
    """An ``[H, W]`` attention map (optionally next to the input image), carrier pixels circled."""
    panels = 2 if image is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4), squeeze=False)
    if image is not None:
        axes[0][0].imshow(np.clip(image, 0, 1))
        axes[0][0].set_title("input (test example)")
    ax = axes[0][-1]
    shown = ax.imshow(attention, cmap="magma")
    fig.colorbar(shown, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=8)
    for r, c in marks or []:
        for a in axes[0]:
            a.scatter([c], [r], s=80, facecolors="none", edgecolors="cyan", linewidths=1.2)
    for a in axes[0]:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_theory(records: list[dict[str, Any]], path: Path) -> Path:
    """The seed's algebra vs N: bin magnitudes (left) and the change's share / SNR (right)."""
    rows = sorted(records, key=lambda r: r["n_tokens"])
    n = np.array([r["n_tokens"] for r in rows], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.loglog(n, [r["numeric_dc_unnorm"] for r in rows], "o-", label="|X[0]| (DC, unnormalised)")
    left.loglog(n, [r["numeric_nondc_unnorm"] for r in rows], "s-", label="|X[f≠0]| (unnormalised) = |X1−X2|")
    left.loglog(n, [r["numeric_dc_ortho"] for r in rows], "o--", label="|X[0]| ortho")
    left.loglog(n, [r["numeric_nondc_ortho"] for r in rows], "s--", label="|X[f≠0]| ortho")
    left.loglog(n, [r["numeric_centred_bin_unnorm"] for r in rows], "^-", label="every bin after centring (unnormalised)")
    left.set_xlabel("N")
    left.set_ylabel("magnitude")
    left.set_title("Where X2's power sits")
    left.legend(fontsize=7)
    right.loglog(n, [r["numeric_change_energy_share"] for r in rows], "o-", label="change's share of energy (raw = any ortho basis)")
    right.loglog(n, [r["numeric_x1_energy_share"] for r in rows], "s-", label="X1's share of energy")
    right.loglog(n, [r["numeric_snr_per_bin_ortho"] for r in rows], "^-", label="per-bin SNR of the change (ortho, noise σ)")
    right.loglog(n, [r["numeric_snr_raw_carrier_token"] for r in rows], "v-", label="SNR of the raw carrier token")
    right.set_xlabel("N")
    right.set_title("Shares and SNR")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cell_label(r: dict[str, Any]) -> str:
    bits = [r["view"]]
    if r["axes"] != "flat":
        bits.append(r["axes"])
    if r["beta1"] != 0.9 or r["lr"] != 1e-3:
        bits.append(f"β1={r['beta1']}, lr={r['lr']:g}")
    return ", ".join(bits)


def plot_learned_vs_n(runs: list[dict[str, Any]], task: str, path: Path) -> Path:
    """Seeds learned (k/n, with Clopper–Pearson 95% bars) against N, one line per view; one panel per factor
    combination (carrier / phase / noise) and budget."""
    task_runs = [r for r in runs if r["task"] == task]
    panels = sorted({(r["carrier"], r["phase"], r["noise"], r["steps"]) for r in task_runs}, key=str)
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.6 * max(len(panels), 1), 4), squeeze=False)
    for ax, (carrier, phase, noise, steps) in zip(axes[0], panels):
        here = [r for r in task_runs if (r["carrier"], r["phase"], r["noise"], r["steps"]) == (carrier, phase, noise, steps)]
        lines: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for r in here:
            lines[_cell_label(r)][r["n_tokens"]].append(r)
        for offset, (label, by_n) in enumerate(sorted(lines.items())):
            sizes = sorted(by_n)
            ivs = [interval(by_n[n]) for n in sizes]
            xs = [n * (1.0 + 0.04 * (offset - len(lines) / 2)) for n in sizes]
            ax.errorbar(xs, [iv.fraction for iv in ivs],
                        yerr=[[iv.fraction - iv.low for iv in ivs], [iv.high - iv.fraction for iv in ivs]],
                        marker="o", capsize=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.05, 1.05)
        ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("N (tokens)")
        ax.set_ylabel("fraction of seeds learned (NMSE < 0.5)")
        title = ", ".join(b for b in (f"carrier {carrier}" if carrier != "-" else "", f"phase {phase}" if phase != "-" else "",
                                      f"noise {noise:g}", f"{steps} steps") if b)
        ax.set_title(f"{task}\n{title}", fontsize=8)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_escape_steps(runs: list[dict[str, Any]], path: Path) -> Path:
    """The raw-token escape runs: escape step of every seed against N (left, β1 0.9, lr 1e-3) and per β1 × lr at
    the largest N (right); seeds that never escaped sit at the budget, drawn as open markers."""
    long = [r for r in runs if r["view"] == "raw+fourier-pos" and {"R1", "R2"} & set(r.get("questions") or ())]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    base = [r for r in long if r["beta1"] == 0.9 and r["lr"] == 1e-3]
    for r in base:
        escaped = r["escape_step"] is not None
        left.scatter([r["n_tokens"]], [r["escape_step"] if escaped else r["steps"]], marker="o",
                     facecolors="C0" if escaped else "none", edgecolors="C0")
    sizes = sorted({r["n_tokens"] for r in base})
    medians = []
    for n in sizes:
        values = sorted((r["escape_step"] if r["escape_step"] is not None else math.inf) for r in base if r["n_tokens"] == n)
        medians.append(values[len(values) // 2] if values else math.nan)
    left.plot(sizes, [m if math.isfinite(m) else np.nan for m in medians], "k-", label="median escape step")
    left.set_xscale("log", base=2)
    left.set_xlabel("N (tokens)")
    left.set_ylabel("escape step (first test NMSE < 0.5)")
    left.set_title("R1: raw tokens, β1 0.9, lr 1e-3 (open = never escaped)", fontsize=9)
    left.legend(fontsize=7)
    n_max = max(sizes, default=0)
    combos = sorted({(r["lr"], r["beta1"]) for r in long if r["n_tokens"] == n_max})
    for i, (lr, beta1) in enumerate(combos):
        here = [r for r in long if r["n_tokens"] == n_max and (r["lr"], r["beta1"]) == (lr, beta1)]
        for j, r in enumerate(here):
            escaped = r["escape_step"] is not None
            right.scatter([i + 0.05 * (j - len(here) / 2)], [r["escape_step"] if escaped else r["steps"]],
                          marker="o", facecolors=f"C{i}" if escaped else "none", edgecolors=f"C{i}")
    right.set_xticks(range(len(combos)))
    right.set_xticklabels([f"lr {lr:g}\nβ1 {b}" for lr, b in combos], fontsize=7)
    right.set_ylabel("escape step")
    right.set_title(f"R2: N = {n_max}, β1 × lr (open = never escaped within the budget)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
