"""The ``rtl`` backend: the generated Verilog ``cpt_gemm`` under cocotb, driven by the unchanged driver.

The driver is blocking code; cocotb runs it in a thread through ``cocotb.task.bridge`` and every register
access becomes an AXI4-Lite transaction awaited in the simulator through ``cocotb.task.resume``.
``cocotbext.axi.AxiRam`` on ``m_axi_gmem`` stands in for DDR.  With the project's testbench
(sim/cpt_gemm/tb.py, which starts the clock and binds the AXI models) a cocotb test looks like::

    @cocotb.test()
    async def gemm_on_rtl(dut):
        tb = CptGemmTB(dut, mem_size=1 << 26)
        await tb.reset()
        acc_on_rtl = lambda: Accelerator("rtl", config=tb.cfg, dut=dut, axil=tb.ctrl, ram=tb.ram,
                                         clock_period_ns=CLOCK_NS)
        c = await bridge(lambda: acc_on_rtl().gemm(a, b, 8, 8))()

Buffers live in host memory and are copied into the RAM model on flush and back on invalidate (like a
non-coherent cache on the board), so the driver's cache maintenance is exercised here too.  Waiting for
done polls CTRL over AXI4-Lite every ``poll_cycles`` clock cycles; the deadline is the driver's timeout in
simulated time, capped at ``max_wait_cycles`` so a hung design cannot stall a test run for hours.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import Backend, DmaBuffer
from ..spec import DeviceSpec


class RtlDmaBuffer(DmaBuffer):
    """Host memory mirrored into the AxiRam model at ``phys`` by flush / invalidate."""

    def __init__(self, ram: Any, phys: int, nbytes: int):
        self.ram = ram
        self.phys = phys
        self.array = np.zeros(nbytes, dtype=np.uint8)

    def flush(self, offset: int, nbytes: int) -> None:
        self.ram.write(self.phys + offset, self.array[offset:offset + nbytes].tobytes())

    def invalidate(self, offset: int, nbytes: int) -> None:
        self.array[offset:offset + nbytes] = np.frombuffer(bytes(self.ram.read(self.phys + offset, nbytes)), np.uint8)

    def free(self) -> None:
        pass  # the RAM model is sparse; addresses are never reused within one simulation


class RtlBackend(Backend):
    """spec: the register map of the simulated config; dut: the cocotb handle of ``cpt_gemm``;
    axil: a ``cocotbext.axi.AxiLiteMaster`` on ``s_axi_control``; ram: a ``cocotbext.axi.AxiRam`` on
    ``m_axi_gmem`` (at least ``base`` + the pool's arena + some pages large); clock_period_ns: ap_clk's period.
    """

    name = "rtl"

    def __init__(self, spec: DeviceSpec, *, dut: Any, axil: Any, ram: Any, clock_period_ns: float,
                 base: int = 0x10000, guard: int = 4096, poll_cycles: int = 32, max_wait_cycles: int = 2_000_000):
        super().__init__(spec)
        from cocotb.task import resume
        from cocotb.triggers import ClockCycles

        self.dut, self.axil, self.ram = dut, axil, ram
        self.clock_period_ns = float(clock_period_ns)
        self.poll_cycles = poll_cycles
        self.max_wait_cycles = max_wait_cycles
        self._next = base
        self._guard = guard
        self._read = resume(axil.read_dword)
        self._write = resume(axil.write_dword)
        self._clock_cycles = ClockCycles
        self._wait = resume(self._wait_async)
        self.buffers: list[RtlDmaBuffer] = []

    def read_reg(self, offset: int) -> int:
        return int(self._read(offset))

    def write_reg(self, offset: int, value: int) -> None:
        self._write(offset, int(value))

    def allocate(self, nbytes: int) -> RtlDmaBuffer:
        phys = -(-self._next // 4096) * 4096
        self._next = phys + nbytes + self._guard
        buf = RtlDmaBuffer(self.ram, phys, nbytes)
        buf.flush(0, nbytes)  # zero the RAM model's bytes, as the emulator's memory starts zeroed
        self.buffers.append(buf)
        return buf

    def wait_done(self, timeout_s: float) -> bool:
        cycles = min(self.max_wait_cycles, int(timeout_s * 1e9 / self.clock_period_ns))
        return bool(self._wait(cycles))

    async def _wait_async(self, max_cycles: int) -> bool:
        ctrl = self.spec.registers["CTRL"]
        done = 1 << self.spec.ctrl_bits["AP_DONE"]
        waited = 0
        while True:
            if await self.axil.read_dword(ctrl) & done:
                return True
            if waited >= max_cycles:
                return False
            await self._clock_cycles(self.dut.ap_clk, self.poll_cycles)
            waited += self.poll_cycles
