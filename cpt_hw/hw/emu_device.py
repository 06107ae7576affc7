"""An in-process cpt_gemm: the HLS kernel's register semantics over a byte-addressed memory.

:class:`EmuMemory` holds DMA buffers at physical addresses with unmapped gaps between them (an access
that leaves a buffer is an AXI decode error, as on a real bus).  :class:`EmuDevice` implements the
``control`` register file exactly as docs/registers.md describes the HLS kernel:

* CTRL: writing bit 0 starts the kernel; bit 1 ap_done and bit 3 ap_ready are cleared by the read that
  returns them; bit 2 ap_idle; bit 7 auto_restart: ap_start stays set at completion, so the kernel runs
  again (here: when the completion has been read); once auto_restart is cleared, the run in progress
  (here: one more) clears ap_start; bit 9 the interrupt line;
* GIE / IER plain registers, interrupt = GIE and any ISR bit; ISR as the HLS tool version has it
  (``isr_mode``): "tow" toggle on write (Vitis HLS 2023.1 and later, the Verilog twin), "cor" clear on
  read with writes ignored (Vitis HLS 2022.x);
* arguments are sampled when a call starts; ap_start written during a call does nothing;
* outputs status / cycles / id with ``*_ctrl`` ap_vld bits cleared on read; like the HLS kernel, ``id``
  reads 0 until the first call has run;
* every status error bit is decided before any memory access, and a refused call touches no memory;
  the DMA window is enforced on the exact byte ranges of A, B and C.

With ``conv_engine`` (interface 4) a call whose ``conv`` op is 1..3 is a convolution call, run by
:mod:`cpt_hw.hw.emu_conv` (checked by :func:`cpt_hw.hw.conv_calls.conv_status`; its cycles are the design's
model, conv_model, not a measurement); op 0 is today's GEMM call.

A call completes as soon as it starts (the emulator has no notion of wall time); ``cycles`` comes from
``cpt_hw.hw.cycle_model`` and C from ``cpt_hw.hw.golden``.  The B prefetch (flags bit PREFETCH_B) behaves as in
the hardware: the prefetching call copies the next call's first B block as it is then, the next call
uses that copy iff its (b, n, k, b_bits) match the hint (cpt_hw.hw.calls.PrefetchState) and its cycles
are those of a hit; a weight-gradient call hits the previous conv call's hint (its cycles model's
``prefetched``) iff its a, b, geometry and flags SUMS and B_SIGNED match it (registers.md, "The weight
gradient's prefetch").  ``hang = True`` injects a kernel that never
finishes, for the driver's timeout path.  This module is a development/CI component and imports cpt_hw.
"""

from __future__ import annotations

import bisect
import contextlib
from functools import lru_cache
from typing import Any

import numpy as np

from cpt_driver import layout
from cpt_driver.errors import ArgumentError
from cpt_driver.spec import DeviceSpec

from . import emu_conv, golden
from .calls import PrefetchState, call_status, call_type, prefetch_bytes
from .conv_calls import ConvArgs, conv_status, hint_key, hint_left, operand_ranges
from .config import HardwareConfig
from .cycle_model import Prefetch, gemm_cycles, setup_cycles

#: Elements of the A (or C) block per golden.gemm call: 1 MiB of int64, in cache (see execute).
_BLOCK_ELEMENTS = 1 << 17
#: ISR semantics of the s_axilite adapters HLS generates: toggle on write (Vitis HLS >= 2023.1),
#: clear on read with writes ignored (Vitis HLS 2022.x ``*_control_s_axi.v``).
ISR_MODES = ("tow", "cor")


