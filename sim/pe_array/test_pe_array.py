"""cocotb unit tests of rtl/pe_array.v: whole output tiles against cpt_hw.hw.golden.

The array gets the geometry of the config under test.  The testbench plays the controller: it feeds
tiles (rows x K) . (K x cols) in the Horner order of sim/plane_order.py, holds a tile's last step while the
previous tile is still in flight or draining (the rule rtl/cpt_feeder.v follows), drains on
`tile_ready` and compares every drained row with the golden model.
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


class ArrayTB:
    def __init__(self, dut):
        self.dut = dut
        self.cfg = sim_config()
        self.expected: deque[np.ndarray] = deque()
        self.busy = False          # a tile's last step is in flight or its rows are draining
        self.tiles_checked = 0
        self.first_ready: list[int] = []   # cycle of tile_ready, for the latency check
        self.cycle = 0

    async def start(self) -> None:
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        dut.rst.value = 1
        dut.a_in.value = 0
        dut.b_in.value = 0
        dut.ctl_in.value = 0
        dut.drain.value = 0
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        cocotb.start_soon(self._count())
        cocotb.start_soon(self._drainer())

    async def _count(self) -> None:
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    async def _drainer(self) -> None:
        dut, cfg = self.dut, self.cfg
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if not int(dut.tile_ready.value):
                continue
            self.first_ready.append(self.cycle)
            want = self.expected.popleft()
            await RisingEdge(dut.clk)
            for k in range(cfg.rows):
                dut.drain.value = 1
                await ReadOnly()
                raw = int(dut.c_out.value)
                row = cfg.rows - 1 - k
                got = [to_signed(raw >> (c * cfg.acc_width), cfg.acc_width) for c in range(cfg.cols)]
                assert got == list(want[row]), f"tile {self.tiles_checked} row {row}: {got} != {list(want[row])}"
                await RisingEdge(dut.clk)
            dut.drain.value = 0
            self.tiles_checked += 1
            self.busy = False

    async def feed(self, a, b, a_bits, b_bits, a_signed, b_signed, rng, bubble=0.0) -> int:
        """Feed one tile; returns the cycle its last step entered."""
        dut, cfg = self.dut, self.cfg
        d = cfg.dot_width
        kw = -(-a.shape[1] // d)
        aw = plane_words(a, a_bits, d)
        bw = plane_words(b.T, b_bits, d)
        self.expected.append(golden.gemm(a, b, a_bits, b_bits, a_signed, b_signed, acc_width=cfg.acc_width))
        last_cycle = 0
        for step in plane_steps(a_bits, b_bits, kw, a_signed, b_signed):
            while (step.last and self.busy) or rng.random() < bubble:
                dut.ctl_in.value = 0
                await RisingEdge(dut.clk)
            dut.a_in.value = sum(aw[r][step.i][step.w] << (r * d) for r in range(cfg.rows))
            dut.b_in.value = sum(bw[c][step.j][step.w] << (c * d) for c in range(cfg.cols))
            dut.ctl_in.value = step.ctl
            if step.last:
                self.busy = True
                last_cycle = self.cycle
            await RisingEdge(dut.clk)
        dut.ctl_in.value = 0
        return last_cycle

    async def finish(self, n_tiles: int) -> None:
        for _ in range(200):
            if self.tiles_checked == n_tiles:
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"only {self.tiles_checked} of {n_tiles} tiles drained")


def random_tile(rng, cfg, k_max: int):
    a_bits, b_bits = (int(x) for x in rng.integers(1, cfg.operand_bits + 1, size=2))
    a_signed, b_signed = (bool(x) for x in rng.integers(0, 2, size=2))
    k = int(rng.integers(1, k_max + 1))
    a = random_operand(rng, (cfg.rows, k), a_bits, a_signed)
    b = random_operand(rng, (k, cfg.cols), b_bits, b_signed)
    return a, b, a_bits, b_bits, a_signed, b_signed


@cocotb.test()
async def test_random_tiles(dut):
    """Random tiles back to back: every precision 1..operand_bits, signed and unsigned, K up to 3 words."""
    tb = ArrayTB(dut)
    rng = seeded_rng("tiles")
    await tb.start()
    n = 30
    for _ in range(n):
        await tb.feed(*random_tile(rng, tb.cfg, 3 * tb.cfg.dot_width), rng)
    await tb.finish(n)


@cocotb.test()
async def test_bubbles(dut):
    """Idle steps anywhere in the stream change nothing."""
    tb = ArrayTB(dut)
    rng = seeded_rng("bubbles")
    await tb.start()
    n = 15
    for _ in range(n):
        await tb.feed(*random_tile(rng, tb.cfg, 2 * tb.cfg.dot_width), rng, bubble=0.3)
    await tb.finish(n)


@cocotb.test()
async def test_latency(dut):
    """tile_ready comes rows + cols + 1 cycles after the last step entered (the documented latency)."""
    tb = ArrayTB(dut)
    rng = seeded_rng("latency")
    await tb.start()
    cfg = tb.cfg
    a, b = np.ones((cfg.rows, 1), dtype=np.int64), np.ones((1, cfg.cols), dtype=np.int64)
    last = await tb.feed(a, b, 1, 1, False, False, rng)
    await tb.finish(1)
    assert tb.first_ready[0] - last == cfg.rows + cfg.cols + 1, (tb.first_ready, last)


# ----------------------------------------------------------------------------- pytest runner
# The parameters (ROWS, COLS, D, ACC_W) come from the test geometry's config, as the accelerator that
# instantiates the module sets them: sim (3 x 2, D = 32, ACC_W = 32) in `make test`, simwide
# (10 x 4, D = 64, ACC_W = 26) in the slow set.
@pytest.mark.sim
@pytest.mark.parametrize("geometry", ["sim", pytest.param("simwide", marks=pytest.mark.slow)])
@pytest.mark.parametrize("simulator", runner.SIMULATORS)
def test_pe_array(simulator: str, geometry: str) -> None:
    runner.run(geometry, simulator, __file__)
