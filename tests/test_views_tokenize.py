"""Token layouts: shapes, round trips, value scaling and input checks."""

from __future__ import annotations

import pytest
import torch

from rvperceiver.errors import InputError
from rvperceiver.views.tokenize import TokenLayout


def _frames(b: int = 2, t: int = 2, h: int = 8, w: int = 8, c: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, h, w, c), dtype=torch.uint8, generator=g)


def test_scalar_mode_on_seed_sized_frames() -> None:
    layout = TokenLayout.from_input_shape((2, 64, 64, 3), "scalar")
    assert layout.grid_shape == (2, 64, 64, 3)
    assert layout.token_channels == 1
    assert layout.num_tokens == 24576
    x = _frames(2, 2, 64, 64, 3)
    tokens = layout.to_tokens(x)
    assert tokens.shape == (2, 24576, 1) and tokens.dtype == torch.float32
    # uint8 scaled by 1/255, row-major over (T, H, W, C)
    assert torch.equal(tokens[1, 5, 0], x[1].reshape(-1)[5].float() / 255)
    assert float(tokens.max()) <= 1.0


@pytest.mark.parametrize(
    ("mode", "grid", "channels"),
    [("scalar", (2, 8, 8, 3), 1), ("pixel", (2, 8, 8), 3), ("patch", (2, 2, 2), 4 * 4 * 3)],
)
def test_image_modes_shapes_and_round_trip(mode: str, grid: tuple[int, ...], channels: int) -> None:
    layout = TokenLayout.from_input_shape((2, 8, 8, 3), mode, patch_size=4)
    assert layout.grid_shape == grid and layout.token_channels == channels
    x = _frames()
    tokens = layout.to_tokens(x)
    assert tokens.shape == (2, layout.num_tokens, channels)
    torch.testing.assert_close(layout.from_tokens(tokens), x.float() / 255)


def test_pixel_token_holds_one_pixels_colours() -> None:
    layout = TokenLayout.from_input_shape((1, 4, 5, 3), "pixel")
    x = _frames(1, 1, 4, 5, 3)
    tokens = layout.to_tokens(x)
    assert torch.equal(tokens[0, 2 * 5 + 3], x[0, 0, 2, 3].float() / 255)


def test_patch_token_holds_one_square() -> None:
    layout = TokenLayout.from_input_shape((1, 4, 6, 2), "patch", patch_size=2)
    x = _frames(1, 1, 4, 6, 2)
    tokens = layout.to_tokens(x)
    # token (row 1, col 2) covers rows 2..3 and cols 4..5, flattened (dy, dx, c)
    expected = x[0, 0, 2:4, 4:6, :].reshape(-1).float() / 255
    assert torch.equal(tokens[0, 1 * 3 + 2], expected)


@pytest.mark.parametrize(("mode", "grid", "channels"), [("scalar", (10,), 1), ("pixel", (5,), 2)])
def test_array_layouts(mode: str, grid: tuple[int, ...], channels: int) -> None:
    layout = TokenLayout.from_input_shape((5, 2), mode)
    assert layout.grid_shape == grid and layout.token_channels == channels
    x = torch.randn(3, 5, 2) * 10  # arrays are not limited to [0, 1]
    tokens = layout.to_tokens(x)
    assert tokens.shape == (3, layout.num_tokens, channels)
    torch.testing.assert_close(layout.from_tokens(tokens), x)


def test_float_frames_in_unit_range_are_used_as_is() -> None:
    layout = TokenLayout.from_input_shape((1, 2, 2, 1), "scalar")
    x = torch.tensor([[[[[0.0], [0.25]], [[0.5], [1.0]]]]], dtype=torch.float64)
    torch.testing.assert_close(layout.to_tokens(x).flatten(), torch.tensor([0.0, 0.25, 0.5, 1.0]))


def test_errors() -> None:
    with pytest.raises(InputError, match="unknown token mode 'voxel'.*scalar, pixel, patch"):
        TokenLayout.from_input_shape((2, 8, 8, 3), "voxel")
    with pytest.raises(InputError, match=r"\(T, H, W, C\).*\(N, C\)"):
        TokenLayout.from_input_shape((8, 8, 3), "scalar")
    with pytest.raises(InputError, match="patch_size 3 must divide.*8.*8"):
        TokenLayout.from_input_shape((2, 8, 8, 3), "patch", patch_size=3)
    with pytest.raises(InputError, match="patch_size must be a positive"):
        TokenLayout.from_input_shape((2, 8, 8, 3), "patch", patch_size=0)
    with pytest.raises(InputError, match="needs an image layout"):
        TokenLayout.from_input_shape((16, 2), "patch")
    with pytest.raises(InputError, match="positive"):
        TokenLayout.from_input_shape((0, 2), "scalar")

    layout = TokenLayout.from_input_shape((2, 8, 8, 3), "scalar")
    with pytest.raises(InputError, match=r"expected shape \[B, T, H, W, C\] = \[B, 2, 8, 8, 3\], got \[2, 2, 8, 8, 4\]"):
        layout.to_tokens(torch.zeros(2, 2, 8, 8, 4, dtype=torch.uint8))
    with pytest.raises(InputError, match="got \\[2, 8, 8, 3\\]"):
        layout.to_tokens(torch.zeros(2, 8, 8, 3, dtype=torch.uint8))
    with pytest.raises(InputError, match="\\[0, 255\\]"):
        layout.to_tokens(torch.full((1, 2, 8, 8, 3), 200.0))
    with pytest.raises(InputError, match="must lie in \\[0, 1\\]"):
        layout.to_tokens(torch.full((1, 2, 8, 8, 3), -0.5))
    nan = torch.zeros(1, 2, 8, 8, 3)
    nan[0, 1, 2, 3, 0] = float("nan")
    with pytest.raises(InputError, match="1 NaN/Inf"):
        layout.to_tokens(nan)
    with pytest.raises(InputError, match="NaN/Inf"):
        TokenLayout.from_input_shape((4, 1), "scalar").to_tokens(torch.tensor([[[1.0], [float("inf")], [0.0], [0.0]]]))
    with pytest.raises(InputError, match="uint8 or floating"):
        layout.to_tokens(torch.zeros(1, 2, 8, 8, 3, dtype=torch.int64))
    with pytest.raises(InputError, match="torch.Tensor"):
        layout.to_tokens([[0.0]])  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"tokens: expected shape \[B, 384, 1\]"):
        layout.from_tokens(torch.zeros(1, 383, 1))
