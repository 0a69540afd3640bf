"""Verdicts, cells and the confusion table are computed from k/n learned with exact intervals."""

from __future__ import annotations

from typing import Any

from rvperceiver.experiments.report import (
    cell_records,
    claim_verdicts,
    confusion_records,
    mean_spread,
    render_report,
    rule_scores,
)
from rvperceiver.experiments.tasks import Cell
from rvperceiver.experiments.theory import theory_table

RAW = "raw+fourier-pos"


def runs_of(cell: Cell, learned: int, n: int = 10, escape: int = 400, picks: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """n runs of ``cell``, the first ``learned`` of them learning (NMSE 0.01 from step ``escape``), the rest at 1.05."""
    out = []
    for seed in range(n):
        ok = seed < learned
        curve = [{"step": s, "test_nmse": 0.01 if ok and s >= escape else 1.05, "test_spread": 1.0}
                 for s in range(50, cell.steps + 1, 50)]
        out.append({
            "record": "run", "experiment": "tiny-difference", "cell": cell.key, **cell.factors(),
            "questions": list(cell.questions), "seed": seed, "test_nmse": curve[-1]["test_nmse"], "learned": ok,
            "escape_step": escape if ok else None, "curve": curve, "wall_time_s": 1.0,
            "rule_picks": {rule: {"chosen": pick} for rule, pick in (picks or {}).items()},
        })
    return out


def world(r1: int = 0, r2_high: int = 10, fft_large: int = 0, norm_large: int = 10, shift_fourier: int = 0,
          picks: str = "raw") -> list[dict[str, Any]]:
    """A study in which, with the defaults, every claim of the seed holds."""
    runs: list[dict[str, Any]] = []
    runs += runs_of(Cell("tiny-difference", 12288, RAW, carrier="token0", steps=5000, seeds=10, questions=("R1", "R2")), r1)
    runs += runs_of(Cell("tiny-difference", 256, RAW, carrier="token0", steps=5000, seeds=10, questions=("R1",)), 10, escape=100)
    runs += runs_of(Cell("tiny-difference", 12288, RAW, carrier="token0", beta1=0.999, steps=5000, seeds=10, questions=("R2",)), r2_high)
    for n, fft_k, norm_k in ((256, 10, 10), (12288, fft_large, norm_large)):
        runs += runs_of(Cell("tiny-difference", n, "fft", carrier="token0", questions=("R3",)), fft_k)
        runs += runs_of(Cell("tiny-difference", n, "centre-fft", carrier="token0", questions=("R3", "R4")), norm_k)
    runs += runs_of(Cell("tiny-difference-image", 12288, "centre-fft-z", carrier="token0", questions=("R4",)), 10)
    shift_picks = {"participation": picks, "target-block": "fourier" if shift_fourier >= 5 else "raw"}
    for n in (256, 4096):
        runs += runs_of(Cell("frequency-shift", n, "raw-zscore", phase="fixed", questions=("R5",)), 10, picks=shift_picks)
        runs += runs_of(Cell("frequency-shift", n, "centre-fft-z", phase="fixed", questions=("R5",)), shift_fourier,
                        picks=shift_picks)
    return runs


def verdicts(records: list[dict[str, Any]]) -> dict[str, str]:
    return {v.claim: v.status for v in claim_verdicts(records)}


def test_every_claim_holds_when_the_numbers_say_so() -> None:
    assert verdicts(world()) == {"R1": "holds", "R2": "holds", "R3": "holds", "R4": "holds", "R5": "holds"}


def test_r4_cannot_hold_without_its_image_cells() -> None:
    records = [r for r in world() if r["task"] != "tiny-difference-image"]
    verdict = next(v for v in claim_verdicts(records) if v.claim == "R4")
    assert verdict.status == "inconclusive" and "image cells" in verdict.evidence


def test_claims_fail_when_the_numbers_contradict_them() -> None:
    got = verdicts(world(r1=10, r2_high=10, fft_large=10, norm_large=0, shift_fourier=10))
    assert got == {"R1": "fails", "R2": "fails", "R3": "fails", "R4": "fails", "R5": "fails"}


def test_an_interval_that_straddles_the_threshold_is_inconclusive_and_says_what_would_decide() -> None:
    records = world(r1=4)  # 4/10: [0.12, 0.74] contains 0.5
    verdict = next(v for v in claim_verdicts(records) if v.claim == "R1")
    assert verdict.status == "inconclusive"
    assert "4/10 [0.12, 0.74]" in verdict.evidence and "seeds at this rate" in verdict.evidence
    assert verdict.cells and all("raw+fourier-pos" in c for c in verdict.cells)
    # 3 seeds cannot decide a 0/3 either: [0, 0.71].
    few = [r for r in world() if r["seed"] < 3]
    assert verdicts(few)["R1"] == "inconclusive"


def test_escape_steps_and_the_short_budget_are_reported() -> None:
    verdict = next(v for v in claim_verdicts(world()) if v.claim == "R1")
    assert "N=256: 10/10" in verdict.evidence and "escape median 100" in verdict.evidence
    assert "by step 300: 0/10" in verdict.evidence


def test_cells_hold_k_over_n_and_interval_bounds() -> None:
    cells = {c["cell"]: c for c in cell_records(world(r1=0))}
    raw = cells[Cell("tiny-difference", 12288, RAW, carrier="token0", steps=5000).key]
    assert (raw["k_learned"], raw["n"]) == (0, 10)
    assert raw["ci_low"] == 0.0 and abs(raw["ci_high"] - 0.3085) < 1e-3
    assert raw["state"] == "stuck" and raw["escape_step_median"] is None


def test_confusion_scores_each_rule_against_the_winning_view() -> None:
    runs = []
    for carrier, raw_k, fourier_k in (("token0", 0, 10), ("generic", 0, 0), ("drawn", 9, 9)):
        for view, k in (("raw-zscore", raw_k), ("centre-fft-z", fourier_k)):
            runs += runs_of(Cell("tiny-difference", 4096, view, carrier=carrier, questions=("choice",)), k,
                            picks={"participation": "fourier", "target-block": "neither" if carrier == "generic" else "fourier"})
    confusion = confusion_records(runs)
    assert [c["winner"] for c in confusion] == ["either", "neither", "fourier"]  # drawn, generic, token0
    scores = rule_scores(confusion)
    assert (scores["participation"].k, scores["participation"].n) == (2, 3)
    assert (scores["target-block"].k, scores["target-block"].n) == (3, 3)


def test_render_report_quotes_verdicts_cells_confusion_and_theory() -> None:
    records = world() + [{"record": "theory", "experiment": "theory", **r} for r in theory_table((16, 64))]
    text = render_report(records, "Title", ["setup line"])
    assert text.startswith("# Title") and "setup line" in text
    for claim in ("R1", "R2", "R3", "R4", "R5"):
        assert f"**{claim}**" in text
    assert "## Which view wins" in text and "## Theory" in text and "0/10 [0.00, 0.31]" in text


def test_mean_spread() -> None:
    assert mean_spread([1.0, 3.0]) == (2.0, 2.0 ** 0.5)
    assert mean_spread([5.0]) == (5.0, 0.0)
