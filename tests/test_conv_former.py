"""The im2col former's reference (cpt_hw.hw.conv_former) against the driver's A operand and the golden model.

* Cp = C: every A word equals the word today's driver sends for the same convolution (Im2colRows packed by
  the driver, K = kh kw C), pixel by pixel and plane by plane.
* Cp > C (C = 3, 5: Cp = 4, 8): the words equal the driver's for the codes padded with zero channels to Cp.
* The popcount arithmetic of the array over the former's words, with the weights' B rows laid out the same way
  (K = kh kw Cp, zero channels), gives golden.conv2d exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from cpt_driver.conv import _padded
from cpt_driver.sources import Im2colRows
from cpt_hw.hw import golden
from cpt_hw.hw.conv_former import FormerGeometry, a_row, a_words, row_planes, tile_words
from cpt_hw.hw.conv_model import pack_tensor


def driver_words(x: np.ndarray, g: FormerGeometry, bits: int) -> np.ndarray:
    """The A operand the driver sends for conv2d(x, ., stride, padding): uint8 (M, bits, Kw D/8), rows
    (n, ho, wo), K = kh kw C (C = x's channels)."""
    xp = _padded(x, g.padding, np.int64, channels_last=True)
    src = Im2colRows(xp, (g.kh, g.kw), (g.stride, g.stride), (1, 1), bits)
    m, k = src.shape
    kw_words = -(-k // g.dot_width)
    out = np.empty((m, bits, kw_words * g.dot_width // 8), dtype=np.uint8)
    src.pack_into(0, m, 0, k, bits, g.dot_width, out)
    return out


def words_of(row_bytes: np.ndarray, d: int) -> list[int]:
    return [int.from_bytes(row_bytes[i:i + d // 8].tobytes(), "little") for i in range(0, row_bytes.size, d // 8)]


def former_words(x: np.ndarray, g: FormerGeometry, bits: int) -> list[list[list[int]]]:
    """words[m][p] over every image and pixel, from the row-plane layout of x."""
    packed = pack_tensor(x, bits, g.dot_width)
    out = []
    for n in range(x.shape[0]):
        rows = row_planes(packed, g, bits, n)
        planes = [tile_words(rows, g, 0, 0, p, g.out_h * g.out_w) for p in range(bits)]
        out += [[planes[p][m] for p in range(bits)] for m in range(g.out_h * g.out_w)]
    return out


SHAPES = [  # (C, H, W, k, stride, padding, D)
    (16, 6, 7, 3, 1, 1, 64), (16, 8, 8, 3, 2, 1, 64), (8, 5, 9, 3, 1, 0, 32), (32, 6, 6, 3, 2, 1, 64),
    (64, 4, 5, 3, 1, 1, 64), (128, 3, 4, 3, 1, 1, 64), (64, 7, 8, 1, 2, 0, 64), (4, 6, 6, 3, 1, 1, 32),
    (2, 5, 5, 3, 2, 0, 32), (1, 4, 6, 3, 1, 1, 32), (16, 6, 6, 1, 1, 0, 32), (32, 4, 9, 3, 2, 1, 32),
]


@pytest.mark.parametrize("c, h, w, k, s, pad, d", SHAPES)
def test_equals_driver_words_when_cp_is_c(c: int, h: int, w: int, k: int, s: int, pad: int, d: int) -> None:
    rng = np.random.default_rng(c * 1000 + h * 100 + w + k + s + pad + d)
    bits = int(rng.integers(1, 9))
    g = FormerGeometry(c, h, w, k, k, s, pad, d)
    assert g.cp == c
    x = rng.integers(0, 1 << bits, size=(2, c, h, w))
    want = driver_words(x, g, bits)
    got = former_words(x, g, bits)
    assert len(got) == want.shape[0] == 2 * g.out_h * g.out_w
    for m in range(len(got)):
        for p in range(bits):
            assert got[m][p] == words_of(want[m, p], d), (m, p)


@pytest.mark.parametrize("c, cp, d", [(3, 4, 64), (5, 8, 32), (3, 4, 32), (48, 64, 64), (80, 128, 64)])
def test_padded_channels_equal_driver_words_of_padded_codes(c: int, cp: int, d: int) -> None:
    rng = np.random.default_rng(c + d)
    g = FormerGeometry(c, 7, 6, 3, 3, 2, 1, d)
    assert g.cp == cp
    x = rng.integers(0, 16, size=(1, c, 7, 6))
    x_padded = np.concatenate([x, np.zeros((1, cp - c, 7, 6), dtype=x.dtype)], axis=1)
    want = driver_words(x_padded, FormerGeometry(cp, 7, 6, 3, 3, 2, 1, d), 4)
    got = former_words(x, g, 4)
    for m in range(len(got)):
        for p in range(4):
            assert got[m][p] == words_of(want[m, p], d), (m, p)
    # and they differ from the driver's words of the unpadded codes (K = 9 C), which the device does not form
    unpadded = driver_words(x, g, 4)
    assert any(got[m][p] != words_of(unpadded[m, p], d) for m in range(len(got)) for p in range(4))


def popcount_gemm(a: list[list[list[int]]], b: list[list[list[int]]], a_bits: int, b_bits: int,
                  a_signed: bool, b_signed: bool) -> np.ndarray:
    """C[m, n] = sum_i sum_j s_i s_j 2^(i+j) popcount(A_i[m] AND B_j[n]) over whole words, as the PEs do."""
    out = np.zeros((len(a), len(b)), dtype=np.int64)
    for m, am in enumerate(a):
        for n, bn in enumerate(b):
            out[m, n] = sum(golden.plane_weight(i, a_bits, a_signed) * golden.plane_weight(j, b_bits, b_signed)
                            * sum(bin(x & y).count("1") for x, y in zip(am[i], bn[j]))
                            for i in range(a_bits) for j in range(b_bits))
    return out


def weight_words(wt: np.ndarray, g: FormerGeometry, bits: int) -> list[list[list[int]]]:
    """B columns of weights (K_out, C, kh, kw) laid out as the former's A rows: (i, j, c) with c padded to Cp,
    Kw words a plane (two's complement codes)."""
    k_out, c = wt.shape[:2]
    codes = np.zeros((k_out, g.kh, g.kw, g.cp), dtype=np.int64)
    codes[..., :c] = wt.transpose(0, 2, 3, 1) & ((1 << bits) - 1)
    flat = codes.reshape(k_out, -1)
    out = []
    for n in range(k_out):
        planes = []
        for p in range(bits):
            v = sum(int((flat[n, t] >> p) & 1) << t for t in range(flat.shape[1]))
            planes.append([(v >> (q * g.dot_width)) & ((1 << g.dot_width) - 1) for q in range(g.k_words)])
        out.append(planes)
    return out


@pytest.mark.parametrize("c, h, w, k, s, pad, d, x_signed, w_signed", [
    (3, 6, 7, 3, 1, 1, 64, False, True), (16, 5, 6, 3, 2, 1, 64, True, True), (8, 6, 6, 1, 2, 0, 32, False, False),
    (5, 5, 8, 3, 2, 0, 32, True, False),
])
def test_popcount_of_former_words_is_golden_conv2d(c: int, h: int, w: int, k: int, s: int, pad: int, d: int,
                                                   x_signed: bool, w_signed: bool) -> None:
    rng = np.random.default_rng(c + h + w)
    x_bits, w_bits = 3, 4
    lo, hi = golden.operand_range(x_bits, x_signed)
    x = rng.integers(lo, hi + 1, size=(2, c, h, w))
    lo, hi = golden.operand_range(w_bits, w_signed)
    wt = rng.integers(lo, hi + 1, size=(4, c, k, k))
    g = FormerGeometry(c, h, w, k, k, s, pad, d)
    got = popcount_gemm(former_words(x, g, x_bits), weight_words(wt, g, w_bits), x_bits, w_bits, x_signed, w_signed)
    want = golden.conv2d(x, wt, x_bits=x_bits, w_bits=w_bits, stride=s, padding=pad, x_signed=x_signed,
                         w_signed=w_signed)
    assert np.array_equal(got.reshape(2, g.out_h, g.out_w, 4).transpose(0, 3, 1, 2), want)


def test_padding_taps_and_rows_are_zero() -> None:
    """All-ones codes: a 3x3 pad-1 A row has ones exactly on the taps inside the image."""
    g = FormerGeometry(4, 3, 3, 3, 3, 1, 1, 32)
    rows = row_planes(pack_tensor(np.full((1, 4, 3, 3), 1), 1, 32), g, 1)
    corner = a_row(rows, g, 0, 0, 0)  # taps (i, j) real for i, j in {1, 2}
    assert corner == sum(0xF << (4 * (3 * i + j)) for i in (1, 2) for j in (1, 2))
    assert a_row(rows, g, 1, 1, 0) == (1 << 36) - 1
    assert a_words(rows, g, 1, 1, 0) == [0xFFFFFFFF, 0xF]


def test_tile_runs_into_the_next_output_row() -> None:
    g = FormerGeometry(4, 4, 4, 3, 3, 1, 1, 32)
    rows = row_planes(pack_tensor(np.arange(64).reshape(1, 4, 4, 4) % 2, 1, 32), g, 1)
    tile = tile_words(rows, g, 1, 2, 0, 5)  # (1,2) (1,3) (2,0) (2,1) (2,2)
    assert tile == [a_words(rows, g, h, w, 0) for h, w in ((1, 2), (1, 3), (2, 0), (2, 1), (2, 2))]


@pytest.mark.parametrize("kwargs, message", [
    ({"kh": 4}, "kh = 4: must be 1..3"), ({"stride": 3}, "stride = 3"), ({"padding": 2}, "padding = 2"),
    ({"dot_width": 48}, "dot_width = 48"), ({"channels": 0}, "channels = 0"),
    ({"height": 1, "padding": 0}, "does not fit a 1 x 8 image"),
])
def test_bad_geometry_names_the_field(kwargs: dict, message: str) -> None:
    args = {"channels": 8, "height": 8, "width": 8, "kh": 3, "kw": 3, "stride": 1, "padding": 1, "dot_width": 32}
    with pytest.raises(ValueError, match=message):
        FormerGeometry(**{**args, **kwargs})


def test_tile_outside_the_output_is_refused() -> None:
    g = FormerGeometry(8, 4, 4, 3, 3, 1, 1, 32)
    rows = row_planes(pack_tensor(np.zeros((1, 8, 4, 4), dtype=np.int64), 1, 32), g, 1)
    with pytest.raises(ValueError, match="leave the 4 x 4 output"):
        tile_words(rows, g, 3, 2, 0, 3)
