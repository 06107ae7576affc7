"""Accelerator.gemm / qgemm on the emu backend against cpt_hw.hw.golden: every precision, tiling, cycles."""

import mmap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpt_driver import Accelerator, layout
from cpt_hw.hw import golden as g
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.cycle_model import gemm_cycles

SIM = HardwareConfig.from_preset("sim")


@pytest.fixture(scope="module")
def acc():
    with Accelerator("emu", config=SIM) as a:
        yield a


def operands(rng, m, k, n, a_bits, b_bits, a_signed, b_signed):
    lo, hi = g.operand_range(a_bits, a_signed)
    a = rng.integers(lo, hi + 1, size=(m, k))
    lo, hi = g.operand_range(b_bits, b_signed)
    return a, rng.integers(lo, hi + 1, size=(k, n))


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 9), k=st.integers(1, 70), n=st.integers(1, 9), a_bits=st.integers(1, 8),
       b_bits=st.integers(1, 8), a_signed=st.booleans(), b_signed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_gemm_matches_golden(acc, m, k, n, a_bits, b_bits, a_signed, b_signed, seed):
    a, b = operands(np.random.default_rng(seed), m, k, n, a_bits, b_bits, a_signed, b_signed)
    c = acc.gemm(a, b, a_bits, b_bits, a_signed, b_signed)
    assert c.dtype == np.int64 and c.shape == (m, n)
    np.testing.assert_array_equal(c, g.gemm_bitplanes(a, b, a_bits, b_bits, a_signed, b_signed))


def test_every_precision_pair_one_call(acc):
    rng = np.random.default_rng(0)
    for a_bits in range(1, 9):
        for b_bits in range(1, 9):
            for a_signed, b_signed in [(False, False), (True, True), (True, False)]:
                a, b = operands(rng, 4, 40, 3, a_bits, b_bits, a_signed, b_signed)
                calls = acc.calls
                np.testing.assert_array_equal(acc.gemm(a, b, a_bits, b_bits, a_signed, b_signed), a @ b)
                assert acc.calls == calls + 1
                rec = acc.history[-1]
                assert rec.cycles == gemm_cycles(SIM, 4, 3, 40, a_bits, b_bits).total


def test_tiling_over_k_m_and_n():
    """K beyond k_max is summed on the host in int64; M and N beyond max_dim (and the pool) are tiled."""
    cfg = SIM.replace(max_dim=16)
    with Accelerator("emu", config=cfg) as acc:
        rng = np.random.default_rng(1)
        a, b = operands(rng, 37, 3 * cfg.k_max + 5, 35, 8, 8, True, True)
        c = acc.gemm(a, b, 8, 8, True, True)
        np.testing.assert_array_equal(c, a @ b)
        # ceil(37/16) x ceil(35/16) x ceil(K/k_max) = 3 x 3 x 4 calls, each legal for the device
        assert acc.calls == 36
        assert all(r.m <= 16 and r.n <= 16 and r.k <= cfg.k_max for r in acc.history)
        # K-partials beyond the int32 result word: the host sum is exact in int64
        big_a = np.full((2, 40000), 255)
        big_b = np.full((40000, 2), 255)
        c = acc.gemm(big_a, big_b, 8, 8)
        assert c[0, 0] == 255 * 255 * 40000 > 2**31
        np.testing.assert_array_equal(c, big_a @ big_b)


