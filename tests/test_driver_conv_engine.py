"""Interface 4 on the emulated device: the driver's row-plane packer against conv_model.pack_tensor, the
driver's conv calls on the engine against the GEMM lowering and golden, and the device's rules (ERR_CONV,
the DMA window with halos, C16, SUMS, cycles from conv_model)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cpt_driver import Accelerator, ArgumentError
from cpt_driver import rowplanes
from cpt_driver import sums as driver_sums
from cpt_driver.backends.emu import EmuBackend
from cpt_driver.spec import DeviceSpec
from cpt_hw.hw import conv_calls, conv_model, emu_device, golden
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.conv_calls import ConvArgs, encode_conv
from cpt_hw.hw.regmap import register_map

SIM = HardwareConfig.from_preset("sim")
SIM4 = HardwareConfig.from_preset("sim", {"conv_engine": True})
ZC4 = HardwareConfig.from_preset("zc706", {"conv_engine": True})


def codes(rng, shape, bits, signed):
    lo, hi = golden.operand_range(bits, signed)
    return rng.integers(lo, hi + 1, size=shape)


@pytest.mark.parametrize("dot_width", [32, 64])
def test_packer_is_bit_exact_with_the_reference(dot_width):
    rng = np.random.default_rng(1)
    for c in (1, 3, 4, 5, 16, 31, 33, 64, 70):
        for bits, signed in ((1, False), (3, True), (8, False), (8, True), (5, False)):
            q = codes(rng, (2, c, 3, 5), bits, signed).astype(np.int8 if signed else np.uint8)
            for layout in (q, np.ascontiguousarray(q.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)):  # channels-last too
                out = np.full(rowplanes.tensor_bytes(q.shape, bits, dot_width), 0xFF, np.uint8)  # padding cleared
                rowplanes.pack_tensor_into(layout, bits, dot_width, out)
                np.testing.assert_array_equal(out, conv_model.pack_tensor(q, bits, dot_width))
            assert out.size == conv_model.tensor_bytes(ZC4 if dot_width == 64 else SIM4, *q.shape, bits)


def draw_geometry(data) -> tuple[int, ...]:
    """A random convolution the engine's tests share: (N, C, K, H, W, kh, kw, stride, padding), the kernel inside
    the padded input."""
    n, c, k = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 20)), data.draw(st.integers(1, 10))
    h, w = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    kh, kw = data.draw(st.sampled_from([1, 3])), data.draw(st.sampled_from([1, 2, 3]))
    s, p = data.draw(st.sampled_from([1, 2])), data.draw(st.sampled_from([0, 1]))
    assume(h + 2 * p >= kh and w + 2 * p >= kw)
    return n, c, k, h, w, kh, kw, s, p


@pytest.fixture(scope="module")
def accs():
    with Accelerator("emu", config=SIM4) as engine, Accelerator("emu", config=SIM) as lowering, \
            Accelerator("emu", config=ZC4) as zc:
        yield engine, lowering, zc


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_engine_equals_lowering_and_golden(accs, data):
    engine, lowering, zc = accs
    n, c, k, h, w, kh, kw, s, p = draw_geometry(data)
    xb, wb, eb = (data.draw(st.integers(1, 8)) for _ in range(3))
    xs, ws, es = (data.draw(st.booleans()) for _ in range(3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x, wt = codes(rng, (n, c, h, w), xb, xs), codes(rng, (k, c, kh, kw), wb, ws)
    geo = {"stride": s, "padding": p}
    ref = golden.conv2d(x, wt, x_bits=xb, w_bits=wb, x_signed=xs, w_signed=ws, **geo)
    e = codes(rng, ref.shape, eb, es)
    for acc in (engine, zc):
        before = acc.calls
        y = acc.conv2d(x, wt, x_bits=xb, w_bits=wb, x_signed=xs, w_signed=ws, **geo)
        dx = acc.conv2d_input(x.shape, wt, e, w_bits=wb, e_bits=eb, w_signed=ws, e_signed=es, **geo)
        dw = acc.conv2d_weight(x, wt.shape, e, x_bits=xb, e_bits=eb, x_signed=xs, e_signed=es, **geo)
        ops = {r.op for r in list(acc.history)[-(acc.calls - before):]}
        if acc is zc:    # every call ran on the engine (on sim, kh kw Cp > k_max = 256 is lowered instead)
            assert ops == {"fwd", "dgrad", "wgrad"}, ops
        np.testing.assert_array_equal(y, ref)
        np.testing.assert_array_equal(dx, golden.conv2d_input(x.shape, wt, e, w_bits=wb, e_bits=eb, w_signed=ws,
                                                              e_signed=es, **geo))
        np.testing.assert_array_equal(dw, golden.conv2d_weight(x, wt.shape, e, x_bits=xb, e_bits=eb, x_signed=xs,
                                                               e_signed=es, **geo))
    np.testing.assert_array_equal(y, lowering.conv2d(x, wt, x_bits=xb, w_bits=wb, x_signed=xs, w_signed=ws, **geo))
    np.testing.assert_array_equal(dx, lowering.conv2d_input(x.shape, wt, e, w_bits=wb, e_bits=eb, w_signed=ws,
                                                            e_signed=es, **geo))
    np.testing.assert_array_equal(dw, lowering.conv2d_weight(x, wt.shape, e, x_bits=xb, e_bits=eb, x_signed=xs,
                                                             e_signed=es, **geo))


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_a_packed_input_gives_the_same_calls_and_results(accs, data):
    """acc.pack_tensor(x) in place of x: conv2d and conv2d_weight make the same device calls (same bytes moved)
    and return the same results, on the engine and lowered (sim without the engine: the codes unpacked again);
    the packed bytes are the packer's and unpack to x."""
    n, c, k = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 40)), data.draw(st.integers(1, 6))
    h, w = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    kh = data.draw(st.sampled_from([1, 3]))
    s, p = data.draw(st.sampled_from([1, 2])), data.draw(st.sampled_from([0, 1]))
    assume(h + 2 * p >= kh and w + 2 * p >= kh)
    xb, eb = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8))
    xs = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = codes(rng, (n, c, h, w), xb, xs)
    wt = codes(rng, (k, c, kh, kh), 4, False)
    geo = {"stride": s, "padding": p}
    e = codes(rng, golden.conv2d(x, wt, x_bits=xb, w_bits=4, x_signed=xs, **geo).shape, eb, True)
    for acc in accs:
        px = acc.pack_tensor(x, xb, signed=xs)
        assert (px.shape, px.bits, px.signed, px.dot_width) == (x.shape, xb, xs, acc.spec.dot_width)
        np.testing.assert_array_equal(px.data, conv_model.pack_tensor(x, xb, acc.spec.dot_width))
        np.testing.assert_array_equal(px.codes(), x)
        results, calls = [], []
        for operand in (x, px):
            start = acc.calls
            results.append((acc.conv2d(operand, wt, x_bits=xb, w_bits=4, x_signed=xs, **geo),
                            acc.conv2d_weight(operand, wt.shape, e, x_bits=xb, e_bits=eb, x_signed=xs, e_signed=True,
                                              **geo)))
            calls.append([(r.op, r.m, r.n, r.k, r.read_bytes, r.write_bytes, r.cycles)
                          for r in list(acc.history)[-(acc.calls - start):]])
        assert calls[0] == calls[1]
        for plain, packed in zip(*results):
            np.testing.assert_array_equal(plain, packed)


