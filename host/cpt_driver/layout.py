"""DDR layout of operands and results: the contract between host, HLS kernel and RTL.

Operands are packed by the host into **bit planes** (the accelerator never bit-transposes):

* A (M x K, ``a_bits``) is stored row by row; row m holds its planes i = 0 .. a_bits-1 (LSB first),
  each plane a bit string of K bits zero-padded to ``Kw = ceil(K / D)`` words of D bits::

      byte address of word (m, i, w) = a + ((m * a_bits + i) * Kw + w) * D/8

* B (K x N, ``b_bits``) is stored transposed, column n of B taking the place of row m of A::

      byte address of word (n, j, w) = b + ((n * b_bits + j) * Kw + w) * D/8

* Bit k of a plane row is bit (k mod 8) of byte k // 8 of that row (little-endian bit order), so a
  D-bit word read little-endian from memory has bit k - w*D of plane row w at bit position k - w*D.
  Plane i of a value is bit i of its ``bits``-bit two's-complement code; the hardware gives the top
  plane of a signed operand weight -2^(bits-1).
* C (M x N) is written as int32, little-endian, row-major with a row stride of
  ``round_up(N, cols)`` elements; the columns past N hold zeros computed from the zero padding.

All addresses must be multiples of D/8 bytes.  Everything here is vectorised numpy.
"""

from __future__ import annotations

import numpy as np


def words_per_row(k: int, dot_width: int) -> int:
    """Kw: D-bit words in one plane row of K bits."""
    return -(-k // dot_width)


def plane_row_bytes(k: int, dot_width: int) -> int:
    return words_per_row(k, dot_width) * dot_width // 8


def operand_bytes(rows: int, k: int, bits: int, dot_width: int) -> int:
    """Bytes of a packed operand with ``rows`` rows (M for A, N for B) of K values at ``bits``."""
    return rows * bits * plane_row_bytes(k, dot_width)


def result_stride(n: int, cols: int) -> int:
    """Row stride of C in int32 elements: N rounded up to the array's column count."""
    return -(-n // cols) * cols


def result_bytes(m: int, n: int, cols: int) -> int:
    return m * result_stride(n, cols) * 4


def pack_rows(x: np.ndarray, bits: int, dot_width: int) -> np.ndarray:
    """Pack (R, K) integers into (R, bits, Kw*D/8) uint8 bit-plane rows (two's-complement codes)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"pack_rows: expected a 2-D array, got shape {x.shape}")
    r, k = x.shape
    kpad = words_per_row(k, dot_width) * dot_width
    code = np.zeros((r, kpad), dtype=np.uint16 if bits > 8 else np.uint8)
    code[:, :k] = x.astype(np.int64) & ((1 << bits) - 1)
    # (R, Kpad, 16|8) bits, LSB first, then planes first and bits along K packed little-endian.
    bits_le = np.unpackbits(code.view(np.uint8).reshape(r, kpad, -1), axis=-1, bitorder="little")
    planes = bits_le[:, :, :bits].transpose(0, 2, 1)
    return np.packbits(planes, axis=-1, bitorder="little")


def unpack_rows(packed: np.ndarray, bits: int, signed: bool, k: int) -> np.ndarray:
    """Inverse of :func:`pack_rows`: (R, bits, row_bytes) uint8 -> (R, K) int64."""
    planes = np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=-1, bitorder="little")[:, :, :k]
    weights = np.left_shift(np.int64(1), np.arange(bits, dtype=np.int64))
    if signed:
        weights[-1] = -weights[-1]
    return np.einsum("rbk,b->rk", planes.astype(np.int64), weights)


def pack_a(a: np.ndarray, a_bits: int, dot_width: int) -> np.ndarray:
    """A (M x K) -> packed bytes, flat uint8."""
    return pack_rows(a, a_bits, dot_width).reshape(-1)


def pack_b(b: np.ndarray, b_bits: int, dot_width: int) -> np.ndarray:
    """B (K x N) -> packed bytes of its transpose, flat uint8."""
    return pack_rows(np.asarray(b).T, b_bits, dot_width).reshape(-1)


def unpack_result(raw: np.ndarray, m: int, n: int, cols: int) -> np.ndarray:
    """C bytes (or int32 words) as written by the accelerator -> (M, N) int64."""
    words = np.asarray(raw).reshape(-1).view(np.uint8).view("<i4")
    stride = result_stride(n, cols)
    return words[: m * stride].reshape(m, stride)[:, :n].astype(np.int64)
