"""rvperceiver.views: tokenisation, lossless real-valued spectral transforms, dataset statistics."""

from __future__ import annotations

from rvperceiver.views.transforms import TRANSFORM_KINDS, forward_transform, inverse_transform

__all__ = ["TRANSFORM_KINDS", "forward_transform", "inverse_transform"]
