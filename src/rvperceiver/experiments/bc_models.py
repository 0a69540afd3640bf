"""Which models the behaviour-cloning study trains, with which input view, and how the report names them."""

from __future__ import annotations

from typing import Any

RAW_VIEW: dict[str, Any] = {"token_mode": "scalar", "transform": "identity", "pre_norm": "zscore", "post_norm": "none"}
FOURIER_VIEW: dict[str, Any] = {"token_mode": "scalar", "transform": "rfft", "pre_norm": "centre", "post_norm": "zscore"}
CNN_VIEW: dict[str, Any] = {"token_mode": "pixel", "transform": "identity", "pre_norm": "zscore", "post_norm": "none"}
# 4x4 patches of a 2x64x64x3 window: 2*16*16 = 512 tokens of 48 values, each value z-scored.
PATCH_VIEW: dict[str, Any] = {
    "token_mode": "patch",
    "patch_size": 4,
    "transform": "identity",
    "pre_norm": "zscore",
    "post_norm": "none",
}

# The learned models every profile trains, in the order of the table; "spectral_adaptive" is resolved to one of
# the forced views.
MODELS: tuple[str, ...] = ("raw_perceiver", "spectral_adaptive", "spectral_fourier", "cnn")
# The diagnostic row only profiles with ``patch_perceiver=True`` train (placed last in the table).
PATCH_MODEL = "patch_perceiver"
# Training order: cheapest first, so a run cut short still has results (results.json is rewritten after each).
# The patch Perceiver (512 tokens) is far cheaper than the scalar-token ones (24,576 tokens), so it goes second.
TRAIN_ORDER: tuple[str, ...] = ("cnn", PATCH_MODEL, "spectral_fourier", "raw_perceiver")
MODEL_LABELS = {
    "expert": "scripted expert (DLS IK + PD)",
    "mean_trajectory": "mean-trajectory predictor",
    "oracle": "oracle ceiling (perfect predictor, same controller)",
    "raw_perceiver": "Perceiver, raw scalar tokens",
    "spectral_adaptive": "Perceiver, adaptive view",
    "spectral_fourier": "Perceiver, forced Fourier view",
    "cnn": "spatial-softmax CNN",
    PATCH_MODEL: "Perceiver, raw 4×4 patch tokens (diagnostic)",
}
