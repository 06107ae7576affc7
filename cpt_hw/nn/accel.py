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
from .ops import ConvOps, Lowering
from .types import BackendError, BackendSpec


class AccelEngine:
    """One accelerator (device + config) shared by every layer whose backend spec names it."""

    def __init__(self, spec: BackendSpec) -> None:
        try:
            from cpt_driver import Accelerator  # type: ignore[attr-defined]
        except ImportError as e:  # the host driver is a separate package (host/)
            raise BackendError(f"backend {spec.name}: cpt_driver.Accelerator is not available ({e})") from None
        self.name = spec.name
        self.config = HardwareConfig.from_preset(spec.config, dict(spec.config_overrides))
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

    # A convolution's three GEMMs as the driver's convolution calls (cpt_driver.conv), which form the lowered
    # operands themselves: today the same GEMMs on the same packed bytes, later the device's own conv calls.
    # Each counts as the GEMM it stands for (gemm_calls, binary_ops).
    def runs_conv(self, ops: ConvOps) -> bool:
        """Whether the driver's convolution calls take this geometry: one group, no dilation, the same
        stride and padding on both axes within the calls' sets, kernel sides up to their limit."""
        from cpt_driver.conv import CONV_MAX_KERNEL, CONV_PADDINGS, CONV_STRIDES

        (s0, s1), (p0, p1) = ops.stride, ops.padding
        return (ops.groups == 1 and ops.dilation == (1, 1) and s0 == s1 and s0 in CONV_STRIDES and p0 == p1
                and p0 in CONV_PADDINGS and max(ops.kernel) <= CONV_MAX_KERNEL)

    def pack_tensor(self, x: np.ndarray, bits: int) -> object | None:
        """Unsigned codes (N, C, H, W) as the driver's row-plane tensor (cpt_driver.RowPlaneTensor), packed once
        for the forward and weight-gradient calls that take it as x; None on a device without the convolution
        engine, whose calls are lowered to GEMMs from the codes (a packed x would only be unpacked again)."""
        return self.accelerator.pack_tensor(x, bits) if self.accelerator.engine is not None else None

    def _count(self, m: int, n: int, k: int, a_bits: int, b_bits: int) -> None:
        self.calls += 1
        self.binary_ops += golden.gemm_cost(m, n, k, a_bits, b_bits)

    def conv2d(self, x: np.ndarray, w: np.ndarray, x_bits: int, w_bits: int, ops: ConvOps,
               out: np.ndarray, x_sums: np.ndarray) -> np.ndarray:
        """The forward GEMM, Q_x's im2col . Q_w^T, into ``out`` (B, N, Ho, Wo), and its row sums (each output's
        window sum of Q_x) into ``x_sums`` (B, Ho, Wo): the device's where it computes them."""
        self._count(out.shape[0] * out.shape[2] * out.shape[3], w.shape[0], w[0].size, x_bits, w_bits)
        return self.accelerator.conv2d(x, w, x_bits=x_bits, w_bits=w_bits, stride=ops.stride[0],
                                       padding=ops.padding[0], out=out, x_sums=x_sums)

    def conv2d_input(self, x_shape: tuple[int, ...], w: np.ndarray, e: np.ndarray, w_bits: int, e_bits: int,
                     ops: ConvOps, out: np.ndarray) -> np.ndarray:
        """The input-gradient GEMM (a transposed convolution of the error codes) into ``out`` (B, C, H, W)."""
        self._count(out.shape[0] * out.shape[2] * out.shape[3], w.shape[1], w.shape[0] * w[0, 0].size, e_bits,
                    w_bits)
        return self.accelerator.conv2d_input(x_shape, w, e, w_bits=w_bits, e_bits=e_bits, stride=ops.stride[0],
                                             padding=ops.padding[0], out=out)

    def conv2d_weight(self, x: np.ndarray, w_shape: tuple[int, ...], e: np.ndarray, x_bits: int, e_bits: int,
                      ops: ConvOps, out: np.ndarray, x_sums: np.ndarray, e_sums: np.ndarray) -> np.ndarray:
        """The weight-gradient GEMM, Q_x's transposed im2col . Q_e, into ``out`` (N, C, kh, kw), and the code
        sums of its corrections: each tap's sum of Q_x per channel (C, kh, kw) and of Q_e per output channel
        over the outputs where it reads a real input (N, kh, kw), into ``x_sums`` and ``e_sums``."""
        self._count(out[0].size, out.shape[0], e.shape[0] * e[0, 0].size, x_bits, e_bits)
        return self.accelerator.conv2d_weight(x, w_shape, e, x_bits=x_bits, e_bits=e_bits, stride=ops.stride[0],
                                              padding=ops.padding[0], out=out, x_sums=x_sums, e_sums=e_sums)

    @property
    def cycles(self) -> int:
        """Accelerator cycles of every call so far, as the device reported them (its cycles register)."""
        return int(self.accelerator.total_cycles)

    def stats(self) -> dict:
        """GEMM calls, binary operations, device calls (after tiling), cycles and seconds at the config's clock."""
        return {"backend": self.name, "config": self.config.name, "gemm_calls": self.calls,
                "binary_ops": self.binary_ops, "device_calls": int(self.accelerator.calls), "cycles": self.cycles,
                "seconds": self.cycles / (self.config.clock_mhz * 1e6)}