def test_a_packed_input_is_checked_against_the_call(accs):
    acc = accs[2]
    rng = np.random.default_rng(5)
    x, wt = codes(rng, (1, 4, 5, 5), 5, False), codes(rng, (2, 4, 3, 3), 5, False)
    px = acc.pack_tensor(x, 5)
    start = acc.calls
    with pytest.raises(ArgumentError, match=r"conv2d: x was packed as 5-bit unsigned codes, the call has "
                                            r"x_bits = 6, x_signed = False"):
        acc.conv2d(px, wt, x_bits=6, w_bits=5)
    with pytest.raises(ArgumentError, match=r"conv2d_weight: x was packed as 5-bit unsigned codes.*x_signed = True"):
        acc.conv2d_weight(px, wt.shape, np.zeros((1, 2, 3, 3), np.int8), x_bits=5, e_bits=8, x_signed=True)
    with pytest.raises(ArgumentError, match=r"pack_tensor: x: values 0\.\.31 do not fit 4-bit unsigned"):
        acc.pack_tensor(x, 4)
    with pytest.raises(ArgumentError, match=r"pack_tensor: x: expected a 4-D array"):
        acc.pack_tensor(x[0], 5)
    assert acc.calls == start   # nothing reached the device
    # a tensor packed for another dot width (sim's) is unpacked and packed again: the same result
    foreign = accs[0].pack_tensor(x, 5)
    assert foreign.dot_width != acc.spec.dot_width
    np.testing.assert_array_equal(acc.conv2d(foreign, wt, x_bits=5, w_bits=5), acc.conv2d(x, wt, x_bits=5, w_bits=5))


