"""Summary and Markdown report of the behaviour-cloning study (from ``results.json`` alone, so a report can be
re-rendered from a finished or interrupted run)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rvperceiver.experiments.bc_models import MODEL_LABELS, MODELS, REFERENCES
from rvperceiver.experiments.bc_stats import mcnemar_exact, rate, seed_claim_verdict

CLAIM_TIERS = ("arm-hidden-angles", "arm-hidden")
"""Tiers the seed's claim is scored on, the deciding one first: ``arm-hidden-angles`` since the amendment of
2026-12-01 19:40 UTC (on ``arm-hidden`` the joint state leaks the goal; its verdict is still reported)."""
PERCEIVERS = ("raw_perceiver", "fourier_perceiver", "patch_perceiver")


def _successes(closed: dict[str, Any], radius: float) -> list[bool]:
    return [d < radius for d in closed["final_distance"]]


def _ever(closed: dict[str, Any], radius: float) -> list[bool]:
    return [d < radius for d in closed["min_distance"]]


def _radii(results: dict[str, Any]) -> tuple[float, float]:
    return 0.02, 0.01  # ClosedLoopConfig defaults: success within 2 cm (primary), 1 cm (strict)


def _pooled(closed_runs: Sequence[dict[str, Any]], radius: float, strict: float) -> dict[str, Any]:
    success = [s for c in closed_runs for s in _successes(c, radius)]
    finals = [d for c in closed_runs for d in c["final_distance"]]
    return {
        "success": rate(success),
        "strict": rate([s for c in closed_runs for s in _successes(c, strict)]),
        "ever": rate([s for c in closed_runs for s in _ever(c, radius)]),
        "median_final_distance": float(np.median(finals)) if finals else float("nan"),
        "per_seed_success": [float(np.mean(_successes(c, radius))) for c in closed_runs],
    }


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Pooled rates with Wilson intervals per (tier, row, budget), paired tests, the claim's verdict and the goals."""
    radius, strict = _radii(results)
    tiers: dict[str, Any] = {}
    runs = results.get("runs", [])
    for tier, refs in results.get("references", {}).items():
        rows: dict[str, Any] = {}
        for name in REFERENCES:
            if name in refs:
                rows[name] = _pooled([refs[name]], radius, strict)
                rows[name]["valid_nmse"] = refs[name].get("valid_nmse")
                rows[name]["start_window_error"] = refs[name].get("start_window_error")
        models: dict[str, dict[str, Any]] = {}
        for model in MODELS:
            source = model
            if model == "adaptive_perceiver":
                source = (results.get("adaptive_choice", {}).get(tier) or {}).get("same_run_as")
                if source is None:
                    continue
            cell = [r for r in runs if r["tier"] == tier and r["model"] == source]
            if not cell:
                continue
            budgets: dict[str, Any] = {}
            for budget in sorted({int(b) for r in cell for b in r["budgets"]}):
                done = [r for r in cell if str(budget) in r["budgets"]]
                closed = [r["budgets"][str(budget)]["closed_loop"] for r in done]
                nmse = [r["budgets"][str(budget)]["valid"].get("nmse") for r in done]
                nmse = [v for v in nmse if v is not None]
                starts = [r["budgets"][str(budget)].get("start_window_error") for r in done]
                starts = [v for v in starts if v is not None]
                budgets[str(budget)] = {
                    **_pooled(closed, radius, strict),
                    "seeds": [r["seed"] for r in done],
                    "valid_nmse_mean": float(np.mean(nmse)) if nmse else None,
                    "valid_nmse_sd": float(np.std(nmse)) if nmse else None,
                    "start_window_error_mean": float(np.mean(starts)) if starts else None,
                    "train_wall_s_mean": float(np.mean([r["budgets"][str(budget)]["train_wall_s"] for r in done])),
                    "same_run_as": source if source != model else None,
                }
            models[model] = budgets
        tiers[tier] = {"references": rows, "models": models, "comparisons": _comparisons(runs, tier, radius)}
    claims = {tier: _claim(tiers, tier) for tier in CLAIM_TIERS if _has_both_views(tiers, tier)}
    deciding = next(iter(claims), CLAIM_TIERS[0])
    claim = claims.get(deciding) or _claim(tiers, deciding)
    return {"tiers": tiers, "seed_claim": claim, "seed_claims": claims, "goals": _goals(tiers, claim)}


