"""Bit-exact reference of the im2col former (rtl/cpt_im2col_former.v), the first block of the convolution engine.

docs/architecture.md, "Convolution-native accelerator": for output pixel (ho, wo) and bit plane p the former
concatenates, for kernel rows i = 0..kh-1, the kw Cp-bit slice at bit (wo s - pad) Cp of row-plane
(ho s - pad + i, p) -- zeros for taps left/right of the row and for rows above/below the image -- and
zero-pads the kh kw Cp bits to Kw = ceil(kh kw Cp / D) words of D bits: the A row of a GEMM with
K = kh kw Cp, tap-major and channel-minor, in the plane-row layout of docs/ddr-layout.md (bit k of the row
is bit k mod D of word k div D).

For Cp = C (C a power of two below D, or a multiple of D) these are exactly the words today's driver sends
for the same convolution (``cpt_driver.sources.Im2colRows``, K = kh kw C).  For other C (the stem's C = 3,
Cp = 4) each tap keeps Cp - C zero channels: the words equal the driver's for the codes padded with zero
channels up to Cp, and the weights' B rows must carry the same zero channels (K = kh kw Cp), which leaves
every product unchanged (tests/test_conv_former.py).

Row-planes are Python ints here (bit b of row-plane (h, p) is bit b of ``rows[h][p]``), so any D works and
every bit is exact; numpy only unpacks :func:`conv_model.pack_tensor`'s bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

# the conv calls' strides, paddings and largest kernel side: the driver's (one definition)
from cpt_driver.conv import CONV_MAX_KERNEL as MAX_KERNEL
from cpt_driver.conv import CONV_PADDINGS as PADDINGS
from cpt_driver.conv import CONV_STRIDES as STRIDES

from .conv_model import channel_pitch, row_words
from .golden import conv_output_size


class ImageGeometry:
    """What both formers' geometries share (this module's :class:`FormerGeometry`, and
    ``conv_wgrad_former.WgradGeometry``): the checks of C, H, W, a kh x kw kernel, stride, padding and D-bit
    words, and the sizes derived from them.  Subclasses are frozen dataclasses with those fields; errors name
    the subclass."""

    channels: int
    height: int
    width: int
    kh: int
    kw: int
    stride: int
    padding: int
    dot_width: int

    def _check_sizes(self, names: tuple[str, ...]) -> None:
        """``names`` integers >= 1; D a power of two >= 8."""
        cls = type(self).__name__
        for name in names:
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{cls}.{name} = {v!r}: must be an integer >= 1")
        if self.dot_width < 8 or self.dot_width & (self.dot_width - 1):
            raise ValueError(f"{cls}.dot_width = {self.dot_width}: must be a power of two >= 8")

    def _check_kernel(self) -> None:
        """Kernel sides 1..MAX_KERNEL, the conv calls' strides and paddings, and an output of at least 1 x 1."""
        cls = type(self).__name__
        for name in ("kh", "kw"):
            v = getattr(self, name)
            if v not in range(1, MAX_KERNEL + 1):
                raise ValueError(f"{cls}.{name} = {v!r}: must be 1..{MAX_KERNEL}")
        if self.stride not in STRIDES:
            raise ValueError(f"{cls}.stride = {self.stride!r}: must be one of {STRIDES}")
        if self.padding not in PADDINGS:
            raise ValueError(f"{cls}.padding = {self.padding!r}: must be one of {PADDINGS}")
        if self.out_h < 1 or self.out_w < 1:
            raise ValueError(f"{cls}: a {self.kh} x {self.kw} kernel with padding {self.padding} does "
                             f"not fit a {self.height} x {self.width} image")

    @property
    def cp(self) -> int:
        """Channel pitch Cp in bits (conv_model.channel_pitch)."""
        return channel_pitch(self.channels, self.dot_width)

    @property
    def row_words(self) -> int:
        """D-bit words of one row-plane: ceil(W Cp / D)."""
        return row_words(self.width, self.channels, self.dot_width)

    @property
    def out_h(self) -> int:
        return conv_output_size(self.height, self.kh, self.stride, self.padding)

    @property
    def out_w(self) -> int:
        return conv_output_size(self.width, self.kw, self.stride, self.padding)


