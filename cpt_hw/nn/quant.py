"""The CPT quantizers in torch, bit-exact with :mod:`cpt_hw.hw.golden` (same float32 operations, same order).

Asymmetric, unsigned, over [0, 2^b - 1] (docs/numerics.md "Quantizers", the authors' code):

    s = max((max - min) / (2^b - 1), 1e-8),   z = min,
    q = round_half_even(clamp((x - z) / s [+ u], 0, 2^b - 1)),   x_hat = s q + z,

with u = counter_uniform(seed, i) in [-0.5, 0.5) for stochastic rounding (element i in row-major order).

Granularity is given by the shape of ``x_min``/``x_max``: a 0-d tensor is per tensor; a (C, 1, ...)
tensor is per output channel.  Everything stays on the tensor's device and no value is read back to the
host, so the same functions serve a CUDA fast path.  Codes are returned as float32 tensors holding
integers (exact: 2^b - 1 <= 65535 < 2^24); ``cpt_hw.nn.integer.int_codes`` narrows them to uint8 (up to 8 bits)
for an integer GEMM.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, NamedTuple

import numpy as np
import torch

from ..hw.golden import SCALE_FLOOR, fmix32

_FLOOR = float(SCALE_FLOOR)  # a Python float that converts back to exactly np.float32(1e-8)


class QParams(NamedTuple):
    """Scale and zero point (float32 tensors that broadcast against the quantized tensor)."""

    scale: torch.Tensor
    zero_point: torch.Tensor


def levels(bits: int) -> float:
    """Largest code 2^bits - 1, as the float the quantizer divides by."""
    if bits < 1:
        raise ValueError(f"bits = {bits}: quantization needs >= 1 bit (0 means full precision: do not quantize)")
    return float(2**bits - 1)


def quant_params(x_min: torch.Tensor, x_max: torch.Tensor, bits: int) -> QParams:
    """float32 scale max((max - min)/(2^b - 1), 1e-8) and zero point min, as ``golden.quant_params``."""
    x_min = x_min.to(torch.float32)
    # Divide by a float32 tensor, not a Python scalar: CUDA turns division by a CPU scalar into a
    # multiplication by its reciprocal, which rounds differently from golden's true division.
    divisor = torch.full((), levels(bits), dtype=torch.float32, device=x_min.device)
    scale = torch.clamp_min((x_max.to(torch.float32) - x_min) / divisor, _FLOOR)
    return QParams(scale, x_min)


_M32 = 0xFFFFFFFF
#: MurmurHash3's finaliser constants as int32 bit patterns (the values minus 2^32).
_C1, _C2 = 0x85EBCA6B - (1 << 32), 0xC2B2AE35 - (1 << 32)
#: Below this many elements the noise counters fit int32's positive range (counter_uniform_words).
INT32_COUNTERS = 1 << 31


def _as_int32(u: int | torch.Tensor) -> int | torch.Tensor:
    """A 32-bit value (0..2^32 - 1; a Python int or an int64 tensor) as the int32 with the same bit pattern."""
    v = ((u + INT32_COUNTERS) & _M32) - INT32_COUNTERS
    return v.to(torch.int32) if isinstance(v, torch.Tensor) else v


def _fmix32_i32(h: torch.Tensor) -> torch.Tensor:
    """golden's ``fmix32`` on int32 tensors holding 32-bit patterns: an int32 product wraps modulo 2^32 as the
    uint32 one does (two's complement), and a logical right shift by k is the arithmetic one masked to its
    32 - k low bits.  One 32-bit multiply per product instead of golden's int64 pair (int64 products are
    emulated on GPUs, and golden splits each to stay below 2^48)."""
    h = h ^ ((h >> 16) & 0xFFFF)
    h = h * _C1
    h = h ^ ((h >> 13) & 0x7FFFF)
    h = h * _C2
    return h ^ ((h >> 16) & 0xFFFF)


def counter_seed_words(seed: int | torch.Tensor) -> tuple[int | torch.Tensor, int | torch.Tensor]:
    """golden's mixed seed words (s0, s1) of ``seed`` (a Python int of any 64-bit value, or an int64 tensor of
    seeds below 2^63), as int32 bit patterns: the part of ``golden.counter_hash`` that depends on the seed
    alone, computed once per noise stream instead of once per element."""
    s0 = _as_int32(fmix32(seed & _M32 ^ 0x9E3779B9))
    s1 = _as_int32(fmix32((seed >> 32) & _M32 ^ 0x7F4A7C15))
    return s0, s1


def counter_uniform_words(s0: int | torch.Tensor, s1: int | torch.Tensor, numel: int,
                          device: torch.device) -> torch.Tensor:
    """``golden.counter_uniform(seed, i)`` for i = 0..numel-1, flat float32, bit for bit, given the seed's
    words (s0, s1) = :func:`counter_seed_words` (int32 values or 0-d int32 tensors, e.g. on the device).

    golden's hash is fmix32(fmix32(lo(i) ^ s0) ^ hi(i) ^ s1); below 2^31 elements the counters have no
    high word and the per-element part runs in int32 throughout (tests/test_nn_quant.py and
    tests/test_fast_path.py check it against golden)."""
    if numel < INT32_COUNTERS:
        h = _fmix32_i32(_fmix32_i32(torch.arange(numel, device=device, dtype=torch.int32) ^ s0) ^ s1)
    else:  # not a tensor size training meets: int64 counters, split into their 32-bit words
        i = torch.arange(numel, device=device, dtype=torch.int64)
        lo, hi = _as_int32(i & _M32), _as_int32(i >> 32)
        h = _fmix32_i32(_fmix32_i32(lo ^ s0) ^ hi ^ s1)
    return ((h >> 8) & 0xFFFFFF).to(torch.float32) * (1.0 / (1 << 24)) - 0.5


def counter_uniform_i32(seed: int, numel: int, device: torch.device) -> torch.Tensor:
    """``golden.counter_uniform(seed, i)`` for i = 0..numel-1, flat float32, bit for bit
    (:func:`counter_uniform_words` of the seed's words)."""
    return counter_uniform_words(*counter_seed_words(seed), numel, device)


def uniform_noise(seed: int, shape: torch.Size | tuple[int, ...], device: torch.device | str) -> torch.Tensor:
    """counter_uniform(seed, i) for i = 0..numel-1 in row-major order, as float32 of ``shape`` (exact)."""
    return counter_uniform_i32(seed, int(torch.Size(shape).numel()), torch.device(device)).reshape(shape)


def quantize_codes(x: torch.Tensor, bits: int, qp: QParams, noise_seed: int | None = None) -> torch.Tensor:
    """Integer codes (float32 tensor) of ``x``; stochastic rounding when ``noise_seed`` is given.

    Bit-exact with ``golden.quantize(x, bits, x_min, x_max, stochastic=noise_seed is not None,
    seed=noise_seed)``.  No autograd: callers wrap it (straight-through estimator, error quantizer).
    """
    with torch.no_grad():
        v = (x.to(torch.float32) - qp.zero_point) / qp.scale
        if noise_seed is not None:
            v = v + uniform_noise(noise_seed, v.shape, v.device)
        return torch.round(torch.clamp(v, 0.0, levels(bits)))


def code_dtype(bits: int) -> torch.dtype:
    """The narrowest integer dtype holding codes 0..2^bits - 1: uint8 up to 8 bits (the operand dtype the
    driver packs without widening), int16 up to 15, int32 beyond."""
    return torch.uint8 if bits <= 8 else torch.int16 if bits <= 15 else torch.int32


#: Elements per chunk of the CPU quantizer: its five float32/uint32 work arrays (1.25 MiB) stay in L2/L3
#: and a chunk amortises numpy's per-call overhead (64 Ki elements: fastest of 8 Ki..128 Ki, measured).
_CHUNK = 1 << 16


def _fmix32_np(h: np.ndarray, tmp: np.ndarray) -> None:
    """MurmurHash3's finaliser in place on uint32 (numpy's uint32 products wrap modulo 2^32, as the hash's)."""
    for shift, mul in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        np.right_shift(h, shift, out=tmp)
        np.bitwise_xor(h, tmp, out=h)
        np.multiply(h, np.uint32(mul), out=h)
    np.right_shift(h, 16, out=tmp)
    np.bitwise_xor(h, tmp, out=h)


def _codes_cpu(x: np.ndarray, bits: int, scale: float, zero: float, noise_seed: int | None,
               factor: np.ndarray | None, out: np.ndarray, counters: np.ndarray | None = None) -> None:
    """Integer codes of flat float32 ``x`` into flat ``out``, a chunk at a time (no whole-tensor temporaries).

    The same float32 operations as :func:`quantize_codes` (and golden.quantize) in the same order, so
    bit-exact with them: v = (x [* factor] - z) / s [+ counter_uniform(seed, i)], clamped, rounded half to
    even.  ``factor``: a pattern that repeats along x (per-channel multipliers expanded over one sample),
    of a length dividing the chunk.  The noise is golden's counter hash computed in uint32 arithmetic:
    counters < 2^32 have no high word, so the seed words mix into two xors.  Element j's counter is j, or, with
    ``counters`` (x in another memory order than its logical one: one sample's logical indices in memory
    order, uint32), j - j mod S + counters[j mod S] for samples of S = counters.size elements."""
    n = x.size
    period = factor.size if factor is not None else counters.size if counters is not None else 1
    chunk = period * max(1, min(_CHUNK, n) // period)
    v = np.empty(chunk, np.float32)
    v_t = torch.from_numpy(v)
    zero32, scale32, top = np.float32(zero), np.float32(scale), levels(bits)
    if factor is not None:
        pattern = np.tile(factor, chunk // factor.size)
    if noise_seed is not None:
        s0 = int(fmix32((noise_seed & _M32) ^ 0x9E3779B9))
        s1 = int(fmix32(((noise_seed >> 32) & _M32) ^ 0x7F4A7C15))
        if counters is None:
            base = np.arange(chunk, dtype=np.uint32)
        else:  # chunks start on sample boundaries (chunk is a multiple of the period)
            samples = np.arange(chunk // counters.size, dtype=np.uint32)[:, None] * np.uint32(counters.size)
            base = (samples + counters[None, :]).reshape(-1)
        h, tmp, u = np.empty(chunk, np.uint32), np.empty(chunk, np.uint32), np.empty(chunk, np.float32)
    for c0 in range(0, n, chunk):
        k = min(chunk, n - c0)
        vv = v[:k]
        if factor is None:
            np.subtract(x[c0:c0 + k], zero32, out=vv)
        else:
            np.multiply(x[c0:c0 + k], pattern[:k], out=vv)
            np.subtract(vv, zero32, out=vv)
        np.divide(vv, scale32, out=vv)
        if noise_seed is not None:
            hh, tt, uu = h[:k], tmp[:k], u[:k]
            np.add(base[:k], np.uint32(c0), out=hh)                 # counters c0 .. c0 + k - 1 (< 2^32)
            np.bitwise_xor(hh, np.uint32(s0), out=hh)
            _fmix32_np(hh, tt)
            np.bitwise_xor(hh, np.uint32(s1), out=hh)
            _fmix32_np(hh, tt)
            np.right_shift(hh, 8, out=hh)
            np.copyto(uu, hh.view(np.int32), casting="unsafe")      # < 2^24: exact; int32 converts 2x faster
            np.multiply(uu, np.float32(1.0 / (1 << 24)), out=uu)
            np.subtract(uu, np.float32(0.5), out=uu)
            np.add(vv, uu, out=vv)
        v_t[:k].clamp_(0.0, top)   # torch's clamp (NaN stays NaN): 4x faster here than np.clip (numpy 1.26)
        np.rint(vv, out=vv)
        np.copyto(out[c0:c0 + k], vv, casting="unsafe")             # integers <= 2^bits - 1: exact


@lru_cache(maxsize=32)
def _channels_last_counters(c: int, h: int, w: int) -> np.ndarray:
    """One (C, H, W) sample's logical (row-major) indices in channels-last memory order, uint32."""
    return np.arange(c * h * w, dtype=np.uint32).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether x is a 4-D tensor laid out channels-last and not also contiguous (in which case both orders are
    one): the layout of a one-group convolution's output and input gradient in the integer layers."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def quantize_int(x: torch.Tensor, bits: int, qp: QParams, noise_seed: int | None = None,
                 factor: torch.Tensor | None = None) -> torch.Tensor:
    """The codes of :func:`quantize_codes` as integers of :func:`code_dtype` (uint8 up to 8 bits), in x's memory
    format: contiguous, or channels-last for a channels-last x (the one-group convolutions' outputs and
    input gradients, :meth:`ops.ConvOps.raise_out`).

    ``factor``: quantize the product x * factor instead of x, without materialising it (float32 x); a
    tensor that broadcasts against x and is the same for every x[i] (e.g. per-channel weights (1, C, 1, 1)).
    On the CPU with a per-tensor ``qp`` this runs in L2-sized chunks in numpy over x's memory (no float32 or
    int64 temporaries of x's size: 5-7x faster than the tensor expression with the noise stream's int64
    arithmetic, measured on a 2 Mi-element error; a channels-last x gets each element's noise by its logical
    index); elsewhere it is the tensor expression, then a narrowing copy.  Bit-exact with
    :func:`quantize_codes` either way (tests/test_nn_quant.py)."""
    dtype = code_dtype(bits)
    levels(bits)  # one clear error for bits < 1
    if x.device.type != "cpu" or qp.scale.dim() != 0 or x.numel() >= 1 << 32 or x.dim() == 0 \
            or (factor is not None and (x.dtype != torch.float32 or factor.dim() > x.dim()
                                        or (factor.dim() == x.dim() and factor.shape[0] != 1))):
        if factor is not None:
            x = x * factor
        return quantize_codes(x, bits, qp, noise_seed).to(dtype).contiguous()
    cl = is_channels_last(x)
    to_memory = (lambda t: t.permute(0, 2, 3, 1)) if cl else (lambda t: t)  # noqa: E731  (x's memory order)
    flat = to_memory(x.detach().to(torch.float32)).contiguous().reshape(-1).numpy()
    pattern = counters = None
    if factor is not None:  # one sample's worth of multipliers, repeated along x's first dimension
        sample = factor.detach().to(torch.float32)
        sample = sample.expand(x.shape)[0].unsqueeze(0)
        pattern = to_memory(sample).contiguous().reshape(-1).numpy() if x.shape[0] else None
    if cl and noise_seed is not None:
        counters = _channels_last_counters(*x.shape[1:])
    out = torch.empty(tuple(to_memory(x).shape), dtype=dtype)
    if x.numel():
        _codes_cpu(flat, bits, float(qp.scale), float(qp.zero_point), noise_seed, pattern, out.view(-1).numpy(),
                   counters)
    return out.permute(0, 3, 1, 2) if cl else out


def dequantize(q: torch.Tensor, qp: QParams) -> torch.Tensor:
    """x_hat = s q + z in float32 (a separate multiply and add, as golden.dequantize: no fused FMA)."""
    return q * qp.scale + qp.zero_point


# ----------------------------------------------------------------------------- ranges


def tensor_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor (min, max) as 0-d float32 tensors on x's device (no host synchronisation)."""
    x = x.detach()
    return x.amin().to(torch.float32), x.amax().to(torch.float32)


def channel_range(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel (min, max) of a weight (C_out, ...), shaped (C_out, 1, ..., 1) to broadcast."""
    w = w.detach()
    flat = w.reshape(w.shape[0], -1)
    shape = (w.shape[0],) + (1,) * (w.dim() - 1)
    return flat.amin(1).reshape(shape).to(torch.float32), flat.amax(1).reshape(shape).to(torch.float32)


def fold_factors(scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s_w / max s_w, max s_w) for per-channel weight scales (any shape holding C_out values).

    The hardware numerics fold the weight scales into the error before re-quantizing it.  Folding the
    ratio (<= 1) rather than s_w itself keeps the folded error at the error's own magnitude, so its
    quantizer's 1e-8 scale floor bites no earlier than the paper's does; max s_w, one number, leaves
    the GEMM with the other per-tensor scales."""
    flat = scale.reshape(-1)
    s_ref = flat.amax()
    return flat / s_ref, s_ref


# ----------------------------------------------------------------------------- fake quantization (autograd)


class _FakeQuantSTE(torch.autograd.Function):
    """x_hat = dequantize(quantize(x)) forward; identity backward (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bits: int, x_min: torch.Tensor, x_max: torch.Tensor) -> torch.Tensor:
        qp = quant_params(x_min, x_max, bits)
        return dequantize(quantize_codes(x, bits, qp), qp).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None, None, None


def fake_quant(x: torch.Tensor, bits: int, x_min: torch.Tensor, x_max: torch.Tensor) -> torch.Tensor:
    """Deterministic fake quantization with a straight-through gradient (weights, activations)."""
    return _FakeQuantSTE.apply(x, bits, x_min, x_max)


@dataclass(frozen=True)
class ErrorQuant:
    """How the error (gradient w.r.t. a layer output) is quantized: bits and the seeds of its noise
    streams (``seed``: the error both backward GEMMs use; ``seed_scaled``: the weight-scaled error of the
    hardware numerics' input-gradient GEMM, docs/numerics.md)."""

    bits: int
    seed: int
    seed_scaled: int = 0


def product_range(x: torch.Tensor, factor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``tensor_range(x * factor)`` without the product, for a positive ``factor`` that broadcasts against x.

    Exact: float32 rounding is monotone, so for f > 0 the smallest fl(x f) over the elements sharing one
    multiplier f is fl(min(x) f) (likewise the largest); only x's minima and maxima along the dimensions
    ``factor`` broadcasts over are multiplied.  A factor that is not finite and positive everywhere falls
    back to the product."""
    x = x.detach()
    f = factor.detach().to(torch.float32)
    if x.dtype != torch.float32 or f.dim() > x.dim() or not bool(torch.isfinite(f).all() and (f > 0).all()):
        return tensor_range(x * f)
    shape = (1,) * (x.dim() - f.dim()) + tuple(f.shape)
    dims = tuple(d for d in range(x.dim()) if shape[d] == 1 and x.shape[d] != 1)
    if dims == (0, 2, 3) and is_channels_last(x) and x.device.type == "cpu":
        lo, hi = (channel_extremum(x, fn).reshape(1, -1, 1, 1) for fn in (torch.amin, torch.amax))
    else:
        lo = x.amin(dims, keepdim=True) if dims else x
        hi = x.amax(dims, keepdim=True) if dims else x
    return (lo.to(torch.float32) * f.reshape(shape)).amin(), (hi.to(torch.float32) * f.reshape(shape)).amax()


#: Row width (elements) of the first stage of :func:`channel_extremum`: wide enough for torch's vectorised
#: reductions over rows.
_EXTREMUM_ROW = 1024


def channel_extremum(x: torch.Tensor, fn: Callable[..., torch.Tensor]) -> torch.Tensor:
    """``fn(x, (0, 2, 3))`` (torch.amin or torch.amax: exact in any order) of a channels-last 4-D x, (C,).  Over its
    memory, pixels x channels, in two stages: k pixels a row first (rows of k C elements, about
    :data:`_EXTREMUM_ROW`), then the k partial results, because torch reduces a channels-last tensor with few
    channels over its other dimensions one narrow row at a time (4x slower for ResNet's 16 channels, measured)."""
    c = x.shape[1]
    pixels = x.permute(0, 2, 3, 1).reshape(-1, c)
    n = pixels.shape[0]
    k = next((d for d in range(max(1, _EXTREMUM_ROW // c), 0, -1) if n % d == 0), 1)
    return fn(fn(pixels.reshape(n // k, k * c), 0).reshape(k, c), 0)


def quantize_error(e: torch.Tensor, bits: int, seed: int) -> tuple[torch.Tensor, QParams]:
    """Per-tensor stochastic quantization of an error tensor: (codes, params)."""
    qp = quant_params(*tensor_range(e), bits)
    return quantize_codes(e, bits, qp, noise_seed=seed), qp
