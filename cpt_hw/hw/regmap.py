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
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .config import HardwareConfig

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
#: Interface 4 (``cfg.conv_engine``): the flags and status bits the convolution engine adds
#: (docs/architecture.md, "Arguments (interface 4)").  SUMS: write the code sums to ``sums``; C16: write
#: int16 results (refused when the call's worst case does not fit int16).
CONV_FLAG_BITS = {"SUMS": 3, "C16": 4}
#: ``conv`` bits 1:0: the call's operation (0 an interface-3 GEMM call).
CONV_OPS = {"gemm": 0, "fwd": 1, "dgrad": 2, "wgrad": 3}
CONV_STATUS_BITS = {"ERR_CONV": 6}
CONV_STATUS_DOC = {
    "ERR_CONV": "bad convolution geometry: unknown op, kernel > max_kernel, stride or padding outside {1, 2} / "
                "{0, 1}, a band outside the image, rows or a chunk larger than the tensor buffer, C16 beyond "
                "int16, a reserved field set",
}


@dataclass(frozen=True)
class Argument:
    """One argument of the HLS top function ``cpt_gemm``: the one declaration every consumer reads.

    The Verilog register bank, the HLS top function and testbench call, ``cpt_hw.hw.calls.Call``, the
    driver's and the emulated device's register accesses and docs/registers.md's table are all derived
    from :data:`ARGUMENTS`; adding an argument means adding it there (and writing the logic that uses it).
    """

    name: str
    bits: int          # 32 or 64; an address is axi_addr_width bits (0 in ARGUMENTS, see arguments())
    direction: str     # "in" or "out"
    kind: str          # "pointer" (an operand or result in gmem) or "scalar"
    doc: str
    address: bool = False        # a byte address on the gmem bus: axi_addr_width bits wide
    flag: str | None = None      # read only when this flags bit (FLAG_BITS) is set
    #: what a :class:`cpt_hw.hw.calls.Call` holds when not given (None: every call must give it)
    default: int | None = field(default=None, compare=False)
    #: docs/registers.md's "meaning" cell; {reserved} and {ctrl} become offsets (default: doc + reserved)
    table: str = field(default="", compare=False, repr=False)


def _addr(name: str, kind: str, doc: str, table: str, **kw: Any) -> Argument:
    return Argument(name, 0, "in", kind, doc, address=True, table=table, **kw)


def _in(name: str, doc: str, table: str, **kw: Any) -> Argument:
    return Argument(name, 32, "in", "scalar", doc, table=table, **kw)


def _out(name: str, bits: int, doc: str, table: str) -> Argument:
    return Argument(name, bits, "out", "scalar", doc, table=table)


