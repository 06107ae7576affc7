"""The ``accel`` engine: the integer GEMMs of the quantized layers through ``cpt_driver.Accelerator``.

The driver (host/cpt_driver) tiles any GEMM to the hardware's limits and runs it on the emulated device
(``emu``, golden model + cycle model), the generated RTL under cocotb (``rtl``) or a ZC706 overlay
(``pynq``).  Operands are unsigned codes: fw-bit activations/weights, bw-bit errors.
"""

from __future__ import annotations

import numpy as np

from ..errors import CptHwError
from ..hw import golden
from ..hw.config import HardwareConfig
from .integer import check_engine_bits
from .ops import Lowering
from .types import BackendError, BackendSpec


class AccelEngine:
    """One accelerator (device + config) shared by every layer whose backend spec names it."""

    def __init__(self, spec: BackendSpec) -> None:
        try:
            from cpt_driver import Accelerator  # type: ignore[attr-defined]
        except ImportError as e:  # the host driver is a separate package (host/)
            raise BackendError(f"backend {spec.name}: cpt_driver.Accelerator is not available ({e})") from None
        self.name = spec.name
        self.config = HardwareConfig.from_preset(spec.config)
        try:
            self.accelerator = Accelerator(backend=spec.device, config=self.config, **dict(spec.driver_options))
        except CptHwError:
            raise
        except Exception as e:  # a device that cannot be opened is a user-facing error, in one line
            raise BackendError(f"backend {spec.name}: cannot open the accelerator: {e}") from None
        self.calls = 0
        self.binary_ops = 0

    def check_bits(self, fw: int, bw: int) -> None:
        check_engine_bits(self.config.max_bits, self.config.max_grad_bits, fw, bw,
                          f"the {self.config.name} accelerator")

    #: The integer layers may pass a convolution's A operand as an :class:`ops.Lowering`: the driver packs
    #: it tile by tile from the unlowered codes (cpt_driver.sources), the same bytes as the lowered copy.
    packs_lowerings = True

    def gemm(self, a: np.ndarray | Lowering, b: np.ndarray, a_bits: int, b_bits: int,
             out: np.ndarray | None = None) -> np.ndarray:
        self.calls += 1
        self.binary_ops += golden.gemm_cost(a.shape[0], b.shape[1], a.shape[1], a_bits, b_bits)
        if isinstance(a, Lowering):
            from cpt_driver.sources import Im2colRows, TapRows

            source = Im2colRows if a.kind == "im2col" else TapRows
            a = source(a.x.numpy(), a.kernel, a.stride, a.dilation, a_bits)
        return self.accelerator.gemm(a, b, a_bits, b_bits, a_signed=False, b_signed=False, out=out)

    @property
    def cycles(self) -> int:
        """Accelerator cycles of every call so far, as the device reported them (its cycles register)."""
        return int(self.accelerator.total_cycles)

    def stats(self) -> dict:
        """GEMM calls, binary operations, device calls (after tiling), cycles and seconds at the config's clock."""
        return {"backend": self.name, "config": self.config.name, "gemm_calls": self.calls,
                "binary_ops": self.binary_ops, "device_calls": int(self.accelerator.calls), "cycles": self.cycles,
                "seconds": self.cycles / (self.config.clock_mhz * 1e6)}
