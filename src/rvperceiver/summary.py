"""Short human summaries of what a command measured; the full record goes to JSON (``--out``).

A person reads a success rate with its uncertainty, the distances in millimetres and the references it should be
compared with; a script reads the JSON. These functions turn the JSON records of ``sim eval`` and ``eval`` into
the few lines a person reads.
"""

from __future__ import annotations

from typing import Any

from rvperceiver.experiments.statistics import Z_95, wilson_interval

__all__ = ["wilson_interval", "sim_eval_summary", "eval_summary", "Z_95"]

def _rate_line(label: str, record: dict[str, Any], key: str = "success") -> str:
    episodes = record.get("episodes") or []
    n = len(episodes)
    wins = sum(bool(e.get(key)) for e in episodes)
    low, high = wilson_interval(wins, n)
    return (
        f"{label:<15} {wins:>3}/{n:<3} = {100 * wins / max(n, 1):5.1f}%  (95% CI {100 * low:.0f}–{100 * high:.0f}%)   "
        f"final distance median {1000 * record['median_final_distance']:6.1f} mm, mean "
        f"{1000 * record['mean_final_distance']:6.1f} mm"
    )


def sim_eval_summary(result: dict[str, Any], out: str | None = None) -> str:
    """A few lines for ``rvperceiver sim eval``: success with its Wilson interval, distances, references."""
    settings = result.get("settings", {})
    first, episodes = settings.get("seed"), settings.get("episodes")
    last = first + episodes - 1 if isinstance(first, int) and isinstance(episodes, int) else "?"
    horizon = (f"temporal ensembling m = {settings['ensemble']:g}" if settings.get("ensemble") is not None
               else f"execute {settings.get('execute', '?')} of {settings.get('t_pred', '?')} setpoints per chunk")
    radius_mm = 1000 * float(settings.get("success_radius", 0.02))
    strict_mm = 1000 * float(settings.get("strict_radius", 0.01))
    lines = [
        f"closed loop on tier {settings.get('tier', '?')}, env seeds {first}–{last} through the "
        f"{settings.get('tracker', '?')} tracker ({horizon}); success = fingertip within {radius_mm:g} mm of the "
        f"target after {settings.get('episode_steps', '?')} steps",
        _rate_line("policy", result),
        _rate_line(f"  ≤ {strict_mm:g} mm", result, "success_strict"),
    ]
    references = result.get("references") or {}
    for key, label in (("expert", "expert"), ("oracle", "oracle"), ("mean_predictor", "mean predictor")):
        if isinstance(references.get(key), dict):
            lines.append(_rate_line(label, references[key]))
    offline = result.get("offline")
    if isinstance(offline, dict):
        lines.append(f"offline on {offline.get('data')}: RMSE {1000 * offline['rmse_m']:.1f} mm per coordinate, NMSE "
                     f"{offline['nmse']:.3f} ({offline.get('samples', '?')} windows)")
    if result.get("strip"):
        lines.append(f"rollout strip: {result['strip']}")
    lines.append(f"full record: {out}" if out else "full record: pass --out FILE.json (or --json to print it)")
    return "\n".join(lines)


def eval_summary(metrics: dict[str, Any], out: str | None = None) -> str:
    """A few lines for ``rvperceiver eval``: error in millimetres, NMSE against the mean predictor, verdict."""
    lines = [
        f"{metrics['samples']} samples ({metrics['split']} split of {metrics['data']})",
        f"RMSE {1000 * metrics['rmse_m']:.1f} mm per coordinate;  NMSE {metrics['nmse']:.3f} (1.0 = predicting the "
        f"mean trajectory);  spread {metrics['spread']:.3f} (0 = the same output for every input)",
        f"verdict: {metrics['verdict']}  (collapsed = NMSE > 0.9 and spread < 0.1; learning = NMSE < 0.5)",
        f"full record: {out}" if out else "full record: pass --out FILE.json (or --json to print it)",
    ]
    return "\n".join(lines)
