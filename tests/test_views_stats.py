"""Streaming moments equal whole-array moments, under any chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rvperceiver.errors import InputError
from rvperceiver.views.stats import RunningMoments, compute_moments, participation_ratio


def _data(seed: int = 0, m: int = 97) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # A large common offset with a tiny spread: the case where Σx² - (Σx)²/n would cancel catastrophically.
    return 1000.0 + rng.normal(size=(m, 5, 3)) * np.linspace(1e-3, 2.0, 15).reshape(5, 3)


@pytest.mark.parametrize("chunk", [1, 7, 32, 97])
def test_streamed_equals_numpy(chunk: int) -> None:
    data = _data()
    batches = [torch.from_numpy(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    m = compute_moments(batches)
    assert m.count == len(data)
    np.testing.assert_allclose(m.mean.numpy(), data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(m.var.numpy(), data.var(axis=0), rtol=1e-9)
    np.testing.assert_allclose(m.std().numpy(), data.std(axis=0), rtol=1e-9)
    assert m.mean.dtype == torch.float64


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=96), max_size=8, unique=True), seed=st.integers(0, 1000))
def test_any_chunking_and_merging_agrees(cuts: list[int], seed: int) -> None:
    data = _data(seed)
    edges = [0, *sorted(cuts), len(data)]
    parts = [RunningMoments((5, 3)).update(torch.from_numpy(data[a:b])) for a, b in zip(edges[:-1], edges[1:])]
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    assert merged.count == len(data)
    np.testing.assert_allclose(merged.mean.numpy(), data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged.var.numpy(), data.var(axis=0), rtol=1e-9)


def test_float32_and_uint8_batches_accumulate_in_float64() -> None:
    x = torch.randint(0, 256, (50, 4), dtype=torch.uint8)
    m = compute_moments([x[:20], x[20:]])
    np.testing.assert_allclose(m.var.numpy(), x.double().numpy().var(axis=0), rtol=1e-12)


def test_std_floor_and_empty_batch() -> None:
    m = RunningMoments((2,)).update(torch.tensor([[1.0, 0.0], [1.0, 2.0]]))
    m.update(torch.zeros(0, 2))
    assert m.count == 2
    torch.testing.assert_close(m.std(floor=0.5), torch.tensor([0.5, 1.0], dtype=torch.float64))


def test_participation_ratio_limits() -> None:
    assert participation_ratio(torch.ones(10)) == pytest.approx(1.0)
    assert participation_ratio(torch.tensor([0.0, 3.0, 0.0, 0.0])) == pytest.approx(0.25)
    assert participation_ratio(torch.tensor([1.0, 1.0, 0.0, 0.0])) == pytest.approx(0.5)
    with pytest.raises(InputError, match="zero"):
        participation_ratio(torch.zeros(4))
    with pytest.raises(InputError, match=">= 0"):
        participation_ratio(torch.tensor([1.0, -1.0]))
    with pytest.raises(InputError, match="NaN"):
        participation_ratio(torch.tensor([1.0, float("nan")]))


def test_errors() -> None:
    m = RunningMoments((3,))
    with pytest.raises(InputError, match="no examples"):
        _ = m.mean
    with pytest.raises(InputError, match=r"expected a batch of shape \[B, 3\], got \[2, 4\]"):
        m.update(torch.zeros(2, 4))
    with pytest.raises(InputError, match="NaN/Inf"):
        m.update(torch.tensor([[0.0, float("inf"), 1.0]]))
    with pytest.raises(InputError, match="shapes differ"):
        m.merge(RunningMoments((4,)))
    with pytest.raises(InputError, match="empty"):
        compute_moments([])
