"""Short human summaries of what a command measured; the full record goes to JSON (``--out``).

A person reads a success rate with its uncertainty, the distances in millimetres and the references it should be
compared with; a script reads the JSON. These functions turn the JSON records of ``sim eval`` and ``eval`` into
the few lines a person reads.
"""

from __future__ import annotations

from typing import Any

from rvperceiver.experiments.statistics import Z_95, wilson_interval

__all__ = ["wilson_interval", "sim_eval_summary", "eval_summary", "Z_95"]

def _rate_line(label: str, record: dict[str, Any]) -> str:
    episodes = record.get("episodes") or []
    n = len(episodes)
    wins = sum(bool(e.get("success")) for e in episodes)
    low, high = wilson_interval(wins, n)
    return (
        f"{label:<17} {wins:>3}/{n:<3} = {100 * wins / max(n, 1):5.1f}%  (95% CI {100 * low:.0f}–{100 * high:.0f}%)   "
        f"final distance mean {1000 * record['mean_final_distance']:6.1f} mm, median "
        f"{1000 * record['median_final_distance']:6.1f} mm"
    )


def sim_eval_summary(result: dict[str, Any], out: str | None = None) -> str:
    """A few lines for ``rvperceiver sim eval``: success with its Wilson interval, distances, references."""
    settings = result.get("settings", {})
    seeds = result.get("seeds", [None, None])
    radius_mm = 1000 * float(settings.get("success_radius", 0.01))
    lines = [
        f"closed loop on env seeds {seeds[0]}–{seeds[1] - 1 if seeds[1] is not None else '?'} "
        f"(success = fingertip within {radius_mm:g} mm of the target after {settings.get('episode_steps', '?')} "
        f"steps; re-plan every {settings.get('replan_every', '?')})",
        _rate_line("policy", result),
    ]
    for key, label in (("expert", "expert"), ("oracle", "oracle ceiling"), ("mean_trajectory", "mean trajectory")):
        if isinstance(result.get(key), dict):
            lines.append(_rate_line(label, result[key]))
    if "offline_ee_error_m" in result:
        lines.append(f"offline EE error on the held-out demos: {1000 * result['offline_ee_error_m']:.1f} mm per step")
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
