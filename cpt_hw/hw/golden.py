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
The CPT quantizer in integer form (docs/numerics.md, "Quantizers"), in float32 arithmetic so that the torch
front end reproduces it exactly:  s = max((max - min)/(2^b - 1), 1e-8),
q = round_half_even(clamp((x - min)/s [+ noise], 0, 2^b - 1)), x_hat = s q + min.  Stochastic
rounding draws its noise from :func:`counter_uniform`, a counter-based generator (hash of seed and
element index), so any implementation that knows (seed, counter) reproduces the same draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cpt_driver.conv import CONV_MAX_KERNEL, CONV_PADDINGS, CONV_STRIDES

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


def fmix32(h: Any) -> Any:
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
    s0 = fmix32(seed & _M32 ^ 0x9E3779B9)
    s1 = fmix32((seed >> 32) & _M32 ^ 0x7F4A7C15)
    h = fmix32((counter & _M32) ^ s0)
    return fmix32(h ^ ((counter >> 32) & _M32) ^ s1)


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


# ----------------------------------------------------------------------------- convolution
#
# The convolution-native calls (issue 17; design: docs/architecture.md, "Convolution-native accelerator").
# Same integer semantics as the GEMM: exact products of two's-complement codes, wrapped to acc_width when
# given.  The three functions mirror torch.nn.functional.conv2d, torch.nn.grad.conv2d_input and
# torch.nn.grad.conv2d_weight (NCHW tensors, weights (K, C, kh, kw), cross-correlation, zero padding).
# They are computed tap by tap -- one shifted, strided view of the (padded) tensor per kernel tap,
# contracted over channels (forward, input gradient) or over (n, h, w) (weight gradient) -- not through an
# im2col, so that the tests' comparison with golden.gemm on the host's im2col lowering checks two
# independent formulations against each other.

# The strides and paddings the convolution calls implement (issue 17; anything else is refused) and the
# largest kernel side when the caller gives none are the driver's (cpt_driver.conv): one definition.


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis: (size + 2 padding - kernel) // stride + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def _int_arg(what: str, name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{what}: {name} = {v!r}: must be an integer")
    return int(v)


def _check_geometry(what: str, stride: Any, padding: Any, groups: Any) -> tuple[int, int]:
    stride, padding = _int_arg(what, "stride", stride), _int_arg(what, "padding", padding)
    if _int_arg(what, "groups", groups) != 1:
        raise ValueError(f"{what}: groups = {groups}: only groups = 1 is supported (no grouped or depthwise "
                         "convolution)")
    if stride not in CONV_STRIDES:
        raise ValueError(f"{what}: stride = {stride}: supported strides are {CONV_STRIDES}")
    if padding not in CONV_PADDINGS:
        raise ValueError(f"{what}: padding = {padding}: supported paddings are {CONV_PADDINGS}")
    return stride, padding


def _shape4(what: str, name: str, shape: Any, layout: str) -> tuple[int, int, int, int]:
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(f"{what}: {name} must be 4-D {layout}, got shape {shape}")
    dims = tuple(_int_arg(what, f"{name} dimension", d) for d in shape)
    if min(dims) < 1:
        raise ValueError(f"{what}: {name} {layout} = {dims}: every dimension must be >= 1")
    return dims  # type: ignore[return-value]


def _conv_geometry(what: str, x_shape: Any, w_shape: Any, stride: int, padding: int, max_kernel: int,
                   x_name: str, w_name: str) -> tuple[int, int]:
    """Check (N, C, H, W) against (K, C, kh, kw); returns (Ho, Wo)."""
    n, c, h, w = _shape4(what, x_name, x_shape, "(N, C, H, W)")
    k, cw, kh, kw = _shape4(what, w_name, w_shape, "(K, C, kh, kw)")
    if cw != c:
        raise ValueError(f"{what}: {x_name} has C = {c} channels, {w_name} {(k, cw, kh, kw)} expects {cw}")
    if max(kh, kw) > max_kernel:
        raise ValueError(f"{what}: kernel {kh}x{kw} exceeds the largest supported side, max_kernel = {max_kernel}")
    if h + 2 * padding < kh or w + 2 * padding < kw:
        raise ValueError(f"{what}: kernel {kh}x{kw} does not fit the input {h}x{w} padded by {padding}")
    return conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)


def _exact_sum_of_products(bound: int) -> type:
    """float64 when every partial sum stays below 2^53 (exact, BLAS speed), int64 otherwise."""
    return np.float64 if bound < 1 << 53 else np.int64


def _finish(acc: np.ndarray, acc_width: int | None) -> np.ndarray:
    out = np.rint(acc).astype(np.int64) if acc.dtype == np.float64 else acc
    return wrap(out, acc_width) if acc_width is not None else out


def _padded_channels_last(x: np.ndarray, padding: int, dtype: type) -> np.ndarray:
    """(N, C, H, W) -> (N, H + 2p, W + 2p, C) in ``dtype``, zeros around (the padding is never a code)."""
    n, c, h, w = x.shape
    out = np.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=dtype)
    out[:, padding:padding + h, padding:padding + w, :] = x.transpose(0, 2, 3, 1)
    return out


