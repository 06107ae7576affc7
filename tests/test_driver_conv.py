"""Accelerator.conv2d / conv2d_input / conv2d_weight on the emu backend against cpt_hw.hw.golden (and torch),
their argument checks (nothing reaches the device), ``out=``, and stats() against the cycle model's traffic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cpt_driver import Accelerator, ArgumentError, OperandTypeError, ResultSizeError
from cpt_driver import conv as driver_conv
from cpt_driver.sources import Im2colRows
from cpt_hw.hw import golden as g
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.cycle_model import Prefetch, gemm_cycles

SIM = HardwareConfig.from_preset("sim")


@pytest.fixture(scope="module")
def acc():
    with Accelerator("emu", config=SIM) as a:
        yield a


def codes(rng, shape, bits, signed):
    lo, hi = g.operand_range(bits, signed)
    return rng.integers(lo, hi + 1, size=shape)


def run_all(acc, x, w, e, xb, wb, eb, stride, padding, xs, ws, es):
    """The three calls on the accelerator and on the golden model."""
    kw = dict(stride=stride, padding=padding)
    got = (acc.conv2d(x, w, x_bits=xb, w_bits=wb, x_signed=xs, w_signed=ws, **kw),
           acc.conv2d_input(x.shape, w, e, w_bits=wb, e_bits=eb, w_signed=ws, e_signed=es, **kw),
           acc.conv2d_weight(x, w.shape, e, x_bits=xb, e_bits=eb, x_signed=xs, e_signed=es, **kw))
    want = (g.conv2d(x, w, x_bits=xb, w_bits=wb, x_signed=xs, w_signed=ws, **kw),
            g.conv2d_input(x.shape, w, e, w_bits=wb, e_bits=eb, w_signed=ws, e_signed=es, **kw),
            g.conv2d_weight(x, w.shape, e, x_bits=xb, e_bits=eb, x_signed=xs, e_signed=es, **kw))
    return got, want


def assert_exact(got, want):
    for a, b in zip(got, want):
        assert a.dtype == np.int64 and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


# (N, C, H, W, K, kh, kw): non-square images and kernels; C = 3, 5, 12 (no power of two), 8 and 16 (the
# sources' byte-aligned fast paths), W = 16 (Wo a multiple of 8: TapRows' fast path)
SHAPES = [(2, 3, 7, 5, 4, 3, 3), (1, 5, 6, 9, 3, 1, 1), (2, 16, 8, 8, 5, 3, 3), (3, 8, 5, 16, 2, 3, 3),
          (2, 12, 9, 6, 7, 2, 3), (1, 16, 16, 16, 4, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("signed", [False, True])   # x's and e's codes: signed sources on every packing path
def test_geometries_match_golden(acc, shape, stride, padding, signed):
    n, c, h, w, k, kh, kw = shape
    rng = np.random.default_rng([*shape, stride, padding, signed])
    x = codes(rng, (n, c, h, w), 6, signed)
    wt = codes(rng, (k, c, kh, kw), 5, not signed)
    ho, wo = g.conv_output_size(h, kh, stride, padding), g.conv_output_size(w, kw, stride, padding)
    e = codes(rng, (n, k, ho, wo), 7, signed)
    assert_exact(*run_all(acc, x, wt, e, 6, 5, 7, stride, padding, signed, not signed, signed))


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 9), h=st.integers(3, 7), w=st.integers(3, 7), k=st.integers(1, 5),
       kh=st.sampled_from([1, 3]), kw=st.sampled_from([1, 3]), stride=st.sampled_from([1, 2]),
       padding=st.sampled_from([0, 1]), xb=st.integers(1, 8), wb=st.integers(1, 8), eb=st.integers(1, 8),
       xs=st.booleans(), ws=st.booleans(), es=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_any_precision_and_signedness_matches_golden(acc, n, c, h, w, k, kh, kw, stride, padding, xb, wb, eb,
                                                     xs, ws, es, seed):
    rng = np.random.default_rng(seed)
    x, wt = codes(rng, (n, c, h, w), xb, xs), codes(rng, (k, c, kh, kw), wb, ws)
    e = codes(rng, (n, k, g.conv_output_size(h, kh, stride, padding), g.conv_output_size(w, kw, stride, padding)),
              eb, es)
    assert_exact(*run_all(acc, x, wt, e, xb, wb, eb, stride, padding, xs, ws, es))


def test_every_precision_pair(acc):
    """Bits 1..8 on both operands of every call, extreme codes (all-min and all-max) included."""
    rng = np.random.default_rng(3)
    for a_bits in range(1, 9):
        for b_bits in range(1, 9):
            signed = (a_bits + b_bits) % 2 == 1
            x = codes(rng, (2, 3, 5, 4), a_bits, signed)
            x[0] = g.operand_range(a_bits, signed)[0]
            x[1, 0] = g.operand_range(a_bits, signed)[1]
            wt = codes(rng, (2, 3, 3, 3), b_bits, not signed)
            e = codes(rng, (2, 2, 3, 2), b_bits, signed)
            assert_exact(*run_all(acc, x, wt, e, a_bits, b_bits, b_bits, 2, 1, signed, not signed, signed))


def test_torch_semantics(acc):
    """The calls are torch's functions on the integer values (float64 holds them exactly)."""
    rng = np.random.default_rng(4)
    x, wt = codes(rng, (2, 5, 9, 7), 8, True), codes(rng, (4, 5, 3, 3), 8, True)
    e = codes(rng, (2, 4, 5, 4), 8, True)
    t = lambda a: torch.from_numpy(a.astype(np.float64))
    kw = dict(stride=2, padding=1)
    np.testing.assert_array_equal(acc.conv2d(x, wt, x_bits=8, w_bits=8, x_signed=True, w_signed=True, **kw),
                                  torch.nn.functional.conv2d(t(x), t(wt), **kw).numpy())
    np.testing.assert_array_equal(
        acc.conv2d_input(x.shape, wt, e, w_bits=8, e_bits=8, w_signed=True, e_signed=True, **kw),
        torch.nn.grad.conv2d_input(x.shape, t(wt), t(e), **kw).numpy())
    np.testing.assert_array_equal(
        acc.conv2d_weight(x, wt.shape, e, x_bits=8, e_bits=8, x_signed=True, e_signed=True, **kw),
        torch.nn.grad.conv2d_weight(t(x), wt.shape, t(e), **kw).numpy())


