"""Lossless real-valued transforms over chosen dimensions of a tensor.

The seed's idea is to spread a change in one input token over every token by a Fourier transform. A Perceiver
consumes real tokens, so every transform here maps reals to reals and is exactly invertible:

``identity``
    nothing (the raw view), kept so callers can treat every view alike.
``rfft``
    the real FFT packed into N reals per axis ("half-complex"): the real parts of bins ``0 … ⌊N/2⌋`` followed by
    the imaginary parts of bins ``1 … ⌈N/2⌉-1`` (ascending). The imaginary parts of bin 0 and, for even N, of the
    Nyquist bin are always zero and are not stored. With ``norm="ortho"`` and a factor √2 on every bin that stands
    for a conjugate pair, the packing is an orthogonal matrix, so ‖y‖ = ‖x‖ (Parseval).
``hartley``
    the discrete Hartley transform ``Re(F) - Im(F)`` with ortho scaling: symmetric, orthogonal and its own inverse.
``dct``
    the orthonormal DCT-II (inverse: orthonormal DCT-III), computed through one complex FFT of a reordered input
    (Makhoul's method) so long axes never build an N×N matrix.
``complex``
    the full ortho FFT with real and imaginary parts on a new trailing axis of size 2. This is an isometry into
    twice as many reals (the spectrum of a real signal is conjugate-symmetric, so half of it is redundant).
``dual``
    the input and its packed ``rfft`` side by side on a new trailing axis of size 2, (raw, Fourier) / √2. Token
    ``n`` then carries sample ``n`` and packed coefficient ``n``, so a model sees both views and need not choose
    between them. The 1/√2 makes it an isometry into twice as many reals, like ``complex``.

Several dims are handled separably: the 1-D transform is applied along each dim in turn. Separable application
of orthogonal 1-D maps along different axes is the Kronecker product of orthogonal matrices, hence orthogonal, and
for ``hartley`` also self-inverse (the factors act on different axes and commute). ``complex`` uses the true
N-D FFT, which is separable anyway.

Everything runs in float32 with autocast disabled, because cuFFT in half precision only accepts power-of-two
lengths and half-precision spectra lose the small differences this library is about. Results are float32 and
the operations are differentiable on CPU and CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from rvperceiver.errors import InputError

TransformKind = Literal["identity", "rfft", "hartley", "dct", "complex", "dual"]
TRANSFORM_KINDS: tuple[str, ...] = ("identity", "rfft", "hartley", "dct", "complex", "dual")
# Kinds whose output has a trailing axis of size 2.
PAIRED_KINDS: tuple[str, ...] = ("complex", "dual")


# ----------------------------------------------------------------------------------------------------------------
# argument checking


def _check_kind(kind: str) -> None:
    if kind not in TRANSFORM_KINDS:
        raise InputError(f"unknown transform kind {kind!r}; expected one of {', '.join(TRANSFORM_KINDS)}")


def _normalise_dims(dims: int | Sequence[int], ndim: int, what: str = "dims") -> tuple[int, ...]:
    """Turn ``dims`` into distinct non-negative axis indices of a tensor with ``ndim`` axes."""
    dims_tuple = (dims,) if isinstance(dims, int) else tuple(dims)
    if not dims_tuple:
        raise InputError(f"{what} must name at least one dimension, got an empty sequence")
    resolved: list[int] = []
    for d in dims_tuple:
        if not isinstance(d, int) or isinstance(d, bool):
            raise InputError(f"{what} must be integers, got {d!r}")
        if not -ndim <= d < ndim:
            raise InputError(f"{what} entry {d} is out of range for a tensor with {ndim} dimensions")
        resolved.append(d % ndim)
    if len(set(resolved)) != len(resolved):
        raise InputError(f"{what} names a dimension twice: {dims_tuple}")
    return tuple(resolved)


def _as_float32(x: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise InputError(f"{what} must be real-valued, got dtype {x.dtype}")
    return x.to(torch.float32)


def _no_autocast(device: torch.device) -> torch.autocast:
    # autocast only knows some device types; CPU and CUDA are the ones this library supports.
    return torch.autocast(device_type=device.type, enabled=False)


# ----------------------------------------------------------------------------------------------------------------
# 1-D transforms along the last axis (callers move the wanted axis to the end)


def _rfft_split(n: int) -> tuple[int, int]:
    """Number of stored real parts (bins 0…⌊n/2⌋) and imaginary parts (bins 1…⌈n/2⌉-1) of a length-n signal."""
    num_real = n // 2 + 1
    num_imag = n - num_real
    return num_real, num_imag


def _pair_scale(n: int, num_bins: int, device: torch.device) -> torch.Tensor:
    """√2 on bins that stand for a conjugate pair (1…⌈n/2⌉-1), 1 on bin 0 and the Nyquist bin of even n."""
    scale = torch.full((num_bins,), math.sqrt(2.0), dtype=torch.float32, device=device)
    scale[0] = 1.0
    if n % 2 == 0:
        scale[n // 2] = 1.0
    return scale


def _rfft_packed_last(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[-1]
    num_real, num_imag = _rfft_split(n)
    spectrum = torch.fft.rfft(x, dim=-1, norm="ortho")  # num_real bins
    scale = _pair_scale(n, num_real, x.device)
    real = spectrum.real * scale
    imag = spectrum.imag[..., 1 : 1 + num_imag] * scale[1 : 1 + num_imag]
    return torch.cat([real, imag], dim=-1)


def _irfft_packed_last(y: torch.Tensor) -> torch.Tensor:
    n = y.shape[-1]
    num_real, num_imag = _rfft_split(n)
    scale = _pair_scale(n, num_real, y.device)
    real = y[..., :num_real] / scale
    imag = torch.zeros_like(real)
    imag[..., 1 : 1 + num_imag] = y[..., num_real:] / scale[1 : 1 + num_imag]
    return torch.fft.irfft(torch.complex(real, imag), n=n, dim=-1, norm="ortho")


def _hartley_last(x: torch.Tensor) -> torch.Tensor:
    spectrum = torch.fft.fft(x, dim=-1, norm="ortho")
    return spectrum.real - spectrum.imag


def _dct_twiddle(n: int, device: torch.device) -> torch.Tensor:
    """exp(-iπk/(2n)) for k = 0…n-1, the phase that turns the FFT of the reordered input into DCT-II bins."""
    k = torch.arange(n, dtype=torch.float32, device=device)
    angle = -math.pi * k / (2 * n)
    return torch.complex(torch.cos(angle), torch.sin(angle))


def _dct_ortho_scale(n: int, device: torch.device) -> torch.Tensor:
    scale = torch.full((n,), math.sqrt(1.0 / (2 * n)), dtype=torch.float32, device=device)
    scale[0] = math.sqrt(1.0 / (4 * n))
    return scale


def _dct_last(x: torch.Tensor) -> torch.Tensor:
    # Makhoul: v = [x0, x2, x4, …, x5, x3, x1]; DCT-II[k] = 2·Re(exp(-iπk/2n)·FFT(v)[k]).
    n = x.shape[-1]
    reordered = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
    spectrum = torch.fft.fft(reordered, dim=-1)
    unnormalised = 2.0 * (spectrum * _dct_twiddle(n, x.device)).real
    return unnormalised * _dct_ortho_scale(n, x.device)


def _idct_last(y: torch.Tensor) -> torch.Tensor:
    # Undo the ortho scale, then rebuild FFT(v)[k] = exp(+iπk/2n)·(c[k] - i·c[n-k]) / 2 with c[n] := 0.
    n = y.shape[-1]
    c = y / _dct_ortho_scale(n, y.device)
    c_mirror = torch.cat([torch.zeros_like(c[..., :1]), c[..., 1:].flip(-1)], dim=-1)  # c[n-k], c[n]=0 at k=0
    z = torch.complex(c, -c_mirror) * 0.5
    spectrum = z * _dct_twiddle(n, y.device).conj()
    reordered = torch.fft.ifft(spectrum, dim=-1).real
    half = (n + 1) // 2
    out = torch.empty_like(reordered)
    out[..., ::2] = reordered[..., :half]
    out[..., 1::2] = reordered[..., half:].flip(-1)
    return out


_FORWARD_1D = {"rfft": _rfft_packed_last, "hartley": _hartley_last, "dct": _dct_last}
_INVERSE_1D = {"rfft": _irfft_packed_last, "hartley": _hartley_last, "dct": _idct_last}


def _along(x: torch.Tensor, dim: int, fn) -> torch.Tensor:
    return fn(x.movedim(dim, -1)).movedim(-1, dim)


# ----------------------------------------------------------------------------------------------------------------
# public API


def forward_transform(x: torch.Tensor, kind: str, dims: int | Sequence[int]) -> torch.Tensor:
    """Apply the real-valued transform ``kind`` over ``dims`` of ``x``.

    Returns a float32 tensor of the same shape, except for ``kind="complex"`` and ``kind="dual"``, which append a
    trailing axis of size 2 holding (real, imaginary), resp. (raw, packed rfft). Integer or float64 input is converted to float32; complex input is refused.
    """
    _check_kind(kind)
    x = _as_float32(x, "forward_transform input")
    resolved = _normalise_dims(dims, x.ndim)
    with _no_autocast(x.device):
        if kind == "identity":
            return x
        if kind == "complex":
            spectrum = torch.fft.fftn(x, dim=resolved, norm="ortho")
            return torch.stack([spectrum.real, spectrum.imag], dim=-1)
        if kind == "dual":
            return torch.stack([x, forward_transform(x, "rfft", resolved)], dim=-1) * math.sqrt(0.5)
        out = x
        for d in resolved:
            out = _along(out, d, _FORWARD_1D[kind])
        return out


def inverse_transform(
    y: torch.Tensor, kind: str, dims: int | Sequence[int], sizes: Sequence[int] | None = None
) -> torch.Tensor:
    """Invert :func:`forward_transform`.

    ``dims`` are the dims given to the forward call, counted on the *original* tensor (for ``complex`` that is
    ``y`` without its trailing (real, imag) axis, so negative dims mean the same in both calls). ``sizes``, if
    given, are the original lengths along ``dims`` and are checked: every transform here keeps the length of each
    axis, so they are not needed to reconstruct, only to catch a spectrum paired with the wrong signal.
    """
    _check_kind(kind)
    y = _as_float32(y, "inverse_transform input")
    if kind in PAIRED_KINDS:
        if y.ndim < 2 or y.shape[-1] != 2:
            raise InputError(
                f"inverse {kind!r} transform expects a trailing axis of size 2, got shape {tuple(y.shape)}"
            )
        signal_ndim = y.ndim - 1
    else:
        signal_ndim = y.ndim
    resolved = _normalise_dims(dims, signal_ndim)
    if sizes is not None:
        sizes_tuple = tuple(int(s) for s in sizes)
        got = tuple(y.shape[d] for d in resolved)
        if sizes_tuple != got:
            raise InputError(f"inverse_transform sizes {sizes_tuple} do not match the lengths {got} along dims {resolved}")
    with _no_autocast(y.device):
        if kind == "identity":
            return y
        if kind == "dual":
            return (y[..., 0] * math.sqrt(2.0)).contiguous()
        if kind == "complex":
            spectrum = torch.complex(y[..., 0], y[..., 1])
            return torch.fft.ifftn(spectrum, dim=resolved, norm="ortho").real.contiguous()
        out = y
        for d in reversed(resolved):
            out = _along(out, d, _INVERSE_1D[kind])
        return out


def output_channel_factor(kind: str) -> int:
    """How many output reals each input real becomes (2 for ``complex`` and ``dual``, 1 otherwise)."""
    _check_kind(kind)
    return 2 if kind in PAIRED_KINDS else 1
