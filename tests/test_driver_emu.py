"""The emulated device's register semantics (docs/registers.md) and its memory safety, at the register level."""

import asyncio
import dataclasses

import numpy as np
import pytest

from cpt_driver import Accelerator, ArgumentError, DeviceTimeoutError, resolve_spec
from cpt_driver import layout as L
from cpt_driver.backends.emu import EmuBackend
from cpt_hw.hw import golden as g
from cpt_hw.hw.calls import REFUSED_CALLS, Call, refused_calls
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.cycle_model import gemm_cycles
from cpt_hw.hw.regmap import CTRL_BITS, STATUS_BITS, register_map

SIM = HardwareConfig.from_preset("sim")
RM = register_map(SIM)
OFF = {r.name: r.offset for r in RM.registers}
START, DONE, IDLE, READY, AUTO = (1 << CTRL_BITS[n] for n in ("AP_START", "AP_DONE", "AP_IDLE", "AP_READY", "AUTO_RESTART"))


class Dev:
    """Register-level access to an emu device, the way a testbench drives the RTL."""

    def __init__(self, cfg=SIM, isr_mode="tow"):
        self.be = EmuBackend(resolve_spec(cfg), isr_mode=isr_mode)
        self.rm = register_map(cfg)

    def rd(self, name):
        return self.be.read_reg(self.rm.offset(name))

    def wr(self, name, value):
        self.be.write_reg(self.rm.offset(name), value)

    def arg(self, name, value):
        words = [r for r in self.rm.registers if r.arg == name and not r.name.endswith("_ctrl")]
        for r in words:
            self.be.write_reg(r.offset, (value >> (32 * r.word)) & 0xFFFFFFFF)

    def call(self, **args):
        for k, v in args.items():
            self.arg(k, v)
        self.wr("CTRL", START)
        return self.rd("status")


def operands_in_memory(dev, m, k, n, a_bits=8, b_bits=8, seed=0):
    """Allocate A, B, C buffers in the emulated memory, pack random operands into A and B."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << a_bits, size=(m, k))
    b = rng.integers(0, 1 << b_bits, size=(k, n))
    bufs = {}
    for name, data in (("a", L.pack_a(a, a_bits, SIM.dot_width)), ("b", L.pack_b(b, b_bits, SIM.dot_width))):
        buf = dev.be.allocate(data.size)
        buf.array[:] = data
        bufs[name] = buf
    bufs["c"] = dev.be.allocate(L.result_bytes(m, n, SIM.cols))
    bufs["c"].array[:] = 0xCD
    return a, b, bufs


def test_ctrl_handshake_clear_on_read_and_outputs():
    dev = Dev()
    assert dev.rd("CTRL") == IDLE and dev.rd("id") == 0 and dev.rd("status_ctrl") == 0
    a, b, bufs = operands_in_memory(dev, 5, 70, 3)
    lo = min(x.phys for x in bufs.values())
    hi = max(x.phys + x.nbytes for x in bufs.values())
    status = dev.call(a=bufs["a"].phys, b=bufs["b"].phys, c=bufs["c"].phys, m=5, n=3, k=70, a_bits=8, b_bits=8,
                      flags=0, win_base=lo, win_limit=hi)
    assert status == 0
    assert dev.rd("CTRL") == DONE | IDLE | READY  # ap_start cleared by the kernel
    assert dev.rd("CTRL") == IDLE  # ap_done and ap_ready were cleared by the previous read
    assert dev.rd("status_ctrl") == 1 and dev.rd("status_ctrl") == 0  # ap_vld clears on read
    assert dev.rd("id") == SIM.id_word and dev.rd("id_ctrl") == 1
    cycles = dev.rd("cycles_lo") | dev.rd("cycles_hi") << 32
    assert cycles == gemm_cycles(SIM, 5, 3, 70, 8, 8).total
    np.testing.assert_array_equal(L.unpack_result(bufs["c"].array, 5, 3, SIM.cols), g.gemm(a, b, 8, 8))
    assert dev.rd("m") == 5 and dev.rd("k") == 70  # inputs read back


def test_interrupt_registers_toggle_on_write():
    """ISR as Vitis HLS 2023.1 and later (and the Verilog twin) generate it."""
    dev = Dev()
    dev.wr("IER", 0b11)
    dev.wr("GIE", 1)
    assert dev.rd("ISR") == 0 and not dev.be.device.interrupt
    dev.call(m=0)  # refused, but it completes (and interrupts) like any call
    assert dev.rd("ISR") == 0b11 and dev.be.device.interrupt
    assert dev.rd("CTRL") & (1 << CTRL_BITS["INTERRUPT"])
    dev.wr("ISR", 0b01)  # toggle on write
    assert dev.rd("ISR") == 0b10
    dev.wr("ISR", 0b10)
    assert dev.rd("ISR") == 0 and not dev.be.device.interrupt
    dev.wr("ISR", 0b01)  # toggling sets too
    assert dev.rd("ISR") == 0b01
    dev.wr("GIE", 0)
    assert not dev.be.device.interrupt


def test_interrupt_registers_clear_on_read():
    """ISR as Vitis HLS 2022.x generates it: a read returns and clears it, writes do nothing."""
    dev = Dev(isr_mode="cor")
    dev.wr("IER", 0b11)
    dev.wr("GIE", 1)
    dev.call(m=0)
    assert dev.be.device.interrupt
    dev.wr("ISR", 0b11)  # ignored
    assert dev.be.device.interrupt
    assert dev.rd("ISR") == 0b11
    assert dev.rd("ISR") == 0 and not dev.be.device.interrupt
    dev.wr("ISR", 0b01)  # no toggling either
    assert dev.rd("ISR") == 0


def test_unknown_isr_mode_is_refused():
    with pytest.raises(ArgumentError, match=r"^isr_mode = 'rc': must be one of 'tow', 'cor'$"):
        Dev(isr_mode="rc")


class _Overlay:
    """The least of pynq.Overlay the pynq backend needs: one cpt_gemm IP whose MMIO and interrupt pin are
    the emulated device's."""

    def __init__(self, device):
        mmio = type("MMIO", (), {"read": lambda _, off, length=4: device.read(off),
                                 "write": lambda _, off, value: device.write(off, value)})()
        self.waits = 0

        async def wait():
            self.waits += 1
            while not device.interrupt:
                await asyncio.sleep(0)

        self.ip_dict = {"cpt_gemm_0": {"type": "xilinx.com:hls:cpt_gemm:3.0"}}
        self.cpt_gemm_0 = type("IP", (), {"mmio": mmio, "interrupt": type("Irq", (), {"wait": staticmethod(wait)})()})()


