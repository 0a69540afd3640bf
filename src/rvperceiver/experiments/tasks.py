"""What the seed's experiments run: the named input views, the tasks, and the grid of each profile.

Profiles:

* ``test`` — the smallest run that exercises every code path (tests only): N = 64 (image 4×4×3 = 48),
  2 views, 30 steps.
* ``quick`` — fits 2 CPU cores in under 10 minutes for all three experiments together. A subset of the grid
  chosen so that every claim R1–R5 gets numbers, 1 seed, a tiny Perceiver (16 latents × 16 channels),
  300 steps of batch 16, 256 train / 64 test examples, test NMSE every 50 steps:
  - tiny difference 1-D at N = 256: raw+fourier-pos, fft, centre-fft, adaptive (β1 = 0.9);
  - tiny difference 1-D at N = 12,288: raw+fourier-pos, fft, centre-fft (β1 = 0.9);
  - raw+fourier-pos with β1 = 0.999 at N = 256 and 12,288 (claim R2 is about escaping the raw collapse);
  - the 64×64×3 image (12,288 scalar tokens): raw+fourier-pos, centre-fft (β1 = 0.9);
  - frequency shift (fixed phase) at N ∈ {256, 4096}: raw+fourier-pos, raw-zscore, centre-fft, fft-zscore,
    adaptive; and the adaptive choice on the random-phase variant at N = 256.
* ``full`` — the real grid: every view × β1 ∈ {0.9, 0.999} × N ∈ {256, 1024, 4096, 12288, 49152} × 3 seeds,
  the image at 12,288, and the random-phase frequency shift; a larger Perceiver and 3000 steps. Meant for a
  GPU (``device="cuda"``); on 2 CPU cores it takes many hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rvperceiver.data.synthetic import (
    SyntheticTask,
    frequency_shift,
    split_train_test,
    tiny_difference_1d,
    tiny_difference_image,
)
from rvperceiver.errors import ConfigError
from rvperceiver.views.view import ViewConfig

__all__ = [
    "VIEWS",
    "ADAPTIVE",
    "EXPERIMENTS",
    "TASKS",
    "RunSpec",
    "Profile",
    "PROFILES",
    "get_profile",
    "view_config",
    "make_task",
    "is_fourier_view",
]

ADAPTIVE = "adaptive"

# name -> (transform, pre_norm, post_norm). Every view uses the backbone's Fourier position features; the name
# "raw+fourier-pos" says so because for it the position features are the only way to tell tokens apart.
VIEWS: dict[str, tuple[str, str, str]] = {
    "raw+fourier-pos": ("identity", "none", "none"),
    "raw-zscore": ("identity", "zscore", "none"),
    "fft": ("rfft", "none", "none"),
    "centre-fft": ("rfft", "centre", "none"),
    "zscore-fft": ("rfft", "zscore", "none"),
    "fft-zscore": ("rfft", "none", "zscore"),
}
ALL_VIEWS: tuple[str, ...] = (*VIEWS, ADAPTIVE)

TASKS: tuple[str, ...] = (
    "tiny-difference",
    "tiny-difference-image",
    "frequency-shift",
    "frequency-shift-random-phase",
)
EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "tiny-difference": ("tiny-difference", "tiny-difference-image"),
    "frequency-shift": ("frequency-shift", "frequency-shift-random-phase"),
    "theory": (),
}

NOISE_STD = 0.01
IMAGE_CHANNELS = 3


def view_config(name: str) -> ViewConfig:
    """The :class:`ViewConfig` of a named fixed view (``adaptive`` is decided per dataset by the runner)."""
    if name not in VIEWS:
        raise ConfigError(f"view {name!r}: expected one of {', '.join(VIEWS)} (adaptive is chosen per dataset)")
    transform, pre, post = VIEWS[name]
    return ViewConfig(token_mode="scalar", transform=transform, transform_axes="flat", pre_norm=pre, post_norm=post)


def is_fourier_view(config: ViewConfig) -> bool:
    return config.transform != "identity"


def image_size_for(n_tokens: int) -> int:
    """Side of the square RGB image with ``n_tokens`` scalar tokens (12,288 → 64)."""
    side = math.isqrt(n_tokens // IMAGE_CHANNELS)
    if side * side * IMAGE_CHANNELS != n_tokens:
        raise ConfigError(f"image task: n_tokens={n_tokens} is not 3·S² for an S×S RGB image")
    return side


def make_task(task: str, n_tokens: int, seed: int, num_train: int, num_test: int) -> SyntheticTask:
    """Generate one dataset (train + held-out test) of a named task from a seed."""
    total = num_train + num_test
    meta: dict[str, Any] = {"task": task, "n_tokens": n_tokens, "seed": seed, "noise_std": NOISE_STD}
    if task == "tiny-difference":
        inputs, targets = tiny_difference_1d(total, n_tokens, seed, k=1, noise_std=NOISE_STD)
        meta.update(k=1, carrier_positions=[0])
    elif task == "tiny-difference-image":
        size = image_size_for(n_tokens)
        inputs, targets = tiny_difference_image(total, seed, image_size=size, channels=IMAGE_CHANNELS, noise_std=NOISE_STD)
        meta.update(k=1, image_size=size)
    elif task in ("frequency-shift", "frequency-shift-random-phase"):
        phase = "random" if task.endswith("random-phase") else "fixed"
        inputs, targets = frequency_shift(total, n_tokens, seed, phase=phase, noise_std=NOISE_STD, max_shift=0.5)
        meta.update(phase=phase, base_cycles=n_tokens / 8, max_shift=0.5)
    else:
        raise ConfigError(f"task {task!r}: expected one of {', '.join(TASKS)}")
    return split_train_test(task, inputs, targets, num_test, meta)


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid (the seed is added by the runner)."""

    task: str
    n_tokens: int
    view: str
    beta1: float


