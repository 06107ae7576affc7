"""The DDR layout contract (host/cpt_driver/layout.py) against its written definition."""

import numpy as np
import pytest

from cpt_driver import layout as L
from cpt_hw.hw import golden as g


@pytest.mark.parametrize("bits, signed", [(1, False), (3, True), (8, False), (8, True), (12, True)])
@pytest.mark.parametrize("k, d", [(1, 8), (77, 32), (128, 64), (200, 128)])
def test_pack_roundtrip_and_address_formula(bits, signed, k, d):
    rng = np.random.default_rng(bits * 1000 + k)
    lo, hi = g.operand_range(bits, signed)
    x = rng.integers(lo, hi + 1, size=(5, k))
    packed = L.pack_rows(x, bits, d)
    kw = L.words_per_row(k, d)
    assert packed.shape == (5, bits, kw * d // 8)
    np.testing.assert_array_equal(L.unpack_rows(packed, bits, signed, k), x)
    flat = packed.reshape(-1)
    assert flat.size == L.operand_bytes(5, k, bits, d)
    planes = g.bitplanes(x, bits, signed)
    for (r, i, kk) in [(0, 0, 0), (4, bits - 1, k - 1), (2, bits // 2, k // 2)]:
        w, bit = divmod(kk, d)
        byte = ((r * bits + i) * kw + w) * d // 8 + bit // 8
        assert (flat[byte] >> (bit % 8)) & 1 == planes[i, r, kk]


def test_b_is_stored_transposed_and_results_unpack():
    b = np.arange(12).reshape(3, 4) % 4
    np.testing.assert_array_equal(L.pack_b(b, 2, 8), L.pack_rows(b.T, 2, 8).reshape(-1))
    c = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    raw = np.zeros((3, L.result_stride(4, 3)), dtype="<i4")
    raw[:, :4] = c
    assert L.result_stride(4, 3) == 6 and L.result_bytes(3, 4, 3) == 72
    np.testing.assert_array_equal(L.unpack_result(raw.view(np.uint8), 3, 4, 3), c)
