"""HLS C++ of the kernel: config header, top function, testbench main, Vitis/Vivado HLS TCL, vectors.

The generated layer is thin (STYLE.md, hls4ml's split): ``cpt_config.h`` holds the config's numbers,
``cpt_gemm.cpp`` the interface pragmas, ``tb_cpt_gemm.cpp`` one call into ``hls/cpt_tb.h``; the kernel
itself is the hand-written, compile-time-parameterised headers in the top-level ``hls/`` directory.
``kernel/`` holds verbatim copies of those headers (the TCL names every path relative to itself, so the
build folder can be moved as a whole).  ``vectors/`` holds a small co-simulation workload and its expected
results (binary, from cpt_hw.hw.golden) so that the TCL's csim and cosim steps check the kernel bit-exactly
inside the HLS tool too.
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2

from ..errors import ConfigError
from ..hw.config import INTERFACE_VERSION, RESULT_BITS, HardwareConfig
from ..hw.regmap import FLAG_BITS, INPUTS, KERNEL_NAME, STATUS_BITS, arguments, register_map
from ..paths import source_root
from .hls_vectors import Workload

#: HLS tools the TCL is rendered for: (tool command, title).
TOOLS = (("vitis_hls", "Vitis HLS"), ("vivado_hls", "Vivado HLS"))
#: LUTs per AND+popcount bit of a plain adder-tree popcount (Yosys synth_xilinx, ARCHITECTURE.md §2).
LUTS_PER_POPCOUNT_BIT = 3.2


@dataclass(frozen=True)
class IpInfo:
    vendor: str = "cpt-hw.org"
    library: str = "hls"
    version: str = f"{INTERFACE_VERSION}.0"
    display_name: str = "cpt-hw bit-serial GEMM"
    description: str = "Runtime-precision bit-serial systolic GEMM (Cyclic Precision Training), cpt-hw"

    @property
    def vlnv(self) -> str:
        return f"{self.vendor}:{self.library}:{KERNEL_NAME}:{self.version}"


IP = IpInfo()


#: Where the HLS TCL finds the hand-written kernel headers, relative to the script: copies of ``hls/*.h``
#: written next to the generated sources, so ``build/<cfg>/`` holds everything the tools read and can be
#: moved or copied to the machine with the Xilinx tools as a whole.
KERNEL_SUBDIR = "kernel"


def kernel_sources() -> dict[str, bytes]:
    """{``kernel/<name>.h``: its bytes} for every hand-written kernel header in ``hls/``."""
    return {f"{KERNEL_SUBDIR}/{p.name}": p.read_bytes() for p in sorted((source_root() / "hls").glob("*.h"))}


def bram36_banks(bits_per_bank: int, width: int) -> int:
    """BRAM36 blocks one bank of ``bits_per_bank`` bits and ``width``-bit words occupies."""
    per_block_width = -(-width // 72)  # 72-bit wide ports at most
    depth = bits_per_bank // width
    return per_block_width * -(-depth // 512)  # 512 x 72 per block


def buffer_bram36(cfg: HardwareConfig) -> int:
    """BRAM36 blocks of the kernel's partitioned buffers: 2 x rows A banks, cols B banks, and as many
    banks of the persistent B prefetch buffer."""
    d = cfg.dot_width
    a_bank = cfg.operand_bits * cfg.k_words * d
    b_bank = (cfg.b_block_cols // cfg.cols) * cfg.operand_bits * cfg.k_words * d
    return 2 * cfg.rows * bram36_banks(a_bank, d) + 2 * cfg.cols * bram36_banks(b_bank, d)


def check(cfg: HardwareConfig) -> None:
    """Refuse a config the HLS kernel cannot implement, naming the field and the rule."""
    if cfg.conv_engine:
        raise ConfigError("conv_engine = True: the HLS kernel has no convolution engine yet (issue 17); "
                          "interface 4 runs only on the emulated device (accel:emu)")
    part = cfg.part_info
    luts = cfg.peak_binary_ops_per_cycle * LUTS_PER_POPCOUNT_BIT
    if luts > part.lut:
        raise ConfigError(
            f"dot_width = {cfg.dot_width}: rows x cols x dot_width = {cfg.peak_binary_ops_per_cycle} "
            f"AND+popcount bits need about {luts:.0f} LUTs, {cfg.part} has {part.lut}: shrink the array")
    banks = 2 * cfg.rows + cfg.cols
    widest = banks * bram36_banks(cfg.dot_width, cfg.dot_width)  # every bank at least one word deep
    if widest > part.bram36:
        raise ConfigError(
            f"dot_width = {cfg.dot_width}: 2 x rows + cols = {banks} buffer banks of {cfg.dot_width}-bit words "
            f"need at least {widest} BRAM36, {cfg.part} has {part.bram36}: narrow dot_width or the array")
    need = buffer_bram36(cfg)
    if need > part.bram36:
        raise ConfigError(
            f"k_words = {cfg.k_words}: the HLS kernel's buffers ({2 * cfg.rows} A banks of operand_bits x "
            f"k_words words, 2 x {cfg.cols} B banks (block and prefetch) of b_block_cols/cols x operand_bits x "
            f"k_words words, "
            f"{cfg.dot_width} bits each) need {need} BRAM36, {cfg.part} has {part.bram36}: lower k_words or "
            "b_block_cols")


def constants(cfg: HardwareConfig) -> list[tuple[str, str, str]]:
    """(name, C++ literal, comment) of every member of the generated config struct."""
    docs = HardwareConfig.field_docs()
    out = [(name, str(getattr(cfg, name)), docs[name]) for name in (
        "rows", "cols", "dot_width", "acc_width", "k_words", "b_block_cols", "axi_data_width",
        "axi_addr_width", "burst_beats", "max_dim")]
    out += [
        ("operand_bits", str(cfg.operand_bits), "largest operand precision: max(max_bits, max_grad_bits)"),
        ("k_max", str(cfg.k_max), "largest K: k_words x dot_width"),
        ("result_bits", str(RESULT_BITS), "bits of one C element in DDR"),
        ("n_inputs", str(len(INPUTS)), "input arguments: register values per call in a vector file"),
        ("id_word", f"0x{cfg.id_word:08x}u", "HardwareConfig.id_word, returned in `id` on every call"),
        ("flags_mask", f"0x{sum(1 << b for b in FLAG_BITS.values()):x}u", "flags bits that have a meaning"),
    ]
    out += [(f"flag_{name.lower()}_bit", str(bit), f"flags bit {name}") for name, bit in FLAG_BITS.items()]
    out += [(f"{name.lower()}_bit", str(bit), f"status bit {name}") for name, bit in STATUS_BITS.items()]
    return out


@dataclass(frozen=True)
class TopArg:
    """One argument of the generated top function and how each generated file spells it."""

    name: str
    ctype: str          # in the signature: cpt_addr_t, uint32_t, uint32_t * ...
    member_type: str    # as a member of cpt_config::inputs / outputs
    cast: str           # the testbench's conversion of a u64 register value (inputs)
    offset: int
    output: bool
    input_index: int    # position among the inputs (-1 for an output)
    doc: str


def top_arguments(cfg: HardwareConfig) -> list[TopArg]:
    """The s_axilite arguments of the top function with their C types and pinned offsets."""
    rm = register_map(cfg)
    out = []
    inputs = 0
    for a in arguments(cfg):
        if a.direction == "out":
            value = f"uint{a.bits}_t"
            out.append(TopArg(a.name, value + " *", value, "", rm.arg_offset(a.name), True, -1, a.doc))
            continue
        if a.address:  # byte addresses: the kernel checks them before the first burst
            ctype, member = "cpt_addr_t", "ap_uint<axi_addr_width>"
        else:
            ctype = member = "uint32_t"
        out.append(TopArg(a.name, ctype, member, ctype, rm.arg_offset(a.name), False, inputs, a.doc))
        inputs += 1
    return out


def cosim_workload(cfg: HardwareConfig) -> Workload:
    """Small but complete: two B blocks, an edge A tile, K past a word, signed x unsigned, and a refusal."""
    w = Workload(cfg, seed=2021)
    w.add_gemm(cfg.rows + 1, cfg.b_block_cols + 1, cfg.dot_width + 3, 3, 5, True, False, note="cosim gemm")
    w.add_refused("cosim refused: window", win_limit=0)
    return w


def render(cfg: HardwareConfig, env: jinja2.Environment) -> dict[str, str | bytes]:
    check(cfg)
    work = cosim_workload(cfg)
    ctx = {
        "kernel": KERNEL_NAME,
        "args": top_arguments(cfg),
        "constants": constants(cfg),
        "cosim_depth": work.ddr_bytes // (cfg.axi_data_width // 8),
        "outstanding": 16,
        "kernel_subdir": KERNEL_SUBDIR,
        "project": f"{KERNEL_NAME}_prj",
        "period_ns": f"{1000.0 / cfg.clock_mhz:.3f}",
        "ip": IP,
        "ip_vlnv": IP.vlnv,
        "here": "build/" + cfg.name + "/hls",
    }
    files: dict[str, str | bytes] = {
        "cpt_config.h": env.get_template("hls/cpt_config.h.j2").render(ctx),
        "cpt_gemm_top.h": env.get_template("hls/cpt_gemm_top.h.j2").render(ctx),
        "cpt_gemm.cpp": env.get_template("hls/cpt_gemm.cpp.j2").render(ctx),
        "tb_cpt_gemm.cpp": env.get_template("hls/tb_cpt_gemm.cpp.j2").render(ctx),
        "vectors/cosim_in.bin": work.vectors(),
        "vectors/cosim_expected.bin": work.expected_results(),
        **kernel_sources(),
    }
    for tool, title in TOOLS:
        files[f"{tool}.tcl"] = env.get_template("hls/hls.tcl.j2").render(ctx, tool=tool, tool_title=title)
    return files
