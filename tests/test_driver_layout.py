"""The driver's vectorised packers (layout.pack_rows_into / unpack_rows_into) against the layout contract."""

import numpy as np
import pytest

from cpt_driver import layout as L
from cpt_hw import golden as g


@pytest.fixture(params=["transpose", "small"])
def path(request, monkeypatch):
    """Run each case through both implementations: the 8 x 8 bit transpose and the small-array path."""
    monkeypatch.setattr(L, "_SMALL_WORDS", 0 if request.param == "transpose" else 1 << 30)
    return request.param


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("rows, k, d", [(1, 1, 8), (5, 77, 32), (3, 64, 64), (9, 200, 64), (4, 1000, 1024)])
def test_fast_pack_matches_contract(path, bits, signed, rows, k, d):
    rng = np.random.default_rng(bits * 7919 + k)
    lo, hi = g.operand_range(bits, signed)
    x = rng.integers(lo, hi + 1, size=(rows, k))
    ref = L.pack_rows(x, bits, d)
    out = np.full(ref.shape, 0xA5, dtype=np.uint8)  # garbage: padding must be written, not assumed
    assert L.pack_rows_into(x, bits, d, out=out) is out
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(L.unpack_rows_into(ref, bits, signed, k), x)


def test_many_chunks_and_strided_input(path):
    """Rows beyond one cache chunk, a transposed (B-like) view as input and small-dtype outputs."""
    rng = np.random.default_rng(3)
    b = rng.integers(-128, 128, size=(150, 3000))  # K x N; the driver packs b.T
    ref = L.pack_rows(b.T, 8, 64)
    np.testing.assert_array_equal(L.pack_rows_into(b.T, 8, 64), ref)
    out = np.empty((3000, 150), dtype=np.int16)
    np.testing.assert_array_equal(L.unpack_rows_into(ref, 8, True, 150, out=out), b.T)


def test_above_eight_bits_falls_back():
    rng = np.random.default_rng(4)
    x = rng.integers(-2048, 2048, size=(6, 50))
    np.testing.assert_array_equal(L.pack_rows_into(x, 12, 32), L.pack_rows(x, 12, 32))
    with pytest.raises(ValueError, match="fast path"):
        L.unpack_rows_into(L.pack_rows(x, 12, 32), 12, True, 50)


def test_shape_errors():
    with pytest.raises(ValueError, match="out must be uint8 of shape"):
        L.pack_rows_into(np.zeros((2, 8), int), 3, 8, out=np.zeros((2, 3, 2), np.uint8))
    with pytest.raises(ValueError, match="2-D"):
        L.pack_rows_into(np.zeros(8, int), 3, 8)