@dataclass(frozen=True)
class Profile:
    """Training budget, model size and the grid of one profile."""

    name: str
    steps: int
    batch_size: int
    lr: float
    eval_every: int
    num_train: int
    num_test: int
    seeds: tuple[int, ...]
    model: dict[str, Any]
    grids: dict[str, tuple[RunSpec, ...]] = field(default_factory=dict)

    def grid(self, experiment: str) -> tuple[RunSpec, ...]:
        if experiment not in EXPERIMENTS:
            raise ConfigError(f"experiment {experiment!r}: expected one of {', '.join(EXPERIMENTS)}")
        return self.grids.get(experiment, ())


def _grid(tasks_sizes: list[tuple[str, tuple[int, ...]]], views: tuple[str, ...], betas: tuple[float, ...]) -> list[RunSpec]:
    return [RunSpec(task, n, view, beta) for task, sizes in tasks_sizes for n in sizes for view in views for beta in betas]


def _test_profile() -> Profile:
    views = ("raw+fourier-pos", "centre-fft")
    return Profile(
        name="test",
        steps=30,
        batch_size=16,
        lr=1e-3,
        eval_every=10,
        num_train=64,
        num_test=32,
        seeds=(0,),
        model=dict(num_latents=4, latent_channels=16, self_heads=1, self_layers_per_block=1, num_bands=2),
        grids={
            "tiny-difference": (
                *_grid([("tiny-difference", (64,)), ("tiny-difference-image", (48,))], views, (0.9,)),
                RunSpec("tiny-difference", 64, ADAPTIVE, 0.9),
            ),
            "frequency-shift": (
                *_grid([("frequency-shift", (64,))], ("raw-zscore", "fft-zscore"), (0.9,)),
                RunSpec("frequency-shift", 64, ADAPTIVE, 0.9),
            ),
        },
    )


def _quick_profile() -> Profile:
    raw = "raw+fourier-pos"
    shift_views = (raw, "raw-zscore", "centre-fft", "fft-zscore", ADAPTIVE)
    return Profile(
        name="quick",
        steps=300,
        batch_size=16,
        lr=1e-3,
        eval_every=50,
        num_train=256,
        num_test=64,
        seeds=(0,),
        model=dict(num_latents=16, latent_channels=16, self_heads=2, self_layers_per_block=1, num_bands=4),
        grids={
            "tiny-difference": (
                *_grid([("tiny-difference", (256,))], (raw, "fft", "centre-fft", ADAPTIVE), (0.9,)),
                *_grid([("tiny-difference", (12288,))], (raw, "fft", "centre-fft"), (0.9,)),
                *_grid([("tiny-difference", (256, 12288))], (raw,), (0.999,)),
                *_grid([("tiny-difference-image", (12288,))], (raw, "centre-fft"), (0.9,)),
            ),
            "frequency-shift": (
                *_grid([("frequency-shift", (256, 4096))], shift_views, (0.9,)),
                RunSpec("frequency-shift-random-phase", 256, ADAPTIVE, 0.9),
            ),
        },
    )


def _full_profile() -> Profile:
    sizes = (256, 1024, 4096, 12288, 49152)
    betas = (0.9, 0.999)
    return Profile(
        name="full",
        steps=3000,
        batch_size=64,
        lr=1e-3,
        eval_every=100,
        num_train=2048,
        num_test=512,
        seeds=(0, 1, 2),
        model=dict(num_latents=64, latent_channels=64, self_heads=4, self_layers_per_block=2, num_bands=8),
        grids={
            "tiny-difference": tuple(
                _grid([("tiny-difference", sizes), ("tiny-difference-image", (12288,))], ALL_VIEWS, betas)
            ),
            "frequency-shift": tuple(
                _grid([("frequency-shift", sizes)], ALL_VIEWS, betas)
                + _grid([("frequency-shift-random-phase", sizes)], ("raw-zscore", "fft-zscore", ADAPTIVE), (0.9,))
            ),
        },
    )


PROFILES: dict[str, Profile] = {p.name: p for p in (_test_profile(), _quick_profile(), _full_profile())}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"profile {name!r}: expected one of {', '.join(PROFILES)}")
    return PROFILES[name]
