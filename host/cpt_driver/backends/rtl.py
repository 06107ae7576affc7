"""The ``rtl`` backend: the generated Verilog ``cpt_gemm`` under cocotb, driven by the unchanged driver.

The driver is blocking code; cocotb runs it in a thread through ``cocotb.task.bridge`` and every register
access becomes an AXI4-Lite transaction awaited in the simulator through ``cocotb.task.resume``.
``cocotbext.axi.AxiRam`` on ``m_axi_gmem`` stands in for DDR.  A cocotb test looks like::

    @cocotb.test()
    async def gemm_on_rtl(dut):
        tb = await RtlHarness.start(dut, clock_period_ns=5.0)
        c = await bridge(lambda: Accelerator(RtlBackend(spec, tb)).gemm(a, b, 8, 8))()

Buffers live in host memory and are copied into the RAM model on flush and back on invalidate (like a
non-coherent cache on the board), so the driver's cache maintenance is exercised here too.  Waiting for
done polls CTRL over AXI4-Lite every ``poll_cycles`` clock cycles; the deadline is the driver's timeout in
simulated time, capped at ``max_wait_cycles`` so a hung design cannot stall a test run for hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Backend, DmaBuffer
from ..spec import DeviceSpec


@dataclass
class RtlHarness:
    """What the backend needs from a running simulation: the DUT, its clock, the AXI4-Lite master and the RAM."""

    dut: Any
    axil: Any           # cocotbext.axi.AxiLiteMaster on s_axi_control
    ram: Any            # cocotbext.axi.AxiRam on m_axi_gmem
    clock_period_ns: float

    @classmethod
    async def start(cls, dut: Any, *, clock_period_ns: float = 5.0, ram_size: int = 1 << 32,
                    reset_cycles: int = 8) -> "RtlHarness":
        """Start ap_clk, bind the AXI models by prefix, and reset the design (ap_rst_n active low)."""
        import cocotb
        from cocotb.clock import Clock
        from cocotb.triggers import ClockCycles
        from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

        cocotb.start_soon(Clock(dut.ap_clk, clock_period_ns, unit="ns").start())
        axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                             reset_active_level=False)
        ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem"), dut.ap_clk, dut.ap_rst_n, reset_active_level=False,
                     size=ram_size)
        dut.ap_rst_n.value = 0
        await ClockCycles(dut.ap_clk, reset_cycles)
        dut.ap_rst_n.value = 1
        await ClockCycles(dut.ap_clk, 2)
        return cls(dut, axil, ram, clock_period_ns)


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
    """spec: the register map of the simulated config; tb: a started :class:`RtlHarness`."""

    name = "rtl"

    def __init__(self, spec: DeviceSpec, tb: RtlHarness, *, base: int = 0x1000_0000, guard: int = 4096,
                 poll_cycles: int = 32, max_wait_cycles: int = 2_000_000):
        super().__init__(spec)
        from cocotb.task import resume
        from cocotb.triggers import ClockCycles

        self.tb = tb
        self.poll_cycles = poll_cycles
        self.max_wait_cycles = max_wait_cycles
        self._next = base
        self._guard = guard
        self._read = resume(tb.axil.read_dword)
        self._write = resume(tb.axil.write_dword)
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
        buf = RtlDmaBuffer(self.tb.ram, phys, nbytes)
        buf.flush(0, nbytes)  # zero the RAM model's bytes, as the emulator's memory starts zeroed
        self.buffers.append(buf)
        return buf

    def wait_done(self, timeout_s: float) -> bool:
        cycles = min(self.max_wait_cycles, int(timeout_s * 1e9 / self.tb.clock_period_ns))
        return bool(self._wait(cycles))

    async def _wait_async(self, max_cycles: int) -> bool:
        ctrl = self.spec.registers["CTRL"]
        done = 1 << self.spec.ctrl_bits["AP_DONE"]
        waited = 0
        while True:
            if await self.tb.axil.read_dword(ctrl) & done:
                return True
            if waited >= max_cycles:
                return False
            await self._clock_cycles(self.tb.dut.ap_clk, self.poll_cycles)
            waited += self.poll_cycles
