"""How one example becomes a set of tokens ``[N, c]``.

Three granularities, because the seed's argument depends on it: in ``scalar`` mode every value is its own token
(64×64×3 → 12,288 tokens of one channel), so a change in one pixel channel touches exactly one token; ``pixel``
puts the C colour values of a pixel in one token; ``patch`` puts a p×p×C square in one token.

Two input layouts are understood: image sequences ``(T, H, W, C)`` and plain arrays ``(N, C)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from rvperceiver.errors import InputError

TokenMode = Literal["scalar", "pixel", "patch"]
TOKEN_MODES: tuple[str, ...] = ("scalar", "pixel", "patch")

# Float frames must be in [0, 1]; this slack only absorbs rounding from a resize or a dtype conversion.
_RANGE_SLACK = 1e-3


def _shape_str(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def check_finite_and_range(x: torch.Tensor, what: str, unit_range: bool) -> None:
    """Raise InputError if ``x`` holds NaN/Inf, or (``unit_range``) a value outside [0, 1].

    One ``aminmax`` gives both answers, so the check costs a single device synchronisation per batch.
    """
    if x.numel() == 0 or not x.is_floating_point():
        return
    lo, hi = (float(v) for v in torch.aminmax(x.detach().float()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"{what} contains {bad} NaN/Inf value(s)")
    if unit_range and (lo < -_RANGE_SLACK or hi > 1.0 + _RANGE_SLACK):
        hint = " (it looks like frames given as floats in [0, 255]; pass uint8 or divide by 255)" if hi > 1.5 else ""
        raise InputError(f"{what}: float frames must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]{hint}")


@dataclass(frozen=True)
class TokenLayout:
    """The mapping between one example of shape ``input_shape`` and ``num_tokens`` tokens of ``token_channels``.

    ``grid_shape`` is the token grid the ``grid`` transform axes and position features run over:
    ``(T, H, W, C)`` for scalar images, ``(T, H, W)`` for pixel, ``(T, H/p, W/p)`` for patch, and ``(N*C,)`` or
    ``(N,)`` for arrays in scalar or pixel mode. Tokens are ordered row-major over that grid.
    """

    mode: str
    input_shape: tuple[int, ...]
    grid_shape: tuple[int, ...]
    token_channels: int
    patch_size: int = 1

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid_shape)

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 4

    @classmethod
    def from_input_shape(cls, input_shape: tuple[int, ...] | list[int], mode: str = "scalar", patch_size: int = 4) -> TokenLayout:
        shape = tuple(int(s) for s in input_shape)
        if mode not in TOKEN_MODES:
            raise InputError(f"unknown token mode {mode!r}; expected one of {', '.join(TOKEN_MODES)}")
        if len(shape) not in (2, 4):
            raise InputError(
                f"input_shape must be (T, H, W, C) for image sequences or (N, C) for arrays, got {shape}"
            )
        if any(s <= 0 for s in shape):
            raise InputError(f"input_shape entries must be positive, got {shape}")
        if len(shape) == 2:
            n, c = shape
            if mode == "scalar":
                return cls("scalar", shape, (n * c,), 1)
            if mode == "pixel":
                return cls("pixel", shape, (n,), c)
            raise InputError(f"token mode 'patch' needs an image layout (T, H, W, C); input_shape {shape} is an array")
        t, h, w, c = shape
        if mode == "scalar":
            return cls("scalar", shape, (t, h, w, c), 1)
        if mode == "pixel":
            return cls("pixel", shape, (t, h, w), c)
        if not isinstance(patch_size, int) or patch_size < 1:
            raise InputError(f"patch_size must be a positive integer, got {patch_size!r}")
        if h % patch_size or w % patch_size:
            raise InputError(f"patch_size {patch_size} must divide the frame height {h} and width {w}")
        p = patch_size
        return cls("patch", shape, (t, h // p, w // p), p * p * c, patch_size=p)

    # ------------------------------------------------------------------------------------------------------------

    def check_batch(self, x: torch.Tensor, what: str = "input") -> None:
        """Shape, dtype and value checks for a batch ``[B, *input_shape]``."""
        if not isinstance(x, torch.Tensor):
            raise InputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            names = "[B, T, H, W, C]" if self.is_image else "[B, N, C]"
            raise InputError(
                f"{what}: expected shape {names} = [B, {', '.join(map(str, self.input_shape))}], "
                f"got {_shape_str(tuple(x.shape))}"
            )
        if not (x.dtype == torch.uint8 or x.is_floating_point()):
            raise InputError(f"{what}: expected uint8 or floating-point values, got dtype {x.dtype}")
        check_finite_and_range(x, what, unit_range=self.is_image)

    def to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, *input_shape]`` → float32 ``[B, N, c]``; uint8 is scaled by 1/255."""
        self.check_batch(x)
        values = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
        b = values.shape[0]
        if self.mode == "scalar":
            return values.reshape(b, -1, 1)
        if self.mode == "pixel":
            return values.reshape(b, self.num_tokens, self.token_channels)
        t, h, w, c = self.input_shape
        p = self.patch_size
        patches = values.reshape(b, t, h // p, p, w // p, p, c).permute(0, 1, 2, 4, 3, 5, 6)
        return patches.reshape(b, self.num_tokens, self.token_channels)

    def from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Float ``[B, N, c]`` → float ``[B, *input_shape]`` (values stay in the token scale, e.g. [0, 1])."""
        expected = (self.num_tokens, self.token_channels)
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 3 or tuple(tokens.shape[1:]) != expected:
            got = _shape_str(tuple(tokens.shape)) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise InputError(f"tokens: expected shape [B, {expected[0]}, {expected[1]}], got {got}")
        b = tokens.shape[0]
        if self.mode in ("scalar", "pixel"):
            return tokens.reshape(b, *self.input_shape)
        t, h, w, c = self.input_shape
        p = self.patch_size
        patches = tokens.reshape(b, t, h // p, w // p, p, p, c).permute(0, 1, 2, 4, 3, 5, 6)
        return patches.reshape(b, *self.input_shape)