def _sums_want(x, xb, xs, e, eb, es, wshape, s, p):
    """The code sums by their definitions (docs/driver.md): golden convolutions with all-ones operands."""
    n, c, h, w = x.shape
    k, _, kh, kw = wshape
    geo = {"stride": s, "padding": p}
    ones_e = np.ones((n, 1) + e.shape[2:], np.int64)
    return (golden.conv2d(x, np.ones((1, c, kh, kw), np.int64), x_bits=xb, w_bits=1, x_signed=xs, **geo)[:, 0],
            golden.conv2d_weight(x, (1, c, kh, kw), ones_e, x_bits=xb, e_bits=1, x_signed=xs, **geo)[0],
            golden.conv2d_weight(np.ones((n, 1, h, w), np.int64), (k, 1, kh, kw), e, x_bits=1, e_bits=eb,
                                 e_signed=es, **geo)[:, 0])


#: zc706 with the engine, under a name :func:`refusing_wgrad_sums` knows
ZC4_NO_WGRAD_SUMS = HardwareConfig.from_preset("zc706", {"conv_engine": True, "name": "zc706_no_wgrad_sums"})


@contextlib.contextmanager
def refusing_wgrad_sums() -> Iterator[None]:
    """Meanwhile the emulated devices of ZC4_NO_WGRAD_SUMS refuse SUMS in weight gradients (ERR_CONV), as an
    implementation without those sums does (the Verilog twin did until it wrote them; docs/driver.md): the
    driver's host fallback."""
    real = emu_device.conv_status
    err_conv = 1 << DeviceSpec.from_hardware_config(ZC4).status_bits["ERR_CONV"]

    def status(cfg: HardwareConfig, call, twin: bool = False) -> int:
        g = ConvArgs.decode(call)
        refused = cfg.name == ZC4_NO_WGRAD_SUMS.name and g.op == "wgrad" and g.flag("SUMS")
        return real(cfg, call, twin=twin) | (err_conv if refused else 0)
    with mock.patch.object(emu_device, "conv_status", status):
        yield


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_code_sums_are_exact_from_the_device_the_twin_and_the_lowering(accs, data):
    """x_sums / e_sums equal their definitions whoever makes them: the engine's SUMS (emulated design, zc706 and
    sim, and the twin's rule: every conv call of the engine sets the flag), the host where the device refuses SUMS
    (a device refusing them in weight gradients) or the call is lowered (no engine); with x as codes and packed
    once; and the results do not change."""
    engine, lowering, zc = accs
    n, c, k, h, w, kh, kw, s, p = draw_geometry(data)
    xb, wb, eb = (data.draw(st.integers(1, 8)) for _ in range(3))
    xs, es = data.draw(st.booleans()), data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x, wt = codes(rng, (n, c, h, w), xb, xs), codes(rng, (k, c, kh, kw), wb, False)
    geo = {"stride": s, "padding": p}
    y_ref = golden.conv2d(x, wt, x_bits=xb, w_bits=wb, x_signed=xs, **geo)
    e = codes(rng, y_ref.shape, eb, es)
    dw_ref = golden.conv2d_weight(x, wt.shape, e, x_bits=xb, e_bits=eb, x_signed=xs, e_signed=es, **geo)
    want = _sums_want(x, xb, xs, e, eb, es, wt.shape, s, p)
    with Accelerator("emu", config=ZC4, twin_limits=True) as twin, refusing_wgrad_sums(), \
            Accelerator("emu", config=ZC4_NO_WGRAD_SUMS) as refusing:
        for acc in (engine, zc, lowering, twin, refusing):
            for x_arg in (x, acc.pack_tensor(x, xb, signed=xs)):
                got = [np.full(want[0].shape, -7, np.int64), np.full(want[1].shape, -7.0), np.full(want[2].shape, 99,
                                                                                                      np.int32)]
                before = acc.calls
                y = acc.conv2d(x_arg, wt, x_bits=xb, w_bits=wb, x_signed=xs, x_sums=got[0], **geo)
                dw = acc.conv2d_weight(x_arg, wt.shape, e, x_bits=xb, e_bits=eb, x_signed=xs, e_signed=es,
                                       x_sums=got[1], e_sums=got[2], **geo)
                np.testing.assert_array_equal(y, y_ref)
                np.testing.assert_array_equal(dw, dw_ref)
                for g_, w_ in zip(got, want):
                    np.testing.assert_array_equal(g_, w_)
                calls = list(acc.history)[-(acc.calls - before):]
                summed = [r for r in calls if acc.engine and r.flags & acc.spec.flag("SUMS")]
                if acc is zc:   # the engine takes every call here, each with SUMS
                    assert {r.op for r in calls} == {"fwd", "wgrad"} and summed == calls
                    assert acc.engine.sums == {"fwd": True, "wgrad": True}
                if acc is twin:  # it takes SUMS in both ops (where it takes the call)
                    assert False not in twin.engine.sums.values()
                    assert all(r.status == 0 for r in summed if r.op == "fwd")
                if acc is refusing:  # its forward calls take SUMS; it refused the first weight gradient's, none since
                    assert refusing.engine.sums["fwd"] is not False and refusing.engine.sums["wgrad"] is not True
                    assert all(r.status == 0 for r in summed if r.op == "fwd")
                    assert all(r.status for r in summed if r.op == "wgrad")
                if acc is lowering:
                    assert not summed


