"""The status word of one accelerator call: which arguments the hardware refuses, and why.

The reference for every implementation (HLS kernel ``hls/cpt_check.h``, the Verilog twin, the emulated
device), as docs/registers.md states it:

* each error bit of :data:`cpt_hw.regmap.STATUS_BITS` is evaluated from the register values alone;
* ERR_WINDOW is evaluated only when M, N, K and the precisions are legal (ERR_DIM and ERR_BITS clear),
  because the operand sizes it needs are meaningless otherwise;
* a non-zero status means the call ends without reading or writing memory.

Register values are unsigned integers as the registers hold them: 32-bit scalars, ``axi_addr_width``-bit
addresses.  ERR_AXI_RESP is raised by the hardware during a run and is never predicted here.
"""

from __future__ import annotations

from dataclasses import dataclass

from cpt_driver.layout import operand_bytes, result_bytes

from .config import HardwareConfig
from .regmap import FLAG_BITS, STATUS_BITS

#: Flag bits that have a meaning; any other set bit is ERR_FLAGS.
FLAGS_MASK = sum(1 << b for b in FLAG_BITS.values())


@dataclass(frozen=True)
class Call:
    """The register values of one ``cpt_gemm`` call (byte addresses, sizes in elements, bits)."""

    a: int
    b: int
    c: int
    m: int
    n: int
    k: int
    a_bits: int
    b_bits: int
    flags: int
    win_base: int
    win_limit: int

    def registers(self) -> tuple[int, ...]:
        """Values in the argument order of the top function (cpt_hw.regmap.arguments)."""
        return (self.a, self.b, self.c, self.m, self.n, self.k, self.a_bits, self.b_bits, self.flags,
                self.win_base, self.win_limit)


def _inside(x: int, size: int, base: int, limit: int) -> bool:
    """[x, x + size) lies inside [base, limit)."""
    return base <= x and x + size <= limit


def call_status(cfg: HardwareConfig, call: Call) -> int:
    """The status word the accelerator described by ``cfg`` returns for ``call`` (0: it runs)."""
    bit = {name: 1 << pos for name, pos in STATUS_BITS.items()}
    status = 0
    dim_err = (min(call.m, call.n, call.k) == 0 or call.m > cfg.max_dim or call.n > cfg.max_dim
               or call.k > cfg.k_max)
    bits_err = not (1 <= call.a_bits <= cfg.operand_bits and 1 <= call.b_bits <= cfg.operand_bits)
    if dim_err:
        status |= bit["ERR_DIM"]
    if bits_err:
        status |= bit["ERR_BITS"]
    if any(x % cfg.word_bytes for x in (call.a, call.b, call.c)):
        status |= bit["ERR_ALIGN"]
    if call.flags & ~FLAGS_MASK:
        status |= bit["ERR_FLAGS"]
    if not dim_err and not bits_err:
        ranges = ((call.a, operand_bytes(call.m, call.k, call.a_bits, cfg.dot_width)),
                  (call.b, operand_bytes(call.n, call.k, call.b_bits, cfg.dot_width)),
                  (call.c, result_bytes(call.m, call.n, cfg.cols)))
        if not all(_inside(x, size, call.win_base, call.win_limit) for x, size in ranges):
            status |= bit["ERR_WINDOW"]
    return status
