"""A operands the driver packs on request: a convolution's lowered input, without the lowered copy.

A convolution lowered to a GEMM repeats every input element k^2 times in its A operand (im2col), and
packing that operand into bit planes (:func:`layout.pack_rows_into`) repeats the bit transposition k^2
times.  A :class:`RowSource` describes such an operand instead: the driver asks it for the packed plane
rows of each tile (:meth:`RowSource.pack_into`), and the two sources here pack the convolution's input
codes once per tensor and then only gather bytes:

* :class:`Im2colRows` -- rows (b, ho, wo), columns (i, j, c): the forward GEMM's A (and, on the dilated,
  padded error, the input gradient's), the layout of ``cpt_hw.nn.ops.ConvOps.lower``.  Each position's
  C/G channel codes are packed once into ``bits`` plane units of C/8 bytes; tap (i, j) of a row is then
  a unit copied from position (ho s + i d, wo s + j d): a column block of C bits starts on a byte
  boundary when C is a multiple of 8.
* :class:`TapRows` -- rows (i, j, c), columns (b, ho, wo): the weight gradient's A (``ConvOps.lower_t``).
  For each kernel column j the input's rows are packed once along wo (shifted by j d, stepped by s) into
  units of Wo/8 bytes; row (i, j, c) is then the units of rows ho s + i d of channel c, line by line.

Both produce exactly the bytes of ``pack_rows_into`` on the materialised operand
(tests/test_driver_sources.py) and fall back to it where the units do not fall on byte boundaries (C or
Wo not a multiple of 8 or a unit wider than 8 bytes, a K range that splits a unit) or above 8 bits.
Everything is vectorised numpy: strided copies of 1..8-byte units replace the lowered copy and the
per-tile bit transposition of its k^2-fold bytes (the k^2 kernel taps share one transposition in
Im2colRows, the kh rows in TapRows).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from . import layout

#: numpy dtype of a plane unit of 1, 2, 4 or 8 bytes (a unit is moved as one element).
_UNIT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


class RowSource:
    """An A operand of ``shape`` (M, K) whose values fit ``bits`` bits (two's complement when ``signed``),
    packed tile by tile.  Packing takes the low ``bits`` bits of each code, so signed codes need nothing
    else; the zeros of a convolution's padding are zero in both encodings."""

    shape: tuple[int, int]
    bits: int
    signed: bool = False

    def pack_into(self, r0: int, r1: int, k0: int, k1: int, bits: int, dot_width: int, out: np.ndarray) -> None:
        """Write what ``layout.pack_rows_into(self.rows(r0, r1, k0, k1), bits, dot_width)`` writes into
        ``out`` (uint8 (r1 - r0, bits, row_bytes), contiguous)."""
        layout.pack_rows_into(self.rows(r0, r1, k0, k1), bits, dot_width, out=out)

    def rows(self, r0: int, r1: int, k0: int, k1: int) -> np.ndarray:
        """The operand's values A[r0:r1, k0:k1] (the slow path and the reference)."""
        raise NotImplementedError


def pack_tile(src: RowSource, r0: int, r1: int, k0: int, k1: int, bits: int, dot_width: int, out: np.ndarray) -> None:
    """The driver's one call into a source (benchmarks time it as packing)."""
    src.pack_into(r0, r1, k0, k1, bits, dot_width, out)


def _blocks(r0: int, r1: int, h: int, w: int) -> Iterator[tuple[int, int, int, int, int, int]]:
    """Rows r0..r1 of a (B, H, W) grid in row-major order as boxes (b0, b1, h0, h1, w0, w1): a partial
    line, then whole lines of one sample, then whole samples, and so on."""
    p = h * w
    r = r0
    while r < r1:
        b, rem = divmod(r, p)
        y, x = divmod(rem, w)
        if x or r1 - r < w:
            x1 = min(w, x + r1 - r)
            yield b, b + 1, y, y + 1, x, x1
            r += x1 - x
        elif y or r1 - r < p:
            ny = min(h - y, (r1 - r) // w)
            yield b, b + 1, y, y + ny, 0, w
            r += ny * w
        else:
            nb = (r1 - r) // p
            yield b, b + nb, 0, h, 0, w
            r += nb * p


def _units(codes: np.ndarray, bits: int) -> np.ndarray:
    """(..., L) codes, L a multiple of 8 with L/8 in 1, 2, 4, 8 -> (..., bits) plane units: unit p holds
    plane p of the L codes, packed as ``pack_rows_into`` packs a row (bit l of the unit's bytes = code l)."""
    lead, length = codes.shape[:-1], codes.shape[-1]
    packed = layout.pack_rows_into(codes.reshape(-1, length), bits, 8)   # (R, bits, L/8): no word padding
    return packed.reshape(-1, bits * (length // 8)).view(_UNIT[length // 8]).reshape(*lead, bits)


def _out_size(size: int, kernel: int, stride: int, dilation: int) -> int:
    return (size - dilation * (kernel - 1) - 1) // stride + 1


class Im2colRows(RowSource):
    """im2col of a zero-padded channels-last code tensor x (B, Hp, Wp, C): A[(b, ho, wo), (i, j, c)] =
    x[b, ho s + i d, wo s + j d, c] (stride s, dilation d per axis), M = B Ho Wo, K = kh kw C."""

    def __init__(self, x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
                 bits: int, signed: bool = False) -> None:
        self.x, self.kernel, self.stride, self.dilation, self.bits = x, kernel, stride, dilation, bits
        self.signed = signed
        b, hp, wp, c = x.shape
        self.out_hw = (_out_size(hp, kernel[0], stride[0], dilation[0]),
                       _out_size(wp, kernel[1], stride[1], dilation[1]))
        self.shape = (b * self.out_hw[0] * self.out_hw[1], kernel[0] * kernel[1] * c)
        self._packed: dict[int, np.ndarray] = {}

    def _window(self, a: np.ndarray) -> np.ndarray:
        """(B, Hp, Wp, T) -> the strided view (B, Ho, Wo, T, kh, kw) of each output position's taps."""
        sb, sh, sw, st = a.strides
        (kh, kw), (s0, s1), (d0, d1) = self.kernel, self.stride, self.dilation
        return np.lib.stride_tricks.as_strided(a, (a.shape[0], *self.out_hw, a.shape[3], kh, kw),
                                               (sb, sh * s0, sw * s1, st, sh * d0, sw * d1), writeable=False)

    def rows(self, r0: int, r1: int, k0: int, k1: int) -> np.ndarray:
        ho, wo = self.out_hw
        kh, kw = self.kernel
        win = self._window(self.x).transpose(0, 1, 2, 4, 5, 3)          # (B, Ho, Wo, kh, kw, C)
        out = np.empty((r1 - r0, self.shape[1]), dtype=self.x.dtype)
        r = 0
        for b0, b1, h0, h1, w0, w1 in _blocks(r0, r1, ho, wo):
            n = (b1 - b0) * (h1 - h0) * (w1 - w0)
            out[r:r + n].reshape(b1 - b0, h1 - h0, w1 - w0, kh, kw, -1)[...] = win[b0:b1, h0:h1, w0:w1]
            r += n
        return out[:, k0:k1]

    def pack_into(self, r0: int, r1: int, k0: int, k1: int, bits: int, dot_width: int, out: np.ndarray) -> None:
        c = self.x.shape[3]
        if bits > 8 or c % 8 or c // 8 not in _UNIT or (k0, k1) != (0, self.shape[1]):
            return super().pack_into(r0, r1, k0, k1, bits, dot_width, out)
        if bits not in self._packed:  # every position's channel codes, packed once per tensor
            self._packed[bits] = _units(self.x, bits)                  # (B, Hp, Wp, bits)
        win = self._window(self._packed[bits])                          # (B, Ho, Wo, bits, kh, kw)
        kh, kw = self.kernel
        taps = kh * kw
        dest = out.view(_UNIT[c // 8]).reshape(r1 - r0, bits, -1)       # units: tap t of plane p at [:, p, t]
        dest[:, :, taps:] = 0                                           # padding up to a whole D-bit word
        ho, wo = self.out_hw
        r = 0
        for b0, b1, h0, h1, w0, w1 in _blocks(r0, r1, ho, wo):
            n = (b1 - b0) * (h1 - h0) * (w1 - w0)
            block = dest[r:r + n].reshape(b1 - b0, h1 - h0, w1 - w0, bits, -1)
            for t in range(taps):  # one tap at a time: 2-4x faster than one copy of all (numpy's loop order)
                np.copyto(block[..., t], win[b0:b1, h0:h1, w0:w1, :, t // kw, t % kw])
            r += n


class TapRows(RowSource):
    """The transposed im2col of a zero-padded NCHW code tensor x (B, C, Hp, Wp): A[(i, j, c), (b, ho, wo)] =
    x[b, c, ho s + i d, wo s + j d], M = kh kw C rows, K = B Ho Wo columns."""

    def __init__(self, x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
                 bits: int, signed: bool = False) -> None:
        self.x, self.kernel, self.stride, self.dilation, self.bits = x, kernel, stride, dilation, bits
        self.signed = signed
        b, c, hp, wp = x.shape
        self.out_hw = (_out_size(hp, kernel[0], stride[0], dilation[0]),
                       _out_size(wp, kernel[1], stride[1], dilation[1]))
        self.shape = (kernel[0] * kernel[1] * c, b * self.out_hw[0] * self.out_hw[1])
        self._packed: dict[tuple[int, int], np.ndarray] = {}

    def _taps(self, a: np.ndarray, j: int) -> np.ndarray:
        """Kernel column j of a (B, C, Hp, Wp, ...): the (B, C, Hp, Wo, ...) entries x[..., wo s + j d]."""
        s, d = self.stride[1], self.dilation[1]
        return a[:, :, :, j * d: j * d + s * (self.out_hw[1] - 1) + 1: s]

    def rows(self, r0: int, r1: int, k0: int, k1: int) -> np.ndarray:
        (_, kw), (s0, _), (d0, _) = self.kernel, self.stride, self.dilation
        ho = self.out_hw[0]
        c = self.x.shape[1]
        out = np.empty((r1 - r0, self.shape[1]), dtype=self.x.dtype)
        for r in range(r0, r1):
            i, rem = divmod(r, kw * c)
            j, ch = divmod(rem, c)
            out[r - r0] = self._taps(self.x, j)[:, ch, i * d0: i * d0 + s0 * (ho - 1) + 1: s0].reshape(-1)
        return out[:, k0:k1]

    def pack_into(self, r0: int, r1: int, k0: int, k1: int, bits: int, dot_width: int, out: np.ndarray) -> None:
        ho, wo = self.out_hw
        if bits > 8 or wo % 8 or wo // 8 not in _UNIT or k0 % wo or k1 % wo:
            return super().pack_into(r0, r1, k0, k1, bits, dot_width, out)
        (_, kw), (s0, _), (d0, _) = self.kernel, self.stride, self.dilation
        c = self.x.shape[1]
        lines = (k1 - k0) // wo                                         # units of one plane row
        dest = out.view(_UNIT[wo // 8]).reshape(r1 - r0, bits, -1)
        dest[:, :, lines:] = 0
        r = r0
        while r < r1:  # one kernel tap (i, j) and a range of channels at a time
            i, rem = divmod(r, kw * c)
            j, c0 = divmod(rem, c)
            c1 = min(c, c0 + r1 - r)
            if (bits, j) not in self._packed:  # each kernel column's input rows, packed once along wo,
                units = _units(np.ascontiguousarray(self._taps(self.x, j)), bits)           # (B, C, Hp, bits)
                # kept as (C, bits, B, Hp): a row's units for consecutive ho are then adjacent (stride 1)
                self._packed[(bits, j)] = np.ascontiguousarray(units.transpose(1, 3, 0, 2))
            src = self._packed[(bits, j)][c0:c1, :, :, i * d0: i * d0 + s0 * (ho - 1) + 1: s0]  # (c, bits, B, Ho)
            rows = dest[r - r0: r - r0 + c1 - c0]                       # (c, bits, units)
            u = 0
            for b0, b1, h0, h1, _, _ in _blocks(k0 // wo, k1 // wo, ho, 1):  # lines (b, ho) of the K range
                n = (b1 - b0) * (h1 - h0)
                np.copyto(rows[:, :, u:u + n].reshape(c1 - c0, bits, b1 - b0, h1 - h0), src[:, :, b0:b1, h0:h1])
                u += n
            r += c1 - c0
