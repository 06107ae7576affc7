"""Interface-4 DDR layout on the host: row-plane tensors and the convolution engine's weight layouts.

The layout (docs/ddr-layout.md, "Interface 4"): a tensor (N, C, H, W) of ``bits``-bit codes is stored as
row-planes, one string of W x Cp bits per (image n, row h, plane p), pixel-major and channel-minor, zero-
padded to ``row_words`` = ceil(W Cp / D) words; row-plane (n, h, p) starts at word ((n H + h) bits + p)
row_words.  That is exactly today's A layout of the (N H) x (W Cp) matrix of the channels-last codes, so
:func:`pack_tensor_into` is one permute to channels-last and :func:`cpt_driver.layout.pack_rows_into` (the
fast bit transpose), never a k^2 expansion.  ``cpt_hw.hw.conv_model.pack_tensor`` is the reference it is
tested against bit for bit (tests/test_driver_conv_engine.py); the sizes and limits here are the device's
rule (``cpt_hw.hw.conv_calls``), repeated because the driver runs without cpt_hw, and tested equal to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import layout


def channel_pitch(channels: int, dot_width: int) -> int:
    """Cp: the next power of two >= C while C < D, else C rounded up to whole D-bit words."""
    if channels >= dot_width:
        return -(-channels // dot_width) * dot_width
    return 1 << (channels - 1).bit_length()


def row_words(width: int, channels: int, dot_width: int) -> int:
    return -(-width * channel_pitch(channels, dot_width) // dot_width)


def row_bytes(width: int, channels: int, bits: int, dot_width: int) -> int:
    """Bytes of one image row with all its planes (the row stride R of the DMA window rule)."""
    return bits * row_words(width, channels, dot_width) * dot_width // 8


def tensor_bytes(shape: tuple[int, int, int, int], bits: int, dot_width: int) -> int:
    n, c, h, w = shape
    return n * h * row_bytes(w, c, bits, dot_width)


def pack_tensor_into(q: np.ndarray, bits: int, dot_width: int, out: np.ndarray) -> np.ndarray:
    """Codes (N, C, H, W) fitting ``bits`` -> row-planes in ``out`` (uint8, :func:`tensor_bytes` long)."""
    n, c, h, w = q.shape
    cp = channel_pitch(c, dot_width)
    rows = nhwc = q.transpose(0, 2, 3, 1)
    if cp != c or not nhwc.flags.c_contiguous:  # channels-last codes of a whole pitch are the rows already
        rows = np.zeros((n, h, w, cp), dtype=q.dtype) if cp != c else np.empty((n, h, w, c), dtype=q.dtype)
        rows[..., :c] = nhwc
    words = row_words(w, c, dot_width)
    layout.pack_rows_into(rows.reshape(n * h, w * cp), bits, dot_width,
                          out=out.reshape(n * h, bits, words * dot_width // 8))
    return out


@dataclass(frozen=True, eq=False)
class RowPlaneTensor:
    """A code tensor (N, C, H, W) packed once as row-planes (:meth:`cpt_driver.Accelerator.pack_tensor`), which
    ``conv2d`` and ``conv2d_weight`` take in place of x: a training step packs a layer's input once for its
    forward call and keeps the packed bytes, not the codes, for its weight gradient (the same bytes the call
    would pack again).  ``data``: :func:`tensor_bytes` bytes, as :func:`pack_tensor_into` writes them; the codes
    were checked to fit ``bits``/``signed`` when packed."""

    data: np.ndarray
    shape: tuple[int, int, int, int]
    bits: int
    signed: bool
    dot_width: int

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def codes(self, dtype: np.dtype | type | None = None) -> np.ndarray:
        """The codes again, (N, C, H, W) C-contiguous in ``dtype`` (default int8/uint8, int16/uint16 above 8 bits)."""
        n, c, h, w = self.shape
        cp, words = channel_pitch(c, self.dot_width), row_words(w, c, self.dot_width)
        if dtype is None:
            dtype = np.dtype(f"{'i' if self.signed else 'u'}{1 if self.bits <= 8 else 2}")
        planes = self.data.reshape(n * h, self.bits, words * self.dot_width // 8)
        if self.bits <= 8:
            rows = layout.unpack_rows_into(planes, self.bits, self.signed, w * cp, out=np.empty((n * h, w * cp), dtype))
        else:
            rows = layout.unpack_rows(planes, self.bits, self.signed, w * cp).astype(dtype)
        return np.ascontiguousarray(rows.reshape(n, h, w, cp)[..., :c].transpose(0, 3, 1, 2))


def pack_tensor(q: np.ndarray, bits: int, signed: bool, dot_width: int) -> RowPlaneTensor:
    """Codes (N, C, H, W) already checked to fit ``bits`` -> a :class:`RowPlaneTensor` of their own memory."""
    shape = tuple(int(d) for d in q.shape)
    data = np.empty(tensor_bytes(shape, bits, dot_width), dtype=np.uint8)  # type: ignore[arg-type]
    pack_tensor_into(q, bits, dot_width, data)
    return RowPlaneTensor(data, shape, bits, signed, dot_width)  # type: ignore[arg-type]


def write_tensor_into(t: "np.ndarray | RowPlaneTensor", bits: int, dot_width: int, out: np.ndarray) -> None:
    """Row-planes of codes ``t`` into ``out``: packed now, or copied when ``t`` was packed before (for this
    device's dot width: else unpacked and packed again)."""
    if isinstance(t, RowPlaneTensor):
        if t.dot_width == dot_width and t.bits == bits:
            np.copyto(out, t.data)
            return
        t = t.codes()
    pack_tensor_into(t, bits, dot_width, out)


def dgrad_phases(kh: int, kw: int, stride: int, padding: int) -> list[tuple[list[int], list[int]]]:
    """The input gradient's phases (ry, rx), row-major, each with its kernel rows and columns in stored order
    (tap i meets dX row h iff i = h + p mod s; largest i first: the 180-degree rotation)."""
    def taps(r: int, size: int) -> list[int]:
        return [i for i in range(size - 1, -1, -1) if (i - r - padding) % stride == 0]

    return [(taps(ry, kh), taps(rx, kw)) for ry in range(stride) for rx in range(stride)]


def fwd_weight_rows(w: np.ndarray, dot_width: int) -> np.ndarray:
    """(K, C, kh, kw) -> B columns as rows (K, kh kw Cp): tap-major, channel-minor, padding channels 0."""
    k, c, kh, kw = w.shape
    cp = channel_pitch(c, dot_width)
    rows = np.zeros((k, kh, kw, cp), dtype=w.dtype)
    rows[..., :c] = w.transpose(0, 2, 3, 1)
    return rows.reshape(k, -1)


def dgrad_weight_rows(w: np.ndarray, stride: int, padding: int, dot_width: int) -> list[np.ndarray]:
    """(K, C, kh, kw) -> per phase, the B columns (one per input channel c) as rows (C, |ti| |tj| Cp(K))."""
    k, c, kh, kw = w.shape
    cp = channel_pitch(k, dot_width)
    out = []
    for ti, tj in dgrad_phases(kh, kw, stride, padding):
        rows = np.zeros((c, len(ti), len(tj), cp), dtype=w.dtype)
        if ti and tj:
            rows[..., :k] = w[:, :, ti][:, :, :, tj].transpose(1, 2, 3, 0)
        out.append(rows.reshape(c, -1))
    return out


def weight_bytes(rows: list[np.ndarray], bits: int, dot_width: int) -> int:
    return sum(layout.operand_bytes(r.shape[0], r.shape[1], bits, dot_width) for r in rows)


def pack_weights_into(rows: list[np.ndarray], bits: int, dot_width: int, out: np.ndarray) -> None:
    """The weight blocks (phase by phase), each in today's B layout, one after the other in ``out``."""
    offset = 0
    for r in rows:
        nbytes = layout.operand_bytes(r.shape[0], r.shape[1], bits, dot_width)
        if r.shape[1]:
            layout.pack_rows_into(r, bits, dot_width, out=out[offset:offset + nbytes].reshape(r.shape[0], bits, -1))
        offset += nbytes


def input_rows_read(size: int, kernel: int, stride: int, padding: int, out0: int, out1: int) -> int:
    """Distinct input rows output rows [out0, out1) reach (padding rows are made on chip, never read)."""
    rows = {o * stride - padding + i for o in range(out0, out1) for i in range(kernel)}
    return sum(1 for r in rows if 0 <= r < size)
