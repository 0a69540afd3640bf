"""Which models the behaviour-cloning study trains, with which input view, and how the report names them."""

from __future__ import annotations

from typing import Any

RAW_VIEW: dict[str, Any] = {"token_mode": "scalar", "transform": "identity", "pre_norm": "zscore", "post_norm": "none"}
FOURIER_VIEW: dict[str, Any] = {"token_mode": "scalar", "transform": "rfft", "pre_norm": "centre", "post_norm": "zscore"}
CNN_VIEW: dict[str, Any] = {"token_mode": "pixel", "transform": "identity", "pre_norm": "zscore", "post_norm": "none"}
# 4x4 patches: a 64x64x3 frame is 256 tokens of 48 values, each value z-scored.
PATCH_VIEW: dict[str, Any] = {
    "token_mode": "patch",
    "patch_size": 4,
    "transform": "identity",
    "pre_norm": "zscore",
    "post_norm": "none",
}

MODEL_VIEWS: dict[str, dict[str, Any]] = {
    "cnn": CNN_VIEW,
    "patch_perceiver": PATCH_VIEW,
    "raw_perceiver": RAW_VIEW,
    "fourier_perceiver": FOURIER_VIEW,
}
# Every row of the tables, in order; "adaptive_perceiver" is the run of the view the seed's rule picked.
MODELS: tuple[str, ...] = ("raw_perceiver", "fourier_perceiver", "adaptive_perceiver", "patch_perceiver", "cnn")
REFERENCES: tuple[str, ...] = ("expert", "oracle", "mean_predictor", "state_only")
MODEL_LABELS = {
    "expert": "scripted expert (min-jerk plan + inverse-dynamics tracker)",
    "oracle": "oracle (the expert's future setpoints, same receding horizon)",
    "mean_predictor": "mean predictor (mean training chunk)",
    "state_only": "state-only MLP (the joint state, no frames)",
    "raw_perceiver": "Perceiver, raw scalar tokens",
    "fourier_perceiver": "Perceiver, Fourier view (centre → rfft → z-score)",
    "adaptive_perceiver": "Perceiver, adaptive view",
    "patch_perceiver": "Perceiver, raw 4×4 patch tokens",
    "cnn": "spatial-softmax CNN",
}


def backbone_of(model: str) -> str:
    return "cnn" if model == "cnn" else "perceiver"
