"""The accelerator's AXI4-Lite register map, derived from the config alone.

The layout is the one Vitis HLS gives an ``ap_ctrl_hs`` kernel with an ``s_axilite`` bundle ``control``
when no argument is pinned: 0x00 CTRL, 0x04 GIE, 0x08 IER, 0x0C ISR, then the top function's arguments
in order from 0x10, each taking the words :func:`_allocate` documents (with the evidence).  The HLS
kernel still pins every argument with ``offset=`` at exactly these offsets, so a tool whose default
differs cannot move them silently (``make bitstream`` checks the exported ``x*_hw.h`` too).

The HLS kernel, the Verilog twin, the testbenches and every driver backend read this one object (or its
``regmap.json`` export); the bitstream flow checks the HLS export against it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from .config import INTERFACE_VERSION, HardwareConfig

KERNEL_NAME = "cpt_gemm"

#: CTRL (0x00) bits, as HLS defines them.
CTRL_BITS = {"AP_START": 0, "AP_DONE": 1, "AP_IDLE": 2, "AP_READY": 3, "AUTO_RESTART": 7, "INTERRUPT": 9}
#: IER / ISR bits.
IRQ_BITS = {"DONE": 0, "READY": 1}
#: ``flags`` argument bits.
#: PREFETCH_B: while this call runs, load the first B block of the call described by next_b, next_n,
#: next_k, next_b_bits into the second B buffer; the next call skips its own load of that block iff its
#: (b, n, k, b_bits) equal the hint (docs/rtl.md, "B prefetch").  Results never depend on it.
FLAG_BITS = {"A_SIGNED": 0, "B_SIGNED": 1, "PREFETCH_B": 2}
#: ``status`` output bits: a non-zero status means the call was refused and memory was not touched
#: (AXI_RESP: a bus error response arrived during the run).
STATUS_BITS = {
    "ERR_DIM": 0,      # M, N or K is zero, M or N > max_dim, or K > k_max (also next_n, next_k with PREFETCH_B)
    "ERR_BITS": 1,     # a_bits or b_bits is 0 or > operand_bits (also next_b_bits with PREFETCH_B)
    "ERR_ALIGN": 2,    # a, b or c (or next_b with PREFETCH_B) is not aligned to word_bytes
    "ERR_WINDOW": 3,   # an operand, result or prefetch range lies outside [win_base, win_limit)
    "ERR_FLAGS": 4,    # a reserved flags bit is set
    "ERR_AXI_RESP": 5,  # SLVERR/DECERR on a read or write
}
STATUS_DOC = {
    "ERR_DIM": "M, N or K is zero, M or N > max_dim, or K > k_max (with PREFETCH_B: next_n or next_k too)",
    "ERR_BITS": "a_bits or b_bits is 0 or above the operand precision (with PREFETCH_B: next_b_bits too)",
    "ERR_ALIGN": "a, b or c (with PREFETCH_B: next_b) is not aligned to word_bytes",
    "ERR_WINDOW": "an operand, result or prefetch byte range lies outside [win_base, win_limit)",
    "ERR_FLAGS": "a reserved flags bit is set",
    "ERR_AXI_RESP": "an AXI read or write returned SLVERR/DECERR",
}


@dataclass(frozen=True)
class Argument:
    """One argument of the HLS top function ``cpt_gemm``."""

    name: str
    bits: int          # 32 or 64
    direction: str     # "in" or "out"
    kind: str          # "pointer" (m_axi gmem, offset=slave) or "scalar"
    doc: str


def arguments(cfg: HardwareConfig) -> list[Argument]:
    """The top function's arguments, in the order of its C signature."""
    aw = cfg.axi_addr_width
    return [
        Argument("a", aw, "in", "pointer", "A operand: M x K, packed bit planes (docs/ddr-layout.md)"),
        Argument("b", aw, "in", "pointer", "B operand: K x N, stored transposed as packed bit planes"),
        Argument("c", aw, "in", "pointer", "C result: M rows x round_up(N, cols) int32, row-major"),
        Argument("m", 32, "in", "scalar", "rows of A and C, 1..max_dim"),
        Argument("n", 32, "in", "scalar", "columns of B and C, 1..max_dim"),
        Argument("k", 32, "in", "scalar", "reduction length, 1..k_max"),
        Argument("a_bits", 32, "in", "scalar", "precision of A in bits, 1..operand_bits"),
        Argument("b_bits", 32, "in", "scalar", "precision of B in bits, 1..operand_bits"),
        Argument("flags", 32, "in", "scalar", "bit 0: A signed, bit 1: B signed, bit 2: prefetch the next "
                 "call's B (next_*); others reserved (0)"),
        Argument("win_base", aw, "in", "scalar", "DMA window: lowest byte address the kernel may touch"),
        Argument("win_limit", aw, "in", "scalar", "DMA window: first byte address past the window"),
        Argument("status", 32, "out", "scalar", "error bits of the last call (0: success)"),
        Argument("cycles", 64, "out", "scalar", "clock cycles from ap_start to ap_done of the last call"),
        Argument("id", 32, "out", "scalar", "ID/version word: hash of the config (HardwareConfig.id_word)"),
        # The B prefetch hint (flags bit PREFETCH_B), appended after the outputs.
        Argument("next_b", aw, "in", "scalar", "prefetch hint: B operand address of the next call"),
        Argument("next_n", 32, "in", "scalar", "prefetch hint: N of the next call, 1..max_dim"),
        Argument("next_k", 32, "in", "scalar", "prefetch hint: K of the next call, 1..k_max"),
        Argument("next_b_bits", 32, "in", "scalar", "prefetch hint: b_bits of the next call, 1..operand_bits"),
    ]


