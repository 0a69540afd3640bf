"""Per-dimension normalisation of regression targets (end-effector positions), saved with the model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from rvperceiver.errors import InputError
from rvperceiver.views.stats import RunningMoments

TARGET_NORM_MODES: tuple[str, ...] = ("zscore", "minmax", "none")


def _as_target_tensor(item: Any) -> torch.Tensor:
    """Targets may come as tensors, numpy arrays, or ``(input, target)`` tuples (the target is the last entry)."""
    if isinstance(item, (tuple, list)):
        if not item:
            raise InputError("TargetNormalizer.fit: got an empty tuple where targets were expected")
        item = item[-1]
    if isinstance(item, np.ndarray):
        item = torch.from_numpy(item)
    if not isinstance(item, torch.Tensor):
        raise InputError(f"TargetNormalizer.fit: targets must be tensors or arrays, got {type(item).__name__}")
    return item


class TargetNormalizer(nn.Module):
    """``normalize(y) = (y - offset) / scale`` per target dimension D; ``denormalize`` is its inverse.

    ``zscore``: offset = mean, scale = std. ``minmax``: maps [min, max] to [-1, 1]. ``none``: identity.
    A dimension whose spread (std, or half the range) is at most ``floor`` gets scale 1 instead: it is only
    centred. Dividing by its near-zero spread (the fingertip z in the planar reacher is constant) would turn
    rounding noise into huge targets.
    """

    offset: torch.Tensor
    scale: torch.Tensor
    fitted: torch.Tensor

    def __init__(self, dim: int, mode: str = "zscore", floor: float = 1e-6) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InputError(f"TargetNormalizer dim must be a positive integer, got {dim!r}")
        if mode not in TARGET_NORM_MODES:
            raise InputError(f"unknown target normalisation mode {mode!r}; expected one of {', '.join(TARGET_NORM_MODES)}")
        if not floor >= 0:
            raise InputError(f"TargetNormalizer floor must be >= 0, got {floor!r}")
        self.dim = dim
        self.mode = mode
        self.floor = float(floor)
        self.register_buffer("offset", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("fitted", torch.tensor(mode == "none"))

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, mode={self.mode}"

    def _check(self, y: torch.Tensor, what: str) -> None:
        if not isinstance(y, torch.Tensor):
            raise InputError(f"TargetNormalizer.{what}: expected a torch.Tensor, got {type(y).__name__}")
        if y.ndim < 1 or y.shape[-1] != self.dim:
            raise InputError(
                f"TargetNormalizer.{what}: expected targets [..., D] with D = {self.dim}, got shape {list(y.shape)}"
            )

    @torch.no_grad()
    def fit(self, targets: torch.Tensor | np.ndarray | Iterable[Any]) -> dict[str, list[float] | list[int]]:
        """Fit on targets ``[M, T, D]`` (any ``[..., D]``) or an iterable of such batches; streams the iterable."""
        chunks: Iterable[Any] = [targets] if isinstance(targets, (torch.Tensor, np.ndarray)) else targets
        moments = RunningMoments((self.dim,))
        lo: torch.Tensor | None = None
        hi: torch.Tensor | None = None
        for item in chunks:
            y = _as_target_tensor(item)
            self._check(y, "fit")
            flat = y.detach().reshape(-1, self.dim).to(torch.float64)
            if not bool(torch.isfinite(flat).all()):
                raise InputError("TargetNormalizer.fit: targets contain NaN/Inf values")
            if flat.shape[0] == 0:
                continue
            moments.update(flat)
            batch_lo, batch_hi = flat.amin(dim=0).cpu(), flat.amax(dim=0).cpu()
            lo = batch_lo if lo is None else torch.minimum(lo, batch_lo)
            hi = batch_hi if hi is None else torch.maximum(hi, batch_hi)
        if moments.count == 0 or lo is None or hi is None:
            raise InputError("TargetNormalizer.fit got no targets: the input was empty")
        if self.mode == "zscore":
            offset, spread = moments.mean.cpu(), moments.var.sqrt().cpu()
        elif self.mode == "minmax":
            offset, spread = (hi + lo) / 2, (hi - lo) / 2
        else:
            offset, spread = torch.zeros(self.dim, dtype=torch.float64), torch.ones(self.dim, dtype=torch.float64)
        scale = torch.where(spread > self.floor, spread, torch.ones_like(spread))
        self.offset.copy_(offset.to(self.offset.device, torch.float32))
        self.scale.copy_(scale.to(self.scale.device, torch.float32))
        self.fitted.fill_(True)
        return {
            "offset": self.offset.tolist(),
            "scale": self.scale.tolist(),
            "constant_dims": [int(i) for i in torch.nonzero(spread <= self.floor).flatten().tolist()],
        }

    def _require_fitted(self, what: str) -> None:
        if not self.is_fitted:
            raise InputError(f"TargetNormalizer.{what}: mode {self.mode!r} needs statistics; call fit() first")

    def normalize(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, "normalize")
        self._require_fitted("normalize")
        return (y - self.offset) / self.scale

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, "denormalize")
        self._require_fitted("denormalize")
        return y * self.scale + self.offset

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        for name in ("offset", "scale"):
            key = prefix + name
            if key in state_dict and tuple(state_dict[key].shape) != (self.dim,):
                raise InputError(
                    f"TargetNormalizer {key!r} has shape {list(state_dict[key].shape)}, but this normaliser has "
                    f"D = {self.dim} target dimensions"
                )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
