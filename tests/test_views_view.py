"""InputView: pipeline shapes, fitted statistics, inversion, persistence and every error path."""

from __future__ import annotations

import dataclasses

import itertools

import pytest
import torch

from rvperceiver.errors import InputError
from rvperceiver.views.stats import compute_moments
from rvperceiver.views.transforms import forward_transform
from rvperceiver.views.view import InputView, ViewConfig

SHAPE = (2, 8, 8, 3)


def _frames(b: int = 6, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, *shape), dtype=torch.uint8, generator=g)


def test_seed_sized_uint8_scalar_forward() -> None:
    view = InputView(ViewConfig(), (2, 64, 64, 3))
    out = view(_frames(2, (2, 64, 64, 3)))
    assert out.shape == (2, 24576, 1) and out.dtype == torch.float32
    assert view.num_tokens == 24576 and view.out_channels == 1 and view.grid_shape == (2, 64, 64, 3)
    assert view.input_shape == (2, 64, 64, 3)
    assert view.is_fitted is False  # no norms: nothing to fit, still usable


@pytest.mark.parametrize(
    ("mode", "transform", "axes"),
    list(itertools.product(("scalar", "pixel", "patch"), ("identity", "rfft", "hartley", "dct", "complex", "dual"), ("flat", "grid"))),
)
def test_every_view_inverts(mode: str, transform: str, axes: str) -> None:
    cfg = ViewConfig(token_mode=mode, patch_size=4, transform=transform, transform_axes=axes, pre_norm="zscore", post_norm="zscore")
    view = InputView(cfg, SHAPE)
    x = _frames()
    view.fit([x[:4], x[4:]])
    y = view(x)
    factor = 2 if transform in ("complex", "dual") else 1
    assert y.shape == (6, view.num_tokens, view.token_channels * factor) and view.out_channels == view.token_channels * factor
    torch.testing.assert_close(view.inverse(y), x.float() / 255, atol=1e-5, rtol=0)


