"""The ``pynq`` backend: the cpt_gemm HLS IP of a ZC706 overlay, through PYNQ.

Registers are accessed by offset (from regmap.json) through the IP's ``mmio``; DMA buffers come from
``pynq.allocate`` (physically contiguous CMA memory; flushed and invalidated around each call unless
coherent); completion is polled, or awaited on the IP's interrupt pin with ``use_interrupt=True``.  The
same code runs on the board and on a workstation with ``PYNQ_REMOTE_DEVICES=<board ip>`` (pynq >= 3.1
forwards Overlay, allocate and MMIO to the board's remote server): see docs/driver.md.

Imports pynq and numpy only (no cpt_hw, no torch).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from ..backend import Backend, DmaBuffer
from ..errors import SpecError
from ..spec import DeviceSpec


class PynqDmaBuffer(DmaBuffer):
    """A ``pynq.allocate`` buffer.  Every flush and invalidate syncs the whole buffer object, whatever
    byte range the driver names:

    * on the board (pynq 3.1 and 4.0 ``xrt_device.py``) ``PynqBuffer.flush``/``invalidate`` sync the whole
      XRT buffer object even when called on a slice, so a sub-range sync would only pretend to be cheaper;
    * under PYNQ.remote (pynq 4.0 ``pl_server/remote_device.py``) ``RemoteBuffer.flush`` sends a slice's
      bytes with no offset (the board writes them at the start of the buffer) and ``invalidate`` reads the
      whole buffer back and reshapes it into the slice (an error, or the wrong bytes): only whole-buffer
      syncs are correct there.

    Whole-buffer syncs are correct because the driver flushes every range right after packing it (no
    host write is ever left unflushed when an invalidate discards the host copy) and the device writes
    only between ap_start and ap_done, when the host neither flushes nor reads.  The cost is the size of
    the arena per sync (over the network: per flush and per invalidate).
    """

    def __init__(self, buf: Any):
        self.buf = buf
        self.array = buf
        self.phys = int(buf.physical_address)

    def flush(self, offset: int, nbytes: int) -> None:
        self.buf.flush()

    def invalidate(self, offset: int, nbytes: int) -> None:
        self.buf.invalidate()

    def free(self) -> None:
        self.buf.freebuffer()


class PynqBackend(Backend):
    """bitfile: the overlay's .bit (its .hwh next to it); or overlay: an already loaded pynq.Overlay.

    ip_name: the IP's name in the block design (default: the one IP whose type is xilinx.com:hls:cpt_gemm).
    download: download the bitstream (False: attach to an overlay already in the fabric).
    use_interrupt: wait on the IP's interrupt pin instead of polling CTRL.
    """

    name = "pynq"

    def __init__(self, spec: DeviceSpec, bitfile: str | None = None, *, overlay: Any = None, ip_name: str | None = None,
                 download: bool = True, use_interrupt: bool = False):
        super().__init__(spec)
        import pynq  # the board's package; absent on machines that only use emu/rtl

        self._pynq = pynq
        if overlay is None:
            if bitfile is None:
                raise SpecError("the pynq backend needs bitfile= (path to the overlay's .bit) or overlay=")
            overlay = pynq.Overlay(str(bitfile), download=download)
        self.overlay = overlay
        self.ip_name = ip_name or self._find_ip()
        self.ip = self._resolve(self.ip_name)
        self.mmio = self.ip.mmio
        self.use_interrupt = bool(use_interrupt)
        if self.use_interrupt:
            if getattr(self.ip, "interrupt", None) is None:
                raise SpecError(f"IP {self.ip_name!r} has no interrupt pin connected in this overlay; "
                                "use polling (use_interrupt=False)")
            self.write_reg(spec.registers["GIE"], 1)
            self.write_reg(spec.registers["IER"], 1 << spec.irq_bits["DONE"])
            # One private event loop for every wait: PYNQ binds the interrupt's asyncio.Event to the loop it
            # is first awaited in.
            self._loop = asyncio.new_event_loop()

    def close(self) -> None:
        if self.use_interrupt:
            self._loop.close()

    def _find_ip(self) -> str:
        hits = [name for name, d in self.overlay.ip_dict.items()
                if str(d.get("type", "")).split(":")[2:3] == [self.spec.kernel]]
        if len(hits) != 1:
            found = ", ".join(f"{n} ({d.get('type')})" for n, d in self.overlay.ip_dict.items()) or "none"
            raise SpecError(f"overlay has {len(hits)} '{self.spec.kernel}' IPs (IPs: {found}); pass ip_name=")
        return hits[0]

    def _resolve(self, name: str) -> Any:
        obj = self.overlay
        for part in name.split("/"):  # hierarchical names: overlay.hier.cpt_gemm_0
            obj = getattr(obj, part)
        return obj

    def read_reg(self, offset: int) -> int:
        return int(self.mmio.read(offset))

    def write_reg(self, offset: int, value: int) -> None:
        self.mmio.write(offset, int(value))

    def allocate(self, nbytes: int) -> PynqDmaBuffer:
        return PynqDmaBuffer(self._pynq.allocate(shape=(int(nbytes),), dtype=np.uint8))

    def wait_done(self, timeout_s: float) -> bool:
        if not self.use_interrupt:
            return super().wait_done(timeout_s)
        deadline = time.monotonic() + timeout_s
        try:
            asyncio.get_running_loop()
            in_event_loop = True
        except RuntimeError:
            in_event_loop = False
        if in_event_loop:  # called from inside a running event loop (e.g. Jupyter): cannot block on it; poll
            done = super().wait_done(timeout_s)
            self._acknowledge()
            return done
        try:
            self._loop.run_until_complete(asyncio.wait_for(self.ip.interrupt.wait(), timeout_s))
        except asyncio.TimeoutError:
            return False
        # Acknowledge, then consume ap_done (clear on read) by polling: if the interrupt was a stale one, the
        # poll simply goes on until this call's ap_done or the deadline.
        self._acknowledge()
        return super().wait_done(max(0.0, deadline - time.monotonic()))

    def _acknowledge(self) -> None:
        """Clear ISR's ap_done bit if set, under either ISR semantics (docs/registers.md, "ISR"): read ISR and
        write back exactly the bits read.  Toggle-on-write (Vitis HLS 2023.1+, the twin): the write clears
        them (a blind write would set a clear bit).  Clear-on-read (2022.x): the read already cleared them."""
        isr_off = self.spec.registers["ISR"]
        pending = self.read_reg(isr_off) & (1 << self.spec.irq_bits["DONE"])
        if pending:
            self.write_reg(isr_off, pending)
