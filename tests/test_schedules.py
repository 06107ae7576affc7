"""Precision schedules against the reference's formula and the facts file's numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cpt_hw.schedules import (CyclicPrecision, PrecisionSchedule, ProgressivePrecision, ScheduleError,
                              ShapedCyclicPrecision, StaticPrecision, make_schedule, parse_bits_range,
                              piecewise_linear_shape)


def test_cpt_share_of_iterations_matches_reference_3_to_8_over_64k():
    sched = CyclicPrecision(3, 8, 32, 64000)
    assert sched.histogram(64000) == {3: 13120, 4: 10528, 5: 8352, 6: 8384, 7: 10528, 8: 13088}
    mean = sum(b * n for b, n in sched.histogram(64000).items()) / 64000
    assert mean == pytest.approx(5.5, abs=2e-3)


def test_cpt_scalar_call_equals_formula_with_round_half_even():
    sched = CyclicPrecision(3, 8, 32, 64000)
    period = 64000 // 32
    for t in list(range(0, 4200, 7)) + [63999, 64000, 70001]:
        # Python's round() is round-half-even, like numpy's rint.
        expected = round(3 + 0.5 * 5 * (1 - math.cos(math.pi * (t % period) / period)))
        assert sched(t) == expected
        assert isinstance(sched(t), int)


def test_cpt_is_a_sawtooth_of_num_cycles_ramps():
    sched = CyclicPrecision(2, 6, 4, 400)
    bits = sched.bits_array(np.arange(400))
    assert sched.period == 100
    for c in range(4):
        ramp = bits[c * 100:(c + 1) * 100]
        assert ramp[0] == 2 and ramp[-1] == 6 and np.all(np.diff(ramp) >= 0)


def test_cpt_period_uses_integer_division_and_keeps_cycling_past_the_last_whole_cycle():
    sched = CyclicPrecision(3, 8, 3, 100)  # T = 33; iteration 99 starts a fourth, partial cycle
    assert sched.period == 33
    assert sched(99) == 3 and sched(98) == sched(32)


def test_equal_bounds_are_constant():
    assert set(CyclicPrecision(8, 8, 32, 1000).histogram(1000)) == {8}
    assert StaticPrecision(6)(12345) == 6


def test_progressive_reaches_bmax_at_half_in_equal_stages():
    sched = ProgressivePrecision(3, 8, 1200)
    hist = ProgressivePrecision(3, 8, 1200).histogram(600)
    assert hist == {b: 100 for b in range(3, 9)}
    assert sched(0) == 3 and sched(599) == 8 and sched(600) == 8 and sched(1199) == 8
    assert np.all(np.diff(sched.bits_array(np.arange(1200))) >= 0)


def test_triangular_goes_up_and_down_each_cycle():
    sched = ShapedCyclicPrecision(2, 8, 2, 200)
    bits = sched.bits_array(np.arange(200))
    assert bits[0] == 2 and bits[50] == 8 and bits[99] == 2 and bits[150] == 8
    assert np.all(np.diff(bits[:50]) >= 0) and np.all(np.diff(bits[50:100]) <= 0)


def test_custom_shape_from_points_and_from_a_function():
    ramp = make_schedule("custom", 4, 8, 100, num_cycles=1, shape=[0, 1])
    assert ramp(0) == 4 and ramp(99) == 8
    step = make_schedule("custom", 4, 8, 100, num_cycles=2, shape=lambda p: (p >= 0.5).astype(float))
    assert step(0) == 4 and step(25) == 8 and step(50) == 4
    assert piecewise_linear_shape([0, 1, 0])(np.array([0.5]))[0] == 1.0


def test_grad_bits_scheduled_the_same_way():
    ps = PrecisionSchedule.build("cpt", (3, 8), (6, 8), 6400, 32)
    fw, bw = ps.arrays(6400)
    assert np.array_equal(fw, CyclicPrecision(3, 8, 32, 6400).bits_array(np.arange(6400)))
    assert np.array_equal(bw, CyclicPrecision(6, 8, 32, 6400).bits_array(np.arange(6400)))
    const = PrecisionSchedule.build("cpt", (3, 8), (8, 8), 6400, 32)
    assert set(const.arrays(6400)[1]) == {8} and const.at(0) == (3, 8)


def test_static_runs_at_the_top_precision():
    assert make_schedule("static", 3, 8, 100)(50) == 8


@pytest.mark.parametrize("args, match", [
    ((5, 3, 32, 100), "bmin = 5 > bmax = 3"),
    ((3, 8, 0, 100), r"num_cycles \(--cycles\) = 0"),
    ((3, 8, 200, 100), r"num_cycles \(--cycles\) = 200"),
    ((3, 8, 32, 0), "total_iters = 0"),
    ((-1, 8, 32, 100), "bmin = -1"),
])
def test_bad_parameters_are_refused_with_the_field_named(args, match):
    with pytest.raises(ScheduleError, match=match):
        CyclicPrecision(*args)


def test_bits_range_parsing():
    assert parse_bits_range("3-8") == (3, 8)
    assert parse_bits_range("8") == (8, 8)
    for bad in ("8-3", "x", "3-", ""):
        with pytest.raises(ScheduleError, match="--bits"):
            parse_bits_range(bad)
    with pytest.raises(ScheduleError, match="unknown schedule 'cosine'"):
        make_schedule("cosine", 3, 8, 100)
    with pytest.raises(ScheduleError, match="needs a shape"):
        make_schedule("custom", 3, 8, 100)
    with pytest.raises(ScheduleError, match=r"fraction in \[0, 1\]"):
        make_schedule("custom", 3, 8, 100, shape=[0, 2])
