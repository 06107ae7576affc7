"""Reusable cocotb testbench of the top level ``cpt_gemm`` (the Verilog twin of the HLS kernel), and the
call helpers the system tests and the bench driver share (check a GEMM, stage operands, run staged calls).

How to drive the design from your own cocotb test (e.g. a driver backend)::

    import cocotb
    from sim.cpt_gemm.tb import CptGemmTB  # the checkout's root is on PYTHONPATH under cpt_hw.flows.rtl_sim

    @cocotb.test()
    async def my_test(dut):
        tb = CptGemmTB(dut)                # config from the environment (cpt_hw.flows.rtl_sim sets it)
        await tb.reset()
        run = await tb.gemm(a, b, a_bits=3, b_bits=8, a_signed=True)  # packs, loads, runs, unpacks
        assert (run.c == golden.gemm(a, b, 3, 8, True, False)).all()
        # lower level: tb.ctrl (cocotbext-axi AxiLiteMaster on s_axi_control), tb.ram (AxiRam on
        # m_axi_gmem), tb.write_arg / tb.read_reg / tb.call, addresses from tb.alloc

and run it with ``cpt_hw.flows.rtl_sim.run(cfg, "icarus", "my_test_module", test_dirs=[my_dir])``.

Register offsets come from :func:`cpt_hw.hw.regmap.register_map`, the DDR layout from
:mod:`cpt_driver.layout`, expected results from :mod:`cpt_hw.hw.golden`: nothing is repeated here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterator

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam, AxiReadBus, AxiWriteBus
from cocotbext.axi.axi_channels import AxiARBus, AxiAWBus, AxiBBus, AxiRBus, AxiWBus

from cpt_driver import layout
from cpt_hw.hw import golden
from cpt_hw.hw.calls import PrefetchState, call_type
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.regmap import CTRL_BITS, FLAG_BITS, IRQ_BITS, arguments, flag_bits, register_map
from sim.tbutil import random_operand, record, sim_config

#: Clock period of the testbenches in ns (the config's clock is what the cycle counts are scaled by).
CLOCK_NS = 10


def pause_pattern(p_busy: float, rng: random.Random) -> Iterator[bool]:
    """Random pauses: True with probability p_busy each cycle (cocotbext-axi pause generator)."""
    while True:
        yield rng.random() < p_busy


class _AWBus(AxiAWBus):
    # Vivado HLS declares AxLOCK with two bits (AXI3 heritage); the AXI4 model wants one.  The kernel
    # drives it constant 0, so the model simply leaves it unbound.
    _optional_signals = [s for s in AxiAWBus._optional_signals if s != "awlock"]


class _ARBus(AxiARBus):
    _optional_signals = [s for s in AxiARBus._optional_signals if s != "arlock"]


def gmem_bus(dut, prefix: str = "m_axi_gmem") -> AxiBus:
    """The m_axi bundle as cocotbext-axi sees it."""
    return AxiBus(AxiWriteBus(_AWBus.from_prefix(dut, prefix), AxiWBus.from_prefix(dut, prefix),
                              AxiBBus.from_prefix(dut, prefix)),
                  AxiReadBus(_ARBus.from_prefix(dut, prefix), AxiRBus.from_prefix(dut, prefix)))


@dataclass
class GemmRun:
    """Outcome of one call: result (M, N) int64 (None when refused), status bits, cycles register."""

    c: np.ndarray | None
    status: int
    cycles: int


class CptGemmTB:
    """AxiLiteMaster on ``s_axi_control``, AxiRam on ``m_axi_gmem``, clock, reset and call helpers."""

    def __init__(self, dut, cfg: HardwareConfig | None = None, mem_size: int = 1 << 18):
        self.dut = dut
        self.cfg = cfg or sim_config()
        self.regmap = register_map(self.cfg)
        self.mem_size = mem_size
        Clock(dut.ap_clk, CLOCK_NS, unit="ns").start()
        self.ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                                  reset_active_level=False)
        self.ram = AxiRam(gmem_bus(dut), dut.ap_clk, dut.ap_rst_n,
                          reset_active_level=False, size=mem_size)
        self.backpressure = 0.0         # probability of a stall per channel and cycle
        self.variant = ""               # the running test's cocotb.parametrize suffix ("/backpressure=True"),
                                        # appended to record names so that they name the cocotb test
        self.bus_requests = 0           # AR + AW handshakes seen, once watch_requests() ran
        self._watching = False
        self._next_free = 0x1000
        self._faulty: tuple[int, int] | None = None
        self.prefetch = PrefetchState()  # which calls hit the B prefetch (records say so)
        self.last_hit = False

    # ------------------------------------------------------------------ setup
    async def reset(self, cycles: int = 4) -> None:
        self.prefetch.reset()                   # ap_rst_n clears the prefetch
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, cycles)
        self.dut.ap_rst_n.value = 1
        await ClockCycles(self.dut.ap_clk, 2)

    def set_backpressure(self, p_busy: float, seed: int = 1) -> None:
        """Random stalls on every channel: the memory delays AR/AW/W acceptance and R/B delivery, the
        control master idles between its transfers.  p_busy = 0 turns them off."""
        rng = random.Random(seed)
        self.backpressure = p_busy
        chans = [self.ram.read_if.ar_channel, self.ram.read_if.r_channel, self.ram.write_if.aw_channel,
                 self.ram.write_if.w_channel, self.ram.write_if.b_channel,
                 self.ctrl.write_if.aw_channel, self.ctrl.write_if.w_channel, self.ctrl.read_if.ar_channel]
        for ch in chans:
            ch.set_pause_generator(pause_pattern(p_busy, rng) if p_busy > 0 else None)
            if p_busy <= 0:
                ch.pause = False    # a killed generator may leave the channel paused for good

    def fail_reads_in(self, lo: int, hi: int) -> None:
        """Make reads of [lo, hi) answer SLVERR (cocotbext-axi turns a failing read into SLVERR)."""
        self._faulty = (lo, hi)
        read_if = self.ram.read_if
        plain = type(read_if)._read

        async def faulty(address: int, length: int) -> bytes:
            if self._faulty and self._faulty[0] <= address < self._faulty[1]:
                raise IOError(f"injected read error at 0x{address:x}")
            return await plain(read_if, address, length)

        read_if._read = faulty

    def watch_requests(self) -> None:
        """Count AR and AW handshakes from now on (a per-cycle monitor: slows the simulation)."""
        if not self._watching:
            self._watching = True
            cocotb.start_soon(self._count_requests())

    async def _count_requests(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.ap_clk)
            await ReadOnly()
            if int(dut.m_axi_gmem_ARVALID.value) and int(dut.m_axi_gmem_ARREADY.value):
                self.bus_requests += 1
            if int(dut.m_axi_gmem_AWVALID.value) and int(dut.m_axi_gmem_AWREADY.value):
                self.bus_requests += 1

    # ------------------------------------------------------------------ registers
    async def write_reg(self, name: str, value: int) -> None:
        await self.ctrl.write_dword(self.regmap.offset(name), value & 0xFFFFFFFF)

    async def read_reg(self, name: str) -> int:
        return await self.ctrl.read_dword(self.regmap.offset(name))

    def _words(self, arg: str) -> list[str]:
        regs = [r for r in self.regmap.registers if r.arg == arg and not r.name.endswith("_ctrl")]
        return [r.name for r in sorted(regs, key=lambda r: r.word)]

    async def write_arg(self, arg: str, value: int) -> None:
        for w, name in enumerate(self._words(arg)):
            await self.write_reg(name, value >> (32 * w))

    async def read_arg(self, arg: str) -> int:
        value = 0
        for w, name in enumerate(self._words(arg)):
            value |= await self.read_reg(name) << (32 * w)
        return value

    # ------------------------------------------------------------------ memory
    def alloc(self, nbytes: int, align: int | None = None) -> int:
        """A fresh, aligned region of the simulated DDR (bump allocator with a guard gap)."""
        align = align or self.cfg.word_bytes
        addr = -(-self._next_free // align) * align
        self._next_free = addr + nbytes + 64
        if self._next_free > self.mem_size:
            raise MemoryError(f"testbench RAM of {self.mem_size} bytes exhausted")
        return addr

    def free_all(self) -> None:
        self._next_free = 0x1000

    def snapshot(self) -> bytes:
        return bytes(self.ram.read(0, self.mem_size))

    # ------------------------------------------------------------------ calls
    async def call(self, *, timeout_cycles: int = 200_000, poll: bool = False, **registers: int) -> tuple[int, int]:
        """Write the arguments, start, wait for ap_done (polling CTRL).  Returns (status, cycles).

        ``registers``: a value per input argument, by name (cpt_hw.hw.calls.Call's fields, ConvCall's with
        the convolution engine; flags and win_base default to 0, win_limit to the end of the RAM, the
        prefetch hint and the conv arguments to 0).  An argument read only under a flags bit (the hint
        next_*: PREFETCH_B; sums: SUMS) is written only with that bit set, as the kernel ignores it otherwise.  ``last_hit`` tells whether this call used the previous call's
        prefetch."""
        registers = {"flags": 0, "win_base": 0, "win_limit": self.mem_size, **registers}
        call = call_type(self.cfg)(**registers)
        flags = flag_bits(self.cfg)
        for arg in (a for a in arguments(self.cfg) if a.direction == "in"):
            if arg.flag is None or call.flags >> flags[arg.flag] & 1:
                await self.write_arg(arg.name, getattr(call, arg.name))
        await self.start()
        await self.wait_done(timeout_cycles, poll=poll)
        status = await self.read_arg("status")
        cycles = await self.read_arg("cycles")
        self.last_hit = self.prefetch.step(call, status)
        return status, cycles

    async def start(self, auto_restart: bool = False) -> None:
        await self.write_reg("CTRL", (1 << CTRL_BITS["AP_START"]) | (auto_restart << CTRL_BITS["AUTO_RESTART"]))

    async def wait_done(self, timeout_cycles: int, poll: bool = False) -> None:
        """Wait for ap_done: on the interrupt line (default; enables GIE/IER, acknowledges ISR) or by
        polling CTRL as a driver without interrupts does.  Either way ap_done is read (and cleared)."""
        done = 1 << CTRL_BITS["AP_DONE"]
        if not poll:
            await self.write_reg("IER", irq_mask("DONE"))
            await self.write_reg("GIE", 1)
            if not int(self.dut.interrupt.value):
                await First(RisingEdge(self.dut.interrupt), ClockCycles(self.dut.ap_clk, timeout_cycles))
            if not int(self.dut.interrupt.value):
                raise TimeoutError(f"no interrupt within {timeout_cycles} cycles")
            # Write back what was read: clears the bits on toggle-on-write ISRs (the twin, Vitis >= 2023.1)
            # and is ignored by clear-on-read ones (Vitis 2022.x), as the driver does.
            await self.write_reg("ISR", await self.read_reg("ISR"))
        for _ in range(timeout_cycles // 16 + 1):
            if await self.read_reg("CTRL") & done:
                return
            await ClockCycles(self.dut.ap_clk, 16)
        raise TimeoutError(f"ap_done not seen within {timeout_cycles} cycles")

    def record_call(self, name: str, args: dict, status: int, cycles: int) -> None:
        """One record per call for cpt_hw.flows.rtl_sim (make sim's table, the cycle-model check)."""
        ok = status == 0
        record(name=name + self.variant, m=args["m"], n=args["n"], k=args["k"], a_bits=args["a_bits"],
               b_bits=args["b_bits"], flags=args.get("flags", 0), status=status, cycles=cycles,
               useful_ops=args["m"] * args["n"] * args["k"] * args["a_bits"] * args["b_bits"] if ok else 0,
               peak_ops_per_cycle=self.cfg.peak_binary_ops_per_cycle, backpressure=self.backpressure,
               a_addr=args["a"], b_addr=args["b"], c_addr=args["c"], b_hit=self.last_hit and ok,
               prefetch=[args.get(f"next_{x}", 0) for x in ("b", "n", "k", "b_bits")]
               if args.get("flags", 0) >> FLAG_BITS["PREFETCH_B"] & 1 else None)

    async def gemm(self, a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int, a_signed: bool = False,
                   b_signed: bool = False, *, name: str = "gemm", window: bool = True,
                   check_untouched: bool = True, poll: bool = False) -> GemmRun:
        """Pack A and B into the DDR layout, run the call, unpack C.  Records cycles for make sim.

        With check_untouched, every byte of the RAM outside C must be unchanged after the call.
        The DMA window is set to exactly cover A, B and C (window=True) or the whole RAM.
        """
        cfg = self.cfg
        m, k = a.shape
        n = b.shape[1]
        pa = layout.pack_a(a, a_bits, cfg.dot_width)
        pb = layout.pack_b(b, b_bits, cfg.dot_width)
        c_bytes = layout.result_bytes(m, n, cfg.cols)
        addr_a, addr_b, addr_c = self.alloc(pa.size), self.alloc(pb.size), self.alloc(c_bytes)
        self.ram.write(addr_a, pa.tobytes())
        self.ram.write(addr_b, pb.tobytes())
        self.ram.write(addr_c, bytes([0xA5]) * c_bytes)  # poison: every result word must be written
        before = self.snapshot() if check_untouched else b""
        flags = (a_signed << FLAG_BITS["A_SIGNED"]) | (b_signed << FLAG_BITS["B_SIGNED"])
        lo, hi = (min(addr_a, addr_b, addr_c), max(addr_a + pa.size, addr_b + pb.size, addr_c + c_bytes)) \
            if window else (0, self.mem_size)
        status, cycles = await self.call(a=addr_a, b=addr_b, c=addr_c, m=m, n=n, k=k, a_bits=a_bits,
                                         b_bits=b_bits, flags=flags, win_base=lo, win_limit=hi, poll=poll)
        if check_untouched:
            after = self.snapshot()
            diff = np.flatnonzero(np.frombuffer(before, np.uint8) != np.frombuffer(after, np.uint8))
            stray = diff[(diff < addr_c) | (diff >= addr_c + c_bytes)]
            assert stray.size == 0, (f"{name}: {stray.size} bytes outside C [0x{addr_c:x}, 0x{addr_c + c_bytes:x}) "
                                     f"changed, first at 0x{int(stray[0]):x}" if stray.size else "")
        c = None
        if status == 0:
            raw = np.frombuffer(self.ram.read(addr_c, c_bytes), dtype=np.uint8)
            c = layout.unpack_result(raw, m, n, cfg.cols)
            stride = layout.result_stride(n, cfg.cols)
            pad = raw.view("<i4").reshape(m, stride)[:, n:]
            assert not pad.any(), f"{name}: padding columns of C are not zero"
        self.record_call(name, dict(a=addr_a, b=addr_b, c=addr_c, m=m, n=n, k=k, a_bits=a_bits, b_bits=b_bits,
                                    flags=flags), status, cycles)
        self.free_all()
        return GemmRun(c, status, cycles)


def irq_mask(*names: str) -> int:
    return sum(1 << IRQ_BITS[n] for n in names)


#: Flags bit of the B prefetch hint.
PREFETCH = 1 << FLAG_BITS["PREFETCH_B"]


async def check_gemm(tb: CptGemmTB, rng, m: int, n: int, k: int, a_bits: int, b_bits: int, a_signed: bool,
                     b_signed: bool, name: str, **kw) -> int:
    """One GEMM of random operands through :meth:`CptGemmTB.gemm`, bit-exact against golden; its cycles."""
    a = random_operand(rng, (m, k), a_bits, a_signed)
    b = random_operand(rng, (k, n), b_bits, b_signed)
    tb.dut._log.info("%s: %dx%dx%d at (%d, %d) signed (%d, %d)", name, m, n, k, a_bits, b_bits, a_signed, b_signed)
    run = await tb.gemm(a, b, a_bits, b_bits, a_signed, b_signed, name=name, **kw)
    assert run.status == 0, f"{name} {m}x{n}x{k} ({a_bits},{b_bits}): status {run.status:#x}"
    want = golden.gemm(a, b, a_bits, b_bits, a_signed, b_signed, acc_width=tb.cfg.acc_width)
    assert np.array_equal(run.c, want), f"{name} {m}x{n}x{k} ({a_bits},{b_bits},{a_signed},{b_signed}) differs"
    return run.cycles


@dataclass
class Staged:
    """A GEMM whose operands sit in the testbench RAM, ready to be called (with or without a hint)."""

    a: np.ndarray
    b: np.ndarray
    a_bits: int
    b_bits: int
    a_signed: bool
    b_signed: bool
    ra: int
    rb: int
    rc: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.a.shape[0], self.b.shape[1], self.a.shape[1]

    def args(self) -> dict:
        m, n, k = self.shape
        flags = (self.a_signed << FLAG_BITS["A_SIGNED"]) | (self.b_signed << FLAG_BITS["B_SIGNED"])
        return dict(a=self.ra, b=self.rb, c=self.rc, m=m, n=n, k=k, a_bits=self.a_bits, b_bits=self.b_bits,
                    flags=flags)

    def hint(self) -> dict:
        """The prefetch hint that names this call's B."""
        _, n, k = self.shape
        return dict(next_b=self.rb, next_n=n, next_k=k, next_b_bits=self.b_bits)

    def write_b(self, tb: CptGemmTB, b: np.ndarray) -> None:
        tb.ram.write(self.rb, layout.pack_b(b, self.b_bits, tb.cfg.dot_width).tobytes())


def stage(tb: CptGemmTB, rng, m: int, n: int, k: int, a_bits: int, b_bits: int, a_signed: bool = False,
          b_signed: bool = False) -> Staged:
    cfg = tb.cfg
    a = random_operand(rng, (m, k), a_bits, a_signed)
    b = random_operand(rng, (k, n), b_bits, b_signed)
    pa, pb = layout.pack_a(a, a_bits, cfg.dot_width), layout.pack_b(b, b_bits, cfg.dot_width)
    s = Staged(a, b, a_bits, b_bits, a_signed, b_signed, tb.alloc(pa.size), tb.alloc(pb.size),
               tb.alloc(layout.result_bytes(m, n, cfg.cols)))
    tb.ram.write(s.ra, pa.tobytes())
    tb.ram.write(s.rb, pb.tobytes())
    return s


async def run_staged(tb: CptGemmTB, s: Staged, name: str, hint: dict | None = None,
                     b_used: np.ndarray | None = None) -> int:
    """Call s (with PREFETCH_B and `hint` when given), check C bit-exactly against golden with B =
    b_used (default s.b) and the padding columns; returns the cycles."""
    m, n, _ = s.shape
    cfg = tb.cfg
    c_bytes = layout.result_bytes(m, n, cfg.cols)
    tb.ram.write(s.rc, bytes([0xA5]) * c_bytes)
    args = s.args()
    if hint is not None:
        args = {**args, **hint, "flags": args["flags"] | PREFETCH}
    status, cycles = await tb.call(**args)
    tb.record_call(name, args, status, cycles)
    assert status == 0, f"{name}: status {status:#x}"
    raw = np.frombuffer(tb.ram.read(s.rc, c_bytes), dtype=np.uint8)
    want = golden.gemm(s.a, s.b if b_used is None else b_used, s.a_bits, s.b_bits, s.a_signed, s.b_signed,
                       acc_width=cfg.acc_width)
    assert np.array_equal(layout.unpack_result(raw, m, n, cfg.cols), want), f"{name}: C differs"
    assert not raw.view("<i4").reshape(m, layout.result_stride(n, cfg.cols))[:, n:].any(), f"{name}: padding"
    return cycles


async def run_driver_in_sim(dut, compare: Callable[["CptGemmTB", float], dict], mem_size: int = 1 << 26) -> None:
    """A cocotb test body for blocking driver code (cpt_driver's ``rtl`` backend): reset a CptGemmTB on ``dut``
    with quiet AXI models, run ``compare(tb, CLOCK_NS)`` in cocotb's bridge thread and write the dict it returns as
    JSON to the file named by ``rtl_sim.ENV_DRIVER_RESULT`` (the pytest side, tests/conftest.py's
    ``driver_on_rtl``, reads it)."""
    import json
    import logging
    import os
    from pathlib import Path

    from cocotb.task import bridge

    from cpt_hw.flows.rtl_sim import ENV_DRIVER_RESULT

    tb = CptGemmTB(dut, mem_size=mem_size)  # sparse: the driver's pool and a few pages fit
    for bus in (tb.ctrl.write_if, tb.ctrl.read_if, tb.ram.write_if, tb.ram.read_if):
        bus.log.setLevel(logging.WARNING)  # one INFO line per AXI transaction would dominate the run time
    await tb.reset()
    result = await bridge(compare)(tb, CLOCK_NS)
    Path(os.environ[ENV_DRIVER_RESULT]).write_text(json.dumps(result, indent=1))
