"""Bit-exact reference of the weight gradient's shift/mask former (rtl/cpt_wgrad_former.v).

docs/architecture.md, "Weight gradient: chunks, corner turn, shift/mask former": the GEMM of a weight-gradient
call reduces over the chunk's output positions t = (n Ho + ho) Wo + wo (whole images), so its A row for tap
(i, j), channel c and plane p holds, at bit t mod D of word t div D, bit p of X[n, c, ho s - pad + i,
wo s - pad + j] -- zero where the tap falls outside the image.  The HLS kernel forms these words bit by bit
(hls/cpt_conv_read.h, ``form_shift_mask``); this module forms them the way the RTL does:

* **corner turn**: the chunk's row-planes arrive in DDR order (image n, row y, plane p; docs/ddr-layout.md)
  and each becomes C channel rows of W position bits (bit x of channel row (n, y, p, c) = bit x Cp + c of
  row-plane (n, y, p)); a channel row fits a word, so W <= D (the RTL packs D / P of them into one:
  P = max(8, W rounded up to a power of two));
* **segment**: output row (n, ho) of A row (i, j, c, p) is the Wo bits of channel row (n, ho s - pad + i, p, c)
  at columns wo s + (j - pad): for stride 2 the row's even or odd columns (fixed wiring), then a shift by the
  tap's column offset with zeros shifted in at the row ends; all zero when the row is outside the image;
* **placement**: the segments, one per output row, are packed back to back from position 0 into D-bit words
  (on stride-1 chunks with Wo = W = P and Ho = H the RTL forms a whole word at once: a funnel shift of the
  packed rows by (i - pad) W + j - pad, masked at the image's edges -- the same bits).

Row-planes and channel rows are Python ints, so every bit is exact; numpy only unpacks
:func:`conv_model.pack_tensor`'s bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conv_former import ImageGeometry


@dataclass(frozen=True)
class WgradGeometry(ImageGeometry):
    """One X chunk: ``batch`` whole images of C channels x H x W codes, a kh x kw kernel, stride, padding,
    D-bit words.  Checked on construction (W, Wo <= D: a channel row and a segment are one word each)."""

    batch: int
    channels: int
    height: int
    width: int
    kh: int
    kw: int
    stride: int
    padding: int
    dot_width: int

    def __post_init__(self) -> None:
        self._check_sizes(("batch", "channels", "height", "width", "dot_width"))
        if self.width > self.dot_width:
            raise ValueError(f"WgradGeometry.width = {self.width}: must be <= dot_width = {self.dot_width} "
                             f"(a channel row is one word)")
        self._check_kernel()
        if self.out_w > self.dot_width:
            raise ValueError(f"WgradGeometry: Wo = {self.out_w} must be <= dot_width = {self.dot_width} "
                             f"(a segment is one word)")

    @property
    def positions(self) -> int:
        """Output positions of the chunk: the GEMM's K, N Ho Wo."""
        return self.batch * self.out_h * self.out_w

    @property
    def k_words(self) -> int:
        """D-bit words of one A row and plane: ceil(N Ho Wo / D)."""
        return -(-self.positions // self.dot_width)


ChannelRows = list[list[list[list[int]]]]
"""rows[n][y][p][c]: bit x is bit p of X[n, c, y, x] (W bits)."""


def corner_turn(packed: np.ndarray, g: WgradGeometry, bits: int) -> ChannelRows:
    """The chunk's channel rows from :func:`conv_model.pack_tensor`'s bytes of an (N, C, H, W) tensor at
    ``bits`` planes: bit x of channel row (n, y, p, c) is bit x Cp + c of row-plane (n, y, p)."""
    if bits < 1:
        raise ValueError(f"bits = {bits}: must be >= 1")
    row_bytes = g.row_words * g.dot_width // 8
    flat = np.asarray(packed, dtype=np.uint8).reshape(-1)
    need = g.batch * g.height * bits * row_bytes
    if flat.size < need:
        raise ValueError(f"corner_turn: {flat.size} bytes hold no {g.batch}-image chunk of {need} bytes")
    planes = flat[:need].reshape(g.batch, g.height, bits, row_bytes)
    out: ChannelRows = []
    for n in range(g.batch):
        out.append([])
        for y in range(g.height):
            out[n].append([])
            for p in range(bits):
                plane = int.from_bytes(planes[n, y, p].tobytes(), "little")
                out[n][y].append([sum(((plane >> (x * g.cp + c)) & 1) << x for x in range(g.width))
                                  for c in range(g.channels)])
    return out


def segment(rows: ChannelRows, g: WgradGeometry, n: int, ho: int, i: int, j: int, c: int, p: int) -> int:
    """Output row (n, ho) of A row (i, j, c, p): Wo bits, bit wo = X[n, c, ho s - pad + i, wo s - pad + j]."""
    y = ho * g.stride - g.padding + i
    if not 0 <= y < g.height:
        return 0                                   # a padding row
    row = rows[n][y][p][c]
    offset = j - g.padding                         # column of wo = 0: wo s + offset
    if g.stride == 2:                              # the row's columns of the tap's parity, fixed wiring
        parity = offset & 1
        row = sum(((row >> (2 * u + parity)) & 1) << u for u in range(g.dot_width // 2))
        offset = (offset - parity) // 2            # -1, 0 or 1 columns of that parity
    shifted = row >> offset if offset >= 0 else row << -offset   # zeros shifted in at either end
    return shifted & ((1 << g.out_w) - 1)


def a_row(rows: ChannelRows, g: WgradGeometry, i: int, j: int, c: int, p: int) -> int:
    """A row (i, j, c, p) over the chunk's N Ho Wo positions as an int (bit t = position t)."""
    if not (0 <= i < g.kh and 0 <= j < g.kw and 0 <= c < g.channels):
        raise ValueError(f"a_row: tap ({i}, {j}) channel {c} outside the {g.kh} x {g.kw} x {g.channels} rows")
    if not 0 <= p < len(rows[0][0]):
        raise ValueError(f"a_row: plane {p} outside the {len(rows[0][0])} planes")
    value = 0
    for n in range(g.batch):
        for ho in range(g.out_h):
            value |= segment(rows, g, n, ho, i, j, c, p) << ((n * g.out_h + ho) * g.out_w)
    return value


def a_words(rows: ChannelRows, g: WgradGeometry, i: int, j: int, c: int, p: int, first: int = 0,
            count: int | None = None) -> list[int]:
    """Words [first, first + count) of A row (i, j, c, p) (all from ``first`` on when count is None)."""
    if count is None:
        count = g.k_words - first
    if not (0 <= first and count >= 1 and first + count <= g.k_words):
        raise ValueError(f"a_words: words [{first}, {first + count}) leave the row's {g.k_words} words")
    value = a_row(rows, g, i, j, c, p) >> (first * g.dot_width)
    mask = (1 << g.dot_width) - 1
    return [(value >> (k * g.dot_width)) & mask for k in range(count)]
