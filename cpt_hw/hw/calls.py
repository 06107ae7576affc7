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

:data:`REFUSED_CALLS` is the one table of calls every implementation must refuse, next to the rule
(:func:`call_status`) that refuses them: each case a name, the register values it changes in a legal
call, and the status bits it must return.  The cocotb system test (sim/cpt_gemm), the HLS C simulation
(cpt_hw.flows.csim) and the driver tests (tests/test_driver_emu.py, tests/test_driver_errors.py) run
every case through :func:`refused_calls`; a case added here reaches all three.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, make_dataclass, replace
from typing import Callable

from cpt_driver.layout import operand_bytes, result_bytes

from ..errors import CptHwError
from .config import HardwareConfig
from .regmap import CONV_ARGUMENTS, FLAG_BITS, INPUTS, STATUS_BITS

#: Flag bits that have a meaning; any other set bit is ERR_FLAGS.
FLAGS_MASK = sum(1 << b for b in FLAG_BITS.values())


class _CallMethods:
    """What every :class:`Call` knows beyond its fields."""

    def registers(self) -> tuple[int, ...]:
        """Input values in the argument order of the top function (cpt_hw.hw.regmap.INPUTS; ConvCall: then
        the inputs of CONV_ARGUMENTS)."""
        return tuple(getattr(self, f.name) for f in fields(self))  # type: ignore[arg-type]

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

#: The register values of one call of an accelerator with the convolution engine (interface 4): Call's
#: fields, then conv, batch, channels, size, band, sums, next_a (default 0: conv = 0 is a GEMM call).
ConvCall = make_dataclass(
    "ConvCall", [(a.name, int) if a.default is None else (a.name, int, a.default) for a in INPUTS]
    + [(a.name, int, a.default) for a in CONV_ARGUMENTS if a.direction == "in"],
    bases=(_CallMethods,), frozen=True)
ConvCall.__module__ = __name__


def call_type(cfg: HardwareConfig) -> type:
    """The register values of one call of ``cfg``'s interface: :data:`ConvCall` with the convolution engine,
    else :data:`Call`."""
    return ConvCall if cfg.conv_engine else Call


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


# ---------------------------------------------------------------------------------------------- refused calls
@dataclass(frozen=True)
class RefusedCall:
    """A call the accelerator must refuse: ``change(cfg, base)`` gives the register values that differ from
    a legal call ``base`` of the config ``cfg``; ``bits`` the status bits it must return, by name."""

    name: str
    change: Callable[[HardwareConfig, Call], dict[str, int]]
    bits: tuple[str, ...]

    @property
    def status(self) -> int:
        return sum(1 << STATUS_BITS[b] for b in self.bits)

    def call(self, cfg: HardwareConfig, base: Call) -> Call:
        return replace(base, **self.change(cfg, base))


