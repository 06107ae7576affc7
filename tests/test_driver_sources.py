"""cpt_driver.sources: lowered convolution operands packed on request are the bytes of the lowered copy packed."""

from __future__ import annotations

import numpy as np
import pytest

from cpt_driver import Accelerator, layout
from cpt_driver.sources import Im2colRows, TapRows
from cpt_hw import golden
from cpt_hw.config import HardwareConfig

SIM = HardwareConfig.from_preset("sim")


def _im2col(x, kernel, stride, dilation):
    """Reference: A[(b, ho, wo), (i, j, c)] by loops over the taps."""
    b, hp, wp, c = x.shape
    ho = (hp - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    wo = (wp - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    cols = [x[:, i * dilation[0]: i * dilation[0] + stride[0] * (ho - 1) + 1: stride[0],
              j * dilation[1]: j * dilation[1] + stride[1] * (wo - 1) + 1: stride[1]]
            for i in range(kernel[0]) for j in range(kernel[1])]
    return np.concatenate(cols, axis=3).reshape(b * ho * wo, -1)


GEOMETRIES = [((3, 3), (1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1)), ((1, 1), (2, 2), (1, 1)), ((3, 3), (1, 1), (2, 2)),
              ((2, 3), (1, 2), (1, 1))]


@pytest.mark.parametrize("channels", [16, 8, 24, 5])   # 24 and 5: no byte-aligned unit, the fallback
@pytest.mark.parametrize("kernel, stride, dilation", GEOMETRIES)
def test_im2col_rows_pack_the_bytes_of_the_lowered_copy(channels, kernel, stride, dilation):
    rng = np.random.default_rng(channels)
    x = rng.integers(0, 1 << 6, (3, 9, 10, channels), dtype=np.uint8)
    src = Im2colRows(x, kernel, stride, dilation, bits=6)
    ref = _im2col(x, kernel, stride, dilation)
    assert src.shape == ref.shape
    m, k = ref.shape
    np.testing.assert_array_equal(src.rows(0, m, 0, k), ref)
    for bits in (6, 8):
        for r0, r1 in [(0, m), (5, m - 7), (0, 1), (m - 3, m), (17, min(m, 17 + 2 * m // 3))]:  # partial lines, samples
            for dot_width in (64, 256):
                want = layout.pack_rows(ref[r0:r1], bits, dot_width)
                got = np.full(want.shape, 0xA5, dtype=np.uint8)
                src.pack_into(r0, r1, 0, k, bits, dot_width, got)
                np.testing.assert_array_equal(got, want)
    if k > 64:  # a K range: the fallback
        want = layout.pack_rows(ref[2:9, 64:k], 6, 64)
        got = np.empty(want.shape, dtype=np.uint8)
        src.pack_into(2, 9, 64, k, 6, 64, got)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("width", [16, 8, 12])          # 12: Wo not a multiple of 8, the fallback
@pytest.mark.parametrize("kernel, stride, dilation", GEOMETRIES)
def test_tap_rows_pack_the_bytes_of_the_transposed_lowered_copy(width, kernel, stride, dilation):
    rng = np.random.default_rng(width)
    b, c = 3, 5
    (kh, kw), (s0, s1), (d0, d1) = kernel, stride, dilation
    ho, wo = 4, width // s1 if s1 > 1 else width
    hp, wp = (ho - 1) * s0 + d0 * (kh - 1) + 1, (wo - 1) * s1 + d1 * (kw - 1) + 1
    x = rng.integers(0, 1 << 7, (b, c, hp, wp), dtype=np.uint8)
    src = TapRows(x, kernel, stride, dilation, bits=7)
    ref = _im2col(x.transpose(0, 2, 3, 1), kernel, stride, dilation).T   # rows (i, j, c), columns (b, ho, wo)
    assert src.shape == ref.shape and src.out_hw == (ho, wo)
    m, k = ref.shape
    np.testing.assert_array_equal(src.rows(0, m, 0, k), ref)
    for bits in (7, 8):
        for r0, r1 in [(0, m), (3, m - 2), (c - 1, min(m, c + 2))]:
            if r1 <= r0:
                continue
            for k0, k1 in [(0, k), (wo, k - wo) if k > 2 * wo else (0, k), (2 * wo * ho, k)]:
                want = layout.pack_rows(ref[r0:r1, k0:k1], bits, 64)
                got = np.full(want.shape, 0x5A, dtype=np.uint8)
                src.pack_into(r0, r1, k0, k1, bits, 64, got)
                np.testing.assert_array_equal(got, want)


def test_the_driver_runs_sources_like_arrays():
    """gemm with a source as A: the result and the device calls of the materialised operand (K split too)."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 32, (2, 10, 10, 16), dtype=np.uint8)
    src = Im2colRows(x, (3, 3), (1, 1), (1, 1), bits=5)
    a = src.rows(0, src.shape[0], 0, src.shape[1])
    bmat = rng.integers(0, 16, (src.shape[1], 20))
    cfg = SIM.replace(max_dim=32)
    with Accelerator("emu", config=cfg) as acc:
        ref = acc.gemm(a, bmat, 5, 4)
        calls = [(r.m, r.n, r.k) for r in acc.history]
        acc.history.clear()
        got = acc.gemm(src, bmat, 5, 4)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(got, golden.gemm(a, bmat, 5, 4))
        assert [(r.m, r.n, r.k) for r in acc.history] == calls
        xt = rng.integers(0, 8, (2, 3, 6, 2 * cfg.k_max // 6 // 2 + 2), dtype=np.uint8)
        taps = TapRows(xt, (3, 3), (1, 1), (1, 1), bits=3)            # K = B Ho Wo > k_max: split
        at = taps.rows(0, taps.shape[0], 0, taps.shape[1])
        bt = rng.integers(0, 256, (taps.shape[1], 5))
        np.testing.assert_array_equal(acc.gemm(taps, bt, 3, 8), at @ bt)
        from cpt_driver import ArgumentError
        with pytest.raises(ArgumentError, match="a: codes of 5 bits do not fit a_bits = 4"):
            acc.gemm(src, bmat, 4, 4)
