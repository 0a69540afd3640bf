"""The seed's DFT algebra: closed form against numpy, and the subtleties the report states."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rvperceiver.errors import InputError
from rvperceiver.experiments.theory import TheorySettings, seed_formula, seed_sequence, theory_table

SIZES = (16, 256, 4096, 12288)


def test_closed_form_matches_numeric_dft() -> None:
    for record in theory_table(SIZES):
        assert record["max_relative_gap"] < 1e-8, record["n_tokens"]


def test_nondc_bins_hold_x1_minus_x2_for_every_n() -> None:
    settings = TheorySettings(x2=1.0, mu1=2.0, delta=0.7)
    for n in SIZES:
        spectrum = np.fft.fft(seed_sequence(n, settings.x1, settings.x2))
        np.testing.assert_allclose(spectrum[1:], settings.x1 - settings.x2, atol=1e-8 * n)
        assert spectrum[0].real == pytest.approx(settings.x1 + (n - 1) * settings.x2)


def test_change_energy_share_falls_as_one_over_n_and_centring_removes_n() -> None:
    records = theory_table(SIZES)
    scaled = [r["numeric_change_energy_share"] * r["n_tokens"] for r in records]
    # N · share → Δ²/X2² as N grows: within 1% at the largest sizes.
    assert scaled[-1] == pytest.approx(records[-1]["delta"] ** 2 / records[-1]["x2"] ** 2, rel=0.01)
    assert records[-1]["numeric_change_energy_share"] < records[0]["numeric_change_energy_share"] / 100
    centred = {r["numeric_centred_bin_unnorm"] for r in records}
    assert max(centred) - min(centred) < 1e-9
    ortho = [r["numeric_snr_per_bin_ortho"] * math.sqrt(r["n_tokens"]) for r in records]
    assert max(ortho) - min(ortho) < 1e-6 * max(ortho)


def test_seed_formula_as_written_has_a_phase_slip() -> None:
    settings = TheorySettings()
    n = 64
    f = np.arange(1, n)
    written = seed_formula(n, settings.x1, settings.x2, f)
    exact = np.fft.fft(seed_sequence(n, settings.x1, settings.x2))[1:]
    # It equals X1 - X2·e^{jπf/N}, not X1 - X2.
    np.testing.assert_allclose(written, settings.x1 - settings.x2 * np.exp(1j * np.pi * f / n), atol=1e-9)
    assert np.max(np.abs(written - exact)) > 1.0


def test_packed_real_layout_carries_a_change_at_n0_in_real_parts_only() -> None:
    for record in theory_table((16, 17, 1024)):
        assert record["numeric_packed_real_coefficients_carrying_change"] == record["n_tokens"] // 2 + 1


def test_seed_sequence_rejects_tiny_n() -> None:
    with pytest.raises(InputError, match="n_tokens"):
        seed_sequence(1, 1.0, 2.0)
