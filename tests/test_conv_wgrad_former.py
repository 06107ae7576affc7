"""The weight-gradient former's reference (cpt_hw.hw.conv_wgrad_former) against the HLS kernel and the golden model.

* Every A word equals the word the HLS kernel forms for the same chunk (hls/cpt_conv_read.h: ``load_chunk``
  corner-turns the X chunk bit by bit, ``form_shift_mask`` reads A row (i, j, c), plane p, bit t from it),
  transliterated below -- whole images (band0 = 0, all rows), every tap, channel and plane.
* The popcount arithmetic of the array over these words and the E chunk corner-turned as ``emit_e_block``
  does (bit t mod D of word t div D of column k) gives golden.conv2d_weight exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from cpt_hw.hw import golden
from cpt_hw.hw.conv_model import pack_tensor
from cpt_hw.hw.conv_wgrad_former import WgradGeometry, a_row, a_words, corner_turn, segment


def _bits(packed: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")


def hls_words(packed: np.ndarray, g: WgradGeometry, bits: int) -> dict[tuple[int, int, int, int], list[int]]:
    """words[(i, j, c, p)] as the HLS kernel forms them (load_chunk, then form_shift_mask; whole images)."""
    d, cp, rw = g.dot_width, g.cp, g.row_words
    mem = _bits(packed)
    lo, hi = max(0, -g.padding), min(g.height, (g.out_h - 1) * g.stride - g.padding + g.kh)   # ConvGeom.a_rows
    sparse = g.kh < g.stride
    stored = (lambda y: (y - lo) // 2) if sparse else (lambda y: y - lo)
    length = -(-((-(-(hi - lo) // 2)) if sparse else hi - lo) * g.width // d) * d
    xct = np.zeros(g.batch * g.channels * bits * length, dtype=np.uint8)
    for img in range(g.batch):                                    # load_chunk
        for y in range(lo, hi, 2 if sparse else 1):
            for p in range(bits):
                at = ((img * g.height + y) * bits + p) * rw * d
                for bit in range(rw * d):
                    x, c = divmod(bit, cp)
                    if x < g.width and c < g.channels:
                        xct[((img * g.channels + c) * bits + p) * length + stored(y) * g.width + x] = mem[at + bit]
    out = {}
    wo, band = g.out_w, g.out_h
    for r in range(g.kh * g.kw * g.channels):                     # form_shift_mask
        c, tap = r % g.channels, r // g.channels
        j, i = tap % g.kw, tap // g.kw
        for p in range(bits):
            words = []
            for wd in range(g.k_words):
                word = 0
                for b in range(d):
                    t = wd * d + b
                    if t >= g.positions:
                        break
                    img, x, y = t // (band * wo), t % wo, (t // wo % band) * g.stride - g.padding + i
                    xx = x * g.stride - g.padding + j
                    if y < 0 or y >= g.height or xx < 0 or xx >= g.width:
                        continue
                    word |= int(xct[((img * g.channels + c) * bits + p) * length + stored(y) * g.width + xx]) << b
                words.append(word)
            out[(i, j, c, p)] = words
    return out


def e_block(e: np.ndarray, g: WgradGeometry, e_bits: int) -> list[list[list[int]]]:
    """B columns of the E chunk (N, K, Ho, Wo) as emit_e_block corner-turns them: column k, plane q, bit t of
    word t div D = bit q of E[n, k, ho, wo] at position t."""
    d, k_out = g.dot_width, e.shape[1]
    eg = WgradGeometry(g.batch, k_out, g.out_h, g.out_w, 1, 1, 1, 0, d)
    mem = _bits(pack_tensor(e, e_bits, d))
    cp, rw = eg.cp, eg.row_words
    cols = []
    for kk in range(k_out):
        planes = []
        for q in range(e_bits):
            v = 0
            for img in range(g.batch):
                for r in range(g.out_h):
                    at = ((img * g.out_h + r) * e_bits + q) * rw * d
                    for x in range(g.out_w):
                        v |= int(mem[at + x * cp + kk]) << ((img * g.out_h + r) * g.out_w + x)
            planes.append([(v >> (w * d)) & ((1 << d) - 1) for w in range(g.k_words)])
        cols.append(planes)
    return cols


SHAPES = [  # (N, C, H, W, kh, kw, stride, padding, D)
    (2, 3, 6, 7, 3, 3, 1, 1, 32), (1, 16, 8, 8, 3, 3, 2, 1, 64), (2, 8, 5, 9, 3, 3, 1, 0, 32),
    (3, 4, 6, 6, 3, 3, 2, 0, 32), (2, 5, 7, 8, 1, 1, 2, 0, 64), (1, 2, 5, 5, 2, 3, 1, 1, 32),
    (2, 1, 4, 6, 3, 2, 2, 1, 32), (1, 3, 3, 32, 3, 3, 1, 1, 32), (2, 70, 4, 5, 3, 3, 1, 1, 64),
    (1, 4, 9, 64, 3, 3, 2, 1, 64), (4, 2, 3, 3, 1, 1, 1, 0, 8),
]


@pytest.mark.parametrize("n, c, h, w, kh, kw, s, pad, d", SHAPES)
def test_equals_hls_words(n: int, c: int, h: int, w: int, kh: int, kw: int, s: int, pad: int, d: int) -> None:
    rng = np.random.default_rng(n * 7919 + c * 1000 + h * 100 + w + kh + 3 * kw + s + pad + d)
    bits = int(rng.integers(1, 5))
    g = WgradGeometry(n, c, h, w, kh, kw, s, pad, d)
    packed = pack_tensor(rng.integers(0, 1 << bits, size=(n, c, h, w)), bits, d)
    want = hls_words(packed, g, bits)
    rows = corner_turn(packed, g, bits)
    for (i, j, ch, p), words in want.items():
        assert a_words(rows, g, i, j, ch, p) == words, (i, j, ch, p)


@pytest.mark.parametrize("n, c, h, w, k, s, pad, d, x_signed, e_signed", [
    (2, 3, 6, 7, 3, 1, 1, 64, False, True), (2, 4, 6, 6, 3, 2, 1, 32, True, True),
    (3, 8, 6, 6, 1, 2, 0, 32, False, False), (1, 5, 5, 8, 3, 2, 0, 32, True, False),
    (2, 2, 5, 5, 3, 1, 0, 8, False, True),
])
def test_popcount_with_corner_turned_e_is_golden_conv2d_weight(n: int, c: int, h: int, w: int, k: int, s: int,
                                                               pad: int, d: int, x_signed: bool,
                                                               e_signed: bool) -> None:
    rng = np.random.default_rng(n + c + h + w + k + s + pad + d)
    x_bits, e_bits, k_out = 3, 4, 3
    g = WgradGeometry(n, c, h, w, k, k, s, pad, d)
    lo, hi = golden.operand_range(x_bits, x_signed)
    x = rng.integers(lo, hi + 1, size=(n, c, h, w))
    lo, hi = golden.operand_range(e_bits, e_signed)
    e = rng.integers(lo, hi + 1, size=(n, k_out, g.out_h, g.out_w))
    rows = corner_turn(pack_tensor(x, x_bits, d), g, x_bits)
    b = e_block(e, g, e_bits)
    got = np.zeros((k_out, c, k, k), dtype=np.int64)
    for i in range(k):
        for j in range(k):
            for ch in range(c):
                a = [a_words(rows, g, i, j, ch, p) for p in range(x_bits)]
                for kk in range(k_out):
                    got[kk, ch, i, j] = sum(
                        golden.plane_weight(p, x_bits, x_signed) * golden.plane_weight(q, e_bits, e_signed)
                        * sum(bin(u & v).count("1") for u, v in zip(a[p], b[kk][q]))
                        for p in range(x_bits) for q in range(e_bits))
    want = golden.conv2d_weight(x, (k_out, c, k, k), e, x_bits=x_bits, e_bits=e_bits, stride=s, padding=pad,
                                x_signed=x_signed, e_signed=e_signed)
    assert np.array_equal(got, want)


def test_padding_taps_and_rows_are_zero() -> None:
    """All-ones codes, 3x3 pad 1 on a 3 x 4 image: tap (0, 0) is real where ho >= 1 and wo >= 1."""
    g = WgradGeometry(1, 1, 3, 4, 3, 3, 1, 1, 32)
    rows = corner_turn(pack_tensor(np.ones((1, 1, 3, 4), dtype=np.int64), 1, 32), g, 1)
    assert [segment(rows, g, 0, ho, 0, 0, 0, 0) for ho in range(3)] == [0, 0b1110, 0b1110]
    assert [segment(rows, g, 0, ho, 2, 2, 0, 0) for ho in range(3)] == [0b0111, 0b0111, 0]
    assert a_row(rows, g, 1, 1, 0, 0) == (1 << 12) - 1


def test_stride_two_takes_one_parity() -> None:
    """X = column index bit 0 (odd columns 1): stride 2 pad 1 taps j = 0, 2 read odd/even columns."""
    g = WgradGeometry(1, 1, 4, 8, 3, 3, 2, 1, 32)
    x = np.tile(np.arange(8) & 1, (1, 1, 4, 1))
    rows = corner_turn(pack_tensor(x, 1, 32), g, 1)
    assert segment(rows, g, 0, 1, 1, 0, 0, 0) == 0b1110    # columns -1, 1, 3, 5: the first is padding
    assert segment(rows, g, 0, 1, 1, 1, 0, 0) == 0          # columns 0, 2, 4, 6
    assert segment(rows, g, 0, 1, 1, 2, 0, 0) == 0b1111    # columns 1, 3, 5, 7


@pytest.mark.parametrize("kwargs, message", [
    ({"kh": 4}, "kh = 4: must be 1..3"), ({"stride": 3}, "stride = 3"), ({"padding": 2}, "padding = 2"),
    ({"dot_width": 48}, "dot_width = 48"), ({"batch": 0}, "batch = 0"), ({"width": 33}, "width = 33"),
    ({"height": 1, "padding": 0}, "does not fit a 1 x 8 image"),
    ({"width": 32, "kh": 1, "kw": 1}, "Wo = 34 must be <= dot_width = 32"),
])
def test_bad_geometry_names_the_field(kwargs: dict, message: str) -> None:
    args = {"batch": 1, "channels": 8, "height": 8, "width": 8, "kh": 3, "kw": 3, "stride": 1, "padding": 1,
            "dot_width": 32}
    with pytest.raises(ValueError, match=message):
        WgradGeometry(**{**args, **kwargs})


def test_word_range_outside_the_row_is_refused() -> None:
    g = WgradGeometry(1, 1, 4, 4, 3, 3, 1, 1, 8)
    rows = corner_turn(pack_tensor(np.zeros((1, 1, 4, 4), dtype=np.int64), 1, 8), g, 1)
    assert len(a_words(rows, g, 0, 0, 0, 0)) == 2
    with pytest.raises(ValueError, match="leave the row's 2 words"):
        a_words(rows, g, 0, 0, 0, 0, 1, 2)
