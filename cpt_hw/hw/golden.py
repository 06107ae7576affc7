"""The golden model: what the accelerator computes, bit for bit.

GEMM
----
C = A.B with A (M x K) at ``a_bits`` and B (K x N) at ``b_bits``, each signed (two's complement) or
unsigned.  The hardware decomposes each operand into bit planes, A = sum_i s_i 2^i A_i with
A_i in {0, 1} and s_i = -1 for the top plane of a signed operand (else +1), and computes

    C[m, n] = sum_i sum_j s_i s_j 2^(i+j) popcount(A_i[m, :] AND B_j[:, n])

in an ``acc_width``-bit two's-complement accumulator.  Accumulator semantics: additions wrap modulo
2^acc_width; the result is the accumulator sign-extended to 64 bits.  The config guarantees that no
legal call (K <= k_max) can wrap, so for legal calls C is the exact integer product.

:func:`gemm_bitplanes` is the literal plane-pair formulation; :func:`gemm` computes the same numbers
fast (one exact float64 BLAS call while every partial sum stays below 2^53, int64 otherwise).  The
tests prove both equal to a plain integer matmul for every precision pair and signedness.

Quantizers
----------
The CPT quantizer in integer form (ARCHITECTURE.md section 3), in float32 arithmetic so that the torch
front end reproduces it exactly:  s = max((max - min)/(2^b - 1), 1e-8),
q = round_half_even(clamp((x - min)/s [+ noise], 0, 2^b - 1)), x_hat = s q + min.  Stochastic
rounding draws its noise from :func:`counter_uniform`, a counter-based generator (hash of seed and
element index), so any implementation that knows (seed, counter) reproduces the same draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# ----------------------------------------------------------------------------- operands


def operand_range(bits: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest integer an operand of ``bits`` bits can hold."""
    if bits < 1:
        raise ValueError(f"bits = {bits}: must be >= 1")
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def check_operand(x: np.ndarray, bits: int, signed: bool, name: str = "operand") -> np.ndarray:
    """Return ``x`` as int64 after checking it is an integer array whose values fit ``bits``/``signed``."""
    x = np.asarray(x)
    if x.dtype.kind not in "iub":
        raise TypeError(f"{name}: dtype {x.dtype} is not an integer type")
    lo, hi = operand_range(bits, signed)
    x = x.astype(np.int64, copy=False)
    if x.size and (x.min() < lo or x.max() > hi):
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"{name}: values {x.min()}..{x.max()} do not fit {bits}-bit {kind} ({lo}..{hi})")
    return x


def plane_weight(i: int, bits: int, signed: bool) -> int:
    """Weight s_i 2^i of bit plane ``i``: negative for the top plane of a signed operand."""
    return -(1 << i) if signed and i == bits - 1 else 1 << i


