"""report.md from result records: tables (mean ± spread over seeds) and a computed verdict per claim R1–R5.

Each verdict is a rule applied to the numbers, quoted in the line, so a reader can check it:

* R1 "raw tokens collapse at N = 12,288": the raw view (``raw+fourier-pos``, β1 = 0.9) at N = 12,288 —
  holds when every such run's collapse verdict is ``collapsed``, does not hold when none is, else inconclusive.
* R2 "β1 = 0.999 escapes": the same runs with β1 = 0.999 — holds when R1's runs collapsed and every
  β1 = 0.999 run is ``learning`` (NMSE < 0.5); does not hold when they collapse too; inconclusive otherwise
  (including "nothing to escape from" when the β1 = 0.9 runs did not collapse).
* R3 "FFT alone degrades with N": the ``fft`` view (β1 = 0.9), 1-D task — holds when the mean NMSE at the
  largest N exceeds that at the smallest by more than 0.1; does not hold when it is not larger by more than
  0.02; else inconclusive.
* R4 "FFT after normalisation works at every N": ``centre-fft`` and ``zscore-fft`` (β1 = 0.9), both tiny
  difference forms — holds when one of them has mean NMSE < 0.1 at every N run; does not hold when at some
  N both exceed 0.5; else inconclusive.
* R5 "on frequency shift the Fourier view hurts and the adaptive choice picks raw" (fixed phase, β1 = 0.9):
  hurts = at every N the best Fourier view's mean NMSE exceeds the best raw view's by more than 0.05;
  holds when it hurts and every adaptive choice was raw; does not hold when the Fourier view hurts at no N
  (whatever the choice: the claim is a conjunction); else inconclusive.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ClaimVerdict", "claim_verdicts", "render_report", "mean_spread", "RAW_VIEWS", "NMSE_THRESHOLD"]

NMSE_THRESHOLD = 0.1
RAW = "raw+fourier-pos"
RAW_VIEWS = ("raw+fourier-pos", "raw-zscore")
FOURIER_VIEWS = ("fft", "centre-fft", "zscore-fft", "fft-zscore")
NORMALISED_FFT_VIEWS = ("centre-fft", "zscore-fft")
LARGE_N = 12288


@dataclass(frozen=True)
class ClaimVerdict:
    claim: str
    statement: str
    status: str  # "holds" | "does not hold" | "inconclusive"
    evidence: str


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _runs(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("record") == "run"]


def _select(runs: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    def keep(r: dict[str, Any]) -> bool:
        for key, value in where.items():
            allowed = value if isinstance(value, (tuple, list, set)) else (value,)
            if r.get(key) not in allowed:
                return False
        return True

    return [r for r in runs if keep(r)]


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def _nmse_summary(runs: list[dict[str, Any]]) -> str:
    mean, spread = mean_spread([r["test_nmse"] for r in runs])
    return f"{_fmt(mean)} ± {_fmt(spread)} (n={len(runs)})"


def _mean_nmse(runs: list[dict[str, Any]]) -> float:
    return mean_spread([r["test_nmse"] for r in runs])[0]


def _r1(runs: list[dict[str, Any]]) -> ClaimVerdict:
    statement = "raw tokens collapse at N = 12,288"
    chosen = _select(runs, task=("tiny-difference", "tiny-difference-image"), view=RAW, beta1=0.9, n_tokens=LARGE_N)
    if not chosen:
        return ClaimVerdict("R1", statement, "inconclusive", "no raw-view run at N = 12,288 with β1 = 0.9")
    collapsed = sum(r["collapsed"] for r in chosen)
    evidence = "; ".join(
        f"{task}: NMSE {_nmse_summary(_select(chosen, task=task))}, "
        f"verdicts {[r['verdict'] for r in _select(chosen, task=task)]}"
        for task in sorted({r["task"] for r in chosen})
    )
    status = "holds" if collapsed == len(chosen) else "does not hold" if collapsed == 0 else "inconclusive"
    return ClaimVerdict("R1", statement, status, f"{collapsed}/{len(chosen)} runs collapsed — {evidence}")


def _r2(runs: list[dict[str, Any]]) -> ClaimVerdict:
    statement = "Adam β1 = 0.999 escapes the collapse"
    where = dict(task=("tiny-difference", "tiny-difference-image"), view=RAW, n_tokens=LARGE_N)
    base = _select(runs, beta1=0.9, **where)
    high = _select(runs, beta1=0.999, **where)
    if not base or not high:
        return ClaimVerdict("R2", statement, "inconclusive", "needs raw-view runs at N = 12,288 with both β1")
    evidence = f"β1=0.9: NMSE {_nmse_summary(base)}; β1=0.999: NMSE {_nmse_summary(high)}, verdicts {[r['verdict'] for r in high]}"
    base_collapsed = all(r["collapsed"] for r in base)
    if all(r["collapsed"] for r in high):
        return ClaimVerdict("R2", statement, "does not hold", evidence)
    if base_collapsed and all(r["verdict"] == "learning" for r in high):
        return ClaimVerdict("R2", statement, "holds", evidence)
    if not any(r["collapsed"] for r in base):
        evidence += " — the β1 = 0.9 runs did not collapse, so there was nothing to escape from"
    return ClaimVerdict("R2", statement, "inconclusive", evidence)


def _r3(runs: list[dict[str, Any]]) -> ClaimVerdict:
    statement = "the FFT alone (no normalisation) degrades as N grows"
    chosen = _select(runs, task="tiny-difference", view="fft", beta1=0.9)
    sizes = sorted({r["n_tokens"] for r in chosen})
    if len(sizes) < 2:
        return ClaimVerdict("R3", statement, "inconclusive", "needs the fft view at two or more N")
    small, large = _mean_nmse(_select(chosen, n_tokens=sizes[0])), _mean_nmse(_select(chosen, n_tokens=sizes[-1]))
    per_n = ", ".join(f"N={n}: {_nmse_summary(_select(chosen, n_tokens=n))}" for n in sizes)
    gap = large - small
    status = "holds" if gap > 0.1 else "does not hold" if gap <= 0.02 else "inconclusive"
    return ClaimVerdict("R3", statement, status, f"NMSE {per_n}; increase {_fmt(gap)}")


def _r4(runs: list[dict[str, Any]]) -> ClaimVerdict:
    statement = "the FFT after normalisation works (NMSE < 0.1) at every N"
    chosen = _select(runs, task=("tiny-difference", "tiny-difference-image"), view=NORMALISED_FFT_VIEWS, beta1=0.9)
    if not chosen:
        return ClaimVerdict("R4", statement, "inconclusive", "no centre-fft / zscore-fft run")
    keys = sorted({(r["task"], r["n_tokens"]) for r in chosen})
    worst: dict[str, float] = {}
    parts = []
    for view in NORMALISED_FFT_VIEWS:
        view_runs = _select(chosen, view=view)
        if not view_runs:
            continue
        means = {key: _mean_nmse(_select(view_runs, task=key[0], n_tokens=key[1])) for key in keys}
        present = {k: v for k, v in means.items() if not math.isnan(v)}
        if len(present) == len(keys):
            worst[view] = max(present.values())
        parts.append(f"{view}: " + ", ".join(f"{t} N={n}: {_fmt(v)}" for (t, n), v in present.items()))
    evidence = "; ".join(parts)
    if any(v < NMSE_THRESHOLD for v in worst.values()):
        return ClaimVerdict("R4", statement, "holds", evidence)
    failing = [
        key
        for key in keys
        if all(
            _mean_nmse(_select(chosen, view=v, task=key[0], n_tokens=key[1])) > 0.5
            for v in NORMALISED_FFT_VIEWS
            if _select(chosen, view=v, task=key[0], n_tokens=key[1])
        )
    ]
    status = "does not hold" if failing else "inconclusive"
    if failing:
        evidence += f" — both fail (NMSE > 0.5) at {failing}"
    return ClaimVerdict("R4", statement, status, evidence)


def _r5(runs: list[dict[str, Any]]) -> ClaimVerdict:
    statement = "on the frequency shift the Fourier view hurts and the adaptive choice picks raw"
    chosen = _select(runs, task="frequency-shift", beta1=0.9)
    sizes = sorted({r["n_tokens"] for r in chosen})
    hurts_at = []
    parts = []
    for n in sizes:
        at_n = _select(chosen, n_tokens=n)
        raw = {v: _mean_nmse(_select(at_n, view=v)) for v in RAW_VIEWS if _select(at_n, view=v)}
        fourier = {v: _mean_nmse(_select(at_n, view=v)) for v in FOURIER_VIEWS if _select(at_n, view=v)}
        if not raw or not fourier:
            continue
        best_raw, best_fourier = min(raw, key=raw.get), min(fourier, key=fourier.get)  # type: ignore[arg-type]
        hurts_at.append(fourier[best_fourier] > raw[best_raw] + 0.05)
        parts.append(
            f"N={n}: best raw {best_raw} {_fmt(raw[best_raw])} vs best Fourier {best_fourier} {_fmt(fourier[best_fourier])}"
        )
    choices = [r["adaptive_chosen"] for r in chosen if r.get("adaptive_chosen")]
    picks_raw = bool(choices) and all(c == "raw" for c in choices)
    if not hurts_at or not choices:
        return ClaimVerdict("R5", statement, "inconclusive", "needs raw and Fourier runs and an adaptive choice")
    hurts = all(hurts_at)
    never_hurts = not any(hurts_at)
    ratios = sorted({(r["n_tokens"], _fmt(r['adaptive_statistics'].get('raw')), _fmt(r['adaptive_statistics'].get('fourier'))) for r in chosen if r.get("adaptive_statistics")})
    evidence = "; ".join(parts) + f"; adaptive chose {sorted(set(choices))} (participation ratio raw/fourier by N: {ratios})"
    if hurts and picks_raw:
        status = "holds"
    elif never_hurts:
        status = "does not hold"
        if picks_raw:
            evidence += " — the Fourier view did not hurt at any N, so picking raw was the worse choice here"
    else:
        status = "inconclusive"
    return ClaimVerdict("R5", statement, status, evidence)


def claim_verdicts(records: Iterable[dict[str, Any]]) -> list[ClaimVerdict]:
    runs = _runs(records)
    return [_r1(runs), _r2(runs), _r3(runs), _r4(runs), _r5(runs)]


def _nmse_table(runs: list[dict[str, Any]], task: str) -> list[str]:
    task_runs = _select(runs, task=task)
    sizes = sorted({r["n_tokens"] for r in task_runs})
    rows = sorted({(r["view"], r["beta1"]) for r in task_runs}, key=lambda vb: (_view_order(vb[0]), vb[1]))
    lines = [
        f"### {task}: test NMSE (mean ± sd over seeds; 1.0 = the mean predictor) · steps to NMSE < 0.1 · verdicts",
        "",
        "| view | β1 | " + " | ".join(f"N = {n}" for n in sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for view, beta in rows:
        cells = []
        for n in sizes:
            cell_runs = _select(task_runs, view=view, beta1=beta, n_tokens=n)
            if not cell_runs:
                cells.append("–")
                continue
            mean, spread = mean_spread([r["test_nmse"] for r in cell_runs])
            steps = [r["steps_to_nmse_0.1"] for r in cell_runs]
            reached = [s for s in steps if s is not None]
            steps_text = f"{int(mean_spread(reached)[0])}" if len(reached) == len(steps) else f"{len(reached)}/{len(steps)} reached"
            verdicts = "/".join(sorted({r["verdict"] for r in cell_runs}))
            chosen = sorted({r["adaptive_chosen"] for r in cell_runs if view == "adaptive" and r.get("adaptive_chosen")})
            chosen_text = f" [chose {', '.join(chosen)}]" if chosen else ""
            cells.append(f"{_fmt(mean)} ± {_fmt(spread)} · {steps_text} · {verdicts}{chosen_text}")
        lines.append(f"| {view} | {beta} | " + " | ".join(cells) + " |")
    return lines + [""]


def _view_order(view: str) -> int:
    order = (*RAW_VIEWS, *FOURIER_VIEWS, "adaptive")
    return order.index(view) if view in order else len(order)


def _adaptive_table(runs: list[dict[str, Any]]) -> list[str]:
    seen: dict[tuple[str, int, int], dict[str, Any]] = {}
    for r in runs:
        if r.get("adaptive_statistics"):
            seen.setdefault((r["task"], r["n_tokens"], r["seed"]), r)
    if not seen:
        return []
    lines = [
        "### Adaptive choice (participation ratio of the between-example variance; higher = more evenly spread)",
        "",
        "| task | N | seed | " + " | ".join(sorted(next(iter(seen.values()))["adaptive_statistics"])) + " | chosen |",
        "|---|---|---|" + "---|" * (len(next(iter(seen.values()))["adaptive_statistics"]) + 1),
    ]
    for (task, n, seed), r in sorted(seen.items()):
        stats = r["adaptive_statistics"]
        lines.append(
            f"| {task} | {n} | {seed} | " + " | ".join(_fmt(stats[k], 4) for k in sorted(stats)) + f" | {r['adaptive_chosen']} |"
        )
    return lines + [""]


def _attention_table(runs: list[dict[str, Any]]) -> list[str]:
    with_attention = [r for r in runs if r.get("attention_on_carrier") is not None]
    if not with_attention:
        return []
    lines = [
        "### Cross-attention on the carrier tokens (raw views; attention mass on the carrier ÷ its uniform share)",
        "",
        "| task | N | view | β1 | seed | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(with_attention, key=lambda r: (r["task"], r["n_tokens"], r["view"], r["beta1"], r["seed"])):
        lines.append(
            f"| {r['task']} | {r['n_tokens']} | {r['view']} | {r['beta1']} | {r['seed']} | {_fmt(r['attention_on_carrier'], 2)} |"
        )
    return lines + [""]


def _theory_section(records: list[dict[str, Any]]) -> list[str]:
    theory = sorted((r for r in records if r.get("record") == "theory"), key=lambda r: r["n_tokens"])
    if not theory:
        return []
    first = theory[0]
    lines = [
        "## Theory: the seed's DFT algebra, numerically",
        "",
        f"x[0] = X1 = {first['x1']}, x[1:] = X2 = {first['x2']}; a change Δ = {first['delta']} of X1; white noise "
        f"σ = {first['noise_std']} for the SNR columns; unnormalised DFT unless marked 'ortho'.",
        "",
        "| N | \\|X[0]\\| | \\|X[f≠0]\\| | \\|X[0]\\| ortho | \\|X[f≠0]\\| ortho | change share of energy | centred \\|bin\\| | "
        "SNR raw carrier | SNR per bin ortho | seed formula max error | closed-form gap |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in theory:
        lines.append(
            f"| {r['n_tokens']} | {_fmt(r['numeric_dc_unnorm'], 1)} | {_fmt(r['numeric_nondc_unnorm'], 4)} | "
            f"{_fmt(r['numeric_dc_ortho'], 3)} | {_fmt(r['numeric_nondc_ortho'], 5)} | "
            f"{r['numeric_change_energy_share']:.2e} | {_fmt(r['numeric_centred_bin_unnorm'], 4)} | "
            f"{_fmt(r['numeric_snr_raw_carrier_token'], 1)} | {_fmt(r['numeric_snr_per_bin_ortho'], 3)} | "
            f"{_fmt(r['numeric_seed_formula_max_abs_error'], 3)} | {r['max_relative_gap']:.1e} |"
        )
    last = theory[-1]
    growth = last["numeric_dc_unnorm"] / first["numeric_dc_unnorm"]
    share_drop = first["numeric_change_energy_share"] / last["numeric_change_energy_share"]
    lines += [
        "",
        "What the numbers say:",
        f"- The DC bin grows with N (×{growth:.0f} from N={first['n_tokens']} to N={last['n_tokens']}); every other "
        f"bin holds exactly X1 − X2 = {last['numeric_nondc_unnorm']:.4f} at every N (the geometric sum over n ≥ 1 is "
        "exactly −1 for integer f ≠ 0). X2 'drowns' X1 only in the DC bin.",
        f"- The change's share of the total energy falls as 1/N (÷{share_drop:.0f} over the same range), identically in "
        "raw space and in the orthonormal DFT (Parseval).",
        "- After centring by the dataset mean every bin holds Δ (unnormalised) at every N: the dependence on N is "
        "gone, as the seed says.",
        f"- With noise the Fourier view adds no information: the raw carrier token has SNR "
        f"{last['numeric_snr_raw_carrier_token']:.0f} while each orthonormal bin has "
        f"{last['numeric_snr_per_bin_ortho']:.3f} at N={last['n_tokens']}; summed SNR² is equal. The transform spreads "
        "the difference over all bins; it does not amplify it.",
        f"- The seed's simplified expression (phase factor e^(−jπf(N−1)/N)) is off by up to "
        f"{last['numeric_seed_formula_max_abs_error']:.2f} from the true DFT; the correct factor is e^(−jπf), "
        "which makes the X2 term exactly −X2.",
        f"- In the packed real layout only the N/2 + 1 real-part coefficients carry a change at n = 0 "
        f"({int(last['numeric_packed_real_coefficients_carrying_change'])} of {last['n_tokens']} at N={last['n_tokens']}).",
        "",
    ]
    return lines


def render_report(records: list[dict[str, Any]], title: str, setup_lines: Sequence[str] = ()) -> str:
    """The whole report.md as a string."""
    runs = _runs(records)
    lines = [f"# {title}", ""]
    lines += list(setup_lines)
    if runs:
        lines += ["## Claims", ""]
        for v in claim_verdicts(records):
            lines.append(f"- **{v.claim}** ({v.statement}): **{v.status}** — {v.evidence}")
        lines.append("")
        lines += ["## Results", ""]
        for task in sorted({r["task"] for r in runs}):
            lines += _nmse_table(runs, task)
        lines += _adaptive_table(runs)
        lines += _attention_table(runs)
        total = sum(r.get("wall_time_s", 0.0) for r in runs)
        lines += [f"Total training wall time: {total:.1f} s over {len(runs)} runs.", ""]
    lines += _theory_section(records)
    return "\n".join(lines) + "\n"


def group_by(records: Iterable[dict[str, Any]], *keys: str) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[tuple(r.get(k) for k in keys)].append(r)
    return dict(groups)
