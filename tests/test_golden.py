"""golden <= plain integer matmul, for every precision pair and signedness; quantizer error bounds."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cpt_hw.hw import golden as g

BITS = range(1, 9)


def _rand(rng, shape, bits, signed):
    lo, hi = g.operand_range(bits, signed)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


@pytest.mark.parametrize("a_signed", [False, True])
@pytest.mark.parametrize("b_signed", [False, True])
def test_every_precision_pair(a_signed, b_signed):
    rng = np.random.default_rng(1 + 2 * a_signed + b_signed)
    for a_bits in BITS:
        for b_bits in BITS:
            m, k, n = rng.integers(1, 12, size=3)
            a, b = _rand(rng, (m, k), a_bits, a_signed), _rand(rng, (k, n), b_bits, b_signed)
            ref = a @ b
            np.testing.assert_array_equal(g.gemm_bitplanes(a, b, a_bits, b_bits, a_signed, b_signed), ref)
            np.testing.assert_array_equal(g.gemm(a, b, a_bits, b_bits, a_signed, b_signed, acc_width=32), ref)


@st.composite
def gemm_case(draw):
    a_bits, b_bits = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    a_signed, b_signed = draw(st.booleans()), draw(st.booleans())
    m, k, n = draw(st.integers(1, 9)), draw(st.integers(1, 70)), draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    extreme = draw(st.sampled_from(["random", "min", "max"]))
    a, b = _rand(rng, (m, k), a_bits, a_signed), _rand(rng, (k, n), b_bits, b_signed)
    if extreme != "random":  # the corners of the range, where sign planes and carries matter most
        pick = 0 if extreme == "min" else 1
        a = np.full_like(a, g.operand_range(a_bits, a_signed)[pick])
        b = np.full_like(b, g.operand_range(b_bits, b_signed)[pick])
    return a, b, a_bits, b_bits, a_signed, b_signed


@settings(max_examples=300, deadline=None)
@given(gemm_case())
def test_golden_equals_integer_matmul(case):
    a, b, a_bits, b_bits, a_signed, b_signed = case
    ref = a @ b
    np.testing.assert_array_equal(g.gemm_bitplanes(a, b, a_bits, b_bits, a_signed, b_signed), ref)
    np.testing.assert_array_equal(g.gemm(a, b, a_bits, b_bits, a_signed, b_signed), ref)


def test_accumulator_wraps_like_twos_complement():
    a = np.full((1, 3), 255, dtype=np.int64)
    b = np.full((3, 1), 255, dtype=np.int64)
    exact = 3 * 255 * 255
    got = g.gemm(a, b, 8, 8, acc_width=16)[0, 0]
    assert got == ((exact + 2**15) % 2**16) - 2**15
    assert g.gemm_bitplanes(a, b, 8, 8, acc_width=16)[0, 0] == got
    np.testing.assert_array_equal(g.wrap(np.array([2**31, -(2**31) - 1]), 32), [-(2**31), 2**31 - 1])


def test_bitplanes_and_weights():
    x = np.array([-4, -1, 0, 3])
    planes = g.bitplanes(x, 3, signed=True)
    weights = np.array([g.plane_weight(i, 3, True) for i in range(3)])
    np.testing.assert_array_equal(np.tensordot(weights, planes.astype(np.int64), 1), x)


@pytest.mark.parametrize("bad, match", [
    ((np.array([[8]]), 3, False), "do not fit 3-bit unsigned"),
    ((np.array([[-5]]), 3, True), "do not fit 3-bit signed"),
    ((np.array([[0.5]]), 3, False), "not an integer type"),
])
def test_operand_checks(bad, match):
    x, bits, signed = bad
    with pytest.raises((ValueError, TypeError), match=match):
        g.gemm(x, np.zeros((1, 1), dtype=np.int64), bits, 3, signed, False)


def test_shape_checks():
    with pytest.raises(ValueError, match="inner dimensions differ"):
        g.gemm(np.zeros((2, 3), np.int64), np.zeros((4, 2), np.int64), 2, 2)


# ----------------------------------------------------------------------------- counter RNG

def test_counter_rng_is_reproducible_and_matches_torch():
    c = np.arange(100_000, dtype=np.int64) + (1 << 40)
    u = g.counter_uniform(1234, c)
    assert u.min() >= -0.5 and u.max() < 0.5
    assert abs(u.mean()) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    np.testing.assert_array_equal(u, g.counter_uniform(1234, c))
    assert not np.array_equal(u, g.counter_uniform(1235, c))
    np.testing.assert_array_equal(g.counter_hash(99, torch.from_numpy(c)).numpy(), g.counter_hash(99, c))


# ----------------------------------------------------------------------------- quantizers

@settings(max_examples=100, deadline=None)
@given(bits=st.integers(1, 8), seed=st.integers(0, 2**31), per_channel=st.booleans())
def test_deterministic_quantization_error_bound(bits, seed, per_channel):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((4, 33)) * rng.uniform(0.01, 10)).astype(np.float32)
    axis = 1 if per_channel else None
    lo, hi = x.min(axis=axis, keepdims=True), x.max(axis=axis, keepdims=True)
    q = g.quantize(x, bits, lo, hi)
    assert q.min() >= 0 and q.max() <= 2**bits - 1
    scale, _ = g.quant_params(lo, hi, bits)
    err = np.abs(g.dequantize(q, lo, hi, bits) - x)
    assert np.all(err <= scale / 2 * (1 + 1e-5) + 1e-6)


@settings(max_examples=50, deadline=None)
@given(bits=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_stochastic_quantization_bound_and_unbiased(bits, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(64,)).astype(np.float32)
    lo, hi = np.float32(-1), np.float32(1)
    scale, _ = g.quant_params(lo, hi, bits)
    q = g.quantize(x, bits, lo, hi, stochastic=True, seed=seed)
    assert np.all(np.abs(g.dequantize(q, lo, hi, bits) - x) <= scale * (1 + 1e-5))
    # unbiased: average over many independent draws (different counter offsets) converges to x
    draws = np.stack([g.dequantize(g.quantize(x, bits, lo, hi, stochastic=True, seed=seed,
                                              counter_offset=64 * t), lo, hi, bits) for t in range(400)])
    assert np.all(np.abs(draws.mean(0) - x) <= 4 * scale / np.sqrt(400) + 1e-6)


def test_scale_floor_and_full_precision_rule():
    scale, zp = g.quant_params(np.float32(2.0), np.float32(2.0), 4)
    assert scale == np.float32(1e-8) and zp == 2.0
    with pytest.raises(ValueError, match="0 means full precision"):
        g.quant_params(0.0, 1.0, 0)
