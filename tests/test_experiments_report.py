"""Claim verdicts are computed from the numbers, and the report renders them."""

from __future__ import annotations

from typing import Any

import pytest

from rvperceiver.experiments.report import claim_verdicts, mean_spread, render_report
from rvperceiver.experiments.theory import theory_table


def run(task: str, n: int, view: str, beta1: float, nmse: float, seed: int = 0, **extra: Any) -> dict[str, Any]:
    verdict = "collapsed" if nmse > 0.9 else "learning" if nmse < 0.5 else "partial"
    return {
        "record": "run",
        "experiment": "tiny-difference" if task.startswith("tiny") else "frequency-shift",
        "task": task,
        "n_tokens": n,
        "view": view,
        "beta1": beta1,
        "seed": seed,
        "test_nmse": nmse,
        "verdict": verdict,
        "collapsed": verdict == "collapsed",
        "steps_to_nmse_0.1": 100 if nmse < 0.1 else None,
        "adaptive_statistics": extra.pop("stats", {"raw": 0.5, "fourier": 0.1}),
        "adaptive_chosen": extra.pop("chosen", "raw"),
        "wall_time_s": 1.0,
        **extra,
    }


def seed_world() -> list[dict[str, Any]]:
    """Records in which every claim of the seed holds."""
    records = []
    for n in (256, 12288):
        records += [
            run("tiny-difference", n, "raw+fourier-pos", 0.9, 0.2 if n == 256 else 1.0),
            run("tiny-difference", n, "raw+fourier-pos", 0.999, 0.05),
            run("tiny-difference", n, "fft", 0.9, 0.05 if n == 256 else 0.8),
            run("tiny-difference", n, "centre-fft", 0.9, 0.02),
            run("frequency-shift", n, "raw-zscore", 0.9, 0.05),
            run("frequency-shift", n, "centre-fft", 0.9, 0.6),
            run("frequency-shift", n, "adaptive", 0.9, 0.05, chosen="raw"),
        ]
    return records


def verdicts(records: list[dict[str, Any]]) -> dict[str, str]:
    return {v.claim: v.status for v in claim_verdicts(records)}


def test_every_claim_holds_when_the_numbers_say_so() -> None:
    assert verdicts(seed_world()) == {"R1": "holds", "R2": "holds", "R3": "holds", "R4": "holds", "R5": "holds"}


def test_claims_fail_when_the_numbers_contradict_them() -> None:
    records = seed_world()
    for r in records:
        if r["view"] == "raw+fourier-pos":
            r.update(test_nmse=0.05, verdict="learning", collapsed=False)  # raw never collapses
        if r["view"] == "fft":
            r.update(test_nmse=0.05, verdict="learning", collapsed=False)  # fft does not degrade
        if r["view"] == "centre-fft" and r["task"] == "tiny-difference" and r["n_tokens"] == 12288:
            r.update(test_nmse=0.95, verdict="collapsed", collapsed=True)
        if r["task"] == "frequency-shift":
            if r["view"] == "centre-fft":
                r["test_nmse"] = 0.01
            r["adaptive_chosen"] = "fourier"
    got = verdicts(records)
    assert got["R1"] == "does not hold"
    assert got["R2"] == "inconclusive"  # nothing to escape from
    assert got["R3"] == "does not hold"
    assert got["R4"] == "does not hold"
    assert got["R5"] == "does not hold"


def test_r5_fails_when_fourier_does_not_hurt_even_if_raw_is_picked() -> None:
    records = seed_world()
    for r in records:
        if r["task"] == "frequency-shift" and r["view"] == "centre-fft":
            r["test_nmse"] = 0.01
    assert verdicts(records)["R5"] == "does not hold"
    text = next(v.evidence for v in claim_verdicts(records) if v.claim == "R5")
    assert "worse choice" in text


def test_missing_data_is_inconclusive_not_a_pass() -> None:
    assert set(verdicts([]).values()) == {"inconclusive"}
    only_small = [r for r in seed_world() if r["n_tokens"] == 256]
    assert verdicts(only_small)["R1"] == "inconclusive"


def test_mixed_seeds_make_r1_inconclusive() -> None:
    records = seed_world() + [run("tiny-difference", 12288, "raw+fourier-pos", 0.9, 0.3, seed=1)]
    assert verdicts(records)["R1"] == "inconclusive"


def test_render_report_quotes_tables_verdicts_and_theory() -> None:
    records = seed_world() + [{"record": "theory", "experiment": "theory", **r} for r in theory_table((16, 256))]
    text = render_report(records, "Seed experiments", ["setup line"])
    assert text.startswith("# Seed experiments")
    assert "**R1** (raw tokens collapse at N = 12,288): **holds**" in text
    assert "### tiny-difference: test NMSE" in text
    assert "| raw+fourier-pos | 0.999 |" in text
    assert "## Theory" in text and "| 256 |" in text
    assert "setup line" in text


def test_mean_spread() -> None:
    assert mean_spread([1.0]) == (1.0, 0.0)
    mean, sd = mean_spread([1.0, 3.0])
    assert mean == 2.0 and sd == pytest.approx(2**0.5)