def test_zscore_post_norm_gives_zero_mean_unit_std_per_bin() -> None:
    x = _frames(40)
    view = InputView(ViewConfig(transform="rfft", pre_norm="centre", post_norm="zscore"), SHAPE)
    summary = view.fit([x[:13], x[13:27], x[27:]])
    assert summary["passes"] == 2.0 and summary["examples"] == 40.0
    y = view(x).double()
    torch.testing.assert_close(y.mean(0), torch.zeros_like(y[0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(0, unbiased=False), torch.ones_like(y[0]), atol=1e-4, rtol=0)


def test_fit_statistics_match_direct_computation() -> None:
    x = _frames(20)
    cfg = ViewConfig(token_mode="pixel", transform="dct", transform_axes="grid", pre_norm="zscore", post_norm="centre")
    view = InputView(cfg, SHAPE)
    summary = view.fit([x[:7], x[7:]])
    assert summary["passes"] == 1.0  # a centring post-norm needs no second pass
    tokens = view.tokens(x).double()
    torch.testing.assert_close(view.pre_mean.double(), tokens.mean(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(view.pre_std.double(), tokens.std(0, unbiased=False).clamp_min(1e-6), atol=1e-6, rtol=0)
    # post_mean is the transform of the (zero) pre-normalised mean, and the output is centred per bin
    assert float(view.post_mean.abs().max()) < 1e-5
    assert float(view(x).mean(0).abs().max()) < 1e-5


def test_centre_post_norm_without_pre_norm_centres_each_bin() -> None:
    x = _frames(12)
    view = InputView(ViewConfig(transform="hartley", post_norm="centre"), SHAPE)
    view.fit([x])
    direct = forward_transform(view.tokens(x), "hartley", 1).mean(0)
    torch.testing.assert_close(view.post_mean, direct, atol=1e-5, rtol=0)
    assert float(view(x).mean(0).abs().max()) < 1e-5


def test_fit_accepts_dataloader_style_tuples() -> None:
    x = _frames(8)
    targets = torch.zeros(8, 3, 2)
    a = InputView(ViewConfig(pre_norm="zscore", post_norm="zscore", transform="rfft"), SHAPE)
    b = InputView(ViewConfig(pre_norm="zscore", post_norm="zscore", transform="rfft"), SHAPE)
    a.fit([(x[:4], targets[:4]), (x[4:], targets[4:])])
    b.fit([x])
    torch.testing.assert_close(a(x), b(x), atol=1e-5, rtol=0)


def test_state_dict_round_trip_gives_identical_outputs() -> None:
    x = _frames(10)
    cfg = ViewConfig(token_mode="patch", transform="rfft", transform_axes="grid", pre_norm="centre", post_norm="zscore")
    fitted = InputView(cfg, SHAPE)
    fitted.fit([x[:5], x[5:]])
    state = fitted.state_dict()
    assert {"pre_mean", "pre_std", "post_mean", "post_std", "fitted"} <= set(state)
    fresh = InputView(cfg, SHAPE)
    assert not fresh.is_fitted
    fresh.load_state_dict(state)
    assert fresh.is_fitted
    assert torch.equal(fresh(x), fitted(x))


def test_float32_output_under_autocast() -> None:
    x = _frames(4)
    view = InputView(ViewConfig(transform="dct", pre_norm="zscore"), SHAPE)
    view.fit([x])
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        y = view(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, view(x))


def test_gradient_reaches_float_input() -> None:
    x = (_frames(3).float() / 255).requires_grad_(True)
    view = InputView(ViewConfig(transform="rfft", pre_norm="centre"), SHAPE)
    view.fit([x.detach()])
    view(x).square().sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_fit_summary_reports_participation_ratio() -> None:
    x = torch.full((10, 16, 1), 0.5)
    x[:, 3, 0] = torch.linspace(0, 1, 10)  # only token 3 varies
    view = InputView(ViewConfig(transform="complex", pre_norm="centre", post_norm="zscore"), (16, 1))
    summary = view.fit([x])
    assert summary["raw_participation_ratio"] == pytest.approx(1 / 16)
    assert summary["post_participation_ratio"] == pytest.approx(1.0, abs=1e-3)


def test_config_errors_list_valid_values() -> None:
    with pytest.raises(InputError, match=r"token_mode must be one of \['scalar', 'pixel', 'patch'\], got 'voxel'$"):
        ViewConfig(token_mode="voxel")
    kinds = r"\['identity', 'rfft', 'hartley', 'dct', 'complex', 'dual'\]"
    with pytest.raises(InputError, match=rf"transform must be one of {kinds}, got 'fft' \(did you mean 'rfft'\?\)"):
        ViewConfig(transform="fft")
    with pytest.raises(InputError, match=r"transform_axes must be one of \['flat', 'grid'\]"):
        ViewConfig(transform_axes="rows")
    norms = r"\['none', 'centre', 'zscore'\]"
    with pytest.raises(InputError, match=rf"pre_norm must be one of {norms}, got 'center' \(did you mean 'centre'\?\)"):
        ViewConfig(pre_norm="center")
    with pytest.raises(InputError, match="post_norm"):
        ViewConfig(post_norm="minmax")
    with pytest.raises(InputError, match="patch_size"):
        ViewConfig(patch_size=0)
    with pytest.raises(InputError, match="std_floor"):
        ViewConfig(std_floor=0.0)
    with pytest.raises(InputError, match="ViewConfig"):
        InputView({"transform": "rfft"}, SHAPE)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="patch_size 3 must divide"):
        InputView(ViewConfig(token_mode="patch", patch_size=3), SHAPE)


def test_input_errors() -> None:
    view = InputView(ViewConfig(transform="rfft", pre_norm="centre", post_norm="zscore"), SHAPE)
    x = _frames(4)
    with pytest.raises(InputError, match="call fit\\(\\) first"):
        view(x)
    with pytest.raises(InputError, match="call fit\\(\\) first"):
        view.inverse(torch.zeros(1, view.num_tokens, 1))
    with pytest.raises(InputError, match="one-shot iterator"):
        view.fit(iter([x]))
    with pytest.raises(InputError, match="empty"):
        view.fit([])
    with pytest.raises(InputError, match="tensors, arrays or"):
        view.fit(["frames"])
    view.fit([x])
    with pytest.raises(InputError, match=r"expected shape \[B, T, H, W, C\] = \[B, 2, 8, 8, 3\], got \[4, 2, 8, 8\]"):
        view(x[..., 0])
    bad = x.float() / 255
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN/Inf"):
        view(bad)
    with pytest.raises(InputError, match="\\[0, 255\\]"):
        view(x.float())
    with pytest.raises(InputError, match=r"expected shape \[B, 384, 1\]"):
        view.inverse(torch.zeros(1, 384, 2))


def test_second_pass_must_see_the_same_data() -> None:
    class Shrinking:
        def __init__(self, x: torch.Tensor) -> None:
            self.x = x
            self.calls = 0

        def __iter__(self):
            self.calls += 1
            return iter([self.x] if self.calls == 1 else [self.x[:1]])

    view = InputView(ViewConfig(transform="rfft", post_norm="zscore"), SHAPE)
    with pytest.raises(InputError, match="second pass saw 1 examples but the first saw 4"):
        view.fit(Shrinking(_frames(4)))


def test_loading_statistics_for_another_token_count_names_both() -> None:
    small = InputView(ViewConfig(pre_norm="zscore"), (2, 8, 8, 3))
    small.fit([_frames(3)])
    big = InputView(ViewConfig(pre_norm="zscore"), (2, 16, 16, 3))
    with pytest.raises(InputError, match=r"384 tokens.*this view has 1536 tokens"):
        big.load_state_dict(small.state_dict())


def test_fit_moves_batches_to_the_buffers_device_and_uses_float64() -> None:
    # pre_mean of nearly constant data must not lose the 1/255 steps to float32 cancellation
    x = torch.full((1000, 16, 1), 200, dtype=torch.uint8)
    x[::2, 5, 0] = 201
    view = InputView(ViewConfig(pre_norm="zscore", std_floor=1e-6), (16, 1))  # below one grey level on purpose
    view.fit([x[i : i + 100] for i in range(0, 1000, 100)])
    expected = compute_moments([x.double() / 255])
    torch.testing.assert_close(view.pre_std[5, 0].double(), expected.std()[5, 0], rtol=1e-6, atol=0)
    assert float(view.pre_std[4, 0]) == pytest.approx(1e-6)  # floored, constant token


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_and_forward_match_cpu() -> None:
    x = _frames(6)
    cfg = ViewConfig(transform="rfft", transform_axes="grid", pre_norm="centre", post_norm="zscore")
    cpu = InputView(cfg, SHAPE)
    cpu.fit([x[:3], x[3:]])
    gpu = InputView(cfg, SHAPE).cuda()
    gpu.fit([x[:3], x[3:]])  # CPU batches are moved to the buffers' device
    with torch.autocast(device_type="cuda", dtype=torch.float16):
        y = gpu(x.cuda())
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.cpu(), cpu(x), atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Normalisation that cannot explode: floors in the data's units and a clip


@pytest.mark.parametrize(
    "config",
    [
        ViewConfig(pre_norm="zscore"),
        ViewConfig(token_mode="pixel", pre_norm="zscore"),
        ViewConfig(token_mode="patch", patch_size=4, pre_norm="zscore"),
        ViewConfig(transform="rfft", pre_norm="centre", post_norm="zscore"),
        ViewConfig(transform="rfft", pre_norm="zscore", post_norm="zscore"),
        ViewConfig(transform="dct", transform_axes="grid", pre_norm="zscore", post_norm="zscore"),
    ],
    ids=["scalar", "pixel", "patch", "centre-rfft-z", "z-rfft-z", "grid-dct"],
)
def test_a_pixel_constant_in_training_that_changes_stays_bounded(config) -> None:
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (64, 2, 8, 8, 3), dtype=torch.uint8)
    frames[:, :, 3, 4, 1] = 17  # constant over the whole training set
    view = InputView(config, (2, 8, 8, 3))
    view.fit([frames[:32], frames[32:]])
    assert float(view.pre_std.min()) >= 1 / 255 - 1e-9  # floored at one grey level, not 1e-6
    deployed = frames[:4].clone()
    deployed[:, :, 3, 4, 1] = 255  # the constant pixel changes at deployment (e.g. a compression artefact)
    out = view(deployed)
    assert torch.isfinite(out).all()
    assert float(out.abs().max()) <= 10.0 + 1e-5
    if config.pre_norm != "zscore":
        return  # centre → transform spreads the change over every bin: no blow-up to show without the clip
    # Without the clip and with the old floor the same change is ~1e5 sigma.
    unbounded = InputView(dataclasses.replace(config, clip=None, std_floor=1e-6), (2, 8, 8, 3))
    unbounded.fit([frames[:32], frames[32:]])
    assert float(unbounded(deployed).abs().max()) > 1e3


def test_clip_and_floor_are_configurable() -> None:
    frames = torch.full((8, 1, 4, 4, 1), 100, dtype=torch.uint8)
    frames[:4, 0, 0, 0, 0] = 101
    changed = frames[:1].clone()
    changed[0, 0, 1, 1, 0] = 200
    view = InputView(ViewConfig(pre_norm="zscore", clip=3.0), (1, 4, 4, 1))
    view.fit([frames])
    assert float(view(changed).abs().max()) == pytest.approx(3.0)
    assert view.fit([frames])["std_floor"] == pytest.approx(1 / 255)
    floats = InputView(ViewConfig(pre_norm="zscore"), (1, 4, 4, 1))
    assert floats.fit([frames.float() / 255])["std_floor"] == pytest.approx(1e-6)  # floats: no known resolution
    with pytest.raises(InputError, match="clip"):
        ViewConfig(clip=0.0)
    with pytest.raises(InputError, match="std_floor"):
        ViewConfig(std_floor=-1.0)
