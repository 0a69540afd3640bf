"""Position features: the Fourier formula, layout, defaults and validation."""

from __future__ import annotations

import math

import pytest
import torch

from rvperceiver.errors import ConfigError
from rvperceiver.model.position import PositionFeatures, fourier_features, grid_positions


def test_grid_positions_span_minus_one_to_one_in_row_major_order() -> None:
    pos = grid_positions((2, 3))
    assert pos.shape == (6, 2)
    expected = [[-1, -1], [-1, 0], [-1, 1], [1, -1], [1, 0], [1, 1]]
    assert torch.equal(pos, torch.tensor(expected, dtype=torch.float64))


def test_fourier_features_match_the_formula_on_a_small_grid() -> None:
    grid, bands, max_freq = (3, 4), 3, 6.0
    features = fourier_features(grid, bands, max_freq)
    assert features.shape == (12, 2 * (2 * bands + 1))
    assert features.dtype == torch.float32
    freqs = [1.0 + k * (max_freq / 2 - 1.0) / (bands - 1) for k in range(bands)]  # linspace(1, 3, 3) = 1, 2, 3
    assert freqs == [1.0, 2.0, 3.0]
    for i in range(grid[0]):
        for j in range(grid[1]):
            token = i * grid[1] + j
            row = []
            for index, size in ((i, grid[0]), (j, grid[1])):
                p = -1.0 + 2.0 * index / (size - 1)
                row += [p] + [math.sin(math.pi * f * p) for f in freqs] + [math.cos(math.pi * f * p) for f in freqs]
            assert torch.allclose(features[token], torch.tensor(row, dtype=torch.float32), atol=1e-6), token


def test_default_max_freq_is_each_axis_grid_size() -> None:
    grid = (4, 10)
    default = fourier_features(grid, 5)
    explicit = fourier_features(grid, 5, [4.0, 10.0])
    assert torch.equal(default, explicit)
    # The top band of the 10-long axis is its Nyquist frequency 5: neighbours are half a period apart.
    top_sin = default[:, 11 + 5]  # the second axis block starts at 2·5+1 = 11: pos, then 5 sines, the last f = 5
    assert torch.allclose(top_sin[:10], torch.sin(math.pi * 5 * torch.linspace(-1, 1, 10)), atol=1e-6)


def test_fourier_features_reject_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="num_bands"):
        fourier_features((4,), 0)
    with pytest.raises(ConfigError, match="grid_shape"):
        fourier_features((4, 0), 2)
    with pytest.raises(ConfigError, match="one value per grid axis"):
        fourier_features((4, 4), 2, [4.0])
    with pytest.raises(ConfigError, match="max_freq"):
        fourier_features((4,), 2, -1.0)


def test_position_features_module_kinds() -> None:
    fourier = PositionFeatures("fourier", (2, 3, 4), num_bands=2)
    assert fourier.channels == 3 * 5
    assert fourier().shape == (24, 15)
    assert "fourier" not in fourier.state_dict()  # rebuilt from the config, never stored

    torch.manual_seed(0)
    learned = PositionFeatures("learned", (64, 64), learned_channels=16, init_scale=0.02)
    values = learned().detach()
    assert values.shape == (4096, 16) and learned().requires_grad
    assert values.abs().max() <= 0.04 + 1e-7
    assert 0.015 < float(values.std()) < 0.02  # a ±2σ truncated normal has std ≈ 0.88σ

    none = PositionFeatures("none", (5,))
    assert none.channels == 0 and none() is None
    with pytest.raises(ConfigError, match="position"):
        PositionFeatures("sinusoid", (5,))