def test_operand_types_gemm_accepts(acc):
    """Any integer dtype (uint8, int16, bool) and non-contiguous views, like gemm."""
    rng = np.random.default_rng(5)
    x = codes(rng, (2, 6, 8, 10), 1, False)
    wt = codes(rng, (3, 6, 3, 3), 4, True).astype(np.int16)
    e = codes(rng, (2, 3, 8, 10), 8, False).astype(np.uint8)
    xv = x.astype(bool)[:, :, :, ::-1]                              # bool, negative strides
    got, want = run_all(acc, xv, wt, e, 1, 4, 8, 1, 1, False, True, False)
    assert_exact(got, want)
    xt = np.asfortranarray(x.astype(np.uint8))
    np.testing.assert_array_equal(acc.conv2d(xt, wt, x_bits=1, w_bits=4, w_signed=True, padding=1),
                                  g.conv2d(x, wt, x_bits=1, w_bits=4, w_signed=True, padding=1))


def test_large_calls_split_like_gemm():
    """M, N beyond max_dim and K beyond k_max: the GEMMs are tiled and K partials summed as gemm does."""
    cfg = SIM.replace(max_dim=16)
    rng = np.random.default_rng(6)
    x, wt = codes(rng, (3, 40, 6, 5), 8, False), codes(rng, (18, 40, 3, 3), 8, True)   # K = 360 > k_max
    e = codes(rng, (3, 18, 6, 5), 8, True)
    with Accelerator("emu", config=cfg) as a:
        got, want = run_all(a, x, wt, e, 8, 8, 8, 1, 1, False, True, True)
        assert_exact(got, want)
        assert a.calls > 3 * 4 and len({r.k for r in a.history}) > 1