def bitplanes(x: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Bit planes of the two's-complement code of ``x``: uint8 array of shape (bits, *x.shape)."""
    x = check_operand(x, bits, signed)
    code = x & ((1 << bits) - 1)
    shifts = np.arange(bits, dtype=np.int64).reshape((bits,) + (1,) * x.ndim)
    return ((code[None] >> shifts) & 1).astype(np.uint8)


def wrap(x: np.ndarray, width: int) -> np.ndarray:
    """Two's-complement wrap of int64 values to ``width`` bits, sign-extended back to int64."""
    x = np.asarray(x, dtype=np.int64)
    if width >= 64:
        return x
    half = np.int64(1) << np.int64(width - 1)
    return ((x + half) & ((half << np.int64(1)) - 1)) - half


# ----------------------------------------------------------------------------- GEMM


def _check_shapes(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"gemm: a and b must be 2-D, got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm: inner dimensions differ: a is {a.shape}, b is {b.shape}")


def gemm_bitplanes(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int, a_signed: bool = False,
                   b_signed: bool = False, acc_width: int | None = None) -> np.ndarray:
    """The literal bit-serial formulation: one AND+popcount matrix per plane pair, shift-accumulated.

    a: (M, K) ints fitting ``a_bits``; b: (K, N) ints fitting ``b_bits``.  Returns (M, N) int64.
    Each plane-pair popcount is a 0/1 matrix product (float64, exact for K < 2^53).
    """
    a = check_operand(a, a_bits, a_signed, "a")
    b = check_operand(b, b_bits, b_signed, "b")
    _check_shapes(a, b)
    pa = bitplanes(a, a_bits, a_signed).astype(np.float64)
    pb = bitplanes(b, b_bits, b_signed).astype(np.float64)
    acc = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    for i in range(a_bits):
        for j in range(b_bits):
            popcount = (pa[i] @ pb[j]).astype(np.int64)
            acc += plane_weight(i, a_bits, a_signed) * plane_weight(j, b_bits, b_signed) * popcount
            if acc_width is not None:
                acc = wrap(acc, acc_width)
    return acc


def gemm(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int, a_signed: bool = False,
         b_signed: bool = False, acc_width: int | None = None) -> np.ndarray:
    """What the accelerator returns for A.B: (M, N) int64, equal to :func:`gemm_bitplanes`.

    Fast path: float64 BLAS is exact while K * max|a| * max|b| < 2^53; otherwise int64 matmul.
    Wrapping is applied once at the end: modular addition is associative, so it equals wrapping after
    every plane pair.
    """
    a = check_operand(a, a_bits, a_signed, "a")
    b = check_operand(b, b_bits, b_signed, "b")
    _check_shapes(a, b)
    bound = a.shape[1] * (1 << a_bits) * (1 << b_bits)
    if bound < 1 << 53:
        c = np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    else:
        c = a @ b
    return wrap(c, acc_width) if acc_width is not None else c


def gemm_cost(m: int, n: int, k: int, a_bits: int, b_bits: int) -> int:
    """Useful binary AND+popcount operations of one GEMM: M N K a_bits b_bits (the BitOPs metric)."""
    return m * n * k * a_bits * b_bits


# ----------------------------------------------------------------------------- counter-based RNG

_M32 = 0xFFFFFFFF


def _mul32(h: Any, c: int) -> Any:
    """(h * c) mod 2^32 for h < 2^32 held in int64, without int64 overflow (works on numpy and torch)."""
    lo, hi = c & 0xFFFF, c >> 16
    return ((h * lo) + (((h * hi) & 0xFFFF) << 16)) & _M32


def _fmix32(h: Any) -> Any:
    """MurmurHash3's 32-bit finaliser: a bijection on 32-bit values with full avalanche."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def counter_hash(seed: int, counter: Any) -> Any:
    """32-bit hash of (seed, counter): counter is an int64 array (numpy or torch) of values < 2^62.

    Only shifts, xors, ands and products below 2^48 are used, so numpy, torch (CPU and CUDA) and an
    HLS/RTL implementation agree bit for bit.
    """
    s0 = _fmix32(seed & _M32 ^ 0x9E3779B9)
    s1 = _fmix32((seed >> 32) & _M32 ^ 0x7F4A7C15)
    h = _fmix32((counter & _M32) ^ s0)
    return _fmix32(h ^ ((counter >> 32) & _M32) ^ s1)


def counter_uniform(seed: int, counter: Any) -> Any:
    """Uniform noise in [-0.5, 0.5) with 24-bit resolution (exact in float32) for each counter."""
    h = counter_hash(seed, counter)
    return (h >> 8) * (1.0 / (1 << 24)) - 0.5


# ----------------------------------------------------------------------------- quantizers

SCALE_FLOOR = np.float32(1e-8)


def quant_params(x_min: np.ndarray, x_max: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero_point) in float32 for range [x_min, x_max]: s = max((max-min)/(2^b-1), 1e-8), z = min."""
    if bits < 1:
        raise ValueError(f"bits = {bits}: quantization needs >= 1 bit (0 means full precision: do not quantize)")
    x_min = np.asarray(x_min, dtype=np.float32)
    x_max = np.asarray(x_max, dtype=np.float32)
    scale = np.maximum((x_max - x_min) / np.float32(2**bits - 1), SCALE_FLOOR)
    return scale.astype(np.float32), x_min


def quantize(x: np.ndarray, bits: int, x_min: np.ndarray, x_max: np.ndarray, *, stochastic: bool = False,
             seed: int = 0, counter_offset: int = 0) -> np.ndarray:
    """Unsigned integer codes q in [0, 2^bits - 1] (int64) of float32 ``x``.

    x_min/x_max broadcast against x (a scalar per tensor, or one value per output channel with a shape
    such as (C, 1, 1, 1)).  Stochastic rounding adds counter_uniform(seed, counter_offset + flat index)
    before clamping, as the reference implementation adds uniform noise before clamp and round.
    """
    x = np.asarray(x, dtype=np.float32)
    scale, zero_point = quant_params(x_min, x_max, bits)
    v = (x - zero_point) / scale
    if stochastic:
        counter = counter_offset + np.arange(x.size, dtype=np.int64).reshape(x.shape)
        v = v + counter_uniform(seed, counter).astype(np.float32)
    v = np.clip(v, np.float32(0), np.float32(2**bits - 1))
    return np.rint(v).astype(np.int64)


def dequantize(q: np.ndarray, x_min: np.ndarray, x_max: np.ndarray, bits: int) -> np.ndarray:
    """x_hat = s q + min in float32."""
    scale, zero_point = quant_params(x_min, x_max, bits)
    return (np.asarray(q, dtype=np.float32) * scale + zero_point).astype(np.float32)