def _has_both_views(tiers: dict[str, Any], tier: str) -> bool:
    models = (tiers.get(tier) or {}).get("models", {})
    return "raw_perceiver" in models and "fourier_perceiver" in models


def _paired(runs: list[dict[str, Any]], tier: str, a: str, b: str, budget: str, radius: float) -> dict[str, Any] | None:
    by_seed = {r["seed"]: r for r in runs if r["tier"] == tier and r["model"] == a and budget in r["budgets"]}
    other = {r["seed"]: r for r in runs if r["tier"] == tier and r["model"] == b and budget in r["budgets"]}
    seeds = sorted(set(by_seed) & set(other))
    if not seeds:
        return None
    xs = [s for seed in seeds for s in _successes(by_seed[seed]["budgets"][budget]["closed_loop"], radius)]
    ys = [s for seed in seeds for s in _successes(other[seed]["budgets"][budget]["closed_loop"], radius)]
    return {"a": a, "b": b, "budget": int(budget), "seeds": seeds, **mcnemar_exact(xs, ys)}


def _comparisons(runs: list[dict[str, Any]], tier: str, radius: float) -> list[dict[str, Any]]:
    budgets = sorted({b for r in runs if r["tier"] == tier for b in r["budgets"]}, key=int)
    pairs = [("fourier_perceiver", "raw_perceiver"), ("raw_perceiver", "cnn"), ("fourier_perceiver", "cnn"),
             ("patch_perceiver", "cnn"), ("patch_perceiver", "raw_perceiver")]
    found = []
    for budget in budgets:
        for a, b in pairs:
            test = _paired(runs, tier, a, b, budget, radius)
            if test is not None:
                found.append(test)
    return found


def _claim(tiers: dict[str, Any], tier: str) -> dict[str, Any]:
    models = (tiers.get(tier) or {}).get("models", {})
    raw = {int(b): v["success"] for b, v in models.get("raw_perceiver", {}).items()}
    fourier = {int(b): v["success"] for b, v in models.get("fourier_perceiver", {}).items()}
    floor = ((tiers.get(tier) or {}).get("references", {}).get("mean_predictor") or {}).get("success")
    verdict = {**seed_claim_verdict(raw, fourier, floor), "tier": tier}
    comparisons = (tiers.get(tier) or {}).get("comparisons", [])
    for row in verdict["budgets"]:
        test = next((c for c in comparisons if c["a"] == "fourier_perceiver" and c["b"] == "raw_perceiver"
                     and c["budget"] == row["budget"]), None)
        row["mcnemar_p"] = test["p"] if test else None
    return verdict


def _best(models: dict[str, Any], names: Sequence[str]) -> tuple[str, str, dict[str, Any]] | None:
    best = None
    for name in names:
        for budget, stats in models.get(name, {}).items():
            if best is None or stats["success"]["rate"] > best[2]["success"]["rate"]:
                best = (name, budget, stats)
    return best


def _goals(tiers: dict[str, Any], claim: dict[str, Any]) -> list[dict[str, Any]]:
    goals: list[dict[str, Any]] = []

    def add(goal: str, met: bool | None, evidence: str) -> None:
        goals.append({"goal": goal, "met": met, "evidence": evidence})

    for tier, info in tiers.items():
        refs = info["references"]
        if "oracle" in refs:
            s = refs["oracle"]["success"]
            add(f"oracle >= 98% on {tier}", s["rate"] >= 0.98, f"{100 * s['rate']:.1f}% ({s['k']}/{s['n']})")
        if "expert" in refs:
            s = refs["expert"]["success"]
            add(f"expert 100% on {tier}", s["rate"] >= 1.0, f"{100 * s['rate']:.1f}% ({s['k']}/{s['n']})")
    fixed = (tiers.get("fixed-start") or {}).get("models", {}).get("cnn")
    if fixed:
        budget = max(fixed, key=int)
        s = fixed[budget]["success"]
        add("CNN >= 90% at 2 cm on fixed-start", s["rate"] >= 0.90,
            f"{100 * s['rate']:.1f}% [{100 * s['lo']:.1f}, {100 * s['hi']:.1f}] at {budget} steps")
    else:
        add("CNN >= 90% at 2 cm on fixed-start", None, "not run in this profile")
    for tier, info in tiers.items():
        best = _best(info["models"], PERCEIVERS)
        if best is None:
            add(f"best Perceiver >= 90% on {tier}, no worse than the CNN", None, "no Perceiver trained on this tier")
            continue
        name, budget, stats = best
        cnn = info["models"].get("cnn", {}).get(budget)
        no_worse = cnn is None or stats["success"]["rate"] >= cnn["success"]["rate"]
        evidence = f"{MODEL_LABELS[name]} {100 * stats['success']['rate']:.1f}% at {budget} steps"
        if cnn is not None:
            evidence += f"; CNN {100 * cnn['success']['rate']:.1f}% at the same budget"
        add(f"best Perceiver >= 90% on {tier}, no worse than the CNN", stats["success"]["rate"] >= 0.90 and no_worse, evidence)
    add("seed's claim decided by the pre-registered rule", claim["verdict"] != "inconclusive",
        f"{claim['verdict']} on {claim['tier']}: {claim['reason']}")
    return goals