def test_gemm_calls_made(acc):
    """One GEMM each, with the shapes docs/driver.md states (sim: a single call each)."""
    rng = np.random.default_rng(7)
    x, wt = codes(rng, (2, 4, 6, 6), 3, False), codes(rng, (5, 4, 3, 3), 2, False)
    e = codes(rng, (2, 5, 3, 3), 4, True)
    kw = dict(stride=2, padding=1)
    start = acc.calls
    acc.conv2d(x, wt, x_bits=3, w_bits=2, **kw)
    acc.conv2d_input(x.shape, wt, e, w_bits=2, e_bits=4, e_signed=True, **kw)
    acc.conv2d_weight(x, wt.shape, e, x_bits=3, e_bits=4, e_signed=True, **kw)
    assert acc.calls == start + 3
    got = [(r.m, r.n, r.k, r.a_bits, r.b_bits) for r in list(acc.history)[-3:]]
    assert got == [(2 * 3 * 3, 5, 9 * 4, 3, 2),        # im2col(x) . W: (N Ho Wo) x K over (kh kw C)
                   (2 * 6 * 6, 4, 9 * 5, 4, 2),        # im2col(dilated e) . rot(W): (N H W) x C over (kh kw K)
                   (9 * 4, 5, 2 * 3 * 3, 3, 4)]        # taps(x) . E: (kh kw C) x K over (N Ho Wo)


# ------------------------------------------------------------------------------------------------- out=
def test_out_channels_last_is_written_straight(acc):
    rng = np.random.default_rng(8)
    x, wt = codes(rng, (2, 8, 7, 7), 8, False), codes(rng, (6, 8, 3, 3), 8, False)
    want = g.conv2d(x, wt, x_bits=8, w_bits=8, stride=1, padding=1)
    buf = np.full((2, 7, 7, 6), np.nan, dtype=np.float32)         # channels-last memory
    out = buf.transpose(0, 3, 1, 2)
    assert acc.conv2d(x, wt, x_bits=8, w_bits=8, padding=1, out=out) is out
    np.testing.assert_array_equal(out, want.astype(np.float32))
    e = codes(rng, (2, 6, 7, 7), 8, False)
    dx = np.empty((2, 7, 7, 8), dtype=np.int32).transpose(0, 3, 1, 2)
    acc.conv2d_input(x.shape, wt, e, w_bits=8, e_bits=8, padding=1, out=dx)
    np.testing.assert_array_equal(dx, g.conv2d_input(x.shape, wt, e, w_bits=8, e_bits=8, padding=1))


def test_out_of_any_layout(acc):
    """A C-ordered out needs a copy of the GEMM order: the result is still exact and lands in out."""
    rng = np.random.default_rng(9)
    x, wt = codes(rng, (2, 3, 6, 5), 4, True), codes(rng, (4, 3, 3, 1), 4, True)
    e = codes(rng, (2, 4, 3, 4), 5, False)
    for call, want, shape in [
            (lambda o: acc.conv2d(x, wt, x_bits=4, w_bits=4, x_signed=True, w_signed=True, stride=2, padding=1, out=o),
             g.conv2d(x, wt, x_bits=4, w_bits=4, x_signed=True, w_signed=True, stride=2, padding=1), (2, 4, 3, 4)),
            (lambda o: acc.conv2d_weight(x, wt.shape, e, x_bits=4, e_bits=5, x_signed=True, stride=2, padding=1, out=o),
             g.conv2d_weight(x, wt.shape, e, x_bits=4, e_bits=5, x_signed=True, stride=2, padding=1), wt.shape)]:
        for dtype in (np.int64, np.float64):
            out = np.zeros(shape, dtype=dtype)
            assert call(out) is out
            np.testing.assert_array_equal(out, want)


# ------------------------------------------------------------------------------------------------ errors
X = np.ones((2, 3, 5, 5), dtype=np.uint8)
W = np.ones((4, 3, 3, 3), dtype=np.uint8)
E = np.ones((2, 4, 5, 5), dtype=np.uint8)       # stride 1, padding 1
FWD = dict(x_bits=8, w_bits=8, padding=1)
DGRAD = dict(w_bits=8, e_bits=8, padding=1)
WGRAD = dict(x_bits=8, e_bits=8, padding=1)

