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


def _record(successes: list[bool], distance: float, strict: list[bool] | None = None) -> dict:
    strict = strict if strict is not None else successes
    return {
        "episodes": [{"seed": 100000 + i, "success": s, "success_strict": t, "final_distance": distance}
                     for i, (s, t) in enumerate(zip(successes, strict))],
        "mean_final_distance": distance,
        "median_final_distance": distance,
    }


def test_sim_eval_summary_is_short_and_names_the_interval_distances_and_references() -> None:
    result = {
        **_record([True, False, False, True], 0.0123, strict=[True, False, False, False]),
        "settings": {"tier": "arm-hidden", "seed": 100000, "episodes": 4, "tracker": "inverse_dynamics",
                     "execute": 4, "t_pred": 8, "ensemble": None, "success_radius": 0.02, "strict_radius": 0.01,
                     "episode_steps": 50},
        "references": {"expert": _record([True] * 4, 0.0002), "oracle": _record([True] * 4, 0.0002),
                       "mean_predictor": _record([False] * 4, 0.135)},
        "offline": {"data": "held_out.hdf5", "rmse_m": 0.0051, "nmse": 0.042, "samples": 120},
    }
    text = sim_eval_summary(result, "out.json")
    lines = text.splitlines()
    assert len(lines) <= 9
    assert "arm-hidden" in lines[0] and "100000–100003" in lines[0] and "execute 4 of 8" in lines[0]
    assert "20 mm" in lines[0]
    assert "2/4" in lines[1] and "50.0%" in lines[1] and "95% CI 15–85%" in lines[1] and "12.3 mm" in lines[1]
    assert "1/4" in lines[2] and "10 mm" in lines[2]
    assert any(line.startswith("expert") and "4/4" in line for line in lines)
    assert any(line.startswith("oracle") and "4/4" in line for line in lines)
    assert any(line.startswith("mean predictor") and "135.0 mm" in line for line in lines)
    assert "RMSE 5.1 mm" in text and "NMSE 0.042" in text and "out.json" in text
    ensembled = sim_eval_summary({**result, "settings": {**result["settings"], "ensemble": 0.1}})
    assert "temporal ensembling m = 0.1" in ensembled and "--out" in ensembled


def test_eval_summary_reads_in_millimetres_and_against_the_mean() -> None:
    metrics = {"samples": 10, "split": "valid", "data": "d.hdf5", "rmse_m": 0.0314, "nmse": 0.25, "spread": 0.8,
               "verdict": "learning"}
    text = eval_summary(metrics)
    assert "31.4 mm" in text and "NMSE 0.250" in text and "learning" in text and "--out" in text