# ---------------------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------------------


def _pct(stats: dict[str, Any]) -> str:
    return f"{100 * stats['rate']:.1f}% [{100 * stats['lo']:.1f}, {100 * stats['hi']:.1f}]"


def _mm(metres: float | None) -> str:
    return "–" if metres is None else f"{1000 * metres:.1f}"


def _row(label: str, budget: str, stats: dict[str, Any], extra: Sequence[str]) -> str:
    return (
        f"| {label} | {budget} | {_pct(stats['success'])} | {_pct(stats['strict'])} | {_pct(stats['ever'])} | "
        f"{1000 * stats['median_final_distance']:.1f} | " + " | ".join(extra) + " |"
    )


def render_report(results: dict[str, Any]) -> str:
    summary = results.get("summary") or summarise(results)
    profile = results["profile"]
    machine = results.get("machine", {})
    load = machine.get("load_average_at_start")
    lines = [
        f"# Behaviour cloning on Reacher — profile `{profile['name']}`",
        "",
        f"`{results['command']}` — {results['date']}, wall time {results.get('wall_time_s', 0) / 60:.1f} min"
        + ("" if results.get("complete") else " — **incomplete: the run stopped or is still going; rows below are what finished**"),
        "",
        f"Machine: {machine.get('platform')}, {machine.get('cpu_count')} CPUs, torch {machine.get('torch')}, "
        f"CUDA {machine.get('cuda')}; load average at start {load}.",
        "",
        f"Demos: {profile['n_demos']} per tier (env seeds {profile['demo_seed']}…), t_obs {profile['t_obs']}, "
        f"t_pred {profile['t_pred']}, receding horizon: execute {profile['execute']} of {profile['t_pred']}; "
        f"training seeds {results['seeds']}; budgets {profile['budgets']} steps of batch {profile['batch_size']}; "
        f"closed loop on env seeds {profile['eval_seed']}–{profile['eval_seed'] + profile['eval_episodes'] - 1} "
        f"({profile['eval_episodes']} episodes, the same for every model: paired). Success = fingertip within 2 cm "
        f"of the target at the last step (primary); also within 1 cm, and ever within 2 cm. Rates pool the training "
        f"seeds' episodes, with Wilson 95% intervals; the per-seed rates are listed.",
        "",
        f"Cut: {profile.get('cut') or 'none'}",
        "",
    ]
    reused = results.get("reused_from")
    if reused:
        continued = sum(1 for run in results.get("runs", []) if run.get("reused_budgets"))
        lines += [
            f"Continued: budgets {reused['budgets']} of {continued} runs were trained and scored by "
            f"`{reused['command']}` ({reused['date']}); `--reuse` kept those rows and trained the same runs on from "
            f"their checkpoints (a fresh run reaches the same weights: data order and learning rate depend on the "
            f"step only). References and the adaptive choice were recomputed.",
            "",
        ]
    for tier, info in summary["tiers"].items():
        lines += [f"## Tier `{tier}`", ""]
        choice = results.get("adaptive_choice", {}).get(tier)
        if choice:
            reason = choice.get("reason") or ", ".join(f"{k} {v:.4g}" for k, v in choice["statistics"].items())
            lines += [f"Adaptive rule: chose **{choice['chosen']}** ({reason}); its row is the "
                      f"{MODEL_LABELS[choice['same_run_as']]} run.", ""]
        lines += [
            "| model | steps | success ≤ 2 cm | ≤ 1 cm | ever ≤ 2 cm | median final (mm) | per-seed ≤ 2 cm | valid NMSE | "
            "start-window error (mm) | train s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, stats in info["references"].items():
            nmse = "–" if stats.get("valid_nmse") is None else f"{stats['valid_nmse']:.3f}"
            lines.append(_row(MODEL_LABELS[name], "–", stats, ["–", nmse, _mm(stats.get("start_window_error")), "–"]))
        for model, budgets in info["models"].items():
            for budget, stats in sorted(budgets.items(), key=lambda kv: int(kv[0])):
                per_seed = ", ".join(f"{100 * v:.0f}" for v in stats["per_seed_success"])
                nmse = "–" if stats["valid_nmse_mean"] is None else f"{stats['valid_nmse_mean']:.3f} ± {stats['valid_nmse_sd']:.3f}"
                label = MODEL_LABELS[model] + (f" (= {stats['same_run_as']})" if stats.get("same_run_as") else "")
                lines.append(_row(label, budget, stats, [per_seed, nmse, _mm(stats.get("start_window_error_mean")),
                                                         f"{stats['train_wall_s_mean']:.0f}"]))
        if info["comparisons"]:
            lines += ["", "Paired comparisons (McNemar, exact, on success ≤ 2 cm; pairs = same training seed and "
                      "evaluation seed):", "", "| A | B | steps | A only | B only | p |", "|---|---|---|---|---|---|"]
            for c in info["comparisons"]:
                lines.append(f"| {c['a']} | {c['b']} | {c['budget']} | {c['a_only']} | {c['b_only']} | {c['p']:.3g} |")
        strips = [r for r in results.get("runs", []) if r["tier"] == tier]
        shown = sorted({b["closed_loop"].get("strip") for r in strips for b in r["budgets"].values() if b["closed_loop"].get("strip")})
        expert_strip = results.get("references", {}).get(tier, {}).get("expert", {}).get("strip")
        shown = ([expert_strip] if expert_strip else []) + shown
        if shown:
            lines += ["", "Rollout strips (first episodes, seed of the first training run, largest budget; arm drawn "
                      "even on arm-hidden): " + ", ".join(f"[{s}]({s})" for s in shown)]
        lines.append("")
    claims = summary.get("seed_claims") or {summary["seed_claim"].get("tier", "arm-hidden"): summary["seed_claim"]}
    deciding = summary["seed_claim"].get("tier")
    for tier, claim in claims.items():
        role = "deciding tier" if tier == deciding else "reported, not deciding"
        lines += [
            f"## The seed's claim on `{tier}` ({role}; rule written in the README before the run)",
            "",
            f"**{claim['verdict']}** — {claim['reason']}.",
            "",
        ]
        if claim["budgets"]:
            floor = claim.get("floor")
            if floor:
                lines += [f"Floor: the mean predictor's {100 * floor['rate']:.1f}% [{100 * floor['lo']:.1f}, "
                          f"{100 * floor['hi']:.1f}]; a budget is informative when one view's interval lies above it.", ""]
            lines += ["| steps | raw | Fourier | Fourier − raw | informative | McNemar p |", "|---|---|---|---|---|---|"]
            for row in claim["budgets"]:
                p = "–" if row.get("mcnemar_p") is None else f"{row['mcnemar_p']:.3g}"
                informative = {True: "yes", False: "no (both at the floor)", None: "–"}[row.get("informative")]
                lines.append(f"| {row['budget']} | {100 * row['raw']:.1f}% | {100 * row['fourier']:.1f}% | "
                             f"{100 * row['difference']:+.1f} | {informative} | {p} |")
            lines.append("")
    lines += ["## Goals", "", "| goal | met | evidence |", "|---|---|---|"]
    for goal in summary["goals"]:
        met = {True: "yes", False: "**no**", None: "not run"}[goal["met"]]
        lines.append(f"| {goal['goal']} | {met} | {goal['evidence']} |")
    figures = results.get("figures") or {}
    if figures:
        lines += ["", "## Pictures", ""] + [f"- [{name}]({path})" for name, path in figures.items()]
    lines += ["", "Every step as a CLI command (rerun any row alone): [commands.md](commands.md).", ""]
    return "\n".join(lines)
