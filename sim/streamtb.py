"""The valid/ready plumbing the convolution formers' testbenches share (sim/cpt_im2col_former,
sim/cpt_wgrad_former): reset, a row-plane word stream with random idle cycles, and a valid held until taken.
Each unit's testbench subclasses :class:`StreamTB` with its own geometry, requests and output checks."""

from __future__ import annotations

from collections import deque

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from sim.tbutil import sim_config


class StreamTB:
    """A unit with ``clk``, ``rst``, a ``start`` pulse, an input stream ``s_valid``/``s_ready``/``s_data``, a
    request handshake ``rq_valid``/``rq_ready`` and an output ``m_valid``/``m_ready`` whose words carry the
    ``fields`` (e.g. ``m_word``, ``m_data``) and ``m_last``, compared in order with :attr:`expected`."""

    def __init__(self, dut, rng: np.random.Generator, gaps: float, stalls: float, fields: tuple[str, ...]):
        self.dut, self.rng, self.gaps, self.stalls, self.fields = dut, rng, gaps, stalls, fields
        self.d = sim_config().dot_width
        self.expected: deque[tuple] = deque()   # (*fields, last) of each word to come
        self.seen = 0
        self.in_request = False   # a request's first word is out, its last is not
        self.bubbles = 0          # cycles inside a request without a word
        self.gaps_between: dict[int, int] = {}   # empty cycles between a request's last word and the next's first
        self._gap = 0

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

    async def take(self, total: int) -> None:
        """Take words with random back-pressure; compare each with the next expected one.  Counts the cycles
        inside a request (after its first word, up to its last) where no word was offered, and the empty
        cycles between requests (:attr:`gaps_between`: gap length -> how often)."""
        dut = self.dut
        names = ", ".join(f[2:] for f in self.fields) + ", last"
        while self.seen < total:
            dut.m_ready.value = int(self.rng.random() >= self.stalls)
            await ReadOnly()
            valid = int(dut.m_valid.value)
            if self.in_request and not valid:
                self.bubbles += 1
            if not self.in_request and not valid and self.seen:
                self._gap += 1
            if valid and int(dut.m_ready.value):
                want = self.expected.popleft()
                got = (*(int(getattr(dut, f).value) for f in self.fields), bool(int(dut.m_last.value)))
                assert got == want, f"word {self.seen}: ({names}) = {got}, reference {want}"
                self.seen += 1
                if not self.in_request and self.seen > 1:
                    self.gaps_between[self._gap] = self.gaps_between.get(self._gap, 0) + 1
                self._gap = 0
                self.in_request = not got[-1]
            await RisingEdge(dut.clk)
        dut.m_ready.value = 0
