"""The seed's DFT algebra, evaluated numerically next to its closed form.

The seed's sequence is ``x[n] = X1`` at ``n = 0`` and ``X2`` elsewhere. With the unnormalised DFT
``X[f] = Σ x[n] e^{-j2πfn/N}``:

* ``X[0] = X1 + (N-1) X2`` — the DC bin grows with N.
* For integer ``f ≠ 0``, ``Σ_{n=1}^{N-1} e^{-j2πfn/N} = -1`` exactly (the full sum over ``n = 0..N-1``
  vanishes), so ``X[f] = X1 - X2`` **for every N**. The seed writes the geometric series with the phase
  factor ``e^{-jπf(N-1)/N}``; the correct factor is ``e^{-jπf}``. The magnitudes of the two agree, but the
  seed's version turns ``X1 - X2`` into ``X1 - X2 e^{jπf/N}``, which is not the DFT: :func:`seed_formula`
  evaluates it and the table reports the discrepancy.

What "X1 drowns in X2's power" then means, measured:

* Only the DC bin holds X2's growing power; every other bin holds ``X1 - X2`` (unnormalised) or
  ``(X1 - X2)/√N`` (orthonormal). A change Δ of X1 moves *every* bin by Δ (unnormalised) / Δ/√N (ortho).
* The change's share of the total energy, ``Δ² / (X1² + (N-1) X2²)``, falls as 1/N — in raw space and in
  any orthonormal transform alike (Parseval).
* Centring by the dataset mean removes X2 entirely: every bin then holds ``X1 - μ1`` (unnormalised), the
  same for every N, which is the seed's "we completely eliminated the dependence on N".
* With white noise σ per sample the Fourier view adds no information: each orthonormal bin carries the
  change with SNR ``Δ / (σ √N)`` while the raw carrier token carries ``Δ / σ``; the summed SNR² is ``Δ²/σ²``
  in both. The transform spreads the signal over all bins; it does not amplify it.
* In the packed real layout (real parts, then imaginary parts), a change at ``n = 0`` has a purely real
  spectrum, so only the ``N/2 + 1`` real-part coefficients carry it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from rvperceiver.errors import InputError

__all__ = ["TheorySettings", "seed_sequence", "seed_formula", "closed_form", "measure", "theory_table"]

DEFAULT_SIZES: tuple[int, ...] = (16, 64, 256, 1024, 4096, 12288, 49152)


@dataclass(frozen=True)
class TheorySettings:
    """The values the seed's algebra is evaluated at: ``X1 = mu1 + delta`` so centring leaves ``delta``."""

    x2: float = 1.0
    mu1: float = 2.0
    delta: float = 0.5
    noise_std: float = 0.01

    @property
    def x1(self) -> float:
        return self.mu1 + self.delta


def seed_sequence(n_tokens: int, x1: float, x2: float) -> np.ndarray:
    """``x[0] = X1``, ``x[1:] = X2`` in float64."""
    if n_tokens < 2:
        raise InputError(f"argument 'n_tokens': expected at least 2, got {n_tokens}")
    x = np.full(n_tokens, x2, dtype=np.float64)
    x[0] = x1
    return x


def seed_formula(n_tokens: int, x1: float, x2: float, f: np.ndarray) -> np.ndarray:
    """The seed's written expression for ``X[f]``, ``f ≠ 0``, exactly as written (phase factor included)."""
    f = np.asarray(f, dtype=np.float64)
    phase = np.exp(-1j * np.pi * f * (n_tokens - 1) / n_tokens)
    return x1 + x2 * phase * np.sin(np.pi * f * (n_tokens - 1) / n_tokens) / np.sin(np.pi * f / n_tokens)


