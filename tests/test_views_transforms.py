"""Invertibility, orthonormality and numerical definitions of the real-valued transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rvperceiver.errors import InputError
from rvperceiver.views.transforms import PAIRED_KINDS, TRANSFORM_KINDS, forward_transform, inverse_transform

REAL_KINDS = ("identity", "rfft", "hartley", "dct")
LENGTHS = (1, 2, 3, 4, 5, 8, 9, 16, 31)


def _matrix(kind: str, n: int) -> np.ndarray:
    """The transform as a matrix: column j is the transform of the j-th unit vector (float64 reference)."""
    eye = torch.eye(n, dtype=torch.float64)
    out = forward_transform(eye, kind, 1)  # row j = transform of e_j
    if kind in PAIRED_KINDS:
        out = out.reshape(n, 2 * n)
    return out.double().numpy().T


@pytest.mark.parametrize("kind", TRANSFORM_KINDS)
@pytest.mark.parametrize("n", LENGTHS)
def test_one_dim_transform_matrix_is_orthonormal(kind: str, n: int) -> None:
    m = _matrix(kind, n)
    # Columns orthonormal: M^T M = I (for complex: an isometry from R^n into R^2n).
    np.testing.assert_allclose(m.T @ m, np.eye(n), atol=1e-5)
    if kind not in PAIRED_KINDS:
        np.testing.assert_allclose(m @ m.T, np.eye(n), atol=1e-5)


@pytest.mark.parametrize("n", LENGTHS)
def test_rfft_packed_layout_matches_numpy_rfft(n: int) -> None:
    x = np.random.default_rng(n).normal(size=(4, n))
    y = forward_transform(torch.from_numpy(x), "rfft", -1).double().numpy()
    spec = np.fft.rfft(x, axis=-1, norm="ortho")
    num_real = n // 2 + 1
    scale = np.full(num_real, math.sqrt(2.0))
    scale[0] = 1.0
    if n % 2 == 0:
        scale[-1] = 1.0
    np.testing.assert_allclose(y[:, :num_real], spec.real * scale, atol=1e-5)
    np.testing.assert_allclose(y[:, num_real:], spec.imag[:, 1 : 1 + n - num_real] * scale[1 : 1 + n - num_real], atol=1e-5)


@pytest.mark.parametrize("n", LENGTHS)
def test_dct_matches_cosine_definition(n: int) -> None:
    x = np.random.default_rng(n + 100).normal(size=(3, n))
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    basis = np.cos(np.pi * k * (2 * i + 1) / (2 * n)) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    expected = x @ basis.T
    got = forward_transform(torch.from_numpy(x), "dct", 1).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("n", LENGTHS)
def test_hartley_is_cas_transform_and_self_inverse(n: int) -> None:
    x = np.random.default_rng(n + 200).normal(size=(3, n))
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    angle = 2 * np.pi * k * i / n
    expected = x @ ((np.cos(angle) + np.sin(angle)) / np.sqrt(n)).T
    xt = torch.from_numpy(x)
    once = forward_transform(xt, "hartley", 1)
    np.testing.assert_allclose(once.double().numpy(), expected, atol=1e-5)
    twice = forward_transform(once, "hartley", 1)
    np.testing.assert_allclose(twice.double().numpy(), x, atol=1e-5)


def test_complex_is_full_ortho_fft_on_trailing_axis() -> None:
    x = torch.randn(2, 6, 5)
    y = forward_transform(x, "complex", (1, 2))
    assert y.shape == (2, 6, 5, 2)
    ref = torch.fft.fftn(x, dim=(1, 2), norm="ortho")
    torch.testing.assert_close(y[..., 0], ref.real)
    torch.testing.assert_close(y[..., 1], ref.imag)
    # negative dims are counted on the original tensor in both directions
    back = inverse_transform(forward_transform(x, "complex", -1), "complex", -1)
    torch.testing.assert_close(back, x, atol=1e-5, rtol=0)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=4),
    kind=st.sampled_from(TRANSFORM_KINDS),
    data=st.data(),
)
def test_property_inverts_and_preserves_norm(shape: list[int], kind: str, data: st.DataObject) -> None:
    ndim = len(shape)
    dims = data.draw(st.lists(st.integers(min_value=0, max_value=ndim - 1), min_size=1, max_size=ndim, unique=True))
    if data.draw(st.booleans()):
        dims = [d - ndim for d in dims]  # negative spellings must mean the same axes
    seed = data.draw(st.integers(min_value=0, max_value=2**31 - 1))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    y = forward_transform(x, kind, dims)
    expected_shape = tuple(shape) + ((2,) if kind in PAIRED_KINDS else ())
    assert tuple(y.shape) == expected_shape
    assert y.dtype == torch.float32
    # Parseval (complex: isometry into twice the reals)
    assert abs(float(y.double().norm()) - float(x.double().norm())) <= 1e-5 * max(1.0, float(x.norm()))
    back = inverse_transform(y, kind, dims, sizes=[shape[d] for d in dims])
    assert torch.allclose(back, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", REAL_KINDS)
def test_multi_dim_is_separable_application_of_1d(kind: str) -> None:
    x = torch.randn(3, 4, 6)
    both = forward_transform(x, kind, (1, 2))
    stepwise = forward_transform(forward_transform(x, kind, 1), kind, 2)
    torch.testing.assert_close(both, stepwise)


@pytest.mark.parametrize("kind", TRANSFORM_KINDS)
def test_float32_output_under_bfloat16_autocast(kind: str) -> None:
    x = torch.randn(2, 12, 3)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        y = forward_transform(x, kind, 1)
        back = inverse_transform(y, kind, 1)
    assert y.dtype == torch.float32 and back.dtype == torch.float32
    torch.testing.assert_close(back, x, atol=1e-5, rtol=0)


def test_bfloat16_and_float64_inputs_compute_in_float32() -> None:
    x = torch.randn(5, 10, dtype=torch.float64)
    assert forward_transform(x, "rfft", 1).dtype == torch.float32
    assert forward_transform(x.bfloat16(), "dct", 1).dtype == torch.float32


@pytest.mark.parametrize("kind", TRANSFORM_KINDS)
def test_gradients_flow(kind: str) -> None:
    x = torch.randn(2, 7, requires_grad=True)
    y = forward_transform(x, kind, 1)
    y.square().sum().backward()
    # For an isometry, d/dx ||Tx||^2 = 2x.
    assert x.grad is not None
    torch.testing.assert_close(x.grad, 2 * x.detach(), atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", TRANSFORM_KINDS)
def test_cuda_matches_cpu(kind: str) -> None:
    x = torch.randn(2, 10, 6)
    cpu = forward_transform(x, kind, (1, 2))
    with torch.autocast(device_type="cuda", dtype=torch.float16):
        gpu = forward_transform(x.cuda(), kind, (1, 2))
    assert gpu.dtype == torch.float32
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(inverse_transform(gpu, kind, (1, 2)).cpu(), x, atol=1e-5, rtol=0)


def test_dual_holds_the_input_and_its_packed_rfft() -> None:
    x = torch.randn(3, 16, 2)
    y = forward_transform(x, "dual", (1, 2))
    assert y.shape == (3, 16, 2, 2)
    torch.testing.assert_close(y[..., 0] * 2**0.5, x)
    torch.testing.assert_close(y[..., 1] * 2**0.5, forward_transform(x, "rfft", (1, 2)))


def test_errors_name_the_problem() -> None:
    x = torch.randn(3, 4)
    with pytest.raises(InputError, match="unknown transform kind 'fft'.*rfft"):
        forward_transform(x, "fft", 1)
    with pytest.raises(InputError, match="out of range"):
        forward_transform(x, "rfft", 2)
    with pytest.raises(InputError, match="twice"):
        forward_transform(x, "rfft", (1, -1))
    with pytest.raises(InputError, match="at least one"):
        forward_transform(x, "rfft", ())
    with pytest.raises(InputError, match="real-valued"):
        forward_transform(torch.randn(3, 4, dtype=torch.complex64), "rfft", 1)
    with pytest.raises(InputError, match="trailing"):
        inverse_transform(x, "complex", 0)
    with pytest.raises(InputError, match="sizes"):
        inverse_transform(x, "rfft", 1, sizes=[5])
    with pytest.raises(InputError, match="torch.Tensor"):
        forward_transform(np.zeros((3, 4)), "rfft", 1)  # type: ignore[arg-type]
