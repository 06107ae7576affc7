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

import mmap
from functools import lru_cache

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


def call_traffic(m: int, n: int, k: int, a_bits: int, b_bits: int, dot_width: int, cols: int, b_block_cols: int,
                 *, b_prefetched: bool = False, hint: tuple[int, int, int] | None = None) -> tuple[int, int]:
    """(bytes read, bytes written) of one call the device runs, from its arguments: the device loads B a
    block of ``b_block_cols`` columns at a time and streams all of A against each block, so it reads A
    once per block and B once, except block 0 when the previous call prefetched it (``b_prefetched``),
    plus, for a call carrying a hint (next_n, next_k, next_b_bits), the next call's block 0; it writes
    C once (docs/architecture.md, "Dataflow"; docs/registers.md, "B prefetch").  Tested equal to the
    cycle model's AXI beats (tests/test_driver_conv.py)."""
    blocks = -(-n // b_block_cols)
    read = blocks * operand_bytes(m, k, a_bits, dot_width) + operand_bytes(n, k, b_bits, dot_width)
    if b_prefetched:
        read -= operand_bytes(min(n, b_block_cols), k, b_bits, dot_width)
    if hint is not None:
        next_n, next_k, next_b_bits = hint
        read += operand_bytes(min(next_n, b_block_cols), next_k, next_b_bits, dot_width)
    return read, result_bytes(m, n, cols)


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


# ----------------------------------------------------------------------------- fast paths (bits <= 8)
# Additive: these produce exactly the bytes of pack_rows and the values of unpack_rows
# (tests/test_driver_layout.py proves it), 8 elements at a time.  Eight consecutive byte codes viewed
# as one little-endian uint64 form an 8 x 8 bit matrix (byte j = element j, bit i = plane i); its
# transpose has byte i = the packed byte of plane i (bit j = element j), which is exactly the layout
# above.  So packing and unpacking are the same in-register 8 x 8 bit transpose (Hacker's Delight
# 7-3), applied to row chunks small enough to stay in cache.  The remaining byte shuffle between
# "8 plane bytes per word" and "plane rows" is one gather (np.take) with a cached index, which also
# writes the zero padding: numpy's strided copies would run an inner loop of only ceil(K/8) bytes.

_TRANSPOSE8_STEPS = tuple((np.uint64(mask), np.uint64(shift)) for mask, shift in (
    (0x00AA00AA00AA00AA, 7), (0x0000CCCC0000CCCC, 14), (0x00000000F0F0F0F0, 28)))
_LOW_BIT_OF_EACH_BYTE = 0x0101010101010101
#: uint64 words per chunk: 128 KiB of words plus one temporary stays in L2.
_CHUNK_WORDS = 16384
#: Below this many words the ~20 numpy calls of the transpose cost more than the bit-per-byte reference.
_SMALL_WORDS = 256


def _transpose8(x: np.ndarray, tmp: np.ndarray) -> None:
    """In place: transpose the 8 x 8 bit matrix (byte = row, bit = column) held in each uint64 of x."""
    for mask, shift in _TRANSPOSE8_STEPS:
        np.right_shift(x, shift, out=tmp)
        np.bitwise_xor(tmp, x, out=tmp)
        np.bitwise_and(tmp, mask, out=tmp)
        np.bitwise_xor(x, tmp, out=x)
        np.left_shift(tmp, shift, out=tmp)
        np.bitwise_xor(x, tmp, out=x)


def offheap_array(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A zeroed array in an anonymous memory map of its own, not in the malloc heap.  For long-lived
    buffers made while activation-sized temporaries come and go (the gather indices below, made on first
    use of each shape in the middle of a training iteration): in the heap they would stay behind as islands
    that split its free space, so that later large requests grow the heap instead of reusing it (seen in a
    malloc trace of a ResNet-20 training iteration: 0.5-2 MB index tables spread over 100 MB of otherwise
    free heap; docs/zc706-pynq.md, "Memory").  The map is unmapped when the array is freed."""
    nbytes = max(1, int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype, count=int(np.prod(shape, dtype=np.int64))).reshape(shape)


#: Cached gather indices: enough entries for every operand shape of a CIFAR ResNet iteration (A and B of
#: three GEMM classes, a few K and precisions), so that a steady stream of iterations never rebuilds one.
_INDEX_CACHE = 64


@lru_cache(maxsize=_INDEX_CACHE)
def _pack_index(rows: int, used: int, bits: int, row_bytes: int) -> np.ndarray:
    """Gather index from a transposed code block plus one zero word (flat: rows * used * 8 + 8 bytes)
    to packed plane rows (rows, bits, row_bytes): byte j of plane i of row r is byte i of word j."""
    per_row = np.arange(row_bytes)[None, :] * 8 + np.arange(bits)[:, None]  # (bits, row_bytes)
    idx = offheap_array((rows, bits, row_bytes), np.intp)
    np.add(np.arange(rows)[:, None, None] * (used * 8), per_row[None], out=idx, casting="unsafe")
    idx[:, :, used:] = rows * used * 8  # the zero word: padding up to a whole D-bit word
    return idx


@lru_cache(maxsize=_INDEX_CACHE)
def _unpack_index(rows: int, used: int, bits: int, row_bytes: int) -> np.ndarray:
    """Gather index from packed plane rows (rows, bits, row_bytes) to words of 8 plane bytes (rows, used, 8).
    Planes >= bits repeat the top plane; the caller masks them off (or shifts them out)."""
    plane = np.minimum(np.arange(8), bits - 1)
    per_row = plane[None, :] * row_bytes + np.arange(used)[:, None]  # (used, 8)
    idx = offheap_array((rows, used, 8), np.intp)
    np.add(np.arange(rows)[:, None, None] * (bits * row_bytes), per_row[None], out=idx, casting="unsafe")
    return idx


def pack_rows_into(x: np.ndarray, bits: int, dot_width: int, out: np.ndarray | None = None) -> np.ndarray:
    """Same bytes as :func:`pack_rows`, written into ``out``: uint8 of shape (R, bits, Kw*D/8).

    x: (R, K) integers (any integer dtype, or a strided view such as B transposed) whose values are
    already known to fit ``bits``; the bits-bit two's-complement code of each value is packed.
    Precisions above 8 bits fall back to :func:`pack_rows`.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"pack_rows_into: expected a 2-D array, got shape {x.shape}")
    r, k = x.shape
    row_bytes = plane_row_bytes(k, dot_width)
    if out is None:
        out = np.empty((r, bits, row_bytes), dtype=np.uint8)
    if out.shape != (r, bits, row_bytes) or out.dtype != np.uint8:
        raise ValueError(f"pack_rows_into: out must be uint8 of shape {(r, bits, row_bytes)}, "
                         f"got {out.dtype} {out.shape}")
    used = max(1, -(-k // 8))  # bytes of a plane row that hold elements; the rest is zero padding
    if bits > 8 or r * used < _SMALL_WORDS:
        out[...] = pack_rows(x, bits, dot_width)
        return out
    chunk = min(r, max(1, _CHUNK_WORDS // used))
    flat = np.zeros(chunk * used * 8 + 8, dtype=np.uint8)  # codes of a chunk, then one zero word
    codes = flat[:-8].reshape(chunk, used * 8)
    tmp = np.empty((chunk, used), dtype="<u8")
    idx = _pack_index(chunk, used, bits, row_bytes)
    for r0 in range(0, r, chunk):
        c = min(chunk, r - r0)
        block = codes[:c]
        np.copyto(block[:, :k], x[r0:r0 + c], casting="unsafe")  # low 8 bits of the code
        if k < used * 8:
            block[:, k:] = 0  # the transpose of the previous chunk left plane bytes here
        _transpose8(block.view("<u8"), tmp[:c])
        np.take(flat, idx[:c], out=out[r0:r0 + c], mode="clip")  # "clip": unbuffered (indices are valid)
    return out


def unpack_rows_into(packed: np.ndarray, bits: int, signed: bool, k: int,
                     out: np.ndarray | None = None) -> np.ndarray:
    """Same values as :func:`unpack_rows`: (R, bits, Kw*D/8) uint8 -> ``out`` (R, K), default int64.

    ``out`` may be any integer (or float) array wide enough for the values.  bits <= 8 only.
    """
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    r, planes, row_bytes = packed.shape
    if planes != bits or not 1 <= bits <= 8:
        raise ValueError(f"unpack_rows_into: packed holds {planes} planes, bits = {bits} (fast path: 1..8)")
    if not 0 <= k <= row_bytes * 8:
        raise ValueError(f"unpack_rows_into: k = {k} does not fit plane rows of {row_bytes} bytes")
    if out is None:
        out = np.empty((r, k), dtype=np.int64)
    used = max(1, -(-k // 8))  # bytes of a plane row that hold elements 0..K-1
    if r * used < _SMALL_WORDS:
        np.copyto(out, unpack_rows(packed, bits, signed, k), casting="unsafe")
        return out
    chunk = min(r, max(1, _CHUNK_WORDS // used))
    block = np.empty((chunk, used, 8), dtype=np.uint8)
    tmp = np.empty((chunk, used), dtype="<u8")
    idx = _unpack_index(chunk, used, bits, row_bytes)
    mask = np.uint64(_LOW_BIT_OF_EACH_BYTE * ((1 << bits) - 1))
    flat = packed.reshape(-1)
    per_row = bits * row_bytes
    for r0 in range(0, r, chunk):
        c = min(chunk, r - r0)
        blk = block[:c]
        np.take(flat[r0 * per_row:(r0 + c) * per_row], idx[:c], out=blk, mode="clip")
        words = blk.reshape(c, used * 8).view("<u8")
        _transpose8(words, tmp[:c])
        code = blk.reshape(c, used * 8)[:, :k]
        if signed:
            # Sign-extend the bits-bit code: its top bit moves to bit 7 (the repeated top plane above it is
            # shifted out), then an arithmetic shift back.
            if bits < 8:
                code = np.right_shift(np.left_shift(code, np.uint8(8 - bits)).view(np.int8), np.int8(8 - bits))
            else:
                code = code.view(np.int8)
        elif bits < 8:
            np.bitwise_and(words, mask, out=words)  # drop the repeated top plane
        np.copyto(out[r0:r0 + c], code, casting="unsafe")
    return out
