"""cocotb unit test of rtl/and_popcount.v: popcount(a & b) of D-bit words (D of the config under test)."""

from __future__ import annotations

import cocotb
import pytest
from cocotb.triggers import Timer

from sim import runner
from sim.tbutil import seeded_rng, sim_config


async def check(dut, a: int, b: int) -> None:
    dut.a.value = a
    dut.b.value = b
    await Timer(1, unit="ns")
    want = bin(a & b).count("1")
    got = int(dut.count.value)
    assert got == want, f"a={a:#x} b={b:#x}: {got} != {want}"


@cocotb.test()
async def test_random_words(dut):
    """Random words at every density (sparse to dense), so every counter level sees carries."""
    d = sim_config().dot_width
    rng = seeded_rng("popcount")
    for i in range(600):
        density = (i % 11) / 10
        a = sum(1 << j for j in range(d) if rng.random() < density ** 0.5)
        b = sum(1 << j for j in range(d) if rng.random() < density ** 0.5)
        await check(dut, a, b)


@cocotb.test()
async def test_edges(dut):
    """All ones, all zeros, every single bit, every prefix: each column of the tree in isolation."""
    d = sim_config().dot_width
    ones = (1 << d) - 1
    await check(dut, ones, ones)
    await check(dut, 0, ones)
    for j in range(d):
        await check(dut, 1 << j, ones)
        await check(dut, (1 << (j + 1)) - 1, ones)
        await check(dut, ones, ones ^ (1 << j))


# ----------------------------------------------------------------------------- pytest runner
# The parameters (D) come from the test geometry's config, as the accelerator that
# instantiates the module sets them: sim (D = 32) in `make test`, simwide (D = 64) in the slow set.
@pytest.mark.sim
@pytest.mark.parametrize("geometry", ["sim", pytest.param("simwide", marks=pytest.mark.slow)])
@pytest.mark.parametrize("simulator", runner.SIMULATORS)
def test_and_popcount(simulator: str, geometry: str) -> None:
    runner.run(geometry, simulator, __file__)
