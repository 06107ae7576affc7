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
from typing import NamedTuple

import torch

from ..hw.golden import SCALE_FLOOR, counter_uniform

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


def _fmix32_(h: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's finaliser in place on int64 values < 2^32.  The products may pass 2^63 and wrap,
    but only their low 32 bits are kept, which wrapping leaves intact."""
    h ^= h >> 16
    h.mul_(0x85EBCA6B).bitwise_and_(_M32)
    h ^= h >> 13
    h.mul_(0xC2B2AE35).bitwise_and_(_M32)
    h ^= h >> 16
    return h


def uniform_noise(seed: int, shape: torch.Size | tuple[int, ...], device: torch.device | str) -> torch.Tensor:
    """counter_uniform(seed, i) for i = 0..numel-1 in row-major order, as float32 of ``shape`` (exact).

    Computes golden's hash with fewer, in-place tensor operations (tests check it against golden bit for
    bit): the seed words are mixed once in Python and counters below 2^32 have no high word.
    """
    n = int(torch.Size(shape).numel())
    if n >= 1 << 32:  # not a tensor size training meets; golden's generic path is exact everywhere
        counter = torch.arange(n, dtype=torch.int64, device=device).reshape(shape)
        return counter_uniform(seed, counter).to(torch.float32)
    s0 = int(_fmix32_(torch.tensor([(seed & _M32) ^ 0x9E3779B9], dtype=torch.int64))[0])
    s1 = int(_fmix32_(torch.tensor([((seed >> 32) & _M32) ^ 0x7F4A7C15], dtype=torch.int64))[0])
    h = torch.arange(n, dtype=torch.int64, device=device)
    h ^= s0
    _fmix32_(h)
    h ^= s1
    _fmix32_(h)
    h >>= 8
    return (h.to(torch.float32) * (1.0 / (1 << 24)) - 0.5).reshape(shape)


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


def quantize_error(e: torch.Tensor, bits: int, seed: int) -> tuple[torch.Tensor, QParams]:
    """Per-tensor stochastic quantization of an error tensor: (codes, params)."""
    qp = quant_params(*tensor_range(e), bits)
    return quantize_codes(e, bits, qp, noise_seed=seed), qp
