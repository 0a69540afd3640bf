"""Position features of the input tokens.

A Perceiver's cross-attention is permutation invariant, so where a token sits in the input grid has to be written
into the token itself. Tokens are numbered in row-major (C) order of `grid_shape`, the order in which
`TokenLayout.to_tokens` flattens an example.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rvperceiver.errors import ConfigError


def _check_grid_shape(grid_shape: Sequence[int]) -> tuple[int, ...]:
    grid = tuple(grid_shape)
    if len(grid) == 0 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in grid):
        raise ConfigError(f"grid_shape must be a non-empty sequence of positive integers, got {grid_shape!r}")
    return grid


def grid_positions(grid_shape: Sequence[int]) -> Tensor:
    """Coordinates of every token, `[N, A]` float64, each axis spanning [-1, 1] (an axis of size 1 sits at -1)."""
    grid = _check_grid_shape(grid_shape)
    axes = [torch.linspace(-1.0, 1.0, size, dtype=torch.float64) for size in grid]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)


def fourier_features(
    grid_shape: Sequence[int], num_bands: int, max_freq: float | Sequence[float] | None = None
) -> Tensor:
    """Fixed Fourier position features `[N, A*(2K+1)]` (float32) for a token grid of A axes.

    Per axis with coordinate p in [-1, 1] and bands f_k = linspace(1, max_freq/2, K), the features are
    `[p, sin(π f_1 p) … sin(π f_K p), cos(π f_1 p) … cos(π f_K p)]`; axes are concatenated in grid order.
    `max_freq` None means the grid size of each axis, so the highest band is that axis's Nyquist frequency:
    adjacent tokens then differ by half a period in the finest band, and the features never alias.
    Computed in float64 and rounded once, so they match the formula to float32 precision.
    """
    grid = _check_grid_shape(grid_shape)
    if isinstance(num_bands, bool) or not isinstance(num_bands, int) or num_bands <= 0:
        raise ConfigError(f"num_bands must be a positive integer, got {num_bands!r}")
    if max_freq is None:
        max_freqs = [float(size) for size in grid]
    elif isinstance(max_freq, (int, float)) and not isinstance(max_freq, bool):
        max_freqs = [float(max_freq)] * len(grid)
    else:
        max_freqs = [float(m) for m in max_freq]
        if len(max_freqs) != len(grid):
            raise ConfigError(f"max_freq needs one value per grid axis ({len(grid)}), got {list(max_freq)!r}")
    if any(not math.isfinite(m) or m <= 0 for m in max_freqs):
        raise ConfigError(f"max_freq must be positive, got {max_freq!r}")

    positions = grid_positions(grid)
    per_axis = []
    for axis, top in enumerate(max_freqs):
        bands = torch.linspace(1.0, top / 2.0, num_bands, dtype=torch.float64)
        p = positions[:, axis : axis + 1]
        angle = math.pi * p * bands
        per_axis.append(torch.cat([p, torch.sin(angle), torch.cos(angle)], dim=-1))
    return torch.cat(per_axis, dim=-1).to(torch.float32)


class PositionFeatures(nn.Module):
    """The position features of one token grid: fixed Fourier, learned, or none.

    `forward()` returns `[N, channels]` (no batch dimension: every example shares them) or None when
    `kind == "none"`. Fourier features are a non-persistent buffer: they are a pure function of the config and the
    grid, so they are rebuilt on construction rather than stored in checkpoints.
    """

    def __init__(
        self,
        kind: str,
        grid_shape: Sequence[int],
        num_bands: int = 8,
        max_freq: float | None = None,
        learned_channels: int = 64,
        init_scale: float = 0.02,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.grid_shape = _check_grid_shape(grid_shape)
        num_tokens = math.prod(self.grid_shape)
        self.learned: nn.Parameter | None = None
        self.fourier: Tensor | None
        if kind == "fourier":
            self.register_buffer("fourier", fourier_features(self.grid_shape, num_bands, max_freq), persistent=False)
            self.channels = len(self.grid_shape) * (2 * num_bands + 1)
        elif kind == "learned":
            self.register_buffer("fourier", None, persistent=False)
            self.learned = nn.Parameter(torch.empty(num_tokens, learned_channels))
            nn.init.trunc_normal_(self.learned, std=init_scale, a=-2 * init_scale, b=2 * init_scale)
            self.channels = learned_channels
        elif kind == "none":
            self.register_buffer("fourier", None, persistent=False)
            self.channels = 0
        else:
            raise ConfigError(f"position must be one of ['fourier', 'learned', 'none'], got {kind!r}")

    def forward(self) -> Tensor | None:
        if self.learned is not None:
            return self.learned
        return self.fourier
