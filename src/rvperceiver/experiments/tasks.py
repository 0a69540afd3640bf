"""What the seed-claims study runs: named input views, the tasks and their factors, and the cells of each profile.

A **cell** is one configuration trained over several seeds: a task with its factor levels (N, carrier position,
noise, phase), a view (with flat or grid transform axes), Adam's β1 and learning rate, and a step budget. Each
seed draws its own dataset (background, noise, carrier position where it is drawn) and its own initialisation.
Outcomes are bimodal (a run either leaves the mean plateau or stays on it), so a cell's result is *k of n
seeds learned* with an exact interval, not a mean (see :mod:`.statistics`).

Factors (levels that do not exist are refused with one line naming the factor):

* ``carrier`` (tiny-difference tasks): ``token0`` (the seed's n = 0; pixel (0, 0) on the image), ``generic``
  (a fixed position away from 0: n0 = N // 3 + 1, 4097 at N = 12,288; pixel (S // 3 + 1, S // 2 + 1)),
  ``drawn`` (a position drawn per dataset seed).
* ``noise``: per-token Gaussian noise σ, ``0`` or ``0.01``.
* ``phase`` (frequency shift): ``fixed`` (φ = 0) or ``random`` (φ ~ U(0, 2π) per example).
* ``axes``: ``flat`` (the transform over the flattened token axis, the seed's) or ``grid`` (over (T, H, W, C)).
* the view's normalisation (``centre-fft`` = centre → fft, ``centre-fft-z`` = centre → fft → per-bin z-score,
  ``zscore-fft`` = z-score → fft) and ``fft`` (uncentred, for R3).

Profiles: ``test`` (unit tests), ``quick`` (≤ 10 min on 2 cores: every kind of cell at small N, 3 seeds),
``standard`` (the README's tables: ≥ 10 seeds on the cells that carry a verdict; see :func:`_standard_cells`
for what was cut to fit 2 shared cores) and ``full`` (a GPU: every factor crossed, N up to 49,152, 20 seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rvperceiver.data.synthetic import (
    SyntheticTask,
    frequency_shift,
    moving_dot_1d,
    moving_dot_image,
    split_train_test,
    tiny_difference_1d,
    tiny_difference_image,
)
from rvperceiver.errors import ConfigError
from rvperceiver.views.view import ViewConfig

__all__ = [
    "VIEWS",
    "ADAPTIVE",
    "RAW_CANDIDATE",
    "FOURIER_CANDIDATE",
    "DUAL",
    "EXPERIMENTS",
    "TASKS",
    "CARRIERS",
    "NOISES",
    "PHASES",
    "AXES",
    "Cell",
    "Profile",
    "PROFILES",
    "get_profile",
    "view_config",
    "make_task",
    "is_fourier_view",
    "check_seeds",
    "parse_seeds",
]

ADAPTIVE = "adaptive"
RAW = "raw+fourier-pos"
RAW_CANDIDATE = "raw-zscore"
FOURIER_CANDIDATE = "centre-fft-z"
DUAL = "dual"

# name -> (transform, pre_norm, post_norm). Every view uses the backbone's Fourier position features; the name
# "raw+fourier-pos" says so because for it the position features are the only way to tell tokens apart.
# raw-zscore and centre-fft-z are the two candidates of every view-choice rule (views.adaptive.default_candidates);
# dual holds both side by side as two channels per token.
VIEWS: dict[str, tuple[str, str, str]] = {
    RAW: ("identity", "none", "none"),
    RAW_CANDIDATE: ("identity", "zscore", "none"),
    "fft": ("rfft", "none", "none"),
    "centre-fft": ("rfft", "centre", "none"),
    FOURIER_CANDIDATE: ("rfft", "centre", "zscore"),
    "zscore-fft": ("rfft", "zscore", "none"),
    DUAL: ("dual", "centre", "zscore"),
}

TASKS: tuple[str, ...] = (
    "tiny-difference",
    "tiny-difference-image",
    "frequency-shift",
    "moving-dot",
    "moving-dot-image",
)
EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "tiny-difference": ("tiny-difference", "tiny-difference-image", "moving-dot", "moving-dot-image"),
    "frequency-shift": ("frequency-shift",),
    "theory": (),
}
CARRIERS: tuple[str, ...] = ("token0", "generic", "drawn")
NOISES: tuple[float, ...] = (0.0, 0.01)
PHASES: tuple[str, ...] = ("fixed", "random")
AXES: tuple[str, ...] = ("flat", "grid")
IMAGE_CHANNELS = 3
_CARRIER_STREAM = 2  # the drawn carrier position's own random stream (independent of background and examples)


def view_config(name: str, axes: str = "flat") -> ViewConfig:
    """The :class:`ViewConfig` of a named view (``adaptive`` is decided per dataset, not named here)."""
    if name not in VIEWS:
        raise ConfigError(f"view {name!r}: expected one of {', '.join(VIEWS)} (adaptive is chosen per dataset)")
    if axes not in AXES:
        raise ConfigError(f"factor 'axes' level {axes!r} does not exist; expected one of {', '.join(AXES)}")
    transform, pre, post = VIEWS[name]
    return ViewConfig(token_mode="scalar", transform=transform, transform_axes=axes, pre_norm=pre, post_norm=post)


def is_fourier_view(config: ViewConfig) -> bool:
    return config.transform != "identity"


def image_size_for(n_tokens: int) -> int:
    """Side of the square RGB image with ``n_tokens`` scalar tokens (12,288 → 64)."""
    side = math.isqrt(n_tokens // IMAGE_CHANNELS)
    if side * side * IMAGE_CHANNELS != n_tokens:
        raise ConfigError(f"image task: n_tokens={n_tokens} is not 3·S² for an S×S RGB image")
    return side


def carrier_position_1d(carrier: str, n_tokens: int, seed: int) -> int:
    """The carrier token of a 1-D tiny-difference dataset for a ``carrier`` level."""
    if carrier == "token0":
        return 0
    if carrier == "generic":
        return n_tokens // 3 + 1
    if carrier == "drawn":
        return int(np.random.default_rng([int(seed), _CARRIER_STREAM]).integers(0, n_tokens))
    raise ConfigError(f"factor 'carrier' level {carrier!r} does not exist; expected one of {', '.join(CARRIERS)}")


def carrier_pixel(carrier: str, size: int) -> list[tuple[int, int]] | None:
    """The carrier pixel of the image task (None = drawn from the dataset seed by the generator)."""
    if carrier == "token0":
        return [(0, 0)]
    if carrier == "generic":
        return [(size // 3 + 1, size // 2 + 1)]
    if carrier == "drawn":
        return None
    raise ConfigError(f"factor 'carrier' level {carrier!r} does not exist; expected one of {', '.join(CARRIERS)}")


@dataclass(frozen=True)
class Cell:
    """One configuration of the study; trained once per seed. ``'-'`` marks a factor the task does not have."""

    task: str
    n_tokens: int
    view: str
    carrier: str = "-"
    noise: float = 0.01
    phase: str = "-"
    axes: str = "flat"
    beta1: float = 0.9
    lr: float = 1e-3
    steps: int = 300
    seeds: int = 3
    questions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task {self.task!r}: expected one of {', '.join(TASKS)}")
        if self.view not in VIEWS:
            raise ConfigError(f"view {self.view!r}: expected one of {', '.join(VIEWS)}")
        tiny = self.task.startswith("tiny-difference")
        if tiny and self.carrier not in CARRIERS:
            raise ConfigError(f"factor 'carrier' level {self.carrier!r} does not exist; expected one of {', '.join(CARRIERS)}")
        if not tiny and self.carrier != "-":
            raise ConfigError(f"factor 'carrier' does not apply to task {self.task!r}; leave it '-'")
        if self.noise not in NOISES:
            raise ConfigError(f"factor 'noise' level {self.noise!r} does not exist; expected one of {NOISES}")
        if self.task == "frequency-shift" and self.phase not in PHASES:
            raise ConfigError(f"factor 'phase' level {self.phase!r} does not exist; expected one of {', '.join(PHASES)}")
        if self.task != "frequency-shift" and self.phase != "-":
            raise ConfigError(f"factor 'phase' does not apply to task {self.task!r}; leave it '-'")
        if self.axes not in AXES:
            raise ConfigError(f"factor 'axes' level {self.axes!r} does not exist; expected one of {', '.join(AXES)}")
        if self.steps < 1 or self.seeds < 1:
            raise ConfigError(f"cell {self.key}: steps and seeds must be positive, got {self.steps} and {self.seeds}")

    @property
    def dataset(self) -> tuple[str, int, str, float, str]:
        """What the dataset depends on (besides the seed): cells that share it train on the same data."""
        return (self.task, self.n_tokens, self.carrier, self.noise, self.phase)

    @property
    def problem(self) -> tuple[str, int, str, float, str, str]:
        """The dataset plus the transform axes: where the view-choice rules are scored (raw ignores the axes)."""
        return (*self.dataset, self.axes)

    @property
    def key(self) -> str:
        return (
            f"{self.task}|N={self.n_tokens}|carrier={self.carrier}|noise={self.noise}|phase={self.phase}|"
            f"{self.view}|{self.axes}|b1={self.beta1}|lr={self.lr}|steps={self.steps}"
        )

    def factors(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "n_tokens": self.n_tokens,
            "view": self.view,
            "carrier": self.carrier,
            "noise": self.noise,
            "phase": self.phase,
            "axes": self.axes,
            "beta1": self.beta1,
            "lr": self.lr,
            "steps": self.steps,
        }


def make_task(
    task: str,
    n_tokens: int,
    seed: int,
    num_train: int,
    num_test: int,
    *,
    carrier: str = "token0",
    noise: float = 0.01,
    phase: str = "fixed",
) -> SyntheticTask:
    """Generate one dataset (train + held-out test) of a named task and factor levels from a seed."""
    total = num_train + num_test
    meta: dict[str, Any] = {"task": task, "n_tokens": n_tokens, "seed": seed, "noise_std": noise}
    if task == "tiny-difference":
        position = carrier_position_1d(carrier, n_tokens, seed)
        inputs, targets = tiny_difference_1d(total, n_tokens, seed, k=1, noise_std=noise, positions=[position])
        meta.update(k=1, carrier=carrier, carrier_tokens=[position])
    elif task == "tiny-difference-image":
        size = image_size_for(n_tokens)
        pixels = carrier_pixel(carrier, size)
        inputs, targets = tiny_difference_image(
            total, seed, image_size=size, channels=IMAGE_CHANNELS, noise_std=noise, carrier_pixels=pixels
        )
        if pixels is None:
            from rvperceiver.data.synthetic import image_carrier_pixels

            pixels = image_carrier_pixels(seed, image_size=size, k=1)
        meta.update(k=1, carrier=carrier, image_size=size, carrier_pixels=[list(p) for p in pixels],
                    carrier_tokens=[(r * size + c) * IMAGE_CHANNELS + ch for r, c in pixels for ch in range(IMAGE_CHANNELS)])
    elif task == "frequency-shift":
        if phase not in PHASES:
            raise ConfigError(f"factor 'phase' level {phase!r} does not exist; expected one of {', '.join(PHASES)}")
        inputs, targets = frequency_shift(total, n_tokens, seed, phase=phase, noise_std=noise, max_shift=0.5)  # type: ignore[arg-type]
        meta.update(phase=phase, base_cycles=n_tokens / 8, max_shift=0.5)
    elif task == "moving-dot":
        inputs, targets = moving_dot_1d(total, n_tokens, seed, noise_std=noise)
    elif task == "moving-dot-image":
        size = image_size_for(n_tokens)
        inputs, targets = moving_dot_image(total, seed, image_size=size, channels=IMAGE_CHANNELS, blob=2, noise_std=noise)
        meta.update(image_size=size, blob=2)
    else:
        raise ConfigError(f"task {task!r}: expected one of {', '.join(TASKS)}")
    return split_train_test(task, inputs, targets, num_test, meta)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` → ``(0, 1, 2)``, refusing an empty list, a non-integer or a repeat with one line each."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    values = []
    for part in parts:
        try:
            values.append(int(part))
        except ValueError:
            raise ConfigError(f"--seeds: {part!r} is not an integer; expected a comma-separated list like 0,1,2") from None
    return check_seeds(values)


def check_seeds(seeds: Any) -> tuple[int, ...]:
    """A seed list must be non-empty, integers >= 0, and without repeats (a repeat would count one run twice)."""
    values = list(seeds)
    if not values:
        raise ConfigError("seeds: the seed list is empty; give at least one seed, e.g. --seeds 0,1,2")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in values):
        raise ConfigError(f"seeds: expected non-negative integers, got {values}")
    repeated = sorted({int(s) for s in values if values.count(s) > 1})
    if repeated:
        raise ConfigError(f"seeds: the seed list repeats {repeated}; each seed may appear once")
    return tuple(int(s) for s in values)


@dataclass(frozen=True)
class Profile:
    """Training budget, model size, data sizes and the cells of one profile."""

    name: str
    batch_size: int
    eval_every: int
    num_train: int
    num_test: int
    model: dict[str, Any]
    cells: tuple[Cell, ...] = ()
    workers: int = 1
    device: str = "cpu"
    segment_steps: int = 500
    stop_below: float | None = 0.05
    description: str = ""
    cut: tuple[str, ...] = field(default_factory=tuple)

    @property
    def max_seeds(self) -> int:
        return max((c.seeds for c in self.cells), default=1)

    def grid(self, experiment: str) -> tuple[Cell, ...]:
        if experiment not in EXPERIMENTS:
            raise ConfigError(f"experiment {experiment!r}: expected one of {', '.join(EXPERIMENTS)}")
        return tuple(c for c in self.cells if c.task in EXPERIMENTS[experiment])


def _cells(
    *,
    sizes: tuple[int, ...],
    image_n: int,
    dot_sizes: tuple[int, ...],
    dot_image_n: int,
    shift_sizes: tuple[int, ...],
    steps: int,
    long_steps: int,
    long_sizes: tuple[int, ...],
    verdict_seeds: int,
    other_seeds: int,
    r2_lrs: tuple[float, ...],
    r2_side_seeds: int,
    carriers: tuple[str, ...] = CARRIERS,
    image_carriers: tuple[str, ...] = ("token0", "drawn"),
    image_views: tuple[str, ...] = (RAW_CANDIDATE, "centre-fft", FOURIER_CANDIDATE, DUAL),
    image_grid: bool = True,
    noise_free: bool = True,
    long_small_seeds: int | None = None,
    large_carriers: tuple[str, ...] | None = None,
    large_views: tuple[str, ...] | None = None,
) -> tuple[Cell, ...]:
    """Every cell of a profile. Verdict-carrying cells get ``verdict_seeds``, the rest ``other_seeds``.

    ``large_carriers`` / ``large_views`` restrict the 1-D factorial at the largest N (None = all)."""
    cells: list[Cell] = []
    big = max(sizes)
    factorial_views = (RAW_CANDIDATE, "centre-fft", FOURIER_CANDIDATE, "zscore-fft", DUAL)
    for carrier in carriers:
        for n in sizes:
            if n == big and large_carriers is not None and carrier not in large_carriers:
                continue
            for view in factorial_views:
                if n == big and large_views is not None and view not in large_views:
                    continue
                verdict = carrier == "token0" and view in ("centre-fft", FOURIER_CANDIDATE, "zscore-fft")
                cells.append(
                    Cell("tiny-difference", n, view, carrier=carrier, steps=steps,
                         seeds=verdict_seeds if verdict else other_seeds,
                         questions=("R4", "choice") if verdict else ("choice",))
                )
        if noise_free and carrier in ("token0", "generic") and (large_carriers is None or carrier in large_carriers):
            for view in (RAW_CANDIDATE, "centre-fft", FOURIER_CANDIDATE):
                cells.append(Cell("tiny-difference", big, view, carrier=carrier, noise=0.0, steps=steps, seeds=other_seeds,
                                  questions=("noise", "choice")))
    for n in sizes:  # R3: uncentred fft next to centre → fft (in the factorial above), seed's carrier
        cells.append(Cell("tiny-difference", n, "fft", carrier="token0", steps=steps, seeds=verdict_seeds, questions=("R3",)))
    for n in sizes:  # R3's centre-fft cells carry R3 as well as R4
        cells = [replace(c, seeds=verdict_seeds, questions=tuple(sorted(set(c.questions) | {"R3"})))
                 if (c.task, c.n_tokens, c.view, c.carrier, c.noise) == ("tiny-difference", n, "centre-fft", "token0", 0.01)
                 else c for c in cells]
    for carrier in image_carriers:
        for view in image_views:
            verdict = carrier == "token0" and view in ("centre-fft", FOURIER_CANDIDATE)
            cells.append(Cell("tiny-difference-image", image_n, view, carrier=carrier, steps=steps,
                              seeds=verdict_seeds if verdict else other_seeds,
                              questions=("R4", "choice") if verdict else ("choice",)))
            if image_grid and view in (FOURIER_CANDIDATE, DUAL) and view in image_views:
                cells.append(Cell("tiny-difference-image", image_n, view, carrier=carrier, axes="grid", steps=steps,
                                  seeds=other_seeds, questions=("choice",)))
        if noise_free:
            cells.append(Cell("tiny-difference-image", image_n, FOURIER_CANDIDATE, carrier=carrier, noise=0.0, steps=steps,
                              seeds=other_seeds, questions=("noise",)))
    for phase in PHASES:
        for n in shift_sizes:
            for view in (RAW, RAW_CANDIDATE, "centre-fft", FOURIER_CANDIDATE, DUAL):
                verdict = phase == "fixed"
                cells.append(Cell("frequency-shift", n, view, phase=phase, steps=steps,
                                  seeds=verdict_seeds if verdict else other_seeds,
                                  questions=("R5", "choice") if verdict else ("choice",)))
    for task, dot_ns in (("moving-dot", dot_sizes), ("moving-dot-image", (dot_image_n,))):
        for n in dot_ns:
            for view in (RAW_CANDIDATE, FOURIER_CANDIDATE, DUAL):
                cells.append(Cell(task, n, view, steps=steps, seeds=other_seeds, questions=("dot", "choice")))
    # R1 and R2: the seed's raw tokens with long budgets (escape steps against N, and β1 × lr at the largest N).
    for n in long_sizes:
        top = n == max(long_sizes)
        cells.append(Cell("tiny-difference", n, RAW, carrier="token0", steps=long_steps,
                          seeds=verdict_seeds if top or long_small_seeds is None else long_small_seeds,
                          questions=("R1", "R2") if top else ("R1",)))
    for lr in r2_lrs:
        for beta1 in (0.9, 0.999):
            if (lr, beta1) == (1e-3, 0.9):
                continue
            main = lr == 1e-3
            cells.append(Cell("tiny-difference", max(long_sizes), RAW, carrier="token0", beta1=beta1, lr=lr,
                              steps=long_steps, seeds=verdict_seeds if main else r2_side_seeds, questions=("R2",)))
    return tuple(cells)


_SMALL_MODEL = dict(num_latents=16, latent_channels=16, self_heads=2, self_layers_per_block=1, num_bands=4)


def _test_profile() -> Profile:
    cells = (
        Cell("tiny-difference", 64, RAW, carrier="token0", steps=20, seeds=2, questions=("R1", "R2")),
        Cell("tiny-difference", 64, RAW, carrier="token0", beta1=0.999, steps=20, seeds=2, questions=("R2",)),
        Cell("tiny-difference", 64, "fft", carrier="token0", steps=20, seeds=2, questions=("R3",)),
        Cell("tiny-difference", 64, "centre-fft", carrier="token0", steps=20, seeds=2, questions=("R3", "R4")),
        Cell("tiny-difference", 64, RAW_CANDIDATE, carrier="generic", steps=20, seeds=2, questions=("choice",)),
        Cell("tiny-difference", 64, FOURIER_CANDIDATE, carrier="generic", steps=20, seeds=2, questions=("choice",)),
        Cell("tiny-difference-image", 48, FOURIER_CANDIDATE, carrier="token0", axes="grid", steps=20, seeds=1,
             questions=("R4", "choice")),
        Cell("moving-dot", 64, DUAL, steps=20, seeds=1, questions=("dot",)),
        Cell("frequency-shift", 64, RAW_CANDIDATE, phase="fixed", steps=20, seeds=2, questions=("R5", "choice")),
        Cell("frequency-shift", 64, FOURIER_CANDIDATE, phase="fixed", steps=20, seeds=2, questions=("R5", "choice")),
    )
    return Profile(
        name="test", batch_size=16, eval_every=10, num_train=64, num_test=32,
        model=dict(num_latents=4, latent_channels=16, self_heads=1, self_layers_per_block=1, num_bands=2),
        cells=cells, workers=1, segment_steps=10, stop_below=None,
        description="unit tests: every code path at N = 64, 20 steps",
    )


def _quick_profile() -> Profile:
    cells = _cells(
        sizes=(256, 4096), image_n=3072, dot_sizes=(256,), dot_image_n=768, shift_sizes=(256,),
        steps=300, long_steps=1000, long_sizes=(256, 4096), verdict_seeds=3, other_seeds=2,
        r2_lrs=(1e-3,), r2_side_seeds=2, carriers=("token0", "generic"), image_carriers=("token0",),
        image_grid=False, noise_free=False,
    )
    return Profile(
        name="quick", batch_size=16, eval_every=50, num_train=256, num_test=64, model=_SMALL_MODEL, cells=cells,
        workers=2, segment_steps=500, stop_below=0.05,
        description="CI-sized: N ≤ 4096 (image 32×32×3), 300 steps (raw long runs 1000), 3 seeds on verdict cells, 2 elsewhere",
    )


def _standard_cells() -> tuple[Cell, ...]:
    """The standard grid, cut to fit about an hour on 2 shared cores (the cuts are listed in the profile)."""
    return _cells(
        sizes=(256, 4096, 12288), image_n=12288, dot_sizes=(256, 4096), dot_image_n=3072, shift_sizes=(256, 4096),
        steps=300, long_steps=5000, long_sizes=(256, 4096, 12288), verdict_seeds=10, other_seeds=5,
        r2_lrs=(1e-3,), r2_side_seeds=2, long_small_seeds=5,
        large_carriers=("token0", "generic"), large_views=(RAW_CANDIDATE, "centre-fft", FOURIER_CANDIDATE, "zscore-fft"),
        image_views=(RAW_CANDIDATE, "centre-fft", FOURIER_CANDIDATE), image_grid=True,
    )


def _standard_profile() -> Profile:
    return Profile(
        name="standard", batch_size=16, eval_every=50, num_train=256, num_test=64, model=_SMALL_MODEL,
        cells=_standard_cells(), workers=2, segment_steps=500, stop_below=0.05,
        description="the README's tables: 300 steps per factorial cell, 5000 for the raw escape runs; 10 seeds on "
        "verdict cells, 5 elsewhere",
        cut=(
            "at N = 12,288 the 1-D factorial has carriers token0 and generic only and no dual view "
            "(generic: raw-zscore, centre-fft, centre-fft-z, zscore-fft)",
            "the image (64×64×3) has carriers token0 and drawn only, no dual view, grid axes only for centre-fft-z",
            "noise 0 only at N = 12,288 (1-D: token0 and generic; image: centre-fft-z)",
            "5 seeds (not 10) on cells that carry no verdict, including the R1 escape curve at N = 256 and 4096",
            "R2 at lr 1e-3 only: the side learning rates 3e-4 and 3e-3 are left to full (a run that stays stuck for "
            "5,000 steps at N = 12,288 takes 5-8 min on one core)",
            "N = 49,152 left to full; the moving dot at N ≤ 4096 (image 32×32×3)",
            "factorial cells 300 steps (early stop once test NMSE < 0.05); only the raw R1/R2 cells get 5000",
        ),
    )


def _full_profile() -> Profile:
    cells = _cells(
        sizes=(256, 4096, 12288, 49152), image_n=12288, dot_sizes=(256, 4096, 12288), dot_image_n=12288,
        shift_sizes=(256, 4096, 12288), steps=3000, long_steps=20000, long_sizes=(256, 4096, 12288, 49152),
        verdict_seeds=20, other_seeds=20, r2_lrs=(3e-4, 1e-3, 3e-3), r2_side_seeds=20,
        image_carriers=CARRIERS,
    )
    return Profile(
        name="full", batch_size=64, eval_every=100, num_train=2048, num_test=512,
        model=dict(num_latents=64, latent_channels=64, self_heads=4, self_layers_per_block=2, num_bands=8),
        cells=cells, workers=1, device="cuda", segment_steps=2000, stop_below=0.05,
        description="a GPU: every factor, N up to 49,152, 20 seeds, 3000 steps (raw escape runs 20,000)",
    )


PROFILES: dict[str, Profile] = {
    p.name: p for p in (_test_profile(), _quick_profile(), _standard_profile(), _full_profile())
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"profile {name!r} does not exist; expected one of {', '.join(PROFILES)}")
    return PROFILES[name]
