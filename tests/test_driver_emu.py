"""The emulated device's register semantics (docs/registers.md) and its memory safety, at the register level."""

import numpy as np
import pytest

from cpt_driver import Accelerator, layout as L, resolve_spec
from cpt_driver.backends.emu import EmuBackend
from cpt_hw import golden as g
from cpt_hw.config import HardwareConfig
from cpt_hw.cycle_model import gemm_cycles
from cpt_hw.regmap import CTRL_BITS, STATUS_BITS, register_map

SIM = HardwareConfig.from_preset("sim")
RM = register_map(SIM)
OFF = {r.name: r.offset for r in RM.registers}
START, DONE, IDLE, READY, AUTO = (1 << CTRL_BITS[n] for n in ("AP_START", "AP_DONE", "AP_IDLE", "AP_READY", "AUTO_RESTART"))


class Dev:
    """Register-level access to an emu device, the way a testbench drives the RTL."""

    def __init__(self, cfg=SIM):
        self.be = EmuBackend(resolve_spec(cfg))
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


def test_interrupt_registers():
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


@pytest.mark.parametrize("change, bit", [
    (dict(m=0), "ERR_DIM"), (dict(n=SIM.max_dim + 1), "ERR_DIM"), (dict(k=SIM.k_max + 1), "ERR_DIM"),
    (dict(a_bits=0), "ERR_BITS"), (dict(b_bits=SIM.operand_bits + 1), "ERR_BITS"),
    (dict(flags=8), "ERR_FLAGS"), ("a+2", "ERR_ALIGN"), ("window-1", "ERR_WINDOW"), ("c-outside", "ERR_WINDOW"),
])
def test_each_status_bit_refuses_without_touching_memory(change, bit):
    dev = Dev()
    a, b, bufs = operands_in_memory(dev, 4, 40, 3)
    lo = min(x.phys for x in bufs.values())
    hi = max(x.phys + x.nbytes for x in bufs.values())
    args = dict(a=bufs["a"].phys, b=bufs["b"].phys, c=bufs["c"].phys, m=4, n=3, k=40, a_bits=8, b_bits=8, flags=0,
                win_base=lo, win_limit=hi)
    if change == "a+2":
        args["a"] += 2
    elif change == "window-1":
        args["win_limit"] = hi - 1  # C's last byte is outside by one
    elif change == "c-outside":
        args["win_limit"] = bufs["c"].phys  # C starts exactly at the limit
    else:
        args.update(change)
    before = {p: arr.copy() for p, arr in dev.be.memory.regions().items()}
    status = dev.call(**args)
    assert status == 1 << STATUS_BITS[bit]
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
