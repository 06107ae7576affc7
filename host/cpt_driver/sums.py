"""A convolution's code sums on the host: what the interface-4 engine writes with flags bit SUMS
(docs/registers.md), for the calls it does not write them in (a convolution lowered to GEMMs, a device that
refuses SUMS in an op).  The zero-point corrections of a quantized convolution need exactly these:

* :func:`window_sums`: forward, each output position's sum of x's codes over its window (padding counts 0),
  (N, Ho, Wo) = ``conv2d(x, ones(1, C, kh, kw))``: the SUMS rows of a forward call;
* :func:`x_tap_sums`: weight gradient, each tap's sum of x's codes per channel over the positions it reads,
  (C, kh, kw) = ``conv2d_weight(x, (1, C, kh, kw), ones(N, 1, Ho, Wo))[0]``: the SUMS rows of its calls;
* :func:`e_tap_sums`: weight gradient, each tap's sum of e per output channel over the outputs where it reads
  a real input, (K, kh, kw) = ``conv2d_weight(ones(N, 1, H, W), (K, 1, kh, kw), e)[:, 0]``: the SUMS columns.

Exact int64, in any order: channel (or batch) sums first, then strided slices of the zero-padded sums.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .conv import ConvShape

#: One code sum as the engine writes it with SUMS (registers.md: int32, little-endian).  cpt_hw's
#: ``conv_calls.SUM_BYTES`` is the source of truth; the driver runs on the board without cpt_hw, so the test suite
#: checks the two agree.
SUM_DTYPE = np.dtype("<i4")
SUM_BYTES = SUM_DTYPE.itemsize


def _taps(size: int, out: int, stride: int, padding: int, tap: int) -> slice:
    """The outputs o (of ``out``) whose tap ``tap`` reads a real input o s - p + tap in [0, size)."""
    first = max(0, -(-(padding - tap) // stride))
    last = min(out, (size - 1 + padding - tap) // stride + 1)
    return slice(first, max(first, last))


def _strided(a: np.ndarray, g: "ConvShape", i: int, j: int) -> np.ndarray:
    """The zero-padded (..., H + 2p, W + 2p) ``a`` at tap (i, j) of every output: (..., Ho, Wo)."""
    s = g.stride
    return a[..., i:i + s * (g.ho - 1) + 1:s, j:j + s * (g.wo - 1) + 1:s]


def _padded(a: np.ndarray, p: int) -> np.ndarray:
    return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(p, p), (p, p)]) if p else a


def window_sums(x: np.ndarray, g: "ConvShape") -> np.ndarray:
    """int64 (N, Ho, Wo): each output's sum of the codes x (N, C, H, W) over its kh x kw window."""
    s = _padded(x.sum(axis=1, dtype=np.int64), g.padding)
    out = np.zeros((g.n, g.ho, g.wo), dtype=np.int64)
    for i in range(g.kh):
        for j in range(g.kw):
            out += _strided(s, g, i, j)
    return out


def x_tap_sums(x: np.ndarray, g: "ConvShape") -> np.ndarray:
    """int64 (C, kh, kw): per channel and tap, the sum of x's codes at the input positions that tap reads."""
    s = _padded(x.sum(axis=0, dtype=np.int64), g.padding)
    out = np.empty((g.c, g.kh, g.kw), dtype=np.int64)
    for i in range(g.kh):
        for j in range(g.kw):
            out[:, i, j] = _strided(s, g, i, j).sum(axis=(1, 2))
    return out


def e_tap_sums(e: np.ndarray, g: "ConvShape") -> np.ndarray:
    """int64 (K, kh, kw): per output channel and tap, the sum of e (N, K, Ho, Wo) over the outputs whose tap
    reads a real input (not padding)."""
    s = e.sum(axis=0, dtype=np.int64)
    out = np.empty((g.k, g.kh, g.kw), dtype=np.int64)
    for i in range(g.kh):
        rows = _taps(g.h, g.ho, g.stride, g.padding, i)
        for j in range(g.kw):
            out[:, i, j] = s[:, rows, _taps(g.w, g.wo, g.stride, g.padding, j)].sum(axis=(1, 2))
    return out