@dataclass(frozen=True)
class Register:
    """One 32-bit word of the control register file."""

    name: str          # e.g. "a_lo", "m", "status", "status_ctrl", "CTRL"
    offset: int
    access: str        # "rw", "r", "r/cor" (clear on read), "r/cor|tow" (either, by tool version)
    doc: str
    arg: str | None = None       # the argument this word belongs to
    word: int = 0                # which 32-bit word of the argument (0 = bits 31:0)


@dataclass(frozen=True)
class RegisterMap:
    """Every register of the ``control`` bundle, with HLS's offsets."""

    config: HardwareConfig
    registers: tuple[Register, ...]

    @property
    def addr_width(self) -> int:
        """Address bits of the s_axi_control port, as HLS sizes it."""
        return max(4, (self.registers[-1].offset + 3).bit_length())

    def offset(self, name: str) -> int:
        for r in self.registers:
            if r.name == name:
                return r.offset
        raise KeyError(f"no register named {name!r}")

    def arg_offset(self, arg: str) -> int:
        """Offset of an argument's first data word."""
        for r in self.registers:
            if r.arg == arg and r.word == 0 and not r.name.endswith("_ctrl"):
                return r.offset
        raise KeyError(f"no argument named {arg!r}")

    def to_dict(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "kernel": KERNEL_NAME,
            "bundle": "control",
            "config": cfg.name,
            "id_word": cfg.id_word,
            "interface_version": INTERFACE_VERSION,
            "addr_width": self.addr_width,
            "registers": [asdict(r) for r in self.registers],
            "arguments": [asdict(a) for a in arguments(cfg)],
            "ctrl_bits": CTRL_BITS,
            "irq_bits": IRQ_BITS,
            "flag_bits": FLAG_BITS,
            "status_bits": STATUS_BITS,
            "status_doc": STATUS_DOC,
            "layout": {
                "word_bytes": cfg.word_bytes,
                "dot_width": cfg.dot_width,
                "rows": cfg.rows,
                "cols": cfg.cols,
                "operand_bits": cfg.operand_bits,
                "k_max": cfg.k_max,
                "max_dim": cfg.max_dim,
                "b_block_cols": cfg.b_block_cols,
                "result_bytes": 4,
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def arg_words(a: Argument) -> int:
    """32-bit words an argument occupies in the map, Vitis HLS's rule (see :func:`_allocate`)."""
    data = a.bits // 32
    return data + 1 if a.direction == "in" else 2 * (data + 1)


def _allocate(args: list[Argument]) -> list[Register]:
    """The registers of the ``control`` bundle, at the offsets Vitis HLS gives them unpinned.

    Rule: from 0x10, in signature order, an input argument takes (data words + 1) words (its data, then
    one reserved word); an output argument takes 2 x (data words + 1) words: its data words, its control
    word (bit 0 ``<name>_ap_vld``, clear on read), then data words + 1 reserved words.  Only data and
    control words are listed here; the reserved words read as 0 and ignore writes.

    Evidence (generated files of real kernels): Vitis HLS 2020.2 ``x*_hw.h`` (a 32-bit output ``accum``
    at 0x20, its control word 0x24, the next argument at 0x30: 4 words); Vitis HLS 2022.1
    ``*_control_s_axi.v`` (32-bit output ``size`` at 0x70, control 0x74, next argument 0x80); Vitis HLS
    2024.1 ``x*_hw.h`` (64-bit output at 0x94, control 0x9c, next argument 0xac: 6 words; a 128-bit output
    takes 10).  Inputs: lo, hi, reserved for 64 bits; data, reserved for 32 bits, in every version.
    Vivado HLS (<= 2019.2) packed an output into data words + 1 only, which is why every argument is
    pinned with ``offset=``: UG1399 moves a pin that conflicts with another argument to the end of the
    map with a warning, and pins at the unpinned offsets conflict with nothing.
    """
    regs = [
        Register("CTRL", 0x00, "rw", "bit0 ap_start, bit1 ap_done (COR), bit2 ap_idle, bit3 ap_ready (COR), "
                 "bit7 auto_restart, bit9 interrupt"),
        Register("GIE", 0x04, "rw", "bit0 global interrupt enable"),
        Register("IER", 0x08, "rw", "bit0 ap_done interrupt enable, bit1 ap_ready interrupt enable"),
        Register("ISR", 0x0C, "r/cor|tow", "bit0 ap_done, bit1 ap_ready interrupt status (clear on read in "
                 "Vitis HLS 2022.x, toggle on write in 2023.1 and later)"),
    ]
    off = 0x10
    for a in args:
        words = a.bits // 32
        for w in range(words):
            name = a.name if words == 1 else f"{a.name}_{'lo' if w == 0 else 'hi'}"
            access = "rw" if a.direction == "in" else "r"
            regs.append(Register(name, off + 4 * w, access, a.doc, arg=a.name, word=w))
        if a.direction == "out":
            regs.append(Register(f"{a.name}_ctrl", off + 4 * words, "r/cor", f"bit0 {a.name}_ap_vld",
                                 arg=a.name, word=words))
        off += 4 * arg_words(a)
    return regs


def register_map(cfg: HardwareConfig) -> RegisterMap:
    """The register map of the accelerator described by ``cfg``."""
    return RegisterMap(cfg, tuple(_allocate(arguments(cfg))))