BAD_CALLS = [
    ("conv2d", (X, W), FWD | {"stride": 3}, ArgumentError, r"conv2d: stride = 3: supported strides are \(1, 2\)"),
    ("conv2d", (X, W), FWD | {"padding": 2}, ArgumentError, r"padding = 2: supported paddings are \(0, 1\)"),
    ("conv2d", (X, W), FWD | {"stride": 1.0}, ArgumentError, r"stride = 1.0: must be an integer"),
    ("conv2d", (X, np.ones((4, 3, 5, 5), np.uint8)), FWD, ArgumentError,
     r"kernel 5x5: the largest supported side is 3"),
    ("conv2d", (X, np.ones((4, 3, 1, 4), np.uint8)), FWD, ArgumentError, r"kernel 1x4: the largest"),
    ("conv2d", (X, np.ones((4, 1, 3, 3), np.uint8)), FWD, ArgumentError,
     r"x has C = 3 channels, w \(4, 1, 3, 3\) has 1"),
    ("conv2d", (X[:, :, :2, :2], W), FWD | {"padding": 0}, ArgumentError, r"kernel 3x3 does not fit the input 2x2"),
    ("conv2d", (X[0], W), FWD, ArgumentError, r"conv2d: x: expected a 4-D array, got shape \(3, 5, 5\)"),
    ("conv2d", (X[:0], W), FWD, ArgumentError, r"every dimension must be >= 1"),
    ("conv2d", (X.astype(np.float32), W), FWD, OperandTypeError, r"conv2d: x: dtype float32 is not an integer type"),
    ("conv2d", (np.ma.masked_array(X), W), FWD, OperandTypeError, r"conv2d: x: a numpy masked array"),
    ("conv2d", (X * 2, W), FWD | {"x_bits": 1}, ArgumentError, r"conv2d: x: values 2..2 do not fit 1-bit unsigned"),
    ("conv2d", (X, -W.astype(np.int16)), FWD, ArgumentError, r"conv2d: w: values -1..-1 do not fit 8-bit unsigned"),
    ("conv2d", (X * 4, W), FWD | {"x_bits": 3, "x_signed": True}, ArgumentError,
     r"x: values 4..4 do not fit 3-bit signed \(-4..3\)"),
    ("conv2d", (X, W), FWD | {"w_bits": 9}, ArgumentError, r"conv2d: w_bits = 9: must be in 1..8"),
    ("conv2d", (X, W), FWD | {"x_bits": 0}, ArgumentError, r"conv2d: x_bits = 0: must be in 1..8"),
    ("conv2d", (X, W), FWD | {"w_signed": 1}, ArgumentError, r"conv2d: w_signed = 1: must be True or False"),
    ("conv2d", (X, W), FWD | {"out": np.zeros((2, 4, 5, 4))}, ArgumentError,
     r"out: shape \(2, 4, 5, 4\), the result is \(2, 4, 5, 5\)"),
    ("conv2d", (X, W), FWD | {"out": np.zeros((2, 4, 5, 5), bool)}, OperandTypeError, r"out: dtype bool"),
    ("conv2d_input", ((2, 3, 5, 5), W, E[:, :, :4]), DGRAD, ArgumentError,
     r"conv2d_input: e has shape \(2, 4, 4, 5\), expected \(N, K, Ho, Wo\) = \(2, 4, 5, 5\)"),
    ("conv2d_input", ((2, 3, 5), W, E), DGRAD, ArgumentError, r"input_size must be 4-D \(N, C, H, W\)"),
    ("conv2d_input", (7, W, E), DGRAD, ArgumentError, r"input_size = 7: must be a 4-tuple"),
    ("conv2d_input", ((2, 3, 5, 5), W, E * 2), DGRAD | {"e_bits": 1}, ArgumentError, r"conv2d_input: e: values 2..2"),
    ("conv2d_input", ((2, 3, 5, 5), W, E), DGRAD | {"stride": 2}, ArgumentError,
     r"e has shape \(2, 4, 5, 5\), expected \(N, K, Ho, Wo\) = \(2, 4, 3, 3\)"),
    ("conv2d_weight", (X, (4, 3, 3), E), WGRAD, ArgumentError, r"weight_size must be 4-D \(K, C, kh, kw\)"),
    ("conv2d_weight", (X, (4, 2, 3, 3), E), WGRAD, ArgumentError, r"x has C = 3 channels, weight_size"),
    ("conv2d_weight", (X, (4, 3, 3, 3), E[:1]), WGRAD, ArgumentError, r"conv2d_weight: e has shape \(1, 4, 5, 5\)"),
    ("conv2d_weight", (X, (4, 3, 3, 3), -E.astype(np.int16)), WGRAD, ArgumentError, r"conv2d_weight: e: values -1..-1"),
    ("conv2d_weight", (X, (4, 3, 3, 3), E.astype(float)), WGRAD, OperandTypeError, r"e: dtype float64"),
]