def test_a_device_refusing_sums_is_asked_once_then_the_host_sums():
    """On a device refusing SUMS in weight gradients (ERR_CONV; a forward call takes them) the driver makes that
    first call again without SUMS, asks no later weight gradient for sums, and the sums and results are the same as
    on the design, which writes them all (and its bytes count them: 4 per sum)."""
    rng = np.random.default_rng(9)
    x, wt = codes(rng, (2, 16, 8, 8), 4, False), codes(rng, (16, 16, 3, 3), 4, False)
    e = codes(rng, (2, 16, 8, 8), 8, True)
    out = {}
    for refuses in (False, True):
        with refusing_wgrad_sums(), Accelerator("emu", config=ZC4_NO_WGRAD_SUMS if refuses else ZC4) as acc:
            sums = [np.empty((2, 8, 8), np.int64), np.empty((16, 3, 3), np.int64), np.empty((16, 3, 3), np.int64)]
            y = acc.conv2d(x, wt, x_bits=4, w_bits=4, padding=1, x_sums=sums[0])
            dw = acc.conv2d_weight(x, wt.shape, e, x_bits=4, e_bits=8, padding=1, e_signed=True, x_sums=sums[1],
                                   e_sums=sums[2])
            records = [(r.op, bool(r.flags & acc.spec.flag("SUMS")), r.status) for r in acc.history]
            out[refuses] = (y, dw, sums, records, acc.stats()["write_bytes"], acc.engine.sums)
    y, dw, sums, records, written, taken = out[False]
    assert taken == {"fwd": True, "wgrad": True} and records == [("fwd", True, 0), ("wgrad", True, 0)]
    err_conv = 1 << DeviceSpec.from_hardware_config(ZC4).status_bits["ERR_CONV"]
    ty, tdw, tsums, trecords, twritten, ttaken = out[True]
    assert ttaken == {"fwd": True, "wgrad": False}
    assert trecords == [("fwd", True, 0), ("wgrad", True, err_conv), ("wgrad", False, 0)]
    np.testing.assert_array_equal(ty, y)
    np.testing.assert_array_equal(tdw, dw)
    for a, b in zip(tsums, sums):
        np.testing.assert_array_equal(a, b)
    assert written - twritten == 4 * (9 * 16 + 9 * 16)       # the weight gradient's sums


def test_the_drivers_sum_width_is_the_configs():
    """The driver (no cpt_hw on the board) keeps its own copy of the code sums' width: it must be cpt_hw's."""
    assert driver_sums.SUM_BYTES == conv_calls.SUM_BYTES == driver_sums.SUM_DTYPE.itemsize