def _up(x: int, cfg: HardwareConfig) -> int:
    """x rounded up to a word boundary."""
    return -(-x // cfg.word_bytes) * cfg.word_bytes


def _a_bytes(cfg: HardwareConfig, c: Call) -> int:
    return operand_bytes(c.m, c.k, c.a_bits, cfg.dot_width)


def _c_bytes(cfg: HardwareConfig, c: Call) -> int:
    return result_bytes(c.m, c.n, cfg.cols)


def _hint(c: Call, **spoil: int) -> dict[str, int]:
    """PREFETCH_B with a legal hint -- the call's own B, which lies in its window -- then ``spoil``."""
    return {"flags": c.flags | 1 << FLAG_BITS["PREFETCH_B"], "next_b": c.b, "next_n": c.n, "next_k": c.k,
            "next_b_bits": c.b_bits, **spoil}


#: The lowest flags bit without a meaning, and the one above it.
_RESERVED = ~FLAGS_MASK & (FLAGS_MASK + 1)
_RESERVED2 = _RESERVED << 1

_DIM, _BITS, _ALIGN, _WINDOW, _FLAGS = "ERR_DIM", "ERR_BITS", "ERR_ALIGN", "ERR_WINDOW", "ERR_FLAGS"

#: Every refusal rule of docs/registers.md, alone and together (see :class:`RefusedCall`).  A case that
#: tests one rule keeps every other rule satisfied for any base :func:`refused_calls` accepts: the
#: misaligned ones widen the window by a word, so that the shifted area still lies inside it.
REFUSED_CALLS: tuple[RefusedCall, ...] = (
    RefusedCall("M = 0", lambda cfg, c: {"m": 0}, (_DIM,)),
    RefusedCall("N = 0", lambda cfg, c: {"n": 0}, (_DIM,)),
    RefusedCall("K = 0", lambda cfg, c: {"k": 0}, (_DIM,)),
    RefusedCall("M > max_dim", lambda cfg, c: {"m": cfg.max_dim + 1}, (_DIM,)),
    RefusedCall("N > max_dim", lambda cfg, c: {"n": cfg.max_dim + 1}, (_DIM,)),
    RefusedCall("K > k_max", lambda cfg, c: {"k": cfg.k_max + 1}, (_DIM,)),
    RefusedCall("a_bits = 0", lambda cfg, c: {"a_bits": 0}, (_BITS,)),
    RefusedCall("b_bits = 0", lambda cfg, c: {"b_bits": 0}, (_BITS,)),
    RefusedCall("a_bits > max", lambda cfg, c: {"a_bits": cfg.operand_bits + 1}, (_BITS,)),
    RefusedCall("b_bits = 2^31", lambda cfg, c: {"b_bits": 1 << 31}, (_BITS,)),
    RefusedCall("A misaligned",
                lambda cfg, c: {"a": c.a + cfg.word_bytes // 2, "win_limit": c.win_limit + cfg.word_bytes}, (_ALIGN,)),
    RefusedCall("B misaligned by a byte",
                lambda cfg, c: {"b": c.b + 1, "win_limit": c.win_limit + cfg.word_bytes}, (_ALIGN,)),
    RefusedCall("C misaligned",
                lambda cfg, c: {"c": c.c + cfg.word_bytes // 2 + 1, "win_limit": c.win_limit + cfg.word_bytes},
                (_ALIGN,)),
    RefusedCall("C misaligned and past the window",
                lambda cfg, c: {"c": c.c + 1, "win_limit": c.c + _c_bytes(cfg, c)}, (_ALIGN, _WINDOW)),
    RefusedCall("reserved flag", lambda cfg, c: {"flags": c.flags | _RESERVED}, (_FLAGS,)),
    RefusedCall("flags bit 31", lambda cfg, c: {"flags": c.flags | 1 << 31}, (_FLAGS,)),
    RefusedCall("A one byte below the window", lambda cfg, c: {"win_base": c.a + 1}, (_WINDOW,)),
    RefusedCall("B one byte below the window", lambda cfg, c: {"win_base": c.b + 1}, (_WINDOW,)),
    RefusedCall("C one byte below the window", lambda cfg, c: {"win_base": c.c + 1}, (_WINDOW,)),
    RefusedCall("A past the window",
                lambda cfg, c: {"a": _up(c.win_limit - _a_bytes(cfg, c) + 1, cfg)}, (_WINDOW,)),
    RefusedCall("C one byte past the window", lambda cfg, c: {"win_limit": c.c + _c_bytes(cfg, c) - 1}, (_WINDOW,)),
    RefusedCall("C at the window's limit", lambda cfg, c: {"win_limit": c.c}, (_WINDOW,)),
    RefusedCall("empty window", lambda cfg, c: {"win_base": c.win_limit}, (_WINDOW,)),
    RefusedCall("window wraps", lambda cfg, c: {"win_base": c.win_limit, "win_limit": c.win_base}, (_WINDOW,)),
    RefusedCall("window above the operands",
                lambda cfg, c: {"win_base": c.win_limit + 64, "win_limit": c.win_limit + 128}, (_WINDOW,)),
    # several rules at once; the window is not evaluated when the sizes are meaningless (DIM, BITS)
    RefusedCall("M = 0 and K > k_max and reserved flag",
                lambda cfg, c: {"m": 0, "k": cfg.k_max + 1, "flags": c.flags | _RESERVED2}, (_DIM, _FLAGS)),
    RefusedCall("dim, bits, align; window not evaluated",
                lambda cfg, c: {"m": 0, "a_bits": 0, "c": c.c + 2, "win_base": c.win_limit}, (_DIM, _BITS, _ALIGN)),
    RefusedCall("bits, flags; window not evaluated",
                lambda cfg, c: {"b_bits": 0, "flags": c.flags | _RESERVED, "win_limit": 0}, (_BITS, _FLAGS)),
    RefusedCall("flags and window",
                lambda cfg, c: {"flags": c.flags | _RESERVED2, "win_limit": c.c}, (_WINDOW, _FLAGS)),
    # the B prefetch hint (flags bit PREFETCH_B) is checked like an operand: a legal hint, one field spoilt
    RefusedCall("hint N = 0", lambda cfg, c: _hint(c, next_n=0), (_DIM,)),
    RefusedCall("hint N > max_dim", lambda cfg, c: _hint(c, next_n=cfg.max_dim + 1), (_DIM,)),
    RefusedCall("hint K = 0", lambda cfg, c: _hint(c, next_k=0), (_DIM,)),
    RefusedCall("hint K > k_max", lambda cfg, c: _hint(c, next_k=cfg.k_max + 1), (_DIM,)),
    RefusedCall("hint b_bits = 0", lambda cfg, c: _hint(c, next_b_bits=0), (_BITS,)),
    RefusedCall("hint b_bits > max", lambda cfg, c: _hint(c, next_b_bits=cfg.operand_bits + 1), (_BITS,)),
    RefusedCall("hint misaligned",
                lambda cfg, c: {**_hint(c, next_b=c.b + cfg.word_bytes // 2),
                                "win_limit": c.win_limit + cfg.word_bytes}, (_ALIGN,)),
    RefusedCall("hint below the window",
                lambda cfg, c: _hint(c, next_b=(c.win_base - 1) // cfg.word_bytes * cfg.word_bytes), (_WINDOW,)),
    RefusedCall("hint past the window",
                lambda cfg, c: _hint(c, next_b=_up(c.win_limit - prefetch_bytes(cfg, c.n, c.k, c.b_bits) + 1, cfg)),
                (_WINDOW,)),
    RefusedCall("hint wraps the address space",
                lambda cfg, c: _hint(c, next_b=(1 << cfg.axi_addr_width) - cfg.word_bytes), (_WINDOW,)),
    RefusedCall("hint sizes bad; window not evaluated", lambda cfg, c: _hint(c, next_k=0, next_b=0), (_DIM,)),
)


def refused_call(name: str) -> RefusedCall:
    """The case of :data:`REFUSED_CALLS` called ``name``."""
    for case in REFUSED_CALLS:
        if case.name == name:
            return case
    raise CptHwError(f"no refused call {name!r} in cpt_hw.hw.calls.REFUSED_CALLS")


def refused_calls(cfg: HardwareConfig, base: Call,
                  cases: tuple[RefusedCall, ...] = REFUSED_CALLS) -> list[tuple[RefusedCall, Call]]:
    """Each case applied to ``base``: (case, the call to make).

    ``base`` must be a legal call (status 0) whose window starts above address 0 and contains A, B and
    C; its own prefetch hint, if any, is replaced by the hint cases.  Every call is checked against
    :func:`call_status` here, so a consumer runs only cases on which the table and the rule agree:
    a base outside this contract, or a case that contradicts the rule, raises :class:`CptHwError`.
    """
    if call_status(cfg, base) or base.win_base < 1:
        raise CptHwError(f"base of the refused calls must be legal with win_base > 0: {base} "
                         f"(status 0x{call_status(cfg, base):x})")
    out = []
    for case in cases:
        call = case.call(cfg, base)
        got = call_status(cfg, call)
        if got != case.status:
            raise CptHwError(f"refused call {case.name!r} on config {cfg.name!r}: call_status gives 0x{got:x}, "
                             f"the table 0x{case.status:x} ({'|'.join(case.bits)}): {call}")
        out.append((case, call))
    return out


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
