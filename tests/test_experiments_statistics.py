"""Exact binomial intervals and the decision helpers behind the study's verdicts."""

from __future__ import annotations

import pytest

from rvperceiver.errors import InputError
from rvperceiver.experiments.statistics import binomial_cdf, clopper_pearson, median, seeds_to_decide, side_of


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(2, 3, 0.0943, 0.9916), (0, 3, 0.0, 0.7076), (0, 10, 0.0, 0.3085), (10, 10, 0.6915, 1.0), (3, 10, 0.0667, 0.6525)],
)
def test_clopper_pearson_matches_the_published_values(k: int, n: int, low: float, high: float) -> None:
    iv = clopper_pearson(k, n)
    assert iv.low == pytest.approx(low, abs=1e-4) and iv.high == pytest.approx(high, abs=1e-4)
    assert iv.low <= k / n <= iv.high


def test_interval_tails_have_the_stated_mass() -> None:
    iv = clopper_pearson(4, 12)
    assert 1.0 - binomial_cdf(3, 12, iv.low) == pytest.approx(0.025, abs=1e-9)
    assert binomial_cdf(4, 12, iv.high) == pytest.approx(0.025, abs=1e-9)


def test_side_of_decides_only_when_the_interval_clears() -> None:
    assert side_of(clopper_pearson(0, 10), 0.5) == "below"
    assert side_of(clopper_pearson(10, 10), 0.5) == "above"
    assert side_of(clopper_pearson(2, 3), 0.5) == "straddles"
    assert side_of(clopper_pearson(9, 10), 0.5) == "above"  # [0.555, 0.997]
    assert side_of(clopper_pearson(8, 10), 0.5) == "straddles"  # [0.444, 0.975]


def test_seeds_to_decide() -> None:
    assert seeds_to_decide(0, 3, 0.5) == 6  # 0/5 has upper bound 0.52; 0/6 0.46
    assert seeds_to_decide(5, 10, 0.5) is None
    assert seeds_to_decide(10, 10, 0.5) == 10


def test_median_and_bad_input() -> None:
    assert median([3, 1, 2]) == 2 and median([1, 2, 3, 4]) == 2.5 and median([None]) is None
    with pytest.raises(InputError, match="n must be a positive integer"):
        clopper_pearson(0, 0)
    with pytest.raises(InputError, match="k must be an integer"):
        clopper_pearson(4, 3)