class EmuMemory:
    """Sparse physical memory: zero-initialised regions at ``align``-aligned addresses, unmapped guards between."""

    def __init__(self, *, base: int = 0x1000_0000, align: int = 4096, guard: int = 4096, addr_bits: int = 64):
        self._next = base
        self.align = align
        self.guard = guard
        self.limit = 1 << addr_bits
        self._bases: list[int] = []
        self._regions: dict[int, np.ndarray] = {}

    def allocate(self, nbytes: int) -> tuple[int, np.ndarray]:
        phys = -(-self._next // self.align) * self.align
        if phys + nbytes > self.limit:
            raise MemoryError(f"emulated physical address space exhausted ({self.limit:#x} bytes)")
        arr = np.zeros(int(nbytes), dtype=np.uint8)
        self._next = phys + nbytes + self.guard
        bisect.insort(self._bases, phys)
        self._regions[phys] = arr
        return phys, arr

    def free(self, phys: int) -> None:
        del self._regions[phys]
        self._bases.remove(phys)

    def view(self, addr: int, nbytes: int) -> np.ndarray | None:
        """The bytes [addr, addr + nbytes) if they lie inside one region, else None (decode error)."""
        i = bisect.bisect_right(self._bases, addr) - 1
        if i < 0:
            return None
        base = self._bases[i]
        arr = self._regions[base]
        if addr + nbytes > base + arr.size:
            return None
        return arr[addr - base:addr - base + nbytes]

    def regions(self) -> dict[int, np.ndarray]:
        """{physical base: bytes} of every mapped region (live views; copy them to snapshot)."""
        return dict(self._regions)


_BLAS = None


def _blas_single_thread(work: int) -> Any:
    """A context that runs BLAS on one thread for large calls (threadpoolctl, when installed).

    The blocks handed to BLAS are about 1 MiB: too small for a second thread to pay for its wake-up,
    and on a machine shared with other jobs OpenBLAS's spinning worker threads slow them down by up
    to 10x (measured).  Small calls skip the ~30 us the limit itself costs.
    """
    global _BLAS
    if work < 1 << 16:
        return contextlib.nullcontext()
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController
            _BLAS = ThreadpoolController()
        except ImportError:
            _BLAS = False
    return _BLAS.limit(limits=1, user_api="blas") if _BLAS else contextlib.nullcontext()


@lru_cache(maxsize=4096)
def _model_cycles(cfg: HardwareConfig, m: int, n: int, k: int, a_bits: int, b_bits: int, b_prefetched: bool = False,
                  prefetch: Prefetch | None = None) -> int:
    """Cycles of a call (4 KiB aligned operands, as the model assumes by default: cacheable)."""
    return gemm_cycles(cfg, m, n, k, a_bits, b_bits, b_prefetched=b_prefetched, prefetch=prefetch).total


class EmuDevice:
    """The control register file and datapath of one emulated cpt_gemm instance.

    isr_mode: "tow" (ISR toggles on write) or "cor" (ISR clears on read, writes ignored); see ISR_MODES.
    """

    def __init__(self, cfg: HardwareConfig, spec: DeviceSpec, memory: EmuMemory, isr_mode: str = "tow",
                 twin_limits: bool = False):
        if isr_mode not in ISR_MODES:
            raise ArgumentError(f"isr_mode = {isr_mode!r}: must be one of {', '.join(map(repr, ISR_MODES))}")
        self.isr_mode = isr_mode
        #: conv calls get the Verilog twin's status (conv_status twin=True): what the twin refuses is refused here
        #: too, so host code can be run against the twin's limits without a simulator (results unchanged)
        self.twin_limits = twin_limits
        self.cfg = cfg
        self.spec = spec
        self.memory = memory
        self.hang = False
        self._names = {off: name for name, off in spec.registers.items()}
        self._inputs: dict[str, int] = {r: 0 for r in spec.registers
                                        if r not in ("CTRL", "ISR") and not self._is_output(r)}
        self._latched = dict(self._inputs)  # the arguments as the running call took them at ap_start
        cb = spec.ctrl_bits
        self._bit = {name: 1 << b for name, b in cb.items()}
        self.ap_start = self.ap_done = self.ap_ready = self.auto_restart = False
        self.ap_idle = True
        self.isr = 0
        self.outputs = {name: 0 for name in spec.outputs}
        self.valid = {name: False for name in spec.outputs}
        self.runs = 0
        self._scratch: dict[str, np.ndarray] = {}
        self.prefetch = PrefetchState()
        self._call_type = call_type(cfg)
        self._conv_hint: tuple[int, ...] | None = None   # the X and E chunk a conv call prefetched
        self._prefetched = np.zeros(0, dtype=np.uint8)  # B block 0 as the prefetching call read it
        self._prefetch_buf = self._prefetched
        self.hits = 0

    def _is_output(self, reg: str) -> bool:
        return any(reg == o or reg.startswith(o + "_") for o in self.spec.outputs)

    # ------------------------------------------------------------------ bus side
    @property
    def interrupt(self) -> bool:
        return bool(self._inputs["GIE"] & 1) and self.isr != 0

    def read(self, offset: int) -> int:
        name = self._names.get(offset)
        if name is None:
            return 0
        if name == "CTRL":
            b = self._bit
            value = ((b["AP_START"] if self.ap_start else 0) | (b["AP_DONE"] if self.ap_done else 0)
                     | (b["AP_IDLE"] if self.ap_idle else 0) | (b["AP_READY"] if self.ap_ready else 0)
                     | (b["AUTO_RESTART"] if self.auto_restart else 0) | (b["INTERRUPT"] if self.interrupt else 0))
            reported_done = self.ap_done
            self.ap_done = self.ap_ready = False  # clear on read
            if reported_done and self.ap_start:
                self._start()  # ap_start still high (auto_restart): the kernel starts again
            return value
        if name == "ISR":
            value = self.isr
            if self.isr_mode == "cor":
                self.isr = 0
            return value
        if name in self._inputs:
            return self._inputs[name]
        arg, _, suffix = name.partition("_")
        if suffix == "ctrl":
            valid = self.valid[arg]
            self.valid[arg] = False  # ap_vld clears on read
            return int(valid)
        value = self.outputs[arg]
        return (value >> 32) & 0xFFFFFFFF if suffix == "hi" else value & 0xFFFFFFFF

    def write(self, offset: int, value: int) -> None:
        name = self._names.get(offset)
        value &= 0xFFFFFFFF
        if name == "CTRL":
            self.auto_restart = bool(value & self._bit["AUTO_RESTART"])
            if value & self._bit["AP_START"]:
                self.ap_start = True
                if self.ap_idle:
                    self._start()
        elif name == "ISR":
            if self.isr_mode == "tow":
                self.isr ^= value & self._irq_mask()
        elif name == "GIE":
            self._inputs[name] = value & 1
        elif name == "IER":
            self._inputs[name] = value & self._irq_mask()
        elif name in self._inputs:
            self._inputs[name] = value
        # writes to read-only or unmapped offsets are ignored, as by the HLS adapter

    def _irq_mask(self) -> int:
        return sum(1 << b for b in self.spec.irq_bits.values())

    def _arg(self, name: str) -> int:
        words = self.spec.arg_words[name]
        inv = self._names
        return sum(self._latched[inv[off]] << (32 * i) for i, off in enumerate(words))

    # ------------------------------------------------------------------ kernel
    def _start(self) -> None:
        self.ap_idle = False
        self._latched = dict(self._inputs)  # like the kernel: argument writes during a call change the next one
        if self.hang:
            return
        self.finish()

    def finish(self) -> None:
        """Run the started call to completion (also ends an injected hang)."""
        status, cycles = self.execute()
        self.runs += 1
        self.outputs.update(status=status, cycles=cycles, id=self.cfg.id_word)
        self.valid = {k: True for k in self.valid}
        self.ap_done = self.ap_ready = self.ap_idle = True
        if not self.auto_restart:
            self.ap_start = False
        irq = self.spec.irq_bits
        self.isr |= self._inputs["IER"] & ((1 << irq["DONE"]) | (1 << irq["READY"]))

    def check(self, args: dict[str, int]) -> int:
        """Status bits of a call, decided from the arguments alone: the one reference rule every
        implementation follows (cpt_hw.hw.calls.call_status, docs/registers.md)."""
        return call_status(self.cfg, self._call_type(**args))

    def ranges(self, args: dict[str, int]) -> list[tuple[int, int]]:
        """(address, bytes) of A, B and C for legal dims and bits (docs/ddr-layout.md)."""
        d, m, n, k = self.cfg.dot_width, args["m"], args["n"], args["k"]
        return [(args["a"], layout.operand_bytes(m, k, args["a_bits"], d)),
                (args["b"], layout.operand_bytes(n, k, args["b_bits"], d)),
                (args["c"], layout.result_bytes(m, n, self.cfg.cols))]

    def execute(self) -> tuple[int, int]:
        """One call on the current argument registers.  Returns (status, cycles)."""
        args = {a: self._arg(a) for a in self.spec.inputs}  # a Call's fields: every input argument
        call = self._call_type(**args)
        if getattr(call, "conv", 0) & 3:
            return self._execute_conv(call)
        self._conv_hint = None
        status = self.check(args)
        pf = (call.next_b, prefetch_bytes(self.cfg, call.next_n, call.next_k, call.next_b_bits)) \
            if call.prefetch and not status else None
        (pa, sa), (pb, sb), (pc, sc) = self.ranges(args) if not status else [(0, 0)] * 3
        a_mem, b_mem, c_mem = (self.memory.view(p, s) for p, s in ((pa, sa), (pb, sb), (pc, sc)))
        pf_mem = self.memory.view(*pf) if pf is not None else None
        if not status and (a_mem is None or b_mem is None or c_mem is None or (pf is not None and pf_mem is None)):
            # The RTL notices a bus error mid-run; the emulator checks the mapping up front instead.
            status = 1 << self.spec.status_bits["ERR_AXI_RESP"]
        hit = self.prefetch.step(call, status)
        if status:
            return status, setup_cycles(self.cfg)  # the argument checks, then done
        if hit:  # block 0 of B comes from the prefetched copy, not from memory as it is now
            self.hits += 1
            b_mem = np.concatenate([self._prefetched, b_mem[self._prefetched.size:]])
        if pf_mem is not None:  # copied into a buffer kept across calls (see layout.offheap_array)
            if self._prefetch_buf.size < pf_mem.size:
                self._prefetch_buf = layout.offheap_array((pf_mem.size,), np.uint8)
            self._prefetched = self._prefetch_buf[:pf_mem.size]
            np.copyto(self._prefetched, pf_mem)
        m, n, k, ab, bb, flags = (args[x] for x in ("m", "n", "k", "a_bits", "b_bits", "flags"))
        a_signed = bool(flags & self.spec.flag("A_SIGNED"))
        b_signed = bool(flags & self.spec.flag("B_SIGNED"))
        bt = self._unpack("b", b_mem.reshape(n, bb, -1), k, bb, b_signed)
        out = c_mem.view("<i4").reshape(m, layout.result_stride(n, self.cfg.cols))
        out[:, n:] = 0
        # Pass the accumulator width only when this call could wrap it (the config rules that out for every
        # legal call; golden then skips the wrap pass).
        acc_width = self.cfg.acc_width if k << (ab + bb) >= 1 << (self.cfg.acc_width - 1) else None
        # Rows of C are independent: golden.gemm on blocks of A rows keeps A's and C's temporaries in cache.
        a_planes = a_mem.reshape(m, ab, -1)
        step = max(_BLOCK_ELEMENTS // max(k, n), 64)
        with _blas_single_thread(m * max(k, n)):
            for r0 in range(0, m, step):
                r1 = min(m, r0 + step)
                a = self._unpack("a", a_planes[r0:r1], k, ab, a_signed)
                np.copyto(out[r0:r1, :n], golden.gemm(a, bt.T, ab, bb, a_signed, b_signed, acc_width),
                          casting="unsafe")
        hint = Prefetch(0, call.next_n, call.next_k, call.next_b_bits) if pf is not None else None
        return 0, _model_cycles(self.cfg, m, n, k, ab, bb, hit, hint)

    def _execute_conv(self, call: Any) -> tuple[int, int]:
        """One interface-4 convolution call (op 1..3).  Returns (status, cycles)."""
        status = conv_status(self.cfg, call, twin=self.twin_limits)
        g = ConvArgs.decode(call)
        views = [] if status else [self.memory.view(p, s) if s else np.zeros(0, np.uint8)
                                   for p, s in operand_ranges(self.cfg, call, g)]
        if any(v is None for v in views):
            status = 1 << self.spec.status_bits["ERR_AXI_RESP"]
        self.prefetch.reset()  # "the next call, whatever it is" consumes a GEMM call's B hint
        hit = not status and self._conv_hint == hint_key(call)   # the hint's key as registers.md states it
        self._conv_hint = hint_left(call, status)
        if status:
            return status, setup_cycles(self.cfg)
        emu_conv.execute(self.cfg, g, views[0], views[1], views[2], views[3] if g.flag("SUMS") else None)
        return 0, emu_conv.call_cycles(self.cfg, g, prefetched=hit)

    def _unpack(self, which: str, packed: np.ndarray, k: int, bits: int, signed: bool) -> np.ndarray:
        """(rows, bits, row_bytes) plane rows -> (rows, K) int64 values, in a reused scratch array."""
        if bits > 8:
            return layout.unpack_rows(packed, bits, signed, k)
        rows = packed.shape[0]
        buf = self._scratch.get(which)
        if buf is None or buf.size < rows * k:
            self._scratch.pop(which, None)
            buf = self._scratch[which] = layout.offheap_array((rows * k,), np.int64)
        return layout.unpack_rows_into(packed, bits, signed, k, out=buf[:rows * k].reshape(rows, k))