def test_out_receives_the_result_in_its_dtype():
    """gemm(out=...) writes C into the caller's array: exact into int64, rounded once into float32 (also
    when K is split over calls: the partials are summed in int64 first); bad buffers fail in one line."""
    from cpt_driver import ArgumentError, OperandTypeError

    cfg = SIM.replace(max_dim=16)
    with Accelerator("emu", config=cfg) as acc:
        rng = np.random.default_rng(2)
        for k in (40, 3 * cfg.k_max + 5):  # one call along K, then K split over four
            a, b = operands(rng, 37, k, 35, 8, 8, False, False)
            a[0] = 255
            b[:, 0] = 255                  # C[0, 0] = 65025 K: past 2^24 for the split K, rounded in float32
            ref = a @ b
            for dtype in (np.int64, np.float32, np.float64):
                out = np.full((37, 35), 7, dtype=dtype)
                assert acc.gemm(a, b, 8, 8, out=out) is out
                np.testing.assert_array_equal(out, ref.astype(dtype))
            big = np.zeros((37, 70), dtype=np.float32)
            acc.gemm(a, b, 8, 8, out=big[:, ::2])  # a strided view
            np.testing.assert_array_equal(big[:, ::2], ref.astype(np.float32))
        a, b = operands(rng, 4, 10, 3, 8, 8, False, False)
        shape_msg = r"out: shape \(3, 3\), the result is \(4, 3\)"
        for out, err, msg in [(np.zeros((3, 3)), ArgumentError, shape_msg),
                              (np.zeros((4, 3), dtype=bool), OperandTypeError, "out: dtype bool"),
                              (np.zeros((4, 3)).tolist(), OperandTypeError, "out: list is not a numpy array")]:
            with pytest.raises(err, match=msg):
                acc.gemm(a, b, 8, 8, out=out)
        ro = np.zeros((4, 3))
        ro.flags.writeable = False
        with pytest.raises(ArgumentError, match="out: read-only array"):
            acc.gemm(a, b, 8, 8, out=ro)


def test_offheap_array_is_a_zeroed_array_outside_the_heap():
    x = layout.offheap_array((3, 5), np.intp)
    assert x.shape == (3, 5) and x.dtype == np.intp and not x.any() and x.flags.writeable
    x[:] = 1
    owner = x
    while isinstance(owner, np.ndarray):
        owner = owner.base
    assert isinstance(getattr(owner, "obj", owner), mmap.mmap)  # a map of its own, unmapped with the array


def test_multi_call_gemm_prefetches_the_next_b():
    """Every call but the last carries the next call's B as a prefetch hint; the emulated device hits
    on each of those, reports the hit's (smaller) cycles, and the result is the same as without hints."""
    cfg = SIM.replace(max_dim=16)
    rng = np.random.default_rng(4)
    a, b = operands(rng, 20, 2 * cfg.k_max + 7, 30, 3, 8, True, False)
    runs = {}
    for prefetch in (True, False):
        with Accelerator("emu", config=cfg, prefetch=prefetch) as acc:
            np.testing.assert_array_equal(acc.gemm(a, b, 3, 8, True, False), a @ b)
            runs[prefetch] = (list(acc.history), acc.backend.device.hits)
    with_hint, hits = runs[True]
    without, no_hits = runs[False]
    assert [r.prefetch for r in with_hint] == [True] * (len(with_hint) - 1) + [False]
    assert hits == len(with_hint) - 1 > 0 and no_hits == 0
    assert [(r.m, r.n, r.k) for r in with_hint] == [(r.m, r.n, r.k) for r in without]
    assert sum(r.cycles for r in with_hint) < sum(r.cycles for r in without)
    # a hit skips the B load of its first block: it is cheaper than the same call without a hint
    assert with_hint[1].cycles < without[1].cycles


def test_prefetched_block_is_the_one_read_when_prefetching():
    """The emulated device keeps the B block it prefetched: a hit uses it even if B changed since
    (the hardware does; docs/driver.md: the host writes the next call's B before the current call)."""
    with Accelerator("emu", config=SIM) as acc:
        dev, pool = acc.backend.device, acc.pool
        rng = np.random.default_rng(5)
        a, b = operands(rng, 4, 40, 3, 2, 2, False, False)
        sizes = (layout.operand_bytes(4, 40, 2, SIM.dot_width), layout.operand_bytes(3, 40, 2, SIM.dot_width),
                 layout.result_bytes(4, 3, SIM.cols))
        with pool.lease(sizes) as (ra, rb, rc):
            layout.pack_rows_into(a, 2, SIM.dot_width, out=ra.array.reshape(4, 2, -1))
            layout.pack_rows_into(b.T, 2, SIM.dot_width, out=rb.array.reshape(3, 2, -1))
            acc._run(ra.phys, rb.phys, rc.phys, 4, 3, 40, 2, 2, 0, hint=(rb.phys, 3, 40))
            rb.array[:] = 0                            # B changes after the prefetch ...
            acc._run(ra.phys, rb.phys, rc.phys, 4, 3, 40, 2, 2, 0)
            c = rc.array.view("<i4").reshape(4, -1)[:, :3]
            np.testing.assert_array_equal(c, a @ b)    # ... the hit still computes with the prefetched B
            assert dev.hits == 1
            acc._run(ra.phys, rb.phys, rc.phys, 4, 3, 40, 2, 2, 0)   # no hint before: reads B as it is now
            assert not rc.array.view("<i4").reshape(4, -1)[:, :3].any() and dev.hits == 1


