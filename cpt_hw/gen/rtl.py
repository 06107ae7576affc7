"""Verilog twin: the top level ``cpt_gemm`` (HLS port names), its widths header and its register-map header.

Only what Verilog parameters cannot express is rendered here: the top level binds the config's
numbers to the parameters of the hand-written core (``rtl/cpt_core.v``); ``cpt_gemm_widths.vh`` holds
the config's numbers and every width derived from them as `define macros (derived once, in
:func:`widths`: Verilog-2005 ANSI ports can only be sized by header parameters or macros, and the
modules of ``rtl/`` include it before their headers); ``cpt_gemm_regmap.vh`` turns
:func:`cpt_hw.hw.regmap.register_map` into localparams that ``rtl/cpt_control.v`` includes, so no
register offset or bit position is ever written by hand in ``rtl/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2

from ..errors import ConfigError
from ..hw.config import RESULT_BITS, HardwareConfig
from ..hw.conv_calls import SUM_BYTES, TWIN_WGRAD_BANK_WORDS, twin_row_bits, twin_wgrad_buf_words
from ..hw.regmap import CONV_FLAG_BITS, CONV_STATUS_BITS, CTRL_BITS, FLAG_BITS, IRQ_BITS, STATUS_BITS, arguments, \
    register_map

#: Kernel side the twin's im2col former takes at most (KMAX of rtl/cpt_im2col_former.v).
FORMER_MAX_KERNEL = 3


def twin_line_buffer_bound(cfg: HardwareConfig) -> int:
    """Bits of the largest forward line buffer (conv_model.line_buffer_bits) of a call whose row-planes fit the
    twin's former (W Cp <= twin_row_bits): at most 2 rows + 1 output rows of a tile pair, each reaching 2 input
    rows at stride 2, plus a kernel's rows, of operand_bits planes each."""
    return (4 * cfg.rows + 2 + cfg.max_kernel) * cfg.operand_bits * twin_row_bits(cfg)


def check(cfg: HardwareConfig) -> None:
    """Constraints of the Verilog twin beyond those of the config (also checked in rtl/ initial blocks)."""
    if cfg.conv_engine:
        if cfg.max_kernel > FORMER_MAX_KERNEL:
            raise ConfigError(f"max_kernel = {cfg.max_kernel}: the Verilog twin's im2col former takes kernels of "
                              f"at most {FORMER_MAX_KERNEL} x {FORMER_MAX_KERNEL}")
        if twin_line_buffer_bound(cfg) > cfg.tensor_buffer_bits:
            # the twin checks the former's row width instead of the line buffer (conv_calls.conv_status, twin=True):
            # equivalent only while no row the former holds can overflow the tensor buffer
            raise ConfigError(f"tensor_buffer_bram36 = {cfg.tensor_buffer_bram36}: the Verilog twin needs a tensor "
                              f"buffer of at least {twin_line_buffer_bound(cfg)} bits (rows {cfg.rows}, "
                              f"operand_bits {cfg.operand_bits}, rows of {twin_row_bits(cfg)} bits)")
    d = cfg.dot_width
    if d & (d - 1):
        raise ConfigError(f"dot_width = {d}: the Verilog twin needs a power of two "
                          "(K is split into words by shifting, addresses are aligned by masking)")
    if cfg.acc_width > RESULT_BITS:  # pragma: no cover - the config already refuses it
        raise ConfigError(f"acc_width = {cfg.acc_width}: must be <= {RESULT_BITS}")


def clog2(x: int) -> int:
    """Verilog's $clog2: bits to count 0..x-1 (0 for x <= 1)."""
    return max(x - 1, 0).bit_length()