def test_code_sums_arguments_are_checked_before_any_call(accs):
    engine = accs[0]
    x, wt, e = np.zeros((2, 3, 6, 6), np.uint8), np.zeros((4, 3, 3, 3), np.uint8), np.zeros((2, 4, 6, 6), np.uint8)
    before = engine.calls
    for call, message in (
            (lambda: engine.conv2d(x, wt, x_bits=2, w_bits=2, padding=1, x_sums=np.empty((2, 5, 5))),
             "conv2d: x_sums: shape (2, 5, 5), the result is (2, 6, 6)"),
            (lambda: engine.conv2d(x, wt, x_bits=2, w_bits=2, padding=1, x_sums=[[0]]),
             "conv2d: x_sums: list is not a numpy array"),
            (lambda: engine.conv2d_weight(x, wt.shape, e, x_bits=2, e_bits=2, padding=1,
                                          e_sums=np.empty((4, 3, 3)).astype(bool)),
             "conv2d_weight: e_sums: dtype bool is not an integer or float type"),
            (lambda: engine.conv2d_weight(x, wt.shape, e, x_bits=2, e_bits=2, padding=1,
                                          x_sums=np.broadcast_to(np.zeros(1), (3, 3, 3))),
             "conv2d_weight: x_sums: read-only array")):
        with pytest.raises(Exception) as info:
            call()
        assert str(info.value) == message
    assert engine.calls == before


def test_weight_gradient_chunks_chain_and_sum(accs):
    """sim: k_max = 256 positions, so 16 images of 8x8 take four chunks of 4, each hinting the next."""
    engine = accs[0]
    rng = np.random.default_rng(3)
    x, e = codes(rng, (16, 4, 8, 8), 8, False), codes(rng, (16, 6, 8, 8), 8, True)
    start = engine.calls
    dw = engine.conv2d_weight(x, (6, 4, 3, 3), e, x_bits=8, e_bits=8, padding=1, e_signed=True)
    calls = list(engine.history)[-(engine.calls - start):]
    assert [(r.op, r.k, r.prefetch) for r in calls] == [("wgrad", 256, True)] * 3 + [("wgrad", 256, False)]
    np.testing.assert_array_equal(dw, golden.conv2d_weight(x, (6, 4, 3, 3), e, x_bits=8, e_bits=8, padding=1,
                                                           e_signed=True))
    assert engine.backend.device.runs and calls[1].cycles < calls[0].cycles   # the hinted chunk's load is hidden


