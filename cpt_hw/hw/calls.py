"""The status word of one accelerator call: which arguments the hardware refuses, and why.

The reference for every implementation (HLS kernel ``hls/cpt_check.h``, the Verilog twin, the emulated
device), as docs/registers.md states it:

* each error bit of :data:`cpt_hw.hw.regmap.STATUS_BITS` is evaluated from the register values alone;
* ERR_WINDOW is evaluated only when M, N, K and the precisions are legal (ERR_DIM and ERR_BITS clear),
  because the operand sizes it needs are meaningless otherwise;
* a non-zero status means the call ends without reading or writing memory;
* with flags bit PREFETCH_B the hint is checked like an operand: next_n, next_k (ERR_DIM),
  next_b_bits (ERR_BITS), next_b's alignment (ERR_ALIGN) and the byte range the prefetch reads,
  :func:`prefetch_bytes` from next_b (ERR_WINDOW, only when the hint's sizes are legal too).

Register values are unsigned integers as the registers hold them: 32-bit scalars, ``axi_addr_width``-bit
addresses.  ERR_AXI_RESP is raised by the hardware during a run and is never predicted here.
"""

from __future__ import annotations

from dataclasses import make_dataclass

from cpt_driver.layout import operand_bytes, result_bytes

from .config import HardwareConfig
from .regmap import FLAG_BITS, INPUTS, STATUS_BITS

#: Flag bits that have a meaning; any other set bit is ERR_FLAGS.
FLAGS_MASK = sum(1 << b for b in FLAG_BITS.values())


class _CallMethods:
    """What every :class:`Call` knows beyond its fields."""

    def registers(self) -> tuple[int, ...]:
        """Input values in the argument order of the top function (cpt_hw.hw.regmap.INPUTS)."""
        return tuple(getattr(self, a.name) for a in INPUTS)

    @property
    def prefetch(self) -> bool:
        return bool(self.flags >> FLAG_BITS["PREFETCH_B"] & 1)  # type: ignore[attr-defined]

    def b_key(self) -> tuple[int, int, int, int]:
        """What a prefetch must match for this call to use it: (b, n, k, b_bits)."""
        return (self.b, self.n, self.k, self.b_bits)  # type: ignore[attr-defined]

    def next_key(self) -> tuple[int, int, int, int]:
        """The hint, in the form of :meth:`b_key`."""
        return (self.next_b, self.next_n, self.next_k, self.next_b_bits)  # type: ignore[attr-defined]


#: The register values of one ``cpt_gemm`` call (byte addresses, sizes in elements, bits): a frozen
#: dataclass with one int field per input of :data:`cpt_hw.hw.regmap.INPUTS`, in signature order
#: (a, b, c, m, n, k, a_bits, b_bits, flags, win_base, win_limit, then the prefetch hint next_b,
#: next_n, next_k, next_b_bits, which default to 0 and are read only with flags bit PREFETCH_B).
Call = make_dataclass(
    "Call", [(a.name, int) if a.default is None else (a.name, int, a.default) for a in INPUTS],
    bases=(_CallMethods,), frozen=True)
Call.__module__ = __name__  # for pickling and reprs (make_dataclass's own ``module=`` is Python 3.12+)


def prefetch_bytes(cfg: HardwareConfig, n: int, k: int, b_bits: int) -> int:
    """Bytes a prefetch reads: the first B block (min(N, b_block_cols) columns) of a call (n, k, b_bits)."""
    return operand_bytes(min(n, cfg.b_block_cols), k, b_bits, cfg.dot_width)


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
    if call.prefetch:  # the hint's sizes are checked like the call's own
        dim_err = dim_err or (min(call.next_n, call.next_k) == 0 or call.next_n > cfg.max_dim
                              or call.next_k > cfg.k_max)
        bits_err = bits_err or not 1 <= call.next_b_bits <= cfg.operand_bits
    if dim_err:
        status |= bit["ERR_DIM"]
    if bits_err:
        status |= bit["ERR_BITS"]
    if any(x % cfg.word_bytes for x in (call.a, call.b, call.c)) or (call.prefetch and call.next_b % cfg.word_bytes):
        status |= bit["ERR_ALIGN"]
    if call.flags & ~FLAGS_MASK:
        status |= bit["ERR_FLAGS"]
    if not dim_err and not bits_err:
        ranges = ((call.a, operand_bytes(call.m, call.k, call.a_bits, cfg.dot_width)),
                  (call.b, operand_bytes(call.n, call.k, call.b_bits, cfg.dot_width)),
                  (call.c, result_bytes(call.m, call.n, cfg.cols)))
        if call.prefetch:
            ranges += ((call.next_b, prefetch_bytes(cfg, call.next_n, call.next_k, call.next_b_bits)),)
        if not all(_inside(x, size, call.win_base, call.win_limit) for x, size in ranges):
            status |= bit["ERR_WINDOW"]
    return status


class PrefetchState:
    """Which calls of a sequence hit the B prefetch, as the kernel decides it (rtl/cpt_core.v).

    The hint of a call that ran with PREFETCH_B serves the very next call only, and only if that call's
    (b, n, k, b_bits) equal it; any call -- refused ones too -- consumes it, and a reset clears it.
    """

    def __init__(self) -> None:
        self._held: tuple[int, int, int, int] | None = None

    def reset(self) -> None:
        self._held = None

    def step(self, call: Call, status: int) -> bool:
        """Account for one call that returned ``status``; returns whether it used the prefetch."""
        hit = status == 0 and self._held == call.b_key()
        self._held = call.next_key() if status == 0 and call.prefetch else None
        return hit
