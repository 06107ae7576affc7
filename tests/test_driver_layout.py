"""The driver's vectorised packers (layout.pack_rows_into / unpack_rows_into) against the layout contract."""

import numpy as np
import pytest

from cpt_driver import layout as L
from cpt_hw.hw import golden as g


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


def padding_bits(k: int, d: int) -> np.ndarray:
    """One plane row's bytes with exactly the padding bits (K .. Kw*D-1) set."""
    return ~L.pack_rows(np.ones((1, k), dtype=np.int64), 1, d)[0, 0]


@pytest.mark.parametrize("k", [5, 37, 64 + 63])
def test_plane_row_padding_is_ignored_by_the_emulated_device(k):
    """docs/ddr-layout.md: the padding bits of a plane row's last word do not reach the result on the
    emulated device (nor on the HLS kernel, which clears them in A's last word), even when A and B both
    set every one of them."""
    from cpt_driver import Accelerator
    from cpt_hw.hw.config import HardwareConfig

    cfg = HardwareConfig.from_preset("sim")
    d = cfg.dot_width
    acc = Accelerator("emu", config=cfg)
    rng = np.random.default_rng(k)
    m, n, a_bits, b_bits = 3, 4, 3, 5
    a = rng.integers(-4, 4, size=(m, k))
    b = rng.integers(0, 32, size=(k, n))
    pad = padding_bits(k, d)
    assert pad.any() and not (pad & L.pack_rows(np.ones((1, k), dtype=np.int64), 1, d)[0, 0]).any()
    pa = L.pack_rows(a, a_bits, d) | pad     # every padding bit of every plane row set in A ...
    pb = L.pack_rows(b.T, b_bits, d) | pad   # ... and in B: AND + popcount would count them all
    full = L.words_per_row(k, d) * d  # a device that counted the padding would compute this instead
    assert (L.unpack_rows(pa, a_bits, True, full) @ L.unpack_rows(pb, b_bits, False, full).T != a @ b).all()
    c_bytes = L.result_bytes(m, n, cfg.cols)
    with acc.pool.lease((pa.size, pb.size, c_bytes)) as (ra, rb, rc):
        ra.array[:] = pa.reshape(-1)
        rb.array[:] = pb.reshape(-1)
        ra.flush()
        rb.flush()
        acc._run(ra.phys, rb.phys, rc.phys, m, n, k, a_bits, b_bits, acc.spec.flag("A_SIGNED"))
        rc.invalidate()
        c = L.unpack_result(rc.array, m, n, cfg.cols)
    np.testing.assert_array_equal(c, a @ b)
