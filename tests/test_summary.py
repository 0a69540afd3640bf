"""Human summaries of sim eval / eval, and the Wilson interval behind the success rate's uncertainty."""

from __future__ import annotations

import math

import pytest

from rvperceiver.summary import eval_summary, sim_eval_summary, wilson_interval


def test_wilson_interval_matches_known_values_and_stays_in_unit_range() -> None:
    # 0 of 50: the upper bound is the well-known ~7.1% (z = 1.96), not 0 as the normal approximation gives.
    low, high = wilson_interval(0, 50)
    assert low == 0.0 and math.isclose(high, 0.0713, abs_tol=5e-4)
    low, high = wilson_interval(50, 50)
    assert high == 1.0 and math.isclose(low, 1 - 0.0713, abs_tol=5e-4)
    low, high = wilson_interval(16, 50)  # 32%
    assert math.isclose(low, 0.208, abs_tol=2e-3) and math.isclose(high, 0.458, abs_tol=2e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def _record(successes: list[bool], distance: float) -> dict:
    return {
        "episodes": [{"seed": 100000 + i, "success": s, "final_distance": distance} for i, s in enumerate(successes)],
        "mean_final_distance": distance,
        "median_final_distance": distance,
    }


def test_sim_eval_summary_is_short_and_names_the_interval_distances_and_references() -> None:
    result = {
        **_record([True, False, False, True], 0.0123),
        "seeds": [100000, 100004],
        "settings": {"success_radius": 0.01, "episode_steps": 50, "replan_every": 4},
        "expert": _record([True] * 4, 0.0002),
        "mean_trajectory": _record([False] * 4, 0.135),
        "offline_ee_error_m": 0.051,
    }
    text = sim_eval_summary(result, "out.json")
    lines = text.splitlines()
    assert len(lines) <= 8
    assert "2/4" in lines[1] and "50.0%" in lines[1] and "95% CI 15–85%" in lines[1] and "12.3 mm" in lines[1]
    assert any(line.startswith("expert") and "4/4" in line for line in lines)
    assert any(line.startswith("mean trajectory") and "135.0 mm" in line for line in lines)
    assert "51.0 mm" in text and "out.json" in text and "100000–100003" in lines[0]


def test_eval_summary_reads_in_millimetres_and_against_the_mean() -> None:
    metrics = {"samples": 10, "split": "valid", "data": "d.hdf5", "rmse_m": 0.0314, "nmse": 0.25, "spread": 0.8,
               "verdict": "learning"}
    text = eval_summary(metrics)
    assert "31.4 mm" in text and "NMSE 0.250" in text and "learning" in text and "--out" in text
