"""golden.conv2d / conv2d_input / conv2d_weight <= torch's float64 convolutions (exact on integer values), and
== golden.gemm on the host's im2col lowerings (cpt_hw.nn.ops.ConvOps), so the two golden paths agree."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cpt_hw.hw import golden as g
from cpt_hw.nn.ops import ConvOps

BITS = range(1, 9)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: torch's intra-op threads only spin against each other on a shared machine."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _rand(rng, shape, bits, signed):
    lo, hi = g.operand_range(bits, signed)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def _t(a: np.ndarray) -> torch.Tensor:
    """Integer codes as float64: every partial sum of these tests stays far below 2^53, so torch is exact."""
    return torch.from_numpy(a).to(torch.float64)


def _torch_all(x, w, e, stride, padding):
    """The three torch references as int64 numpy arrays."""
    y = F.conv2d(_t(x), _t(w), stride=stride, padding=padding)
    dx = torch.nn.grad.conv2d_input(x.shape, _t(w), _t(e), stride=stride, padding=padding)
    dw = torch.nn.grad.conv2d_weight(_t(x), w.shape, _t(e), stride=stride, padding=padding)
    return [t.numpy().astype(np.int64) for t in (y, dx, dw)]


def _golden_all(x, w, e, stride, padding, xb, wb, eb, xs, ws, es, **kw):
    y = g.conv2d(x, w, x_bits=xb, w_bits=wb, stride=stride, padding=padding, x_signed=xs, w_signed=ws, **kw)
    dx = g.conv2d_input(x.shape, w, e, w_bits=wb, e_bits=eb, stride=stride, padding=padding, w_signed=ws,
                        e_signed=es, **kw)
    dw = g.conv2d_weight(x, w.shape, e, x_bits=xb, e_bits=eb, stride=stride, padding=padding, x_signed=xs,
                         e_signed=es, **kw)
    return [y, dx, dw]


def _case(rng, n, c, k, h, wd, kh, kw, stride, padding, xb, wb, eb, xs, ws, es):
    ho, wo = g.conv_output_size(h, kh, stride, padding), g.conv_output_size(wd, kw, stride, padding)
    x = _rand(rng, (n, c, h, wd), xb, xs)
    w = _rand(rng, (k, c, kh, kw), wb, ws)
    e = _rand(rng, (n, k, ho, wo), eb, es)
    return x, w, e


def _assert_all_equal(got, ref):
    for name, a, b in zip(("conv2d", "conv2d_input", "conv2d_weight"), got, ref):
        assert a.dtype == np.int64, name
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("xs,ws,es", [(False, False, False), (True, True, True), (False, True, True),
                                      (True, False, False)])
def test_every_precision_pair(xs, ws, es):
    """Every (activation, weight) and (error) precision 1..8, each signedness mix, 3x3 and 1x1, both strides."""
    rng = np.random.default_rng(7 + 2 * xs + ws)
    for xb in BITS:
        for wb in BITS:
            eb = 1 + (xb + wb) % 8                     # every error precision, spread over the pairs
            ks = (3, 1)[(xb + wb) % 2]
            stride, padding = 1 + xb % 2, (ks == 3) * (wb % 2)
            n, c, k, h, wd = rng.integers(1, 4), rng.integers(1, 6), rng.integers(1, 6), rng.integers(3, 9), \
                rng.integers(3, 9)
            x, w, e = _case(rng, n, c, k, h, wd, ks, ks, stride, padding, xb, wb, eb, xs, ws, es)
            _assert_all_equal(_golden_all(x, w, e, stride, padding, xb, wb, eb, xs, ws, es),
                              _torch_all(x, w, e, stride, padding))


@st.composite
def conv_case(draw):
    xb, wb, eb = draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 8))
    xs, ws, es = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.sampled_from(g.CONV_STRIDES)), draw(st.sampled_from(g.CONV_PADDINGS))
    h = draw(st.integers(max(1, kh - 2 * padding), 9))
    wd = draw(st.integers(max(1, kw - 2 * padding), 9))
    n, c, k = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x, w, e = _case(rng, n, c, k, h, wd, kh, kw, stride, padding, xb, wb, eb, xs, ws, es)
    extreme = draw(st.sampled_from(["random", "random", "min", "max"]))
    if extreme != "random":  # the corners of the ranges, where sign planes and carries matter most
        pick = 0 if extreme == "min" else 1
        x, w, e = (np.full_like(a, g.operand_range(b, s)[pick]) for a, b, s in ((x, xb, xs), (w, wb, ws), (e, eb, es)))
    return x, w, e, stride, padding, xb, wb, eb, xs, ws, es


@settings(max_examples=150, deadline=None)
@given(conv_case())
def test_golden_equals_torch(case):
    x, w, e, stride, padding, *bits = case
    _assert_all_equal(_golden_all(x, w, e, stride, padding, *bits), _torch_all(x, w, e, stride, padding))


def _im2col_gemm_all(x, w, e, stride, padding, xb, wb, eb, xs, ws, es):
    """The three results through golden.gemm on the host's lowerings (cpt_hw.nn.ops, as the integer backends
    lower a layer today): im2col forward, the transposed-convolution input gradient and the weight gradient."""
    kh, kw = w.shape[2:]
    ops = ConvOps((kh, kw), (stride, stride), (padding, padding), (1, 1), 1)
    tx, tw, te = (torch.from_numpy(a) for a in (x, w, e))
    y = g.gemm(ops.lower(tx)[0].numpy(), ops.lower_weight(tw)[0].numpy().T, xb, wb, xs, ws)
    y = ops.raise_out(torch.from_numpy(y)[None], tx.shape).numpy()
    dx = g.gemm(ops.lower_transposed(te, tx.shape)[0].numpy(), ops.lower_weight_transposed(tw)[0].numpy(),
                eb, wb, es, ws)
    dx = ops.raise_in(torch.from_numpy(dx)[None], tx.shape).numpy()
    dwt = g.gemm(ops.lower_t(tx)[0].numpy(), ops.lower_out_t(te)[0].numpy().T, xb, eb, xs, es)   # (K, N)
    dw = ops.raise_weight(torch.from_numpy(dwt.T.copy())[None], tw.shape).numpy()
    return [y, dx, dw]


@pytest.mark.parametrize("geom", [(3, 1, 1), (3, 2, 1), (3, 1, 0), (3, 2, 0), (1, 1, 0), (1, 2, 0), (1, 2, 1),
                                  (2, 2, 1)])
def test_golden_conv_equals_golden_gemm_on_im2col(geom):
    ks, stride, padding = geom
    rng = np.random.default_rng(ks * 100 + stride * 10 + padding)
    for xb, wb, eb, xs, ws, es in [(3, 3, 8, False, False, False), (8, 8, 8, False, False, False),
                                   (5, 2, 7, True, True, True), (1, 8, 4, False, True, False)]:
        x, w, e = _case(rng, 2, 5, 4, 9, 8, ks, ks, stride, padding, xb, wb, eb, xs, ws, es)
        _assert_all_equal(_golden_all(x, w, e, stride, padding, xb, wb, eb, xs, ws, es),
                          _im2col_gemm_all(x, w, e, stride, padding, xb, wb, eb, xs, ws, es))


def test_int64_path_beyond_2_53():
    """Operands whose partial sums pass 2^53 take the int64 path (float64 would round): checked against
    golden.gemm on the im2col lowering, which switches to int64 by the same bound."""
    rng = np.random.default_rng(3)
    bits = 24                                       # 64 channels x 9 taps x 2^48 > 2^53
    x, w, e = _case(rng, 2, 64, 3, 5, 5, 3, 3, 1, 1, bits, bits, bits, True, False, True)
    x[...], w[...] = g.operand_range(bits, True)[0], g.operand_range(bits, False)[1]   # sums far past 2^53
    got = _golden_all(x, w, e, 1, 1, bits, bits, bits, True, False, True)
    assert np.abs(got[0]).max() > 1 << 53
    _assert_all_equal(got, _im2col_gemm_all(x, w, e, 1, 1, bits, bits, bits, True, False, True))


def test_any_kernel_up_to_max_kernel():
    """k <= max_kernel is accepted and exact (5x5 with max_kernel = 5); the default limit refuses it."""
    rng = np.random.default_rng(5)
    x, w, e = _case(rng, 2, 3, 4, 9, 7, 5, 5, 2, 1, 4, 4, 8, False, True, True)
    _assert_all_equal(_golden_all(x, w, e, 2, 1, 4, 4, 8, False, True, True, max_kernel=5),
                      _torch_all(x, w, e, 2, 1))
    with pytest.raises(ValueError, match="max_kernel = 3"):
        g.conv2d(x, w, x_bits=4, w_bits=4, w_signed=True, stride=2, padding=1)


def test_accumulator_wraps_like_twos_complement():
    x = np.full((1, 4, 3, 3), 255, dtype=np.int64)
    w = np.full((2, 4, 3, 3), 255, dtype=np.int64)
    exact = g.conv2d(x, w, x_bits=8, w_bits=8)
    assert exact[0, 0, 0, 0] == 36 * 255 * 255
    np.testing.assert_array_equal(g.conv2d(x, w, x_bits=8, w_bits=8, acc_width=16), g.wrap(exact, 16))
    dw = g.conv2d_weight(x, w.shape, exact.clip(0, 255), x_bits=8, e_bits=8, acc_width=12)
    np.testing.assert_array_equal(dw, g.wrap(g.conv2d_weight(x, w.shape, exact.clip(0, 255), x_bits=8, e_bits=8), 12))


def _one_line_error(fn, match):
    with pytest.raises(ValueError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


def test_bad_calls_raise_one_clear_value_error():
    x = np.zeros((2, 3, 6, 6), dtype=np.int64)
    w = np.zeros((4, 3, 3, 3), dtype=np.int64)
    e = np.zeros((2, 4, 6, 6), dtype=np.int64)
    kw = dict(x_bits=4, w_bits=4)
    _one_line_error(lambda: g.conv2d(x, w, groups=3, **kw), "groups = 3: only groups = 1")
    _one_line_error(lambda: g.conv2d(x, w, stride=3, **kw), r"stride = 3: supported strides are \(1, 2\)")
    _one_line_error(lambda: g.conv2d(x, w, padding=2, **kw), r"padding = 2: supported paddings are \(0, 1\)")
    _one_line_error(lambda: g.conv2d(x, w, stride=True, **kw), "stride = True: must be an integer")
    _one_line_error(lambda: g.conv2d(x[:, :2], w, **kw), "x has C = 2 channels, w .* expects 3")
    _one_line_error(lambda: g.conv2d(x[0], w, **kw), r"x must be 4-D \(N, C, H, W\)")
    _one_line_error(lambda: g.conv2d(x[:, :, :1, :1], w, **kw), "does not fit the input 1x1 padded by 0")
    _one_line_error(lambda: g.conv2d(x + 16, w, **kw), "conv2d: x: values 16..16 do not fit 4-bit unsigned")
    _one_line_error(lambda: g.conv2d(x, w - 9, x_bits=4, w_bits=4, w_signed=True), "do not fit 4-bit signed")
    _one_line_error(lambda: g.conv2d_input(x.shape, w, e[:, :, :4], w_bits=4, e_bits=8, padding=1),
                    r"e has shape \(2, 4, 4, 6\), expected \(N, K, Ho, Wo\) = \(2, 4, 6, 6\)")
    _one_line_error(lambda: g.conv2d_input((2, 3, 6), w, e, w_bits=4, e_bits=8), "input_size must be 4-D")
    _one_line_error(lambda: g.conv2d_input((2, 3, 0, 6), w, e, w_bits=4, e_bits=8), "must be >= 1")
    _one_line_error(lambda: g.conv2d_weight(x, (4, 3, 3, 3), e[:1], x_bits=4, e_bits=8, padding=1),
                    "e has shape")
    _one_line_error(lambda: g.conv2d_weight(x, (4, 3, 3, 3), e - 1, x_bits=4, e_bits=8, padding=1),
                    "conv2d_weight: e: values -1..-1 do not fit 8-bit unsigned")
