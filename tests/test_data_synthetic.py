"""The synthetic generators produce what they promise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvperceiver.data.synthetic import (
    carrier_positions_1d,
    frequency_shift,
    image_carrier_pixels,
    split_train_test,
    tiny_difference_1d,
    tiny_difference_image,
)
from rvperceiver.errors import InputError


def test_tiny_difference_1d_only_carriers_vary_beyond_noise() -> None:
    noise = 0.01
    x, y = tiny_difference_1d(400, 128, seed=3, k=3, noise_std=noise)
    assert x.shape == (400, 128, 1) and y.shape == (400, 1, 3)
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    std = x[..., 0].std(dim=0)
    carriers = carrier_positions_1d(128, 3)
    assert list(carriers) == [0, 42, 85]
    others = np.setdiff1d(np.arange(128), carriers)
    assert torch.all(std[carriers] > 0.5)
    assert torch.all(std[others] < 2 * noise)
    # The background is shared and has a non-zero mean (the seed's X2).
    background = x[:, others, 0].mean()
    assert abs(float(background)) > 0.05
    # Target = the carrier value standardised (signal_mean=1, signal_std=1 by default).
    assert torch.allclose(y[:, 0, :], x[:, carriers, 0] - 1.0, atol=1e-6)


def test_generators_are_deterministic_per_seed() -> None:
    a = tiny_difference_1d(8, 32, seed=5)
    b = tiny_difference_1d(8, 32, seed=5)
    c = tiny_difference_1d(8, 32, seed=6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    f1 = frequency_shift(8, 64, seed=1, phase="random")
    f2 = frequency_shift(8, 64, seed=1, phase="random")
    assert torch.equal(f1[0], f2[0]) and torch.equal(f1[1], f2[1])
    i1 = tiny_difference_image(3, seed=2, image_size=8)
    i2 = tiny_difference_image(3, seed=2, image_size=8)
    assert torch.equal(i1[0], i2[0])


def test_more_examples_keep_the_background() -> None:
    few, _ = tiny_difference_1d(4, 32, seed=9, noise_std=0.0)
    many, _ = tiny_difference_1d(40, 32, seed=9, noise_std=0.0)
    assert torch.equal(few[0, 1:], many[0, 1:])


def test_tiny_difference_image_pixels_on_uint8_grid_and_only_carrier_varies() -> None:
    x, y = tiny_difference_image(300, seed=4, image_size=16, k=2, noise_std=0.01)
    assert x.shape == (300, 1, 16, 16, 3) and y.shape == (300, 1, 2)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.allclose(x * 255, torch.round(x * 255), atol=1e-4)
    std = x[:, 0].std(dim=0)  # [H, W, C]
    varying = (std > 0.05).nonzero().tolist()
    pixels = image_carrier_pixels(4, image_size=16, k=2)
    assert sorted({(r, c) for r, c, _ in varying}) == sorted(pixels)
    assert len(varying) == 2 * 3  # k pixels × 3 channels of 768 scalar tokens
    assert float(std.max(dim=-1).values.flatten().sort().values[-3]) < 0.05
    # The target is an exact function of the carrier pixel: z = (v - 0.5) / 0.16.
    r, c = pixels[0]
    assert torch.allclose(y[:, 0, 0], (x[:, 0, r, c, 0] - 0.5) / 0.16, atol=1e-5)


@pytest.mark.parametrize("phase", ["fixed", "random"])
def test_frequency_shift_target_is_the_spectral_peak_offset(phase: str) -> None:
    n, pad = 256, 64
    x, y = frequency_shift(12, n, seed=0, phase=phase, noise_std=0.01, max_shift=0.5)
    assert x.shape == (12, n, 1) and y.shape == (12, 1, 1)
    spectrum = np.abs(np.fft.rfft(x[..., 0].numpy().astype(np.float64) * np.hanning(n), n=n * pad, axis=-1))
    peak_cycles = spectrum.argmax(axis=-1) / pad
    recovered = peak_cycles - n / 8
    np.testing.assert_allclose(recovered, y[:, 0, 0].numpy(), atol=0.03)
    assert float(y.abs().max()) <= 0.5


def test_frequency_shift_phase_controls_raw_variance_profile() -> None:
    fixed, _ = frequency_shift(500, 128, seed=1, phase="fixed", noise_std=0.0)
    random, _ = frequency_shift(500, 128, seed=1, phase="random", noise_std=0.0)
    var_fixed = fixed[..., 0].var(dim=0)
    var_random = random[..., 0].var(dim=0)
    # Fixed phase: every example starts at sin(0) = 0, variance grows along the window with n·δ.
    assert float(var_fixed[0]) < 1e-10 and float(var_fixed[-16:].mean()) > 0.1
    # Random phase: every position has variance ≈ A²/2 whatever n.
    assert torch.allclose(var_random, torch.full_like(var_random, 0.5), atol=0.1)


def test_split_train_test_is_disjoint() -> None:
    x, y = tiny_difference_1d(20, 16, seed=0)
    task = split_train_test("tiny", x, y, num_test=5, meta={"k": 1})
    assert task.train_inputs.shape[0] == 15 and task.test_inputs.shape[0] == 5
    assert task.input_shape == (16, 1) and task.target_shape == (1, 1)
    train_values = set(task.train_targets.flatten().tolist())
    assert not train_values & set(task.test_targets.flatten().tolist())
    with pytest.raises(InputError, match="num_test"):
        split_train_test("tiny", x, y, num_test=20)


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(InputError, match="'k'"):
        tiny_difference_1d(4, 8, seed=0, k=9)
    with pytest.raises(InputError, match="'noise_std'"):
        tiny_difference_1d(4, 8, seed=0, noise_std=-1.0)
    with pytest.raises(InputError, match="'phase'"):
        frequency_shift(4, 64, seed=0, phase="sometimes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="'base_cycles'"):
        frequency_shift(4, 64, seed=0, base_cycles=40.0)
    with pytest.raises(InputError, match="'num_examples'"):
        tiny_difference_image(0, seed=0)


def test_tiny_difference_carrier_positions_can_be_placed() -> None:
    from rvperceiver.data.synthetic import tiny_difference_1d as td

    x, y = td(50, 128, 0, positions=[43])
    varying = (x[:, :, 0].std(0) > 0.1).nonzero().flatten().tolist()
    assert varying == [43]
    torch.testing.assert_close(x[:, 43, 0], 1.0 + y[:, 0, 0])
    with pytest.raises(InputError, match="distinct token indices"):
        td(5, 128, 0, positions=[128])


def test_image_carrier_pixel_can_be_the_corner() -> None:
    from rvperceiver.data.synthetic import tiny_difference_image as ti

    x, _ = ti(40, 0, image_size=8, carrier_pixels=[(0, 0)])
    spread = x[:, 0].std(0).amax(-1)
    assert spread[0, 0] > 0.05 and float(spread.flatten()[1:].max()) < 0.05
    with pytest.raises(InputError, match="carrier_pixels"):
        ti(4, 0, image_size=8, carrier_pixels=[(8, 0)])


def test_moving_dot_target_is_the_position() -> None:
    from rvperceiver.data.synthetic import moving_dot_1d, moving_dot_image

    x, y = moving_dot_1d(30, 64, 0)
    position = x[:, :, 0].argmax(dim=1).float()
    torch.testing.assert_close(y[:, 0, 0], 2 * position / 63 - 1)
    frames, coords = moving_dot_image(20, 0, image_size=16, blob=2)
    assert frames.shape == (20, 1, 16, 16, 3) and coords.shape == (20, 1, 2)
    bright = (frames[:, 0].amin(-1) == 1.0).nonzero()
    for i in range(20):
        rows_cols = bright[bright[:, 0] == i][:, 1:].float()
        assert rows_cols.shape[0] == 4
        torch.testing.assert_close(2 * rows_cols.mean(0) / 15 - 1, coords[i, 0])
    assert float(coords.abs().max()) <= 1.0