@pytest.mark.parametrize("isr_mode", ["tow", "cor"])
def test_interrupt_driven_driver_acknowledges_under_both_isr_semantics(isr_mode):
    """The pynq backend clears ISR by reading it and writing back the bits it read: on toggle-on-write
    that clears them, on clear-on-read the read did and the write is ignored.  Either way every call
    ends with the interrupt line low, so the next wait is for the next call's ap_done."""
    pytest.importorskip("pynq")
    from cpt_driver.backends.pynq import PynqBackend

    emu = EmuBackend(resolve_spec(SIM), isr_mode=isr_mode)
    overlay = _Overlay(emu.device)
    backend = PynqBackend(emu.spec, overlay=overlay, use_interrupt=True)
    backend.allocate = emu.allocate  # DMA memory: the emulated DDR (registers are what this test is about)
    acc = Accelerator(backend)
    rng = np.random.default_rng(5)
    for _ in range(3):
        a, b = rng.integers(0, 16, size=(7, 300)), rng.integers(0, 16, size=(300, 5))
        np.testing.assert_array_equal(acc.gemm(a, b, 4, 4), a @ b)
        assert emu.device.isr == 0 and not emu.device.interrupt
    assert overlay.waits == acc.calls + 1  # one interrupt per call, + the attach probe


def test_auto_restart_reruns_after_each_reported_done():
    dev = Dev()
    dev.wr("CTRL", START | AUTO)
    assert dev.be.device.runs == 1
    assert dev.rd("CTRL") & (DONE | START | AUTO) == DONE | START | AUTO
    assert dev.be.device.runs == 2  # ap_start stayed high: the kernel started again
    dev.wr("CTRL", 0)  # clear auto_restart: one more run, which drops ap_start at its end
    assert dev.rd("CTRL") & (DONE | START | AUTO) == DONE | START
    assert dev.be.device.runs == 3
    assert dev.rd("CTRL") == DONE | IDLE | READY
    assert dev.rd("CTRL") == IDLE and dev.be.device.runs == 3


@pytest.mark.parametrize("case", REFUSED_CALLS, ids=lambda case: case.name)
def test_each_refused_call_leaves_memory_untouched(case):
    """Every case of the table of refused calls (cpt_hw.hw.calls.REFUSED_CALLS), at the register level."""
    dev = Dev()
    a, b, bufs = operands_in_memory(dev, 4, 40, 3)
    lo = min(x.phys for x in bufs.values())
    hi = max(x.phys + x.nbytes for x in bufs.values())
    base = Call(a=bufs["a"].phys, b=bufs["b"].phys, c=bufs["c"].phys, m=4, n=3, k=40, a_bits=8, b_bits=8, flags=0,
                win_base=lo, win_limit=hi)
    [(_, call)] = refused_calls(SIM, base, (case,))
    before = {p: arr.copy() for p, arr in dev.be.memory.regions().items()}
    assert dev.call(**dataclasses.asdict(call)) == case.status
    assert all(np.array_equal(arr, before[p]) for p, arr in dev.be.memory.regions().items())
    assert dev.rd("CTRL") & (DONE | IDLE) == DONE | IDLE


