"""The ``emu`` backend: the driver's default, an emulated cpt_gemm in the same process (CI, development).

The device itself is :mod:`cpt_hw.hw.emu_device` (the HLS kernel's register semantics over a byte-addressed
memory with physical addresses, results from ``cpt_hw.hw.golden``, cycles from ``cpt_hw.hw.cycle_model``); this
module only adapts it to :class:`~cpt_driver.backend.Backend`.  cpt_hw is an optional dependency of the driver
(the board's ``pynq`` backend needs only numpy), so it is imported when an emu backend is made.  Buffers are
views of the emulated memory, so flush/invalidate are no-ops (the memory is coherent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import Backend, DmaBuffer
from ..errors import SpecError
from ..spec import DeviceSpec

if TYPE_CHECKING:
    from cpt_hw.hw.emu_device import EmuMemory


class EmuBuffer(DmaBuffer):
    def __init__(self, memory: "EmuMemory", phys: int, array: np.ndarray):
        self.memory = memory
        self.phys = phys
        self.array = array

    def flush(self, offset: int, nbytes: int) -> None:
        pass  # coherent: the device reads the host's bytes

    def invalidate(self, offset: int, nbytes: int) -> None:
        pass

    def free(self) -> None:
        self.memory.free(self.phys)


def hardware_config_for(spec: DeviceSpec) -> Any:
    """The HardwareConfig behind ``spec``: the one it was built from, else the preset of its name."""
    from cpt_hw.hw.config import HardwareConfig

    cfg = spec.hw_config if spec.hw_config is not None else HardwareConfig.from_preset(spec.name)
    if cfg.id_word != spec.id_word:
        raise SpecError(f"{spec.source}: ID 0x{spec.id_word:08x} is not that of config {cfg.name!r} "
                        f"(0x{cfg.id_word:08x}); pass the HardwareConfig it was generated from")
    return cfg


class EmuBackend(Backend):
    """spec: the register map; hw_config: the HardwareConfig (default: the one of spec, or its preset);
    isr_mode: the emulated ISR semantics, "tow" (default) or "cor" (see ``emu_device.ISR_MODES``);
    twin_limits: conv calls refused as the Verilog twin refuses them (``emu_device.EmuDevice``)."""

    name = "emu"

    def __init__(self, spec: DeviceSpec, hw_config: Any = None, isr_mode: str = "tow", twin_limits: bool = False):
        from cpt_hw.hw.emu_device import EmuDevice, EmuMemory

        super().__init__(spec)
        self.config = hw_config if hw_config is not None else hardware_config_for(spec)
        if self.config.id_word != spec.id_word:
            raise SpecError(f"hw_config {self.config.name!r} does not match the register map of {spec.source}")
        self.memory = EmuMemory(addr_bits=self.config.axi_addr_width)
        self.device = EmuDevice(self.config, spec, self.memory, isr_mode=isr_mode, twin_limits=twin_limits)

    def read_reg(self, offset: int) -> int:
        return self.device.read(offset)

    def write_reg(self, offset: int, value: int) -> None:
        self.device.write(offset, value)

    def allocate(self, nbytes: int) -> EmuBuffer:
        phys, array = self.memory.allocate(nbytes)
        return EmuBuffer(self.memory, phys, array)