def closed_form(n_tokens: int, settings: TheorySettings) -> dict[str, float]:
    """Closed-form magnitudes and shares for one N (see the module docstring for the derivations)."""
    n = n_tokens
    x1, x2, delta, sigma = settings.x1, settings.x2, settings.delta, settings.noise_std
    total_energy = x1**2 + (n - 1) * x2**2
    return {
        "dc_unnorm": abs(x1 + (n - 1) * x2),
        "nondc_unnorm": abs(x1 - x2),
        "dc_ortho": abs(x1 + (n - 1) * x2) / math.sqrt(n),
        "nondc_ortho": abs(x1 - x2) / math.sqrt(n),
        "change_per_bin_unnorm": abs(delta),
        "change_per_bin_ortho": abs(delta) / math.sqrt(n),
        "change_relative_to_dc": abs(delta) / abs(x1 + (n - 1) * x2),
        "change_relative_to_nondc": abs(delta) / abs(x1 - x2) if x1 != x2 else math.inf,
        "x1_energy_share": x1**2 / total_energy,
        "change_energy_share": delta**2 / total_energy,
        "centred_bin_unnorm": abs(delta),
        "centred_bin_ortho": abs(delta) / math.sqrt(n),
        "centred_change_energy_share": 1.0,
        "snr_raw_carrier_token": abs(delta) / sigma if sigma > 0 else math.inf,
        "snr_per_bin_ortho": abs(delta) / (sigma * math.sqrt(n)) if sigma > 0 else math.inf,
        "packed_real_coefficients_carrying_change": float(n // 2 + 1),
    }


def _packed_real(spectrum: np.ndarray, n: int) -> np.ndarray:
    """Orthonormal packed half-complex layout: real parts of bins 0..N/2, then imaginary parts of the rest.

    The doubled bins (those with a conjugate partner) get a factor √2 so the packing is an isometry.
    """
    half = spectrum[: n // 2 + 1] / math.sqrt(n)
    weights = np.full(half.shape, math.sqrt(2.0))
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    doubled = weights > 1.0
    return np.concatenate([half.real * weights, half.imag[doubled] * math.sqrt(2.0)])


def measure(n_tokens: int, settings: TheorySettings) -> dict[str, float]:
    """The same quantities computed numerically with ``numpy.fft`` (float64), plus the seed formula's error."""
    n = n_tokens
    x = seed_sequence(n, settings.x1, settings.x2)
    spectrum = np.fft.fft(x)
    nondc = np.abs(spectrum[1:])
    changed = seed_sequence(n, settings.x1 + settings.delta, settings.x2)
    change_spectrum = np.fft.fft(changed) - spectrum
    centred = x - np.full(n, settings.x2)
    centred[0] = settings.x1 - settings.mu1
    centred_spectrum = np.fft.fft(centred)
    f = np.arange(1, n)
    packed_change = _packed_real(change_spectrum, n)
    sigma = settings.noise_std
    change_ortho = np.abs(change_spectrum) / math.sqrt(n)
    return {
        "dc_unnorm": float(abs(spectrum[0])),
        "nondc_unnorm": float(nondc.mean()),
        "nondc_unnorm_spread": float(nondc.max() - nondc.min()),
        "dc_ortho": float(abs(spectrum[0]) / math.sqrt(n)),
        "nondc_ortho": float(nondc.mean() / math.sqrt(n)),
        "change_per_bin_unnorm": float(np.abs(change_spectrum).mean()),
        "change_per_bin_ortho": float(change_ortho.mean()),
        "change_relative_to_dc": float(abs(change_spectrum[0]) / abs(spectrum[0])),
        "change_relative_to_nondc": float(np.abs(change_spectrum[1:]).mean() / nondc.mean()),
        "x1_energy_share": float(x[0] ** 2 / np.sum(x**2)),
        "change_energy_share": float(np.sum(np.abs(change_spectrum) ** 2) / np.sum(np.abs(spectrum) ** 2)),
        "centred_bin_unnorm": float(np.abs(centred_spectrum).mean()),
        "centred_bin_ortho": float(np.abs(centred_spectrum).mean() / math.sqrt(n)),
        "centred_change_energy_share": float(
            np.sum(np.abs(change_spectrum) ** 2) / np.sum(np.abs(centred_spectrum) ** 2)
        ),
        "snr_raw_carrier_token": float(abs(changed[0] - x[0]) / sigma) if sigma > 0 else math.inf,
        "snr_per_bin_ortho": float(change_ortho.mean() / sigma) if sigma > 0 else math.inf,
        "packed_real_coefficients_carrying_change": float(
            np.sum(np.abs(packed_change) > 1e-9 * max(abs(settings.delta), 1e-300))
        ),
        "seed_formula_max_abs_error": float(np.max(np.abs(seed_formula(n, settings.x1, settings.x2, f) - spectrum[1:]))),
        "seed_formula_magnitude_max_abs_error": float(
            np.max(np.abs(np.abs(seed_formula(n, settings.x1, settings.x2, f)) - nondc))
        ),
    }


def theory_table(
    sizes: tuple[int, ...] = DEFAULT_SIZES, settings: TheorySettings | None = None
) -> list[dict[str, float]]:
    """One record per N: settings, closed-form values, numeric values (``numeric_`` prefix), and the largest
    relative gap between the two over all shared quantities (``max_relative_gap``)."""
    settings = settings or TheorySettings()
    records = []
    for n in sizes:
        exact = closed_form(int(n), settings)
        numeric = measure(int(n), settings)
        gaps = [
            abs(numeric[key] - value) / max(abs(value), 1e-12)
            for key, value in exact.items()
            if math.isfinite(value)
        ]
        record: dict[str, float] = {"task": "theory", "n_tokens": int(n), **asdict(settings), "x1": settings.x1}
        record.update(exact)
        record.update({f"numeric_{key}": value for key, value in numeric.items()})
        record["max_relative_gap"] = max(gaps)
        records.append(record)
    return records
