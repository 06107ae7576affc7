"""cocotb unit tests of rtl/pe.v: dot products of bit-plane words against cpt_hw.hw.golden.

The PE gets the geometry of the config under test (D, ACC_W).  Each test feeds whole tiles in the
Horner order of sim/plane_order.py with random bubbles between steps and checks the shadow register
when the PE reports the copy.
"""

from __future__ import annotations

from collections import deque

import cocotb
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from cpt_hw.hw import golden
from sim import runner
from sim.plane_order import plane_steps
from sim.tbutil import plane_words, random_operand, seeded_rng, sim_config, to_signed


async def start(dut) -> None:
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.a_in.value = 0
    dut.b_in.value = 0
    dut.ctl_in.value = 0
    dut.drain.value = 0
    dut.shadow_in.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0


async def check_copies(dut, expected: deque, acc_w: int, seen: list) -> None:
    """Compare shadow_out with the next expected value whenever `copied` pulses."""
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.copied.value):
            want = expected.popleft()
            got = to_signed(int(dut.shadow_out.value), acc_w)
            assert got == want, f"tile {len(seen)}: shadow {got}, golden {want}"
            seen.append(got)


async def feed_tiles(dut, cases, rng: np.random.Generator, bubble: float) -> None:
    cfg = sim_config()
    d = cfg.dot_width
    for a, b, a_bits, b_bits, a_signed, b_signed in cases:
        kw = -(-a.shape[1] // d)
        aw = plane_words(a, a_bits, d)[0]
        bw = plane_words(b.T, b_bits, d)[0]
        for step in plane_steps(a_bits, b_bits, kw, a_signed, b_signed):
            while rng.random() < bubble:  # an idle step: junk data, valid low
                dut.ctl_in.value = int(rng.integers(0, 16)) & ~1
                dut.a_in.value = int.from_bytes(rng.bytes(d // 8), "little")
                dut.b_in.value = int.from_bytes(rng.bytes(d // 8), "little")
                await RisingEdge(dut.clk)
            dut.a_in.value = aw[step.i][step.w]
            dut.b_in.value = bw[step.j][step.w]
            dut.ctl_in.value = step.ctl
            await RisingEdge(dut.clk)
    dut.ctl_in.value = 0


def random_cases(rng: np.random.Generator, n: int, k_max: int, max_bits: int):
    for _ in range(n):
        a_bits, b_bits = (int(x) for x in rng.integers(1, max_bits + 1, size=2))
        a_signed, b_signed = (bool(x) for x in rng.integers(0, 2, size=2))
        k = int(rng.integers(1, k_max + 1))
        a = random_operand(rng, (1, k), a_bits, a_signed)
        b = random_operand(rng, (k, 1), b_bits, b_signed)
        yield a, b, a_bits, b_bits, a_signed, b_signed


async def run_cases(dut, name: str, cases, bubble: float) -> None:
    cfg = sim_config()
    rng = seeded_rng(name)
    cases = list(cases)
    expected = deque(int(golden.gemm(a, b, ab, bb, sa, sb, acc_width=cfg.acc_width)[0, 0])
                     for a, b, ab, bb, sa, sb in cases)
    seen: list[int] = []
    await start(dut)
    checker = cocotb.start_soon(check_copies(dut, expected, cfg.acc_width, seen))
    await feed_tiles(dut, cases, rng, bubble)
    await ClockCycles(dut.clk, 5)
    checker.cancel()
    assert not expected and len(seen) == len(cases), f"{len(expected)} tiles never copied"


@cocotb.test()
async def test_random_dot_products(dut):
    """Random precisions 1..operand_bits, signed/unsigned, K over several words, back to back."""
    cfg = sim_config()
    rng = seeded_rng("dot")
    await run_cases(dut, "dot", random_cases(rng, 40, 3 * cfg.dot_width, cfg.operand_bits), bubble=0.0)


@cocotb.test()
async def test_bubbles(dut):
    """Idle steps (valid low, junk data and flags) anywhere in the stream change nothing."""
    cfg = sim_config()
    rng = seeded_rng("bubbles")
    await run_cases(dut, "bubbles", random_cases(rng, 25, 2 * cfg.dot_width, cfg.operand_bits), bubble=0.4)


@cocotb.test()
async def test_extremes(dut):
    """All-ones words at full precision (largest counts, every carry) and 1-bit operands."""
    cfg = sim_config()
    k = cfg.dot_width * 2
    p = cfg.operand_bits
    cases = []
    for a_signed in (False, True):
        for b_signed in (False, True):
            lo_a, hi_a = golden.operand_range(p, a_signed)
            lo_b, hi_b = golden.operand_range(p, b_signed)
            for va, vb in ((hi_a, hi_b), (lo_a, lo_b), (lo_a, hi_b), (hi_a, lo_b)):
                cases.append((np.full((1, k), va), np.full((k, 1), vb), p, p, a_signed, b_signed))
    cases.append((np.ones((1, 1), dtype=np.int64), np.ones((1, 1), dtype=np.int64), 1, 1, False, False))
    cases.append((-np.ones((1, 1), dtype=np.int64), -np.ones((1, 1), dtype=np.int64), 1, 1, True, True))
    await run_cases(dut, "extremes", cases, bubble=0.0)


@cocotb.test()
async def test_drain_shift(dut):
    """`drain` moves shadow_in into the shadow; without drain or copy the shadow holds."""
    cfg = sim_config()
    rng = seeded_rng("drain")
    await start(dut)
    mask = (1 << cfg.acc_width) - 1
    for _ in range(20):
        v = int(rng.integers(0, 1 << 31)) & mask
        dut.shadow_in.value = v
        dut.drain.value = 1
        await RisingEdge(dut.clk)
        dut.drain.value = 0
        await ReadOnly()
        assert int(dut.shadow_out.value) == v
        await RisingEdge(dut.clk)
    # hold: without drain or copy the shadow keeps its value
    dut.shadow_in.value = 0
    await ClockCycles(dut.clk, 3)
    await ReadOnly()
    assert int(dut.shadow_out.value) == v


# ----------------------------------------------------------------------------- pytest runner
# The parameters (D, ACC_W) come from the test geometry's config, as the accelerator that
# instantiates the module sets them: sim (D = 32, ACC_W = 32) in `make test`, simwide (D = 64,
# ACC_W = 26) in the slow set.
@pytest.mark.sim
@pytest.mark.parametrize("geometry", ["sim", pytest.param("simwide", marks=pytest.mark.slow)])
@pytest.mark.parametrize("simulator", runner.SIMULATORS)
def test_pe(simulator: str, geometry: str) -> None:
    runner.run(geometry, simulator, __file__)
