"""Synthetic tasks from the seed post, regenerable from a seed.

Two tasks, three forms:

* **Tiny difference** — the seed's failure case. Every example shares one background (the seed's ``X2``,
  non-zero mean, drawn once per dataset from the seed) plus small per-example noise; ``k`` tokens at fixed
  positions carry a per-example value (the seed's ``X1``) and the regression target is that value,
  standardised. Between two examples only those ``k`` tokens differ beyond the noise level, so a model that
  cannot single them out among ``N`` tokens can do no better than predicting the mean.
  - 1-D form: ``[M, N, 1]`` real sequences (the seed's algebra).
  - Image form: ``[M, 1, H, W, 3]`` single frames with values on the uint8 grid (multiples of 1/255 in
    [0, 1]); ``k`` pixels change (all three channels), i.e. ``3k`` of ``H·W·3`` scalar tokens (12,288 at 64×64).
* **Frequency shift** — the seed's stated downside. ``x[n] = A sin(2π (f0 + δ) n / N + φ) + noise``; the
  target is ``δ`` (in cycles per window). In raw space a small ``δ`` moves every sample a little; in the
  Fourier domain it moves energy between the few bins around ``f0``, i.e. the change becomes *concentrated*,
  which is the seed's argument for why the Fourier view should hurt here.

  ``phase="fixed"`` (φ = 0, the default) is the clean test of that claim: ``δ`` is then the only thing that
  varies between examples, so the between-example variance that the adaptive choice measures is the signal
  itself. ``phase="random"`` adds a nuisance variable that spreads raw-space variance evenly over all tokens
  whatever ``δ`` does, so the variance statistic then mostly measures φ, not the target; it is kept as a
  harder variant and reported separately.

All generators return ``(inputs, targets)`` as float32 torch tensors, ``inputs`` of shape ``[M, *shape]`` and
``targets`` of shape ``[M, T, D]`` (here ``T = 1``). The same arguments give the same tensors bit for bit.
Examples are independent continuous draws, so a held-out split (:func:`split_train_test`) never repeats a
training example; the background, carrier positions and base frequency depend only on the seed, so train and
test share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from rvperceiver.errors import InputError

__all__ = [
    "SyntheticTask",
    "tiny_difference_1d",
    "tiny_difference_image",
    "frequency_shift",
    "split_train_test",
    "carrier_positions_1d",
    "image_carrier_pixels",
    "moving_dot_1d",
    "moving_dot_image",
]

# Streams drawn from one seed: the dataset-level constants and the per-example values never share a stream,
# so asking for more examples does not change the background.
_BACKGROUND_STREAM = 0
_EXAMPLE_STREAM = 1

# Image carrier values: v = IMAGE_CENTRE + IMAGE_SCALE * z with z clipped to ±IMAGE_Z_CLIP, so v stays in
# [0.1, 0.9] and the target can be recovered exactly from the quantised pixel.
_IMAGE_CENTRE = 0.5
_IMAGE_SCALE = 0.16
_IMAGE_Z_CLIP = 2.5


@dataclass(frozen=True)
class SyntheticTask:
    """A generated dataset split into train and held-out test examples, with what describes it."""

    name: str
    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    test_inputs: torch.Tensor
    test_targets: torch.Tensor
    meta: dict

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_inputs.shape[1:])

    @property
    def target_shape(self) -> tuple[int, ...]:
        return tuple(self.train_targets.shape[1:])


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise InputError(f"argument {name!r}: expected a positive integer, got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if not np.isfinite(value) or value < 0:
        raise InputError(f"argument {name!r}: expected a finite number >= 0, got {value!r}")


def carrier_positions_1d(n_tokens: int, k: int) -> np.ndarray:
    """Fixed carrier positions: token 0 (the seed's ``n = 0``) and, for k > 1, evenly spaced after it."""
    _check_positive("n_tokens", n_tokens)
    _check_positive("k", k)
    if k > n_tokens:
        raise InputError(f"argument 'k': expected at most n_tokens={n_tokens} carrier tokens, got {k}")
    return (np.arange(k) * n_tokens) // k


def tiny_difference_1d(
    num_examples: int,
    n_tokens: int,
    seed: int,
    *,
    k: int = 1,
    noise_std: float = 0.01,
    background_mean: float = 1.0,
    background_std: float = 0.5,
    signal_mean: float = 1.0,
    signal_std: float = 1.0,
    positions: list[int] | np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's sequence: ``x[n] = X1`` at the carrier positions, ``X2`` elsewhere, plus noise.

    ``X2 ~ N(background_mean, background_std²)`` is drawn once per seed (shared by all examples, as a fixed
    scene is); ``X1 = signal_mean + signal_std · z`` with ``z ~ N(0, 1)`` per example and carrier.
    ``positions`` (``k`` distinct token indices) overrides :func:`carrier_positions_1d`: where the carrier sits
    decides what a Fourier view makes of it (a change at ``n0`` reaches every bin with a sign pattern of
    frequency ``n0``). Returns inputs ``[M, N, 1]`` and targets ``[M, 1, k]`` holding ``z`` (``X1`` standardised).
    """
    _check_positive("num_examples", num_examples)
    if positions is None:
        positions = carrier_positions_1d(n_tokens, k)
    else:
        _check_positive("n_tokens", n_tokens)
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if positions.size != k or len(set(positions.tolist())) != k or positions.min() < 0 or positions.max() >= n_tokens:
            raise InputError(
                f"argument 'positions': expected {k} distinct token indices in [0, {n_tokens - 1}], got {positions.tolist()}"
            )
    _check_non_negative("noise_std", noise_std)
    _check_non_negative("background_std", background_std)
    _check_non_negative("signal_std", signal_std)
    background = _rng(seed, _BACKGROUND_STREAM).normal(background_mean, background_std)
    examples = _rng(seed, _EXAMPLE_STREAM)
    z = examples.standard_normal((num_examples, k))
    x = np.full((num_examples, n_tokens), background, dtype=np.float64)
    x += noise_std * examples.standard_normal((num_examples, n_tokens))
    x[:, positions] = signal_mean + signal_std * z
    inputs = torch.from_numpy(x.astype(np.float32)).unsqueeze(-1)
    targets = torch.from_numpy(z.astype(np.float32)).unsqueeze(1)
    return inputs, targets


def _smooth_background(rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """A fixed, smooth 'scene': a few low-frequency plane waves per channel around a mean of ~0.45."""
    coords = np.arange(size) / size
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    image = np.empty((size, size, channels))
    for c in range(channels):
        base = rng.uniform(0.35, 0.55)
        field = np.zeros((size, size))
        for _ in range(3):
            fy, fx = rng.integers(0, 4, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            field += rng.uniform(0.03, 0.08) * np.cos(2 * np.pi * (fy * yy + fx * xx) + phase)
        image[..., c] = base + field
    return np.clip(image, 0.05, 0.95)


def _quantise(values: np.ndarray) -> np.ndarray:
    """Round to the uint8 grid so the frames are exactly what a camera's uint8 pixels / 255 would give."""
    return np.round(np.clip(values, 0.0, 1.0) * 255.0) / 255.0


def tiny_difference_image(
    num_examples: int,
    seed: int,
    *,
    image_size: int = 64,
    channels: int = 3,
    k: int = 1,
    noise_std: float = 0.01,
    carrier_pixels: list[tuple[int, int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image form of the tiny-difference task: one fixed scene, ``k`` pixels carry the target.

    The carrier pixels (all channels set to one grey value ``0.5 + 0.16 z``, ``z`` clipped to ±2.5) sit at
    fixed positions drawn from the seed and kept at least one pixel from the border, or at ``carrier_pixels``
    ((row, col) pairs, any pixel of the image) when given. Values are quantised to
    the uint8 grid. Returns inputs ``[M, 1, H, W, C]`` (one frame per example, the ``(T, H, W, C)`` layout the
    views expect) and targets ``[M, 1, k]`` holding ``z`` recovered from the quantised pixel, so the target is
    an exact function of the input.
    """
    _check_positive("num_examples", num_examples)
    _check_positive("image_size", image_size)
    _check_positive("channels", channels)
    _check_positive("k", k)
    _check_non_negative("noise_std", noise_std)
    if image_size < 3:
        raise InputError(f"argument 'image_size': expected at least 3 pixels, got {image_size}")
    interior = (image_size - 2) ** 2
    if k > interior:
        raise InputError(f"argument 'k': expected at most {interior} carrier pixels, got {k}")
    scene_rng = _rng(seed, _BACKGROUND_STREAM)
    background = _smooth_background(scene_rng, image_size, channels)
    rows, cols = _draw_carrier_pixels(scene_rng, image_size, k)
    if carrier_pixels is not None:
        pixels = [(int(r), int(c)) for r, c in carrier_pixels]
        if len(pixels) != k or len(set(pixels)) != k or not all(0 <= v < image_size for rc in pixels for v in rc):
            raise InputError(
                f"argument 'carrier_pixels': expected {k} distinct (row, col) pairs inside the {image_size}×{image_size} "
                f"image, got {carrier_pixels}"
            )
        rows, cols = np.array([r for r, _ in pixels]), np.array([c for _, c in pixels])

    examples = _rng(seed, _EXAMPLE_STREAM)
    z = np.clip(examples.standard_normal((num_examples, k)), -_IMAGE_Z_CLIP, _IMAGE_Z_CLIP)
    noise = noise_std * examples.standard_normal((num_examples, image_size, image_size, channels))
    frames = background[None] + noise
    carrier = _quantise(_IMAGE_CENTRE + _IMAGE_SCALE * z)  # [M, k]
    frames[:, rows, cols, :] = carrier[:, :, None]
    frames = _quantise(frames)
    z_exact = (carrier - _IMAGE_CENTRE) / _IMAGE_SCALE
    inputs = torch.from_numpy(frames.astype(np.float32)).unsqueeze(1)
    targets = torch.from_numpy(z_exact.astype(np.float32)).unsqueeze(1)
    return inputs, targets


def _draw_carrier_pixels(rng: np.random.Generator, image_size: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    flat = rng.choice((image_size - 2) ** 2, size=k, replace=False)
    return 1 + flat // (image_size - 2), 1 + flat % (image_size - 2)


def image_carrier_pixels(seed: int, *, image_size: int = 64, channels: int = 3, k: int = 1) -> list[tuple[int, int]]:
    """The (row, col) of each carrier pixel that :func:`tiny_difference_image` uses with these arguments."""
    scene_rng = _rng(seed, _BACKGROUND_STREAM)
    _smooth_background(scene_rng, image_size, channels)
    rows, cols = _draw_carrier_pixels(scene_rng, image_size, k)
    return [(int(r), int(c)) for r, c in zip(rows, cols)]


def moving_dot_1d(
    num_examples: int,
    n_tokens: int,
    seed: int,
    *,
    noise_std: float = 0.01,
    background_mean: float = 0.3,
    background_std: float = 0.05,
    amplitude: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A location-coded difference: one bright token at a random place per example on a fixed background.

    The background (one value per token, ``N(background_mean, background_std²)``) is drawn once per seed; each
    example adds ``amplitude`` at one uniformly drawn token ``p``. The target is the position, ``2p/(N-1) - 1``
    in [-1, 1] — what a model must read off the *position* of the change, not its value (the 1-D twin of
    CoordConv's coordinate-regression task, Liu et al. 2018). Returns inputs ``[M, N, 1]``, targets ``[M, 1, 1]``.
    """
    _check_positive("num_examples", num_examples)
    _check_positive("n_tokens", n_tokens)
    _check_non_negative("noise_std", noise_std)
    _check_non_negative("background_std", background_std)
    if n_tokens < 2:
        raise InputError(f"argument 'n_tokens': expected at least 2 positions for a moving dot, got {n_tokens}")
    background = _rng(seed, _BACKGROUND_STREAM).normal(background_mean, background_std, size=n_tokens)
    examples = _rng(seed, _EXAMPLE_STREAM)
    position = examples.integers(0, n_tokens, size=num_examples)
    x = background[None, :] + noise_std * examples.standard_normal((num_examples, n_tokens))
    x[np.arange(num_examples), position] += amplitude
    inputs = torch.from_numpy(x.astype(np.float32)).unsqueeze(-1)
    targets = torch.from_numpy((2.0 * position / (n_tokens - 1) - 1.0).astype(np.float32)).reshape(num_examples, 1, 1)
    return inputs, targets


def moving_dot_image(
    num_examples: int,
    seed: int,
    *,
    image_size: int = 64,
    channels: int = 3,
    blob: int = 2,
    noise_std: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A small bright ``blob × blob`` square (all channels 1.0) at a random place per example on a fixed scene.

    The scene is the smooth background of :func:`tiny_difference_image`; values are on the uint8 grid. The
    target is the blob's centre ``(row, col)``, each scaled to [-1, 1]: the synthetic twin of a small object
    in a robot's camera frame. Returns inputs ``[M, 1, H, W, C]`` and targets ``[M, 1, 2]``.
    """
    _check_positive("num_examples", num_examples)
    _check_positive("image_size", image_size)
    _check_positive("channels", channels)
    _check_positive("blob", blob)
    _check_non_negative("noise_std", noise_std)
    if blob >= image_size:
        raise InputError(f"argument 'blob': expected fewer than image_size={image_size} pixels, got {blob}")
    background = _smooth_background(_rng(seed, _BACKGROUND_STREAM), image_size, channels)
    examples = _rng(seed, _EXAMPLE_STREAM)
    corners = examples.integers(0, image_size - blob + 1, size=(num_examples, 2))
    frames = background[None] + noise_std * examples.standard_normal((num_examples, image_size, image_size, channels))
    offsets = np.arange(blob)
    rows = corners[:, 0, None, None] + offsets[None, :, None]
    cols = corners[:, 1, None, None] + offsets[None, None, :]
    frames[np.arange(num_examples)[:, None, None], rows, cols, :] = 1.0
    frames = _quantise(frames)
    centre = corners + (blob - 1) / 2.0
    scaled = 2.0 * centre / (image_size - 1) - 1.0
    inputs = torch.from_numpy(frames.astype(np.float32)).unsqueeze(1)
    targets = torch.from_numpy(scaled.astype(np.float32)).reshape(num_examples, 1, 2)
    return inputs, targets


def frequency_shift(
    num_examples: int,
    n_tokens: int,
    seed: int,
    *,
    base_cycles: float | None = None,
    max_shift: float = 0.5,
    amplitude: float = 1.0,
    offset: float = 0.0,
    phase: Literal["fixed", "random"] = "fixed",
    noise_std: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x[n] = offset + A sin(2π (f0 + δ) n / N + φ) + noise`` with ``δ ~ U(-max_shift, max_shift)``.

    ``f0`` (``base_cycles``, cycles per window) defaults to ``N / 8`` so the tone sits at the same relative
    frequency for every N. ``δ`` is in cycles per window: a shift of 0.5 moves the peak half a DFT bin.
    ``phase="fixed"`` uses φ = 0; ``phase="random"`` draws φ ~ U(0, 2π) per example (see the module docstring
    for why the fixed phase is the default). Returns inputs ``[M, N, 1]`` and targets ``[M, 1, 1]`` holding δ.
    """
    _check_positive("num_examples", num_examples)
    _check_positive("n_tokens", n_tokens)
    _check_non_negative("max_shift", max_shift)
    _check_non_negative("noise_std", noise_std)
    if phase not in ("fixed", "random"):
        raise InputError(f"argument 'phase': expected 'fixed' or 'random', got {phase!r}")
    f0 = n_tokens / 8 if base_cycles is None else float(base_cycles)
    if not (0 <= f0 - max_shift and f0 + max_shift <= n_tokens / 2):
        raise InputError(
            f"argument 'base_cycles': expected f0 ± max_shift within [0, N/2] = [0, {n_tokens / 2}], "
            f"got f0={f0}, max_shift={max_shift}"
        )
    examples = _rng(seed, _EXAMPLE_STREAM)
    delta = examples.uniform(-max_shift, max_shift, size=num_examples)
    phi = examples.uniform(0, 2 * np.pi, size=num_examples) if phase == "random" else np.zeros(num_examples)
    n = np.arange(n_tokens)
    x = offset + amplitude * np.sin(2 * np.pi * (f0 + delta[:, None]) * n[None, :] / n_tokens + phi[:, None])
    x += noise_std * examples.standard_normal((num_examples, n_tokens))
    inputs = torch.from_numpy(x.astype(np.float32)).unsqueeze(-1)
    targets = torch.from_numpy(delta.astype(np.float32)).reshape(num_examples, 1, 1)
    return inputs, targets


def split_train_test(
    name: str, inputs: torch.Tensor, targets: torch.Tensor, num_test: int, meta: dict | None = None
) -> SyntheticTask:
    """The first ``M - num_test`` examples train, the last ``num_test`` are held out."""
    total = inputs.shape[0]
    if targets.shape[0] != total:
        raise InputError(f"argument 'targets': expected {total} examples like 'inputs', got {targets.shape[0]}")
    if not 1 <= num_test < total:
        raise InputError(f"argument 'num_test': expected between 1 and {total - 1}, got {num_test}")
    cut = total - num_test
    return SyntheticTask(
        name=name,
        train_inputs=inputs[:cut],
        train_targets=targets[:cut],
        test_inputs=inputs[cut:],
        test_targets=targets[cut:],
        meta=dict(meta or {}),
    )