def test_unmapped_memory_inside_the_window_is_a_bus_error():
    dev = Dev()
    a, b, bufs = operands_in_memory(dev, 4, 40, 3)
    status = dev.call(a=bufs["a"].phys, b=bufs["b"].phys, c=bufs["c"].phys + 4096, m=4, n=3, k=40, a_bits=8,
                      b_bits=8, flags=0, win_base=0, win_limit=1 << 40)
    assert status == 1 << STATUS_BITS["ERR_AXI_RESP"]
    assert (bufs["c"].array == 0xCD).all()


def test_forged_address_is_refused_and_memory_unchanged():
    """The driver confines the device to its pool; an address forged past the driver hits the window."""
    acc = Accelerator("emu", config=SIM)
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 256, (6, 50)), rng.integers(0, 256, (50, 4))
    np.testing.assert_array_equal(acc.gemm(a, b, 8, 8), a @ b)  # the pool and its window exist now
    be = acc.backend
    victim = be.allocate(4096)  # memory outside the driver's pool (another process's buffer, say)
    victim.array[:] = np.arange(4096) % 251
    arena = acc.pool.arena
    win = (acc._read_arg("win_base"), acc._read_arg("win_limit"))
    assert win == (arena.phys, arena.phys + arena.nbytes)
    before = {p: arr.copy() for p, arr in be.memory.regions().items()}
    for forged in ({"c": victim.phys}, {"a": victim.phys}, {"c": arena.phys + arena.nbytes - 64}):
        dev_args = dict(a=arena.phys, b=arena.phys, c=arena.phys + 2048, m=6, n=4, k=50, a_bits=8, b_bits=8, flags=0)
        dev_args.update(forged)
        for name, value in dev_args.items():
            acc._write_arg(name, value)
        be.write_reg(acc.spec.registers["CTRL"], START)
        assert be.wait_done(1.0)
        assert acc._read_arg("status") == 1 << STATUS_BITS["ERR_WINDOW"], forged
        assert all(np.array_equal(arr, before[p]) for p, arr in be.memory.regions().items())
    np.testing.assert_array_equal(acc.gemm(a, b, 8, 8), a @ b)  # the driver carries on


# ----------------------------------------------------------------------------- stale B prefetch
# A GEMM split over rows of A (the pool budget allows 12 of the 24 rows per call) runs two calls on one B
# tile; the first names that same tile as its prefetch hint.  Stopping after the first call leaves the
# device holding a copy of B for (address, n, k, b_bits): the next GEMM of the same N, K, b_bits gets the
# same first-fit address for its B, so without clean-up it would compute from the stale copy (a "hit").
STALE_POOL = 1024
STALE_M, STALE_K, STALE_N, STALE_BITS = 24, 64, 3, 4


def record_runs(acc, stop_after=None, exc=KeyboardInterrupt):
    """Log (b, n, k, hint) of every device call of ``acc``; raise ``exc`` right after call ``stop_after``."""
    log, run = [], acc._run

    def hooked(*args):
        cycles = run(*args)
        log.append((args[1], args[4], args[5], args[9]))
        if len(log) == stop_after:
            raise exc("stopped between two calls of a GEMM")
        return cycles

    acc._run = hooked
    return log


def stale_operands(seed=11):
    rng = np.random.default_rng(seed)
    hi = 1 << STALE_BITS
    a = rng.integers(0, hi, size=(STALE_M, STALE_K))
    return a, rng.integers(0, hi, size=(STALE_K, STALE_N)), rng.integers(0, hi, size=(STALE_K, STALE_N))


def interrupt_chain(acc, a, b, exc):
    """Run a two-call GEMM on ``acc`` and stop it after its first call; returns that call's hint."""
    log = record_runs(acc, stop_after=1, exc=exc)
    with pytest.raises(exc):
        acc.gemm(a, b, STALE_BITS, STALE_BITS)
    ((_, _, _, hint),) = log
    assert hint is not None  # the call left a prefetched B on the device
    return hint


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_gemm_stopped_between_calls_leaves_no_stale_prefetch(exc):
    acc = Accelerator("emu", config=SIM, pool_bytes=STALE_POOL)
    a, b_old, b_new = stale_operands()
    hint = interrupt_chain(acc, a, b_old, exc)
    log = record_runs(acc)
    c = acc.gemm(a[:12], b_new, STALE_BITS, STALE_BITS)  # one call, B at the hinted address
    assert log[0][:3] == hint  # same B address, N and K (and b_bits): the stale copy would be a hit
    np.testing.assert_array_equal(c, g.gemm(a[:12], b_new, STALE_BITS, STALE_BITS))
    assert acc.backend.device.hits == 0