def test_pool_budget_shrinks_tiles():
    with Accelerator("emu", config=SIM, pool_bytes=8192) as acc:
        rng = np.random.default_rng(2)
        a, b = operands(rng, 200, 256, 40, 8, 8, False, False)
        np.testing.assert_array_equal(acc.gemm(a, b, 8, 8), a @ b)
        assert acc.pool.arena_bytes <= 8192 and acc.calls > 1
        # a budget below one full-K tile splits K too
    with Accelerator("emu", config=SIM, pool_bytes=1024) as acc:
        a, b = operands(rng, 5, 256, 3, 8, 8, False, False)
        np.testing.assert_array_equal(acc.gemm(a, b, 8, 8), a @ b)
        assert max(r.k for r in acc.history) < 256


def test_zc706_shapes_and_dtypes():
    with Accelerator() as acc:  # the defaults: emu, zc706
        assert acc.spec.name == "zc706"
        rng = np.random.default_rng(3)
        a = rng.integers(0, 256, size=(300, 576)).astype(np.uint8)
        b = rng.integers(-128, 128, size=(576, 70)).astype(np.int8)
        np.testing.assert_array_equal(acc.gemm(a, b, 8, 8, False, True), a.astype(np.int64) @ b)
        np.testing.assert_array_equal(acc.gemm(a[:, :5] > 100, b[:5] > 0, 1, 1),
                                      (a[:, :5] > 100).astype(np.int64) @ (b[:5] > 0))


def test_empty_dimensions(acc):
    calls = acc.calls
    assert acc.gemm(np.zeros((0, 5), int), np.zeros((5, 3), int), 4, 4).shape == (0, 3)
    np.testing.assert_array_equal(acc.gemm(np.zeros((2, 0), int), np.zeros((0, 3), int), 4, 4), np.zeros((2, 3)))
    assert acc.calls == calls


def test_qgemm_matches_dequantized_float(acc):
    """Forward of a layer: per-tensor X, per-output-channel W, Y = X_hat . W_hat^T."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 50)).astype(np.float32)
    w = rng.normal(size=(7, 50)).astype(np.float32)
    qx = g.quantize(x, 6, x.min(), x.max())
    wmin, wmax = w.min(axis=1, keepdims=True), w.max(axis=1, keepdims=True)
    qw = g.quantize(w, 4, wmin, wmax)
    sx, zx = g.quant_params(x.min(), x.max(), 6)
    sw, zw = g.quant_params(wmin[:, 0], wmax[:, 0], 4)
    y = acc.qgemm(qx, qw.T, 6, 4, sx, zx, sw, zw)
    ref = g.dequantize(qx, x.min(), x.max(), 6).astype(np.float64) @ g.dequantize(qw, wmin, wmax, 4).T.astype(np.float64)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4)
    # per-row A, per-tensor B, float64 out
    sa = rng.uniform(0.5, 2, size=20)
    y2 = acc.qgemm(qx, qw.T, 6, 4, sa, -sa, 0.25, 1.5, dtype=np.float64)
    ref2 = (sa[:, None] * qx - sa[:, None]) @ (0.25 * qw.T + 1.5)
    np.testing.assert_allclose(y2, ref2, rtol=1e-12)
