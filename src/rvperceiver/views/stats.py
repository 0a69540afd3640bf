"""Streaming per-element mean and variance over a dataset that need not fit in memory.

Each batch's mean and sum of squared deviations are computed directly, then merged into the running totals with
the pairwise update of Chan, Golub and LeVeque. Unlike accumulating Σx and Σx², this does not cancel
catastrophically when the mean is large compared with the spread (uint8 frames: mean ≈ 0.5, a one-pixel change
≈ 1/255), and the merge is exact, so any chunking gives the same answer up to float64 rounding.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from rvperceiver.errors import InputError


UINT8_RESOLUTION = 1.0 / 255.0
"""One quantisation step of a uint8 frame in token units (tokenisation scales uint8 frames to [0, 1])."""
FLOAT_STD_FLOOR = 1e-6
"""Floor for float inputs, whose resolution the data does not say."""


def data_std_floor(dtype: torch.dtype) -> float:
    """The smallest standard deviation a z-score should divide by, in the data's own units.

    A token that never changed over the training set has std 0. Dividing by a floor far below the data's
    resolution turns the first change it ever shows (a compression artefact, a new object) into a value of 10⁵σ
    or more; flooring at one quantisation step (1/255 for uint8 frames) says "a change of one grey level is one
    σ", and the view's clip bounds the rest.
    """
    return UINT8_RESOLUTION if dtype == torch.uint8 else FLOAT_STD_FLOOR


class RunningMoments:
    """Per-element count, mean and (population, ddof=0) variance of examples of shape ``shape``.

    Accumulators are float64 on the device of the first batch (CPU or CUDA).
    """

    def __init__(self, shape: tuple[int, ...] | list[int] | torch.Size) -> None:
        self.shape = tuple(int(s) for s in shape)
        self._count = 0
        self._mean: torch.Tensor | None = None
        self._m2: torch.Tensor | None = None  # sum of squared deviations from the mean

    # ------------------------------------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return self._count

    def _require_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._count == 0 or self._mean is None or self._m2 is None:
            raise InputError("RunningMoments has seen no examples yet; call update() with at least one batch")
        return self._mean, self._m2

    @property
    def mean(self) -> torch.Tensor:
        return self._require_data()[0]

    @property
    def var(self) -> torch.Tensor:
        """Population variance (divides by the count), as numpy's ``var`` with its default ``ddof=0``."""
        _, m2 = self._require_data()
        return m2 / self._count

    def std(self, floor: float = 0.0) -> torch.Tensor:
        """Standard deviation, at least ``floor`` (so that dividing by it never blows up a constant element)."""
        return self.var.sqrt().clamp_min(floor)

    # ------------------------------------------------------------------------------------------------------------

    def _combine(self, count_b: int, mean_b: torch.Tensor, m2_b: torch.Tensor) -> None:
        if self._count == 0 or self._mean is None or self._m2 is None:
            self._count, self._mean, self._m2 = count_b, mean_b.clone(), m2_b.clone()
            return
        mean_b = mean_b.to(self._mean.device)
        m2_b = m2_b.to(self._mean.device)
        total = self._count + count_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (count_b / total)
        self._m2 = self._m2 + m2_b + delta.square() * (self._count * count_b / total)
        self._count = total

    def update(self, batch: torch.Tensor) -> RunningMoments:
        """Add a batch ``[B, *shape]`` of examples."""
        if not isinstance(batch, torch.Tensor):
            raise InputError(f"RunningMoments.update expects a torch.Tensor, got {type(batch).__name__}")
        if batch.ndim != len(self.shape) + 1 or tuple(batch.shape[1:]) != self.shape:
            raise InputError(
                f"RunningMoments.update: expected a batch of shape [B, {', '.join(map(str, self.shape))}], "
                f"got {list(batch.shape)}"
            )
        if batch.shape[0] == 0:
            return self
        values = batch.detach().to(torch.float64)
        if not bool(torch.isfinite(values).all()):
            raise InputError("RunningMoments.update: batch contains NaN/Inf values")
        batch_mean = values.mean(dim=0)
        batch_m2 = (values - batch_mean).square().sum(dim=0)
        self._combine(int(batch.shape[0]), batch_mean, batch_m2)
        return self

    def merge(self, other: RunningMoments) -> RunningMoments:
        """Fold in the moments of a disjoint set of examples (e.g. another worker's shard)."""
        if not isinstance(other, RunningMoments):
            raise InputError(f"RunningMoments.merge expects a RunningMoments, got {type(other).__name__}")
        if other.shape != self.shape:
            raise InputError(f"RunningMoments.merge: shapes differ, {self.shape} here vs {other.shape}")
        if other._count == 0 or other._mean is None or other._m2 is None:
            return self
        self._combine(other._count, other._mean, other._m2)
        return self


def compute_moments(batches: Iterable[torch.Tensor]) -> RunningMoments:
    """Stream ``batches`` (each ``[B, *shape]``, same shape) through a :class:`RunningMoments`."""
    moments: RunningMoments | None = None
    for batch in batches:
        if not isinstance(batch, torch.Tensor) or batch.ndim < 1:
            raise InputError(f"compute_moments expects tensors of shape [B, ...], got {type(batch).__name__}")
        if moments is None:
            moments = RunningMoments(tuple(batch.shape[1:]))
        moments.update(batch)
    if moments is None or moments.count == 0:
        raise InputError("compute_moments got no examples: the iterable of batches was empty")
    return moments


def participation_ratio(var: torch.Tensor) -> float:
    """``(Σv)² / (K·Σv²)`` over the K elements of ``var`` (every element counts as one unit; flattened).

    It is the effective fraction of units that carry the variance: 1 when all K carry the same share, 1/K when one
    carries it all, and in general ``k/K`` when k units share it equally. Callers choose the unit by what they
    pass: :func:`rvperceiver.views.adaptive.choose_view` passes one variance per token (summed over the token's
    channels), because a token is what the backbone's attention sees. Computed in float64.
    """
    if not isinstance(var, torch.Tensor):
        var = torch.as_tensor(var)
    values = var.detach().to(torch.float64).flatten()
    if values.numel() == 0:
        raise InputError("participation_ratio: got an empty tensor of variances")
    if not bool(torch.isfinite(values).all()):
        raise InputError("participation_ratio: variances contain NaN/Inf")
    if bool((values < 0).any()):
        raise InputError(f"participation_ratio: variances must be >= 0, got a minimum of {float(values.min()):.4g}")
    total = float(values.sum())
    if total <= 0.0:
        raise InputError("participation_ratio: every variance is zero, the examples do not differ at all")
    return total * total / (values.numel() * float(values.square().sum()))