def test_attach_clears_a_prefetch_left_by_another_process(monkeypatch):
    """A process killed between two calls (no clean-up ran) leaves its hint; the next process attaching to
    the loaded device gets the same DMA memory back and must not compute from the old B."""
    first = Accelerator("emu", config=SIM, pool_bytes=STALE_POOL)
    monkeypatch.setattr(first, "_clear_prefetch_after_error", lambda: None)  # SIGKILL: nothing runs
    a, b_old, b_new = stale_operands(seed=12)
    hint = interrupt_chain(first, a, b_old, KeyboardInterrupt)
    backend, runs = first.backend, first.backend.device.runs
    monkeypatch.setattr(backend, "allocate", lambda nbytes: first.pool.arena)  # the freed CMA block, reused
    second = Accelerator(backend, pool_bytes=STALE_POOL)
    assert backend.device.runs == runs + 1  # the refused probe call, although `id` already reads the ID
    log = record_runs(second)
    c = second.gemm(a[:12], b_new, STALE_BITS, STALE_BITS)
    assert log[0][:3] == hint
    np.testing.assert_array_equal(c, g.gemm(a[:12], b_new, STALE_BITS, STALE_BITS))
    assert backend.device.hits == 0


def test_uninterrupted_chains_still_hit():
    """The clean-up costs nothing on the normal path: a chain's own hints are used and no extra call runs."""
    acc = Accelerator("emu", config=SIM, pool_bytes=STALE_POOL)
    a, b, _ = stale_operands(seed=13)
    runs = acc.backend.device.runs
    np.testing.assert_array_equal(acc.gemm(a, b, STALE_BITS, STALE_BITS), g.gemm(a, b, STALE_BITS, STALE_BITS))
    assert acc.backend.device.runs - runs == acc.calls == 2 and acc.backend.device.hits == 1


def test_arguments_are_latched_at_ap_start_and_ap_start_during_a_call_is_ignored():
    dev = Dev()
    a, b, bufs = operands_in_memory(dev, 4, 40, 3)
    lo = min(x.phys for x in bufs.values())
    hi = max(x.phys + x.nbytes for x in bufs.values())
    dev.be.device.hang = True  # the call runs until finish(): time to write registers meanwhile
    dev.call(a=bufs["a"].phys, b=bufs["b"].phys, c=bufs["c"].phys, m=4, n=3, k=40, a_bits=8, b_bits=8, flags=0,
             win_base=lo, win_limit=hi)
    assert dev.rd("CTRL") & (START | IDLE) == START
    dev.arg("m", 0)  # would be ERR_DIM, were it read now
    dev.wr("CTRL", START)
    dev.be.device.finish()
    assert dev.rd("status") == 0 and dev.be.device.runs == 1
    assert dev.rd("CTRL") == DONE | IDLE | READY and dev.rd("CTRL") == IDLE  # no second call was queued
    np.testing.assert_array_equal(L.unpack_result(bufs["c"].array, 4, 3, SIM.cols), g.gemm(a, b, 8, 8))
    dev.be.device.hang = False
    dev.wr("CTRL", START)  # the next call takes m = 0
    assert dev.rd("status") == 1 << STATUS_BITS["ERR_DIM"] and dev.be.device.runs == 2


def test_prefetch_cleared_by_the_next_gemm_when_the_device_was_busy_at_the_error():
    """A call with a hint times out: the device is busy, so the clean-up cannot run then; once that call
    has finished (leaving its hint), the next GEMM clears it before its first call."""
    acc = Accelerator("emu", config=SIM, pool_bytes=STALE_POOL, timeout_s=0.01)
    a, b_old, b_new = stale_operands(seed=14)
    a = np.concatenate([a, a])  # 48 rows: four calls on one B tile, each but the last with that tile as hint
    device, run, hints = acc.backend.device, acc._run, []

    def hang_the_second(*args):
        hints.append(args[9])
        device.hang = len(hints) == 2
        return run(*args)

    acc._run = hang_the_second
    with pytest.raises(DeviceTimeoutError):
        acc.gemm(a, b_old, STALE_BITS, STALE_BITS)
    acc._run = run
    device.hang = False
    device.finish()  # the timed-out call ends after all, with its prefetch in
    hits = device.hits
    log = record_runs(acc)
    c = acc.gemm(a[:12], b_new, STALE_BITS, STALE_BITS)
    assert hints[1] is not None and log[-1][:3] == hints[1]  # the new B sits where the hint points
    np.testing.assert_array_equal(c, g.gemm(a[:12], b_new, STALE_BITS, STALE_BITS))
    assert device.hits == hits