def widths(cfg: HardwareConfig) -> list[tuple[str, int, str]]:
    """(macro name without `CPT_, value, what it is and what it depends on) of cpt_gemm_widths.vh.

    The config's numbers first (the default of every rtl/ module parameter of that name), then the
    widths derived from them, each computed here and nowhere else.
    """
    op_k = cfg.operand_bits * cfg.k_words       # D-bit words of one row of A (or column of B), all planes
    b_half = (cfg.b_block_cols // cfg.cols) * op_k
    return [
        ("ROWS", cfg.rows, "config rows: PE array rows, rows of A per tile"),
        ("COLS", cfg.cols, "config cols: PE array columns"),
        ("D", cfg.dot_width, "config dot_width: bits of one plane word (a power of two here)"),
        ("ACC_W", cfg.acc_width, "config acc_width: PE accumulator bits (<= RESULT_W)"),
        ("OP_BITS", cfg.operand_bits, "config operand_bits = max(max_bits, max_grad_bits)"),
        ("K_WORDS", cfg.k_words, "config k_words: D-bit words per plane row at most"),
        ("B_BLOCK_COLS", cfg.b_block_cols, "config b_block_cols: columns of B per block (a multiple of COLS)"),
        ("AXI_DW", cfg.axi_data_width, "config axi_data_width (divides D and COLS x RESULT_W)"),
        ("AXI_AW", cfg.axi_addr_width, "config axi_addr_width: bits of a memory address"),
        ("BURST_BEATS", cfg.burst_beats, "config burst_beats"),
        ("MAX_DIM", cfg.max_dim, "config max_dim: largest M, N"),
        ("RESULT_W", RESULT_BITS, "bits of one element of C in memory: cpt_hw.hw.config.RESULT_BITS"),
        ("LOG_RESULT_BYTES", clog2(RESULT_BITS // 8), "elements of C to bytes (a shift): clog2(RESULT_W / 8)"),
        ("DIM_W", clog2(cfg.max_dim + 1), "a dimension M or N, 0..MAX_DIM: clog2(MAX_DIM + 1)"),
        ("KW_W", clog2(cfg.k_words + 1), "D-bit words per plane row, 0..K_WORDS: clog2(K_WORDS + 1)"),
        ("BITS_W", clog2(cfg.operand_bits + 1), "a precision, 0..OP_BITS: clog2(OP_BITS + 1)"),
        ("RW_W", clog2(op_k + 1) + 1,
         "words of a row of A / column of B over its planes, 0..OP_BITS x K_WORDS, and a spare bit: "
         "clog2(OP_BITS x K_WORDS + 1) + 1"),
        ("A_HALF", op_k, "words per A bank and half (one row of A, all planes): OP_BITS x K_WORDS"),
        ("A_DEPTH", 2 * op_k, "words per A bank: two halves (a tile loads while one runs)"),
        ("A_AW", clog2(2 * op_k), "an A bank address: clog2(A_DEPTH)"),
        ("B_HALF", b_half, "words per B bank and half (one block): B_BLOCK_COLS / COLS x OP_BITS x K_WORDS"),
        ("B_DEPTH", 2 * b_half, "words per B bank: two halves (the running block, the prefetched one)"),
        ("B_AW", clog2(2 * b_half), "a B bank address: clog2(B_DEPTH)"),
        ("RV_W", clog2(cfg.rows + 1), "rows valid in a tile, 0..ROWS: clog2(ROWS + 1)"),
        ("POS_W", max(clog2(cfg.max_dim + 1), clog2(cfg.b_block_cols + 1)) + 2,
         "a row or column position (m0, n0, ...), with room for N + B_BLOCK_COLS and M + ROWS: "
         "max(DIM_W, clog2(B_BLOCK_COLS + 1)) + 2"),
        ("TI_W", cfg.axi_addr_width + clog2(cfg.rows + 1) + 1,
         "a tile queue entry, feeder to writer: {final, rows valid, C address of row 0}: 1 + RV_W + AXI_AW"),
        ("FIFO_AW", clog2(2 * cfg.rows),
         "C FIFO address bits: 2^FIFO_AW >= 2 x ROWS rows, a tile draining in while the writer empties "
         "the previous one: clog2(2 x ROWS)"),
        ("KEY_W", cfg.axi_addr_width + 3 * 32,
         "a prefetch key {b, n, k, b_bits}: AXI_AW + three 32-bit argument words"),
    ] + (conv_widths(cfg) if cfg.conv_engine else [])


def conv_widths(cfg: HardwareConfig) -> list[tuple[str, int, str]]:
    """The convolution engine's numbers (interface 4; only with conv_engine, so that every other config's
    header stays as it was): ``CPT_CONV`` also selects the engine's logic in rtl/cpt_core.v."""
    return [
        ("CONV", 1, "config conv_engine: the convolution engine (forward calls) is built"),
        ("MAX_KERNEL", cfg.max_kernel, "config max_kernel: largest kh, kw of a conv call"),
        ("MAX_ROW_BITS", twin_row_bits(cfg),
         "W Cp of the widest row-plane the im2col former holds: cpt_hw.hw.conv_calls.twin_row_bits"),
        ("WGRAD_BUF_WORDS", twin_wgrad_buf_words(cfg),
         "D-bit words a weight-gradient X chunk may have: cpt_hw.hw.conv_calls.twin_wgrad_buf_words"),
        ("WGRAD_BANK_WORDS", TWIN_WGRAD_BANK_WORDS,
         "words of each bank of a weight-gradient former: cpt_hw.hw.conv_calls.TWIN_WGRAD_BANK_WORDS"),
        ("SUM_W", 8 * SUM_BYTES, "bits of one code sum (flags SUMS) in memory: cpt_hw.hw.conv_calls.SUM_BYTES"),
        ("LOG_SUM_BYTES", clog2(SUM_BYTES), "code sums to bytes (a shift): clog2(SUM_W / 8)"),
    ]


def register_params(cfg: HardwareConfig) -> list[tuple[str, int, str]]:
    """(localparam name, value, comment) of the control words: CTRL, GIE, IER, ISR."""
    rm = register_map(cfg)
    return [(f"REG_{name}", rm.offset(name), name) for name in ("CTRL", "GIE", "IER", "ISR")]


@dataclass(frozen=True)
class Bank:
    """The argument register bank as rtl/cpt_control.v implements it: tables of 32-bit words.

    Input words are packed into the ``args`` bus in signature order (word i at bits 32i +: 32), output
    data words into ``outs`` likewise; ``fields`` gives each argument's bit position on its bus.
    """

    in_offsets: list[int]          # offset of input word i
    out_offsets: list[int]         # offset of output data word i
    out_reset: list[int]           # value of output data word i after reset
    ctrl_offsets: list[int]        # offset of output j's control word (ap_vld)
    fields: list[tuple[str, int, str]]  # (ARG_<NAME> / OUT_<NAME>, bit position, comment)


def bank(cfg: HardwareConfig) -> Bank:
    """The register bank of ``cfg``'s argument list (cpt_hw.hw.regmap.ARGUMENTS: nothing is named here)."""
    rm = register_map(cfg)
    b = Bank([], [], [], [], [])
    for a in arguments(cfg):
        words = [r for r in rm.registers if r.arg == a.name and not r.name.endswith("_ctrl")]
        width = "AXI_AW" if a.address else str(a.bits)
        if a.direction == "in":
            b.fields.append((f"ARG_{a.name.upper()}", 32 * len(b.in_offsets), f"{a.name}: args[ARG_{a.name.upper()} +: {width}]"))
            b.in_offsets.extend(r.offset for r in words)
        else:
            b.fields.append((f"OUT_{a.name.upper()}", 32 * len(b.out_offsets), f"{a.name}: outs[OUT_{a.name.upper()} +: {width}]"))
            # the twin's id reads the config's ID word at any time, also before the first call
            reset = cfg.id_word if a.name == "id" else 0
            b.out_offsets.extend(r.offset for r in words)
            b.out_reset.extend(reset >> (32 * w) & 0xFFFFFFFF for w in range(len(words)))
            b.ctrl_offsets.append(rm.offset(f"{a.name}_ctrl"))
    return b


def packed(words: list[int]) -> str:
    """A Verilog concatenation of 32-bit words, word 0 in bits 31:0."""
    return "{" + ", ".join(f"32'h{w:08x}" for w in reversed(words)) + "}"


def bit_params(cfg: HardwareConfig) -> list[tuple[str, int]]:
    flags = {**FLAG_BITS, **CONV_FLAG_BITS} if cfg.conv_engine else FLAG_BITS
    status = {**STATUS_BITS, **CONV_STATUS_BITS} if cfg.conv_engine else STATUS_BITS
    return ([(f"CTRL_{k}", v) for k, v in CTRL_BITS.items()] + [(f"IRQ_{k}", v) for k, v in IRQ_BITS.items()]
            + [(f"FLAG_{k}", v) for k, v in flags.items()] + [(f"STATUS_{k}", v) for k, v in status.items()])


def render(cfg: HardwareConfig, env: jinja2.Environment) -> dict[str, str]:
    check(cfg)
    ctx = {"registers": register_params(cfg), "bits": bit_params(cfg), "ctrl_addr_width": register_map(cfg).addr_width,
           "bank": bank(cfg), "packed": packed}
    return {
        "cpt_gemm_widths.vh": env.get_template("rtl/cpt_gemm_widths.vh.j2").render(widths=widths(cfg)),
        "cpt_gemm_regmap.vh": env.get_template("rtl/cpt_gemm_regmap.vh.j2").render(**ctx),
        "cpt_gemm.v": env.get_template("rtl/cpt_gemm.v.j2").render(**ctx),
    }
