"""Feature statistics as LeRobot v3.0 records them, in ``meta/stats.json`` and per episode in ``meta/episodes``.

Every feature gets ``min``, ``max``, ``mean``, ``std`` (population), ``count`` (frames) and the quantiles
``q01``, ``q10``, ``q50``, ``q90``, ``q99`` (LeRobot's quantile normalisation reads ``q01``/``q99``). Vectors give
one value per dimension; integer features keep integer ``min``/``max``. Images are per channel in [0, 1], shaped
``[C, 1, 1]``. Quantiles here are exact (numpy's linear interpolation; for uint8 pixels from a 256-bin
histogram per channel, so the frames are streamed, never held as floats); LeRobot estimates them from sampled,
downscaled frames, so values differ slightly while the layout is the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_NAMES = ("min", "max", "mean", "std", "count", *QUANTILES)


def vector_stats(values: np.ndarray) -> dict[str, list[Any]]:
    """Statistics of a per-frame feature given as ``[N]`` or ``[N, D]`` (a scalar gives lists of length 1)."""
    values = np.asarray(values)
    values = values.reshape(values.shape[0], -1)
    integer = values.dtype.kind in "biu"
    as_float = values.astype(np.float64)
    low, high = values.min(axis=0), values.max(axis=0)
    stats: dict[str, list[Any]] = {
        "min": low.astype(np.int64).tolist() if integer else low.astype(np.float64).tolist(),
        "max": high.astype(np.int64).tolist() if integer else high.astype(np.float64).tolist(),
        "mean": as_float.mean(axis=0).tolist(),
        "std": as_float.std(axis=0).tolist(),
        "count": [int(values.shape[0])],
    }
    for name, q in QUANTILES.items():
        stats[name] = np.quantile(as_float, q, axis=0).tolist()
    return stats


class PixelStats:
    """Streaming per-channel statistics of uint8 frames ``[L, H, W, C]``, scaled to [0, 1]."""

    def __init__(self, channels: int) -> None:
        self.histogram = np.zeros((channels, 256), dtype=np.int64)
        self.frames = 0

    def update(self, frames: np.ndarray) -> PixelStats:
        pixels = frames.reshape(-1, frames.shape[-1])
        for channel in range(pixels.shape[1]):
            self.histogram[channel] += np.bincount(pixels[:, channel], minlength=256)
        self.frames += int(frames.shape[0])
        return self

    @classmethod
    def merged(cls, parts: Iterable[PixelStats]) -> PixelStats:
        parts = list(parts)
        total = cls(parts[0].histogram.shape[0])
        for part in parts:
            total.histogram += part.histogram
            total.frames += part.frames
        return total

    def as_dict(self) -> dict[str, list[Any]]:
        levels = np.arange(256, dtype=np.float64) / 255.0
        counts = self.histogram.astype(np.float64)
        totals = counts.sum(axis=1)
        mean = (counts * levels).sum(axis=1) / totals
        variance = np.maximum((counts * levels**2).sum(axis=1) / totals - mean**2, 0.0)
        present = self.histogram > 0
        low = np.array([levels[np.flatnonzero(row)[0]] for row in present])
        high = np.array([levels[np.flatnonzero(row)[-1]] for row in present])

        def per_channel(values: np.ndarray) -> list[list[list[float]]]:
            return [[[float(value)]] for value in values]

        stats: dict[str, list[Any]] = {
            "min": per_channel(low),
            "max": per_channel(high),
            "mean": per_channel(mean),
            "std": per_channel(np.sqrt(variance)),
            "count": [self.frames],
        }
        for name, q in QUANTILES.items():
            stats[name] = per_channel(np.array([_histogram_quantile(row, q) for row in self.histogram]) / 255.0)
        return stats


def _histogram_quantile(counts: np.ndarray, q: float) -> float:
    """``np.quantile(values, q)`` (linear) of the values that ``counts`` (a histogram of 0..255) describes."""
    cumulative = np.cumsum(counts)
    position = q * (cumulative[-1] - 1)
    below, above = int(np.floor(position)), int(np.ceil(position))
    # The k-th smallest value (0-based) is the first level whose cumulative count exceeds k.
    value_below = float(np.searchsorted(cumulative, below, side="right"))
    value_above = float(np.searchsorted(cumulative, above, side="right"))
    return value_below + (position - below) * (value_above - value_below)
