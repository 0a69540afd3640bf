from __future__ import annotations

import math

import pytest
import torch

from rvperceiver.errors import InputError
from rvperceiver.train.metrics import (
    EvalMetrics,
    MetricAccumulator,
    collapse_verdict,
    nmse,
    spread_ratio,
)


def _targets(seed: int = 0, m: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, 4, 3, generator=g) * torch.tensor([0.1, 0.2, 0.05]) + torch.tensor([0.3, -0.1, 0.01])


def test_mean_predictor_has_nmse_one_and_zero_spread() -> None:
    y = _targets()
    mean_pred = y.mean(dim=0, keepdim=True).expand_as(y)
    assert nmse(mean_pred, y) == pytest.approx(1.0, abs=1e-12)
    assert spread_ratio(mean_pred, y) == pytest.approx(0.0, abs=1e-6)


def test_perfect_predictor_has_nmse_zero_and_spread_one() -> None:
    y = _targets()
    assert nmse(y.clone(), y) == 0.0
    assert spread_ratio(y.clone(), y) == pytest.approx(1.0, abs=1e-12)


def test_hand_computed_case() -> None:
    # Targets 0 and 2 (mean 1, SST = 2); predictions 0.5 and 1.5: SSE = 0.5 -> nmse 0.25; spread = 0.5 / 1.
    y = torch.tensor([[0.0], [2.0]])
    p = torch.tensor([[0.5], [1.5]])
    assert nmse(p, y) == pytest.approx(0.25)
    assert spread_ratio(p, y) == pytest.approx(0.5)


def test_constant_target_dimension_does_not_blow_up() -> None:
    y = _targets()
    y[..., 2] = 0.01  # the fingertip height never changes
    p = y.clone()
    p[..., 2] += 0.001  # a small constant error on the constant dimension
    value = nmse(p, y)
    assert math.isfinite(value)
    assert 0.0 < value < 0.01


def test_all_constant_targets() -> None:
    y = torch.ones(5, 2, 3)
    assert nmse(y.clone(), y) == 0.0
    assert nmse(y + 1.0, y) == math.inf


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(InputError, match="same shape"):
        nmse(torch.zeros(3, 2), torch.zeros(3, 3))


@pytest.mark.parametrize(
    ("nmse_value", "spread", "verdict"),
    [
        (1.0, 0.01, "collapsed"),
        (0.95, 0.09, "collapsed"),
        (1.0, 0.5, "partial"),  # wrong but varying
        (0.7, 0.05, "partial"),
        (0.2, 0.9, "learning"),
        (float("nan"), 1.0, "collapsed"),
    ],
)
def test_collapse_verdict(nmse_value: float, spread: float, verdict: str) -> None:
    assert collapse_verdict(nmse_value, spread) == verdict


def test_accumulator_matches_whole_set_metrics() -> None:
    y = _targets(1, 40)
    p = y + 0.05 * torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    scale = torch.tensor([0.1, 0.2, 0.05])
    acc = MetricAccumulator(y[0].numel())
    for lo in range(0, 40, 7):  # uneven chunks
        acc.update(p[lo : lo + 7], y[lo : lo + 7], p[lo : lo + 7] / scale, y[lo : lo + 7] / scale)
    result = acc.compute()
    assert isinstance(result, EvalMetrics)
    assert result.count == 40
    assert result.nmse == pytest.approx(nmse(p, y), rel=1e-9)
    assert result.spread == pytest.approx(spread_ratio(p, y), rel=1e-9)
    assert result.mse_m == pytest.approx(float(((p - y).double() ** 2).mean()), rel=1e-9)
    assert result.rmse_m == pytest.approx(math.sqrt(result.mse_m))
    assert result.loss == pytest.approx(float((((p - y) / scale) ** 2).mean()), rel=1e-6)
    assert result.verdict == collapse_verdict(result.nmse, result.spread)


def test_accumulator_sums_merge_like_an_all_reduce() -> None:
    y = _targets(3, 20)
    p = y.flip(0)
    a, b, whole = MetricAccumulator(12), MetricAccumulator(12), MetricAccumulator(12)
    a.update(p[:10], y[:10], p[:10], y[:10])
    b.update(p[10:], y[10:], p[10:], y[10:])
    whole.update(p, y, p, y)
    a.state += b.state
    assert a.compute().nmse == pytest.approx(whole.compute().nmse, rel=1e-12)


def test_empty_accumulator_raises() -> None:
    with pytest.raises(InputError, match="empty"):
        MetricAccumulator(3).compute()