_HINT = {"flag": "PREFETCH_B", "default": 0}
#: The top function's arguments, in the order of its C signature (which fixes their offsets).
ARGUMENTS: tuple[Argument, ...] = (
    _addr("a", "pointer", "A operand: M x K, packed bit planes (docs/ddr-layout.md)",
          "address of packed A ({reserved} reserved)"),
    _addr("b", "pointer", "B operand: K x N, stored transposed as packed bit planes",
          "address of packed B ({reserved} reserved)"),
    _addr("c", "pointer", "C result: M rows x round_up(N, cols) int32, row-major",
          "address of C ({reserved} reserved)"),
    _in("m", "rows of A and C, 1..max_dim", "rows of A and C, 1..max_dim ({reserved} reserved)"),
    _in("n", "columns of B and C, 1..max_dim", "columns of B and C, 1..max_dim ({reserved} reserved)"),
    _in("k", "reduction length, 1..k_max", "reduction length, 1..k_max ({reserved} reserved)"),
    _in("a_bits", "precision of A in bits, 1..operand_bits", "1..operand_bits ({reserved} reserved)"),
    _in("b_bits", "precision of B in bits, 1..operand_bits", "1..operand_bits ({reserved} reserved)"),
    _in("flags", "bit 0: A signed, bit 1: B signed, bit 2: prefetch the next call's B (next_*); others "
        "reserved (0)", "bit0 A signed, bit1 B signed, bit2 PREFETCH_B (prefetch the next call's B, below), "
        "others reserved (must be 0); {reserved} reserved"),
    _addr("win_base", "scalar", "DMA window: lowest byte address the kernel may touch",
          "DMA window base (inclusive); {reserved} reserved"),
    _addr("win_limit", "scalar", "DMA window: first byte address past the window",
          "DMA window limit (exclusive); {reserved} reserved"),
    _out("status", 32, "error bits of the last call (0: success)",
         "error bits of the last call (0 = success); {ctrl} status_ctrl bit0 ap_vld (clear on read); "
         "{reserved} reserved"),
    _out("cycles", 64, "clock cycles from ap_start to ap_done of the last call",
         "cycles from ap_start to ap_done of the last call; {ctrl} cycles_ctrl bit0 ap_vld; {reserved} reserved"),
    _out("id", 32, "ID/version word: hash of the config (HardwareConfig.id_word)",
         "ID/version word = `HardwareConfig.id_word`; {ctrl} id_ctrl bit0 ap_vld; {reserved} reserved"),
    # The B prefetch hint (flags bit PREFETCH_B), appended after the outputs.
    _addr("next_b", "scalar", "prefetch hint: B operand address of the next call",
          "prefetch hint: address of the next call's packed B ({reserved} reserved)", **_HINT),
    _in("next_n", "prefetch hint: N of the next call, 1..max_dim",
        "prefetch hint: the next call's N, 1..max_dim ({reserved} reserved)", **_HINT),
    _in("next_k", "prefetch hint: K of the next call, 1..k_max",
        "prefetch hint: the next call's K, 1..k_max ({reserved} reserved)", **_HINT),
    _in("next_b_bits", "prefetch hint: b_bits of the next call, 1..operand_bits",
        "prefetch hint: the next call's b_bits, 1..operand_bits ({reserved} reserved)", **_HINT),
)
#: Interface 4: the convolution call's arguments, appended after ``next_b_bits`` when ``cfg.conv_engine`` (no
#: interface-3 offset moves).  Geometry is packed into few words: every argument is one MMIO write per call.
_CONV = {"default": 0}
CONV_ARGUMENTS: tuple[Argument, ...] = (
    _in("conv", "bits 1:0 op (0 GEMM, 1 forward, 2 input gradient, 3 weight gradient), 7:4 kh, 11:8 kw, "
        "13:12 stride, 15:14 padding; others reserved (0)",
        "bits 1:0 op: 0 GEMM (interface-3 call), 1 forward, 2 input gradient, 3 weight gradient; 7:4 kh, "
        "11:8 kw (1..max_kernel); 13:12 stride (1, 2); 15:14 padding (0, 1); others reserved ({reserved} "
        "reserved)", **_CONV),
    _in("batch", "images in the conv call, 1..max_dim",
        "conv: images in the call, 1..max_dim ({reserved} reserved)", **_CONV),
    _in("channels", "bits 15:0 C (forward input channels), 31:16 K (output channels)",
        "conv: bits 15:0 C (forward input channels), 31:16 K (output channels) ({reserved} reserved)", **_CONV),
    _in("size", "bits 15:0 H, 31:16 W of the forward input",
        "conv: bits 15:0 H, 31:16 W of the forward input ({reserved} reserved)", **_CONV),
    _in("band", "bits 15:0 first result row, 31:16 result rows per image (0: all)",
        "conv: bits 15:0 first result row, 31:16 result rows per image, 0: all ({reserved} reserved)", **_CONV),
    _addr("sums", "pointer", "conv: where the code sums go (flags bit SUMS)",
          "conv: address of the code sums, flags bit SUMS ({reserved} reserved)", flag="SUMS", default=0),
    _addr("next_a", "scalar", "conv prefetch hint: the next weight-gradient call's X chunk",
          "conv prefetch hint: address of the next weight-gradient call's X chunk ({reserved} reserved)",
          flag="PREFETCH_B", default=0),
)
#: The inputs, in signature order: the register values of one call (cpt_hw.hw.calls.Call's fields).
INPUTS: tuple[Argument, ...] = tuple(a for a in ARGUMENTS if a.direction == "in")
#: The outputs, each with an ``<name>_ctrl`` ap_vld word.
OUTPUTS: tuple[Argument, ...] = tuple(a for a in ARGUMENTS if a.direction == "out")


def declared_arguments(cfg: HardwareConfig) -> tuple[Argument, ...]:
    """ARGUMENTS, followed by CONV_ARGUMENTS when ``cfg`` has the convolution engine (interface 4)."""
    return ARGUMENTS + CONV_ARGUMENTS if cfg.conv_engine else ARGUMENTS


