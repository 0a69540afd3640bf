"""Statistics for bimodal outcomes: a run either leaves the mean plateau or stays on it.

A mean ± sd of final NMSE over a few seeds mixes the two modes (≈ 0.01 and ≈ 1.05) into a number neither mode
has. What a cell measures is the *fraction of seeds that learn*, so it is reported as ``k/n`` with the exact
(Clopper–Pearson) 95% interval, and a claim about a fraction is decided only when the whole interval lies on
one side of the claim's threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rvperceiver.errors import InputError

__all__ = ["Interval", "clopper_pearson", "wilson_interval", "Z_95", "binomial_cdf", "side_of", "median", "seeds_to_decide"]


@dataclass(frozen=True)
class Interval:
    k: int
    n: int
    low: float
    high: float

    @property
    def fraction(self) -> float:
        return self.k / self.n if self.n else math.nan

    def text(self) -> str:
        return f"{self.k}/{self.n} [{self.low:.2f}, {self.high:.2f}]"


Z_95 = 1.959963984540054
"""Two-sided 95% normal quantile."""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default).

    The interval for success rates over many episodes (closed-loop evaluation). Unlike the normal approximation it
    stays inside [0, 1] and is not empty at 0 or n successes; (0, 1) with no trials.
    """
    if trials <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in 0..{trials}, got {successes}")
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, not a rounding residue
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return (low, high)


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p), summed exactly (n is a seed count: small)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    return min(1.0, sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
                        for i in range(k + 1)))


def _bisect(f, lo: float = 0.0, hi: float = 1.0, iterations: int = 80) -> float:
    """Root of a function that is decreasing in p on [lo, hi]."""
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """The exact two-sided interval for a binomial fraction: the p with P(X ≥ k) = α/2 and P(X ≤ k) = α/2."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"clopper_pearson: n must be a positive integer, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise InputError(f"clopper_pearson: k must be an integer in [0, {n}], got {k!r}")
    if not 0 < confidence < 1:
        raise InputError(f"clopper_pearson: confidence must be in (0, 1), got {confidence!r}")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else _bisect(lambda p: alpha / 2 - (1.0 - binomial_cdf(k - 1, n, p)))
    high = 1.0 if k == n else _bisect(lambda p: binomial_cdf(k, n, p) - alpha / 2)
    return Interval(k, n, low, high)


def side_of(interval: Interval, threshold: float) -> str:
    """``"above"`` / ``"below"`` when the whole interval clears ``threshold``, else ``"straddles"``."""
    if interval.low > threshold:
        return "above"
    if interval.high < threshold:
        return "below"
    return "straddles"


def median(values: Sequence[float]) -> float | None:
    clean = sorted(v for v in values if v is not None)
    if not clean:
        return None
    mid = len(clean) // 2
    return float(clean[mid]) if len(clean) % 2 else 0.5 * (clean[mid - 1] + clean[mid])


def seeds_to_decide(k: int, n: int, threshold: float, limit: int = 200) -> int | None:
    """The smallest seed count at which the *same observed fraction* k/n would clear ``threshold``.

    What an inconclusive verdict would need: if the fraction stays where it is, how many seeds make its interval
    lie on one side. None when no count up to ``limit`` does (the fraction sits at the threshold).
    """
    if n < 1:
        return None
    fraction = k / n
    for m in range(n, limit + 1):
        if side_of(clopper_pearson(round(fraction * m), m), threshold) != "straddles":
            return m
    return None