def conv2d(x: np.ndarray, w: np.ndarray, *, x_bits: int, w_bits: int, stride: int = 1, padding: int = 0,
           x_signed: bool = False, w_signed: bool = False, groups: int = 1, max_kernel: int = CONV_MAX_KERNEL,
           acc_width: int | None = None) -> np.ndarray:
    """What the accelerator returns for ``torch.nn.functional.conv2d(x, w, stride=, padding=)``.

    x: (N, C, H, W) codes fitting ``x_bits``/``x_signed``; w: (K, C, kh, kw) fitting ``w_bits``/``w_signed``.
    Returns int64 (N, K, Ho, Wo): Y[n,k,ho,wo] = sum over (i, j, c) of w[k,c,i,j] x[n,c,ho s - p + i,
    wo s - p + j], padding taps contributing 0.
    """
    what = "conv2d"
    stride, padding = _check_geometry(what, stride, padding, groups)
    x = check_operand(x, x_bits, x_signed, "conv2d: x")
    w = check_operand(w, w_bits, w_signed, "conv2d: w")
    ho, wo = _conv_geometry(what, x.shape, w.shape, stride, padding, max_kernel, "x", "w")
    n, c = x.shape[:2]
    k, _, kh, kw = w.shape
    dtype = _exact_sum_of_products(c * kh * kw * (1 << x_bits) * (1 << w_bits))
    xp = _padded_channels_last(x, padding, dtype)
    wt = w.astype(dtype)
    acc = np.zeros((n * ho * wo, k), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            win = xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]
            acc += win.reshape(-1, c) @ wt[:, :, i, j].T
    return _finish(acc, acc_width).reshape(n, ho, wo, k).transpose(0, 3, 1, 2).copy()


def conv2d_input(input_size: Any, w: np.ndarray, e: np.ndarray, *, w_bits: int, e_bits: int, stride: int = 1,
                 padding: int = 0, w_signed: bool = False, e_signed: bool = False, groups: int = 1,
                 max_kernel: int = CONV_MAX_KERNEL, acc_width: int | None = None) -> np.ndarray:
    """What the accelerator returns for ``torch.nn.grad.conv2d_input(input_size, w, e, stride=, padding=)``:
    the transposed convolution of the error.

    input_size: (N, C, H, W) of the forward input (it fixes H and W where a stride-2 output size has two
    preimages); w: (K, C, kh, kw); e: (N, K, Ho, Wo).  Returns int64 (N, C, H, W):
    dX[n,c,h,w] = sum of e[n,k,ho,wo] w[k,c,i,j] over h = ho s - p + i, w = wo s - p + j.
    """
    what = "conv2d_input"
    stride, padding = _check_geometry(what, stride, padding, groups)
    w = check_operand(w, w_bits, w_signed, "conv2d_input: w")
    e = check_operand(e, e_bits, e_signed, "conv2d_input: e")
    x_shape = _shape4(what, "input_size", input_size, "(N, C, H, W)")
    ho, wo = _conv_geometry(what, x_shape, w.shape, stride, padding, max_kernel, "input_size", "w")
    n, c, h, wd = x_shape
    k, _, kh, kw = w.shape
    if e.shape != (n, k, ho, wo):
        raise ValueError(f"{what}: e has shape {e.shape}, expected (N, K, Ho, Wo) = {(n, k, ho, wo)} for input "
                         f"{x_shape}, weight {w.shape}, stride {stride}, padding {padding}")
    dtype = _exact_sum_of_products(k * kh * kw * (1 << w_bits) * (1 << e_bits))
    et = e.transpose(0, 2, 3, 1).reshape(-1, k).astype(dtype)
    wt = w.astype(dtype)
    acc = np.zeros((n, h + 2 * padding, wd + 2 * padding, c), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            acc[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :] += \
                (et @ wt[:, :, i, j]).reshape(n, ho, wo, c)
    acc = acc[:, padding:padding + h, padding:padding + wd, :]
    return _finish(np.ascontiguousarray(acc), acc_width).transpose(0, 3, 1, 2).copy()


def conv2d_weight(x: np.ndarray, weight_size: Any, e: np.ndarray, *, x_bits: int, e_bits: int, stride: int = 1,
                  padding: int = 0, x_signed: bool = False, e_signed: bool = False, groups: int = 1,
                  max_kernel: int = CONV_MAX_KERNEL, acc_width: int | None = None) -> np.ndarray:
    """What the accelerator returns for ``torch.nn.grad.conv2d_weight(x, weight_size, e, stride=, padding=)``:
    the reduction over (n, ho, wo).

    x: (N, C, H, W); weight_size: (K, C, kh, kw); e: (N, K, Ho, Wo).  Returns int64 (K, C, kh, kw):
    dW[k,c,i,j] = sum over (n, ho, wo) of e[n,k,ho,wo] x[n,c,ho s - p + i, wo s - p + j].
    With acc_width, the whole reduction is wrapped once (the driver splits it into calls that cannot wrap).
    """
    what = "conv2d_weight"
    stride, padding = _check_geometry(what, stride, padding, groups)
    x = check_operand(x, x_bits, x_signed, "conv2d_weight: x")
    e = check_operand(e, e_bits, e_signed, "conv2d_weight: e")
    w_shape = _shape4(what, "weight_size", weight_size, "(K, C, kh, kw)")
    ho, wo = _conv_geometry(what, x.shape, w_shape, stride, padding, max_kernel, "x", "weight_size")
    n, c = x.shape[:2]
    k, _, kh, kw = w_shape
    if e.shape != (n, k, ho, wo):
        raise ValueError(f"{what}: e has shape {e.shape}, expected (N, K, Ho, Wo) = {(n, k, ho, wo)} for input "
                         f"{x.shape}, weight {w_shape}, stride {stride}, padding {padding}")
    dtype = _exact_sum_of_products(n * ho * wo * (1 << x_bits) * (1 << e_bits))
    xp = _padded_channels_last(x, padding, dtype)
    et = e.transpose(1, 0, 2, 3).reshape(k, -1).astype(dtype)
    acc = np.zeros((kh, kw, k, c), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            win = xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]
            acc[i, j] = et @ win.reshape(-1, c)
    return _finish(acc, acc_width).transpose(2, 3, 0, 1).copy()