def test_weight_gradient_halves_its_chunks_where_the_device_refuses_them():
    """An implementation with tighter limits (the Verilog twin's formers, on an emulated device that refuses as the
    twin does) refuses a layer's first weight-gradient call with ERR_CONV: the driver halves the images per call
    until one is taken, then bisects towards the limit on later calls (one refusal each at most), and every result
    is golden's.  zc706, a stage-2 layer (32 channels, 16x16): the design's rule takes all 16 images in one call, the
    twin's formers 8 (their banks)."""
    rng = np.random.default_rng(5)
    x, e = codes(rng, (16, 32, 16, 16), 8, False), codes(rng, (16, 32, 16, 16), 8, True)
    want = golden.conv2d_weight(x, (32, 32, 3, 3), e, x_bits=8, e_bits=8, padding=1, e_signed=True)
    with Accelerator("emu", config=ZC4) as design, Accelerator("emu", config=ZC4, twin_limits=True) as twin:
        np.testing.assert_array_equal(design.conv2d_weight(x, (32, 32, 3, 3), e, x_bits=8, e_bits=8, padding=1,
                                                           e_signed=True), want)
        assert [r.k for r in design.history] == [16 * 256]
        # refused: 16 images (halving to 8, taken), then 12, 10 and 9 (bisecting between 8 taken and the fewest
        # refused); then none
        for refusals in ([16], [12], [10], [9], []):
            start = twin.calls
            np.testing.assert_array_equal(twin.conv2d_weight(x, (32, 32, 3, 3), e, x_bits=8, e_bits=8, padding=1,
                                                             e_signed=True), want)
            calls = list(twin.history)[start:]
            ran = [r for r in calls if not r.status]
            assert [r.k // 256 for r in calls if r.status] == refusals
            assert [(r.k, r.prefetch) for r in ran] == [(8 * 256, True), (8 * 256, False)]
        assert twin.engine.wgrad_limits == {(32, 32, 16, 16, 3, 3, 1, 1, 8, 8): (8, 9)}


@pytest.mark.parametrize("sums", [False, True])
def test_stats_are_the_models_traffic_and_cycles(sums):
    """One whole-batch call per class on zc706: the driver's byte counts and the device's cycles are
    conv_model.estimate's for the layer (the design's model, not a measurement), with and without code sums."""
    shape = conv_model.ConvShape(4, 16, 16, 32, 32, 3, 1, 1)
    rng = np.random.default_rng(4)
    x, wt = codes(rng, (4, 16, 32, 32), 4, False), codes(rng, (16, 16, 3, 3), 3, False)
    e = codes(rng, (4, 16, 32, 32), 8, True)
    design = conv_model.ConvDesign.for_config(ZC4, sums=sums)
    fwd_sums = {"x_sums": np.empty((4, 32, 32))} if sums else {}
    wgrad_sums = {"x_sums": np.empty((16, 3, 3)), "e_sums": np.empty((16, 3, 3))} if sums else {}
    with Accelerator("emu", config=ZC4) as acc:
        for op, call, bits in (("fwd", lambda: acc.conv2d(x, wt, x_bits=4, w_bits=3, padding=1, **fwd_sums), (4, 3)),
                               ("dgrad", lambda: acc.conv2d_input(x.shape, wt, e, w_bits=3, e_bits=8, padding=1,
                                                                  e_signed=True), (8, 3)),
                               ("wgrad", lambda: acc.conv2d_weight(x, wt.shape, e, x_bits=4, e_bits=8, padding=1,
                                                                   e_signed=True, **wgrad_sums), (4, 8))):
            before = acc.stats()
            call()
            got = {k: acc.stats()[k] - before[k] for k in before}
            est = conv_model.estimate(ZC4, op, shape, *bits, design=design)
            assert (got["calls"], got["read_bytes"], got["write_bytes"]) \
                == (est.calls, est.read_bytes, est.write_bytes), op
            assert got["cycles"] == est.cycles, op


# ---------------------------------------------------------------------------------------------- the device
class Dev:
    """Register-level access to an emulated interface-4 device with two buffers (tensor, rest)."""

    def __init__(self, cfg=SIM4):
        self.cfg = cfg
        self.spec = DeviceSpec.from_hardware_config(cfg)
        self.be = EmuBackend(self.spec, hw_config=cfg)
        self.rm = register_map(cfg)

    def call(self, **args) -> int:
        for name, value in args.items():
            for i, off in enumerate(self.spec.arg_words[name]):
                self.be.write_reg(off, value >> (32 * i) & 0xFFFFFFFF)
        self.be.write_reg(self.spec.registers["CTRL"], 1)
        return self.read("status")

    def read(self, name: str) -> int:
        """An argument or output register's value (its 32-bit words, low first)."""
        return sum(self.be.read_reg(off) << (32 * i) for i, off in enumerate(self.spec.arg_words[name]))


def fwd_setup(dev, x, wt, xb, wb, s, p, c16=False):
    d = dev.cfg.dot_width
    t = conv_model.pack_tensor(x, xb, d)
    rows = rowplanes.fwd_weight_rows(wt, d)
    wbytes = rowplanes.weight_bytes([rows], wb, d)
    n, c, h, w = x.shape
    k = wt.shape[0]
    ho, wo = golden.conv_output_size(h, wt.shape[2], s, p), golden.conv_output_size(w, wt.shape[3], s, p)
    cbytes = n * ho * wo * -(-k // dev.cfg.cols) * dev.cfg.cols * (2 if c16 else 4)
    ta, tarr = dev.be.memory.allocate(t.size)
    tarr[:] = t
    wa, warr = dev.be.memory.allocate(wbytes)
    rowplanes.pack_weights_into([rows], wb, d, warr)
    ca, carr = dev.be.memory.allocate(cbytes)
    args = dict(a=ta, b=wa, c=ca, a_bits=xb, b_bits=wb, flags=dev.spec.flag("C16") if c16 else 0,
                conv=encode_conv("fwd", wt.shape[2], wt.shape[3], s, p), batch=n, channels=c | k << 16,
                size=h | w << 16, band=0, win_base=ta, win_limit=ca + cbytes)
    return args, carr, (n * ho * wo, k)


def test_forward_band_reads_only_its_rows_and_the_window_clips_halos():
    dev = Dev()
    rng = np.random.default_rng(5)
    x, wt = codes(rng, (2, 3, 9, 5), 5, False), codes(rng, (4, 3, 3, 3), 2, False)
    args, carr, _ = fwd_setup(dev, x, wt, 5, 2, 1, 1)
    row = rowplanes.row_bytes(5, 3, 5, dev.cfg.dot_width)
    image = 9 * row
    # output rows 3..5 of each image reach input rows 2..6: the range starts at row 2 of image 0 and ends
    # after row 6 of image 1; a window exactly that tight (plus b and c) is accepted
    band = dict(band=3 | 3 << 16)
    lo, hi = args["a"] + 2 * row, args["a"] + image + 7 * row
    ok = {**args, **band, "flags": 0, "win_base": min(lo, args["b"]), "win_limit": args["c"] + 2 * 3 * 5 * 4 * 4}
    assert dev.call(**ok) == 0
    assert dev.call(**{**ok, "a": args["a"] - row, "win_base": lo}) == 1 << 3     # one row lower: outside
    y = golden.conv2d(x, wt, x_bits=5, w_bits=2, padding=1)
    got = carr[:2 * 3 * 5 * 4 * 4].view("<i4").reshape(2 * 3 * 5, 4)
    np.testing.assert_array_equal(got, y[:, :, 3:6, :].transpose(0, 2, 3, 1).reshape(-1, 4))
    # whole images with padding 1: the halo rows above the first and below the last image are never read,
    # so the tensor's own bytes are the whole range
    assert dev.call(**{**args, "win_base": args["a"]}) == 0
    assert dev.call(**{**args, "win_base": args["a"] + 1}) == 1 << 3          # ERR_WINDOW: one byte short
    assert hi <= args["a"] + 2 * image


@pytest.mark.parametrize("change,bits", [
    (lambda a: {"conv": a["conv"] & ~(3 << 12) | 3 << 12}, ("ERR_CONV",)),           # stride 3
    (lambda a: {"conv": a["conv"] & ~(3 << 14) | 2 << 14}, ("ERR_CONV",)),           # padding 2
    (lambda a: {"conv": a["conv"] & ~(0xF << 4) | 4 << 4}, ("ERR_CONV",)),           # kh 4 > max_kernel
    (lambda a: {"conv": a["conv"] | 1 << 20}, ("ERR_CONV",)),                        # a reserved conv bit
    (lambda a: {"band": 7 | 4 << 16}, ("ERR_CONV",)),                                # rows 7..10 of 9
    (lambda a: {"flags": 1 << 4}, ("ERR_CONV",)),                                    # C16 beyond int16
    (lambda a: {"batch": 0}, ("ERR_DIM",)),
    (lambda a: {"a_bits": 9}, ("ERR_BITS",)),
    (lambda a: {"c": a["c"] + 2, "win_limit": a["win_limit"] + 8}, ("ERR_ALIGN",)),
    (lambda a: {"flags": 1 << 5}, ("ERR_FLAGS",)),
    (lambda a: {"flags": 1 << 2}, ("ERR_FLAGS",)),                                   # PREFETCH_B off wgrad
    (lambda a: {"win_limit": a["c"]}, ("ERR_WINDOW",)),
    (lambda a: {"batch": 0, "conv": a["conv"] | 3 << 12, "win_limit": 0}, ("ERR_CONV", "ERR_DIM")),
])
def test_refused_conv_calls(change, bits):
    dev = Dev()
    rng = np.random.default_rng(6)
    x, wt = codes(rng, (2, 3, 9, 5), 8, False), codes(rng, (4, 3, 3, 3), 8, False)
    args, carr, _ = fwd_setup(dev, x, wt, 8, 8, 1, 1)
    carr[:] = 0x5A
    status = dev.call(**{**args, **change(args)})
    assert status == sum(1 << dev.spec.status_bits[b] for b in bits)
    assert (carr == 0x5A).all()                                                       # nothing written


def test_line_buffer_larger_than_the_tensor_buffer_is_refused_and_the_driver_lowers_it():
    small = HardwareConfig.from_preset("sim", {"conv_engine": True, "tensor_buffer_bram36": 8})
    dev = Dev(small)
    rng = np.random.default_rng(7)
    x, wt = codes(rng, (1, 16, 4, 600), 8, False), codes(rng, (2, 16, 3, 3), 1, False)
    line = conv_model.line_buffer_bits(small, "fwd", conv_model.ConvShape(1, 16, 2, 4, 600, 3, 1, 1), 8)
    assert line > small.tensor_buffer_bits
    args, _, _ = fwd_setup(dev, x, wt, 8, 1, 1, 1)
    assert dev.call(**args) == 1 << dev.spec.status_bits["ERR_CONV"]
    with Accelerator("emu", config=small) as acc:
        y = acc.conv2d(x, wt, x_bits=8, w_bits=1, padding=1)
        assert {r.op for r in acc.history} == {"gemm"}
        np.testing.assert_array_equal(y, golden.conv2d(x, wt, x_bits=8, w_bits=1, padding=1))


def test_c16_results_and_forward_sums():
    dev = Dev()
    rng = np.random.default_rng(8)
    x, wt = codes(rng, (2, 3, 6, 5), 2, True), codes(rng, (4, 3, 3, 3), 3, False)
    args, carr, (m, k) = fwd_setup(dev, x, wt, 2, 3, 2, 1, c16=True)
    sa, sarr = dev.be.memory.allocate(4 * (m + k * 9))
    args.update(flags=dev.spec.flag("C16") | dev.spec.flag("SUMS") | dev.spec.flag("A_SIGNED"), sums=sa,
                win_limit=sa + sarr.size)
    assert dev.call(**args) == 0
    y = golden.conv2d(x, wt, x_bits=2, w_bits=3, stride=2, padding=1, x_signed=True)
    got = carr[:m * 4 * 2].view("<i2").reshape(m, 4)
    np.testing.assert_array_equal(got, y.transpose(0, 2, 3, 1).reshape(-1, 4))
    window = golden.conv2d(x, np.ones((1, 3, 3, 3), np.int64), x_bits=2, w_bits=1, stride=2, padding=1, x_signed=True)
    np.testing.assert_array_equal(sarr.view("<i4")[:m], window.reshape(-1))
    np.testing.assert_array_equal(sarr.view("<i4")[m:], wt.sum(axis=1).reshape(-1))


def test_weight_gradient_hint_hits_only_a_call_with_the_same_sums_and_signedness():
    """registers.md, "The weight gradient's prefetch": the next call loads nothing of its own iff its a, b,
    geometry and flags SUMS and B_SIGNED equal the hint's.  Two chunks of two images; the second call's cycles are
    the model's hit (fewer) only when it matches, the cold call's otherwise; every result is golden's."""
    dev = Dev()
    rng = np.random.default_rng(9)
    d, (n, c, h, w), k = dev.cfg.dot_width, (4, 3, 6, 6), 5
    x, e = codes(rng, (n, c, h, w), 4, False), codes(rng, (n, k, h, w), 6, True)
    xt, et = conv_model.pack_tensor(x, 4, d), conv_model.pack_tensor(e, 6, d)
    xa, xarr = dev.be.memory.allocate(xt.size)
    ea, earr = dev.be.memory.allocate(et.size)
    xarr[:], earr[:] = xt, et
    m = 9 * c
    cbytes = m * -(-k // dev.cfg.cols) * dev.cfg.cols * 4
    ca, carr = dev.be.memory.allocate(cbytes)
    sa, sarr = dev.be.memory.allocate(4 * (m + 9 * k))
    x_img, e_img = xt.size // n, et.size // n
    base = dict(c=ca, sums=sa, a_bits=4, b_bits=6, conv=encode_conv("wgrad", 3, 3, 1, 1), batch=2,
                channels=c | k << 16, size=h | w << 16, band=0, win_base=xa, win_limit=sa + sarr.size)
    f = dev.spec.flag

    def chunk(i: int, flags: int, hint: bool = False) -> int:
        args = dict(base, a=xa + 2 * i * x_img, b=ea + 2 * i * e_img, flags=flags)
        if hint:
            args.update(flags=flags | f("PREFETCH_B"), next_a=xa + 2 * x_img, next_b=ea + 2 * e_img)
        assert dev.call(**args) == 0
        dw = carr.view("<i4").reshape(m, -1)[:, :k]
        e_signed = bool(flags & f("B_SIGNED"))   # without it the device reads E's 6-bit codes as unsigned
        ei = e[2 * i:2 * i + 2] if e_signed else e[2 * i:2 * i + 2] & 63
        want = golden.conv2d_weight(x[2 * i:2 * i + 2], (k, c, 3, 3), ei, x_bits=4, e_bits=6, padding=1,
                                    e_signed=e_signed)
        np.testing.assert_array_equal(dw, want.transpose(2, 3, 1, 0).reshape(m, k))
        return dev.read("cycles")

    signed, sums = f("B_SIGNED"), f("SUMS")
    flag_sets = (0, signed, sums, signed | sums)
    cold = {flags: chunk(1, flags) for flags in flag_sets}   # no hint before them: loads of their own
    for first in flag_sets:
        for second in flag_sets:
            chunk(0, first, hint=True)
            got = chunk(1, second)
            assert (got < cold[second]) if first == second else (got == cold[second]), (first, second)
