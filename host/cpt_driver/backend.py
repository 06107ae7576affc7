"""The small interface every device backend implements: MMIO, DMA-able buffers, wait for done.

The driver core (:mod:`cpt_driver.accelerator`) talks to ``emu``, ``pynq`` and ``rtl`` only through
:class:`Backend` and :class:`DmaBuffer`; nothing else differs between them.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from .spec import DeviceSpec


class DmaBuffer(ABC):
    """Physically contiguous memory the device can reach.

    ``array`` is the host's uint8 view; ``phys`` the bus address of its first byte.  Memory that is not
    coherent with the device must be flushed after the host writes and invalidated before the host reads
    what the device wrote (PYNQ's ``flush``/``invalidate``); coherent backends make these no-ops.
    """

    array: np.ndarray
    phys: int

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    @abstractmethod
    def flush(self, offset: int, nbytes: int) -> None:
        """Make host writes to ``[offset, offset + nbytes)`` visible to the device."""

    @abstractmethod
    def invalidate(self, offset: int, nbytes: int) -> None:
        """Make device writes to ``[offset, offset + nbytes)`` visible to the host."""

    @abstractmethod
    def free(self) -> None:
        """Give the memory back.  The buffer must not be used afterwards."""


class Backend(ABC):
    """One accelerator instance: its AXI4-Lite control registers and the memory its m_axi port sees."""

    #: short name for messages ("emu", "pynq", "rtl")
    name: str = "?"

    def __init__(self, spec: DeviceSpec):
        self.spec = spec

    @abstractmethod
    def read_reg(self, offset: int) -> int:
        """One 32-bit read of the control register at byte ``offset`` (side effects: clear-on-read)."""

    @abstractmethod
    def write_reg(self, offset: int, value: int) -> None:
        """One 32-bit write of ``value`` (0 .. 2^32-1) to the control register at ``offset``."""

    @abstractmethod
    def allocate(self, nbytes: int) -> DmaBuffer:
        """A new DMA buffer of ``nbytes`` bytes (physically contiguous; aligned to at least 64 bytes)."""

    def wait_done(self, timeout_s: float) -> bool:
        """Block until the kernel reports ap_done (consuming the clear-on-read bit) or the deadline.

        Returns True when done was seen, False on timeout.  The default polls CTRL, backing off from a
        tight loop to sleeps of up to 1 ms so that long calls do not burn a host core.
        """
        ctrl = self.spec.registers["CTRL"]
        done = 1 << self.spec.ctrl_bits["AP_DONE"]
        deadline = time.monotonic() + timeout_s
        spins = 0
        while True:
            if self.read_reg(ctrl) & done:
                return True
            if time.monotonic() >= deadline:
                return False
            spins += 1
            if spins > 64:
                time.sleep(min(1e-3, 1e-6 * spins))

    def close(self) -> None:
        """Release what the backend holds (overlay handles, simulator bridges)."""