@pytest.mark.parametrize("method, args, kwargs, error, message", BAD_CALLS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)])
def test_bad_calls_reach_no_register(acc, method, args, kwargs, error, message):
    device = acc.backend.device
    runs, calls, cycles = device.runs, acc.calls, acc.total_cycles
    with pytest.raises(error, match=message):
        getattr(acc, method)(*args, **kwargs)
    assert (device.runs, acc.calls, acc.total_cycles) == (runs, calls, cycles)


def test_result_too_large_is_refused_before_allocating(acc, monkeypatch):
    monkeypatch.setattr(driver_conv, "check_result_size",
                        lambda m, n: (_ for _ in ()).throw(ResultSizeError(f"result: {m} x {n}")))
    runs = acc.backend.device.runs
    x = np.broadcast_to(np.uint8(1), (2, 3, 5, 5))      # views of one code: nothing large is built
    with pytest.raises(ResultSizeError, match=r"result: 50 x 4"):
        acc.conv2d(x, W, x_bits=8, w_bits=8, padding=1)
    assert acc.backend.device.runs == runs


def test_row_source_signedness_must_match(acc):
    src = Im2colRows(np.zeros((1, 3, 3, 2), np.int8), (1, 1), (1, 1), (1, 1), 4, signed=True)
    b = np.zeros((2, 1), np.int8)
    runs = acc.backend.device.runs
    with pytest.raises(ArgumentError, match=r"a: the RowSource holds signed codes \(a_signed must be True\)"):
        acc.gemm(src, b, 4, 4)
    assert acc.backend.device.runs == runs
    np.testing.assert_array_equal(acc.gemm(src, b, 4, 4, a_signed=True), np.zeros((9, 1)))


# ------------------------------------------------------------------------------------------------- stats
def test_stats_count_what_the_device_moved():
    """calls and cycles as the device reported them; bytes as the cycle model's AXI beats of each call."""
    cfg = SIM.replace(max_dim=16)
    with Accelerator("emu", config=cfg) as a:
        device = a.backend.device
        beats = []
        execute = device.execute

        def counted():
            arg = device._arg
            m, n, k, ab, bb, flags = (arg(r) for r in ("m", "n", "k", "a_bits", "b_bits", "flags"))
            hits = device.hits
            status, cycles = execute()
            hint = Prefetch(0, arg("next_n"), arg("next_k"), arg("next_b_bits")) \
                if flags & a.spec.flag("PREFETCH_B") else None
            if not status:
                est = gemm_cycles(cfg, m, n, k, ab, bb, b_prefetched=device.hits > hits, prefetch=hint)
                assert est.total == cycles
                beats.append(est.memory)
            return status, cycles

        device.execute = counted
        assert a.stats() == {"calls": 0, "cycles": 0, "read_bytes": 0, "write_bytes": 0}
        rng = np.random.default_rng(10)
        x, wt = codes(rng, (3, 40, 6, 5), 8, False), codes(rng, (18, 40, 3, 3), 7, True)
        e = codes(rng, (3, 18, 3, 3), 6, True)
        run_all(a, x, wt, e, 8, 7, 6, 2, 1, False, True, True)
        s = a.stats()
        assert s["calls"] == a.calls == len(beats) == len(a.history) > 3 and device.hits > 0
        assert s["cycles"] == sum(r.cycles for r in a.history)
        assert s["read_bytes"] + s["write_bytes"] == sum(beats) * cfg.axi_data_width // 8
        assert s["write_bytes"] == sum(r.m * -(-r.n // cfg.cols) * cfg.cols * 4 for r in a.history)
        assert s["read_bytes"] == sum(r.read_bytes for r in a.history)