def arguments(cfg: HardwareConfig) -> list[Argument]:
    """The top function's arguments, in the order of its C signature, addresses sized for ``cfg``."""
    return [replace(a, bits=cfg.axi_addr_width) if a.address else a for a in declared_arguments(cfg)]


def flag_bits(cfg: HardwareConfig) -> dict[str, int]:
    """The ``flags`` bits of ``cfg``'s interface: FLAG_BITS, plus CONV_FLAG_BITS with the engine."""
    return {**FLAG_BITS, **CONV_FLAG_BITS} if cfg.conv_engine else dict(FLAG_BITS)


def status_bits(cfg: HardwareConfig) -> dict[str, int]:
    """The ``status`` bits of ``cfg``'s interface: STATUS_BITS, plus CONV_STATUS_BITS with the engine."""
    return {**STATUS_BITS, **CONV_STATUS_BITS} if cfg.conv_engine else dict(STATUS_BITS)


def status_doc(cfg: HardwareConfig) -> dict[str, str]:
    return {**STATUS_DOC, **CONV_STATUS_DOC} if cfg.conv_engine else dict(STATUS_DOC)


def conv_layout(cfg: HardwareConfig) -> dict[str, Any]:
    """What a host needs to drive the convolution engine (regmap.json's ``conv``; present only with it)."""
    return {"max_kernel": cfg.max_kernel, "tensor_buffer_bits": cfg.tensor_buffer_bits,
            # the driver's cpt_driver.conv.CONV_STRIDES / CONV_PADDINGS (not imported: the driver imports this
            # module; tests/test_conv_engine_config.py checks they agree)
            "strides": [1, 2], "paddings": [0, 1], "ops": dict(CONV_OPS)}


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
        d = {
            "kernel": KERNEL_NAME,
            "bundle": "control",
            "config": cfg.name,
            "id_word": cfg.id_word,
            "interface_version": cfg.interface_version,
            "addr_width": self.addr_width,
            "registers": [asdict(r) for r in self.registers],
            "arguments": [_json_argument(a) for a in arguments(cfg)],
            "ctrl_bits": CTRL_BITS,
            "irq_bits": IRQ_BITS,
            "flag_bits": flag_bits(cfg),
            "status_bits": status_bits(cfg),
            "status_doc": status_doc(cfg),
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
        if cfg.conv_engine:  # appended: without the engine regmap.json is interface 3's, byte for byte
            d["conv"] = conv_layout(cfg)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def _json_argument(a: Argument) -> dict[str, Any]:
    """An argument as regmap.json lists it (the docs-only fields left out)."""
    d = asdict(a)
    del d["default"], d["table"]
    return d


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


def _hex(offset: int) -> str:
    return f"0x{offset:02X}"


def _span(offsets: list[int]) -> str:
    """Reserved words as docs/registers.md writes them: 0x18 / 0x84, 0x88 / 0x98..0xA0."""
    if len(offsets) <= 2:
        return ", ".join(map(_hex, offsets))
    return f"{_hex(offsets[0])}..{_hex(offsets[-1])}"


def doc_table_rows(cfg: HardwareConfig) -> str:
    """The argument rows of docs/registers.md's register table (offset | name | access | meaning).

    Rendered from :data:`ARGUMENTS` and the register map; tests/test_regmap.py checks that the doc holds
    exactly these lines for the zc706 preset, so the table cannot drift from the map.
    """
    rm = register_map(cfg)
    lines = []
    for a in arguments(cfg):
        data = [r for r in rm.registers if r.arg == a.name and not r.name.endswith("_ctrl")]
        ctrl = [r.offset for r in rm.registers if r.arg == a.name and r.name.endswith("_ctrl")]
        start = data[0].offset
        used = len(data) + len(ctrl)
        reserved = [start + 4 * w for w in range(used, arg_words(a))]
        # "a_lo/a_hi" but "win_base_lo/hi": the suffix alone once the name is long enough to read
        names = [data[0].name] + [r.name if len(a.name) == 1 else r.name[len(a.name) + 1:] for r in data[1:]]
        meaning = (a.table or a.doc + " ({reserved} reserved)").format(
            reserved=_span(reserved), ctrl=", ".join(map(_hex, ctrl)))
        access = "rw" if a.direction == "in" else "r"
        lines.append(f"| {'/'.join(_hex(r.offset) for r in data)} | {'/'.join(names)} | {access} | {meaning} |")
    return "\n".join(lines) + "\n"
