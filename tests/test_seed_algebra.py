"""The seed's DFT algebra for a one-token difference, checked numerically for several N.

Input: x[0] = X1, x[n] = X2 for n = 1 … N-1. Unnormalised DFT:
    X[0] = X1 + (N-1)·X2
    X[f] = X1 + X2·Σ_{n=1}^{N-1} e^{-j2πfn/N} = X1 - X2   for f ≠ 0,
because the geometric sum over n = 1 … N-1 is the full sum over a period (0) minus the n = 0 term (1), i.e. -1.
The seed writes the sum as e^{-jπf(N-1)/N}·sin(πf(N-1)/N)/sin(πf/N): the Dirichlet ratio has magnitude 1 for
integer f ≠ 0, so the magnitude is right, but the phase factor should be e^{-jπf}; with it the product is exactly -1.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvperceiver.views.transforms import forward_transform
from rvperceiver.views.view import InputView, ViewConfig

SIZES = (8, 64, 1024, 12288)


def _seed_signal(n: int, x1: float, x2: float) -> np.ndarray:
    x = np.full(n, x2)
    x[0] = x1
    return x


@pytest.mark.parametrize("n", SIZES)
def test_dft_of_one_token_difference(n: int) -> None:
    x1, x2 = 0.9, 0.35
    spectrum = torch.fft.fft(torch.from_numpy(_seed_signal(n, x1, x2)))  # float64 → complex128
    assert abs(complex(spectrum[0]) - (x1 + (n - 1) * x2)) < 1e-9 * n
    np.testing.assert_allclose(spectrum[1:].numpy(), np.full(n - 1, x1 - x2, dtype=complex), atol=1e-9)


@pytest.mark.parametrize("n", SIZES)
def test_geometric_sum_and_seed_dirichlet_form(n: int) -> None:
    f = np.arange(1, n, dtype=np.float64)
    dirichlet = np.sin(np.pi * f * (n - 1) / n) / np.sin(np.pi * f / n)
    np.testing.assert_allclose(np.abs(dirichlet), 1.0, atol=1e-9)
    # The sum itself, computed directly: sum over a full period (zero) minus the n = 0 term.
    direct = torch.fft.fft(torch.from_numpy(np.r_[0.0, np.ones(n - 1)]))[1:].numpy()
    np.testing.assert_allclose(direct, -1.0 + 0j, atol=1e-9)
    corrected = np.exp(-1j * np.pi * f) * dirichlet
    np.testing.assert_allclose(corrected, direct, atol=1e-9)
    seed_form = np.exp(-1j * np.pi * f * (n - 1) / n) * dirichlet
    np.testing.assert_allclose(np.abs(seed_form), 1.0, atol=1e-9)  # right magnitude …
    assert np.abs(seed_form - direct).max() > 1.0  # … wrong phase


@pytest.mark.parametrize("n", SIZES)
def test_uncentred_common_part_dominates_bin_zero(n: int) -> None:
    # With ortho scaling the common part X2 piles up as (N-1)·X2/√N in bin 0 while every other bin carries
    # (X1-X2)/√N: the difference between examples becomes a vanishing fraction of the energy as N grows.
    x1, x2 = 0.9, 0.35
    y = forward_transform(torch.from_numpy(_seed_signal(n, x1, x2)).unsqueeze(0), "complex", 1)[0].double()
    magnitude = y.square().sum(-1).sqrt()
    assert float(magnitude[0]) == pytest.approx((x1 + (n - 1) * x2) / np.sqrt(n), rel=1e-5)
    # float32 FFT rounding scales with the size of the whole signal, so the uncentred small bins are only good to
    # ~1e-5 absolute at N = 12288 (the centred test below holds to 1e-7): one more reason to centre first.
    np.testing.assert_allclose(magnitude[1:].numpy(), abs(x1 - x2) / np.sqrt(n), rtol=0, atol=1e-5)


@pytest.mark.parametrize("n", SIZES)
def test_centring_with_dataset_statistics_removes_the_dependence_on_n(n: int) -> None:
    # A dataset of examples that share the background X2 and differ only in token 0. After centring with the
    # dataset mean ("all X2 become 0"), the ortho DFT of an example has |d|/√N in *every* bin, d its deviation.
    rng = np.random.default_rng(n)
    m = 8
    x2 = 0.35
    x1 = rng.uniform(0.0, 1.0, size=m)
    data = np.full((m, n, 1), x2, dtype=np.float32)
    data[:, 0, 0] = x1
    view = InputView(ViewConfig(transform="complex", pre_norm="centre"), (n, 1))
    view.fit([torch.from_numpy(data)])
    out = view(torch.from_numpy(data)).double()  # [m, n, 2] = (re, im) per bin
    magnitude = out.square().sum(-1).sqrt().numpy()
    d = x1 - x1.astype(np.float32).mean()
    expected = np.abs(d)[:, None] / np.sqrt(n) * np.ones((1, n))
    np.testing.assert_allclose(magnitude, expected, atol=1e-6 / np.sqrt(n) + 1e-7)
    # The packed real view carries the same energy: at token 0 every bin is real, d/√N (×√2 on paired bins).
    packed = InputView(ViewConfig(transform="rfft", pre_norm="centre"), (n, 1))
    packed.fit([torch.from_numpy(data)])
    y = packed(torch.from_numpy(data)).double()[..., 0].numpy()
    half = n // 2
    scale = np.full(half + 1, np.sqrt(2.0))
    scale[0] = scale[half] = 1.0
    np.testing.assert_allclose(y[:, : half + 1], d[:, None] / np.sqrt(n) * scale, atol=1e-6)
    np.testing.assert_allclose(y[:, half + 1 :], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.abs(d), rtol=1e-4, atol=1e-7)
