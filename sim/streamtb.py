"""The valid/ready plumbing the convolution formers' testbenches share (sim/cpt_im2col_former,
sim/cpt_wgrad_former): reset, a row-plane word stream with random idle cycles, and a valid held until taken.
Each unit's testbench subclasses :class:`StreamTB` with its own geometry, requests and output checks."""

from __future__ import annotations

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from sim.tbutil import sim_config


class StreamTB:
    """A unit with ``clk``, ``rst``, a ``start`` pulse, an input stream ``s_valid``/``s_ready``/``s_data``, a
    request handshake ``rq_valid``/``rq_ready`` and output back-pressure ``m_ready``."""

    def __init__(self, dut, rng: np.random.Generator, gaps: float, stalls: float):
        self.dut, self.rng, self.gaps, self.stalls = dut, rng, gaps, stalls
        self.d = sim_config().dot_width

    async def start(self) -> None:
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        dut.rst.value = 1
        dut.start.value = 0
        dut.s_valid.value = 0
        dut.rq_valid.value = 0
        dut.m_ready.value = 0
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0

    async def _handshake(self, valid, ready) -> None:
        """Hold ``valid`` (the caller set the payload) until the edge at which ``ready`` was high before it."""
        valid.value = 1
        while True:
            await ReadOnly()
            taken = int(ready.value)
            await RisingEdge(self.dut.clk)
            if taken:
                break
        valid.value = 0

    async def _idle(self) -> None:
        while self.rng.random() < self.gaps:
            await RisingEdge(self.dut.clk)

    async def stream(self, words: list[int]) -> None:
        """The row-plane words in DDR order, valid held until taken, random idle cycles (junk data) between."""
        dut = self.dut
        for word in words:
            dut.s_data.value = int.from_bytes(self.rng.bytes(self.d // 8), "little")
            await self._idle()
            dut.s_data.value = word
            await self._handshake(dut.s_valid, dut.s_ready)