@dataclass(frozen=True)
class FormerGeometry(ImageGeometry):
    """One image's geometry as the former sees it: C channels of H x W codes, a kh x kw kernel, stride and
    padding, D-bit words.  Checked on construction; every derived size is a property."""

    channels: int
    height: int
    width: int
    kh: int
    kw: int
    stride: int
    padding: int
    dot_width: int

    def __post_init__(self) -> None:
        self._check_sizes(("channels", "height", "width", "dot_width"))
        self._check_kernel()

    @property
    def k_bits(self) -> int:
        """Bits of an A row before its word padding: kh kw Cp (the GEMM's K)."""
        return self.kh * self.kw * self.cp

    @property
    def k_words(self) -> int:
        """Kw = ceil(kh kw Cp / D): D-bit words of one A row and plane."""
        return -(-self.k_bits // self.dot_width)


RowPlanes = list[list[int]]
"""rows[h][p]: row-plane (h, p) of one image as an int of row_words x D bits."""


def row_planes(packed: np.ndarray, g: FormerGeometry, bits: int, image: int = 0) -> RowPlanes:
    """Image ``image``'s row-planes from :func:`conv_model.pack_tensor`'s bytes of a tensor of geometry ``g``
    (H, W, C) at ``bits`` planes."""
    if bits < 1:
        raise ValueError(f"bits = {bits}: must be >= 1")
    row_bytes = g.row_words * g.dot_width // 8
    per_image = g.height * bits * row_bytes
    flat = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if flat.size < (image + 1) * per_image:
        raise ValueError(f"row_planes: {flat.size} bytes hold no image {image} of {per_image} bytes")
    img = flat[image * per_image:(image + 1) * per_image].reshape(g.height, bits, row_bytes)
    return [[int.from_bytes(img[h, p].tobytes(), "little") for p in range(bits)] for h in range(g.height)]


def a_row(rows: RowPlanes, g: FormerGeometry, ho: int, wo: int, plane: int) -> int:
    """The A row (kh kw Cp bits, as an int) of output pixel (ho, wo) and ``plane``: kernel row i at bit
    i kw Cp, its kw taps being the row-plane's bits [(wo s - pad) Cp, (wo s - pad + kw) Cp), taps outside
    the image zero."""
    if not (0 <= ho < g.out_h and 0 <= wo < g.out_w):
        raise ValueError(f"a_row: pixel ({ho}, {wo}) outside the {g.out_h} x {g.out_w} output")
    if not 0 <= plane < len(rows[0]):
        raise ValueError(f"a_row: plane {plane} outside the {len(rows[0])} planes")
    cp, s, pad = g.cp, g.stride, g.padding
    row_mask = (1 << (g.width * cp)) - 1       # the row's W pixels: the right padding taps are zero
    tap_mask = (1 << (g.kw * cp)) - 1
    value = 0
    for i in range(g.kh):
        h = ho * s - pad + i
        if not 0 <= h < g.height:
            continue                           # a padding row: all zeros
        first = (wo * s - pad) * cp            # bit of the slice's first tap; -Cp: the left padding tap
        src = rows[h][plane] & row_mask
        piece = (src >> first) if first >= 0 else (src << -first)
        value |= (piece & tap_mask) << (i * g.kw * cp)
    return value


def a_words(rows: RowPlanes, g: FormerGeometry, ho: int, wo: int, plane: int) -> list[int]:
    """:func:`a_row` as its Kw D-bit words, word 0 holding A row bits 0..D-1."""
    value = a_row(rows, g, ho, wo, plane)
    mask = (1 << g.dot_width) - 1
    return [(value >> (k * g.dot_width)) & mask for k in range(g.k_words)]


def tile_pixels(g: FormerGeometry, ho: int, wo0: int, count: int) -> Iterator[tuple[int, int]]:
    """The ``count`` output pixels from (ho, wo0) on in the GEMM's row order (row-major; a tile may run on
    into the next output rows, as a 16-row A tile does when Wo < 16)."""
    first = ho * g.out_w + wo0
    if not (0 <= wo0 < g.out_w and count >= 1 and 0 <= first and first + count <= g.out_h * g.out_w):
        raise ValueError(f"tile_pixels: {count} pixels from ({ho}, {wo0}) leave the {g.out_h} x {g.out_w} output")
    for m in range(first, first + count):
        yield divmod(m, g.out_w)


def tile_words(rows: RowPlanes, g: FormerGeometry, ho: int, wo0: int, plane: int, count: int) -> list[list[int]]:
    """The A words of a tile: ``count`` pixels from (ho, wo0) on, Kw words each (the order the former emits
    them: pixel by pixel, word 0 first)."""
    return [a_words(rows, g, h, w, plane) for h, w in tile_pixels(g, ho, wo0, count)]
