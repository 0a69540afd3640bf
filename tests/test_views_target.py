"""Target normaliser: statistics, inversion, constant dimensions, persistence, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvperceiver.errors import InputError
from rvperceiver.views.target import TargetNormalizer


def _targets(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(50, 4, 3, generator=g) * torch.tensor([0.1, 0.05, 0.0]) + torch.tensor([0.2, -0.1, 0.01])
    return y  # the third dim is constant (the planar fingertip z)


def test_zscore_statistics_and_round_trip() -> None:
    y = _targets()
    norm = TargetNormalizer(3, "zscore")
    summary = norm.fit(y)
    flat = y.reshape(-1, 3).double()
    torch.testing.assert_close(norm.offset.double(), flat.mean(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(norm.scale[:2].double(), flat.std(0, unbiased=False)[:2], atol=1e-6, rtol=0)
    assert float(norm.scale[2]) == 1.0 and summary["constant_dims"] == [2]
    z = norm.normalize(y)
    assert float(z[..., :2].reshape(-1, 2).mean(0).abs().max()) < 1e-5
    torch.testing.assert_close(z[..., :2].reshape(-1, 2).std(0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    assert float(z[..., 2].abs().max()) < 1e-6  # constant dim only centred, no blow-up
    torch.testing.assert_close(norm.denormalize(z), y, atol=1e-6, rtol=0)


def test_minmax_maps_range_to_unit_interval() -> None:
    y = _targets()
    norm = TargetNormalizer(3, "minmax")
    norm.fit(y)
    z = norm.normalize(y)
    torch.testing.assert_close(z[..., :2].amin(dim=(0, 1)), -torch.ones(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(z[..., :2].amax(dim=(0, 1)), torch.ones(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(norm.denormalize(z), y, atol=1e-6, rtol=0)


def test_streamed_fit_equals_whole_fit_and_accepts_tuples_and_numpy() -> None:
    y = _targets()
    whole = TargetNormalizer(3)
    whole.fit(y)
    streamed = TargetNormalizer(3)
    streamed.fit([(torch.zeros(2), y[:17]), y[17:30].numpy(), (None, y[30:])])
    torch.testing.assert_close(streamed.offset, whole.offset)
    torch.testing.assert_close(streamed.scale, whole.scale)
    from_numpy = TargetNormalizer(3, "minmax")
    from_numpy.fit(np.asarray(y))
    assert from_numpy.is_fitted


def test_none_mode_is_identity_without_fit() -> None:
    norm = TargetNormalizer(2, "none")
    y = torch.randn(3, 2)
    assert norm.is_fitted
    assert torch.equal(norm.normalize(y), y) and torch.equal(norm.denormalize(y), y)


def test_state_dict_round_trip() -> None:
    y = _targets(3)
    a = TargetNormalizer(3)
    a.fit(y)
    b = TargetNormalizer(3)
    b.load_state_dict(a.state_dict())
    assert b.is_fitted and torch.equal(b.normalize(y), a.normalize(y))


def test_errors() -> None:
    with pytest.raises(InputError, match="unknown target normalisation mode 'robust'.*zscore, minmax, none"):
        TargetNormalizer(3, "robust")
    with pytest.raises(InputError, match="positive integer"):
        TargetNormalizer(0)
    norm = TargetNormalizer(3)
    with pytest.raises(InputError, match="call fit"):
        norm.normalize(torch.zeros(2, 3))
    with pytest.raises(InputError, match="call fit"):
        norm.denormalize(torch.zeros(2, 3))
    with pytest.raises(InputError, match=r"D = 3, got shape \[5, 2\]"):
        norm.fit(torch.zeros(5, 2))
    with pytest.raises(InputError, match="NaN/Inf"):
        norm.fit(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(InputError, match="empty"):
        norm.fit([])
    with pytest.raises(InputError, match="tensors or arrays"):
        norm.fit(["0.1"])
    norm.fit(_targets())
    with pytest.raises(InputError, match="D = 3"):
        norm.normalize(torch.zeros(4, 2))
    other = TargetNormalizer(2)
    with pytest.raises(InputError, match=r"shape \[3\].*D = 2"):
        other.load_state_dict(norm.state_dict())
