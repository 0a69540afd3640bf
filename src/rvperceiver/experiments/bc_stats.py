"""Statistics of the behaviour-cloning study: Wilson intervals, McNemar's test, the pre-registered decision rule.

Success rates are reported as the field reports them, with a 95% Wilson score interval on the episodes pooled over
training seeds (each seed's policy on the same 200 evaluation seeds). Two models are compared on the *same*
episodes (paired): McNemar's exact test on the discordant pairs (one succeeds where the other fails, matched by
training seed and evaluation seed), a binomial test with p = 1/2, two-sided.

The decision rule for the seed's claim is written in the README before the run and implemented here, so the
verdict is computed from the numbers, never chosen after seeing them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rvperceiver.experiments.statistics import wilson_interval

CLAIM_MARGIN = 0.20
"""Supported: the Fourier view beats raw tokens by at least 20 points ..."""
CLAIM_TIE = 0.10
"""... refuted: within 10 points at every budget."""
CLAIM_MIN_BUDGETS = 2


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """McNemar's exact test on paired outcomes: ``a_only`` (a succeeds, b fails), ``b_only``, two-sided ``p``."""
    if len(a) != len(b):
        raise ValueError(f"mcnemar_exact: paired outcomes need equal lengths, got {len(a)} and {len(b)}")
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    b_only = sum(1 for x, y in zip(a, b) if y and not x)
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p": 1.0}
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return {"a_only": a_only, "b_only": b_only, "p": min(1.0, 2.0 * tail)}


def rate(successes: Sequence[bool]) -> dict[str, Any]:
    """``{"k", "n", "rate", "lo", "hi"}`` with the Wilson 95% interval."""
    k, n = int(sum(bool(s) for s in successes)), len(successes)
    lo, hi = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": k / n if n else float("nan"), "lo": lo, "hi": hi}


def seed_claim_verdict(
    raw: dict[int, dict[str, Any]], fourier: dict[int, dict[str, Any]], floor: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The pre-registered rule, on ``{budget: rate(...)}`` of the raw-token and Fourier Perceivers (arm-hidden).

    ``floor`` is the mean predictor's ``rate(...)`` on the same tier. A budget is **informative** when at least one
    of the two views has left that floor (its Wilson interval lies above the mean predictor's); a budget where both
    sit on the floor cannot tell the views apart, so it counts for neither verdict (amendment of 2026-12-01 14:40
    UTC, written before the run it decides; without ``floor`` every budget counts, as the first version did).

    - **supported**: Fourier − raw ≥ 20 points with non-overlapping Wilson intervals at ≥ 2 budgets;
    - **refuted**: within 10 points at every informative budget (≥ 2 of them), or raw − Fourier ≥ 20 points with
      non-overlapping intervals at ≥ 2 budgets (the opposite of the claim);
    - **inconclusive** otherwise (including fewer than 2 budgets run for both, or fewer than 2 informative).
    """
    budgets = sorted(set(raw) & set(fourier))
    rows = []
    for budget in budgets:
        r, f = raw[budget], fourier[budget]
        diff = f["rate"] - r["rate"]
        informative = floor is None or max(r["lo"], f["lo"]) > floor["hi"]
        rows.append(
            {
                "budget": budget,
                "raw": r["rate"],
                "fourier": f["rate"],
                "difference": diff,
                "informative": informative,
                "fourier_ahead": diff >= CLAIM_MARGIN and f["lo"] > r["hi"],
                "raw_ahead": -diff >= CLAIM_MARGIN and r["lo"] > f["hi"],
                "tie": abs(diff) <= CLAIM_TIE,
            }
        )
    informative = [r for r in rows if r["informative"]]
    at_floor = [r["budget"] for r in rows if not r["informative"]]
    floor_note = f"; both views at the mean predictor's floor at budget(s) {at_floor}" if at_floor else ""
    if len(budgets) < CLAIM_MIN_BUDGETS:
        verdict, why = "inconclusive", f"only {len(budgets)} budget(s) with both models; the rule needs {CLAIM_MIN_BUDGETS}"
    elif sum(r["fourier_ahead"] for r in rows) >= CLAIM_MIN_BUDGETS:
        verdict, why = "supported", "Fourier ahead by >= 20 points with separate intervals at >= 2 budgets"
    elif sum(r["raw_ahead"] for r in rows) >= CLAIM_MIN_BUDGETS:
        verdict, why = "refuted", "raw tokens ahead by >= 20 points with separate intervals at >= 2 budgets (the opposite)"
    elif len(informative) < CLAIM_MIN_BUDGETS:
        verdict, why = "inconclusive", (
            f"only {len(informative)} informative budget(s); the rule needs {CLAIM_MIN_BUDGETS}" + floor_note)
    elif all(r["tie"] for r in informative):
        verdict, why = "refuted", "the two views are within 10 points at every informative budget" + floor_note
    else:
        verdict, why = "inconclusive", (
            "neither a 20-point separation at 2 budgets nor a 10-point tie at every informative budget" + floor_note)
    return {"verdict": verdict, "reason": why, "budgets": rows, "floor": floor}
