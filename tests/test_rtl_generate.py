"""The rtl generator target, the Verilator lint and the cycle model's shape (no simulation needed)."""

from __future__ import annotations

import re
import time

import pytest

from cpt_hw.errors import ConfigError
from cpt_hw.gen.generator import TARGETS, render
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.cycle_model import gemm_cycles, setup_cycles
from cpt_hw.hw.regmap import OUTPUTS, arguments, register_map

HLS_PORTS = {"ap_clk", "ap_rst_n", "interrupt"} | {f"s_axi_control_{s}" for s in (
    "AWADDR AWVALID AWREADY WDATA WSTRB WVALID WREADY BRESP BVALID BREADY ARADDR ARVALID ARREADY "
    "RDATA RRESP RVALID RREADY").split()} | {f"m_axi_gmem_{s}" for s in (
    "AWVALID AWREADY AWADDR AWID AWLEN AWSIZE AWBURST AWLOCK AWCACHE AWPROT AWQOS AWREGION AWUSER "
    "WVALID WREADY WDATA WSTRB WLAST WID WUSER ARVALID ARREADY ARADDR ARID ARLEN ARSIZE ARBURST ARLOCK "
    "ARCACHE ARPROT ARQOS ARREGION ARUSER RVALID RREADY RDATA RLAST RID RUSER RRESP BVALID BREADY BRESP "
    "BID BUSER").split()}


def _packed(vh: str) -> dict[str, list[int]]:
    """The packed word tables of the regmap header: name -> [word 0, word 1, ...]."""
    tables = {}
    for m in re.finditer(r"localparam \[[^\]]+\] (\w+) = \{([^}]*)\};", vh):
        tables[m.group(1)] = [int(w.split("'h")[1], 16) for w in reversed(m.group(2).split(","))]
    return tables


@pytest.mark.parametrize("preset,overrides", [("sim", {}), ("zc706", {}), ("sim", {"axi_addr_width": 32})])
def test_regmap_header_matches_register_map(preset, overrides):
    cfg = HardwareConfig.from_preset(preset, overrides)
    assert "rtl" in TARGETS
    files = render(cfg, ["rtl"])
    vh = files[next(p for p in files if p.name == "cpt_gemm_regmap.vh")]
    params = {m.group(1): int(m.group(2)) for m in re.finditer(r"localparam integer (\w+)\s*= (-?\d+);", vh)}
    tables = _packed(vh)
    rm = register_map(cfg)
    for name in ("CTRL", "GIE", "IER", "ISR"):
        assert params[f"REG_{name}"] == rm.offset(name)
    # the bank's tables hold exactly the argument words of the map, each argument where ARG_/OUT_ says
    ins, outs = [], []
    for a in arguments(cfg):
        words = [r.offset for r in rm.registers if r.arg == a.name and not r.name.endswith("_ctrl")]
        assert len(words) == a.bits // 32
        table, pos = (tables["IN_OFFSETS"], params[f"ARG_{a.name.upper()}"]) if a.direction == "in" else \
            (tables["OUT_OFFSETS"], params[f"OUT_{a.name.upper()}"])
        assert pos % 32 == 0 and table[pos // 32:pos // 32 + len(words)] == words, a.name
        (ins if a.direction == "in" else outs).extend(words)
    assert tables["IN_OFFSETS"] == ins and tables["OUT_OFFSETS"] == outs
    assert tables["OUT_CTRL_OFFSETS"] == [rm.offset(f"{a.name}_ctrl") for a in OUTPUTS]
    reset = dict(zip(tables["OUT_OFFSETS"], tables["OUT_RESET"]))
    assert reset == {off: (cfg.id_word if off == rm.arg_offset("id") else 0) for off in outs}
    assert params["CTRL_ADDR_W"] == rm.addr_width
    # an address argument is `CPT_AXI_AW bits wide (the widths header): the map restates no width
    assert not re.search(r"localparam integer \w*_AW\b", vh)
    assert f"32'h{cfg.id_word:08x}" in vh


def test_top_has_hls_ports():
    cfg = HardwareConfig.from_preset("zc706")
    top = next(t for p, t in render(cfg, ["rtl"]).items() if p.name == "cpt_gemm.v")
    ports = set(re.findall(r"^\s*(?:input|output)\s+wire\s+(?:\[[^\]]+\]\s*)?(\w+)", top, re.M))
    assert ports == HLS_PORTS
    # the core's numbers are the widths header's; the top passes only what it declares itself
    assert ".AXI_DW(C_M_AXI_GMEM_DATA_WIDTH)" in top and ".AXI_AW(C_M_AXI_GMEM_ADDR_WIDTH)" in top
    assert f"C_M_AXI_GMEM_DATA_WIDTH = {cfg.axi_data_width}," in top


def _defines(cfg: HardwareConfig) -> dict[str, int]:
    files = render(cfg, ["rtl"])
    vh = files[next(p for p in files if p.name == "cpt_gemm_widths.vh")]
    assert vh.count("`ifndef CPT_GEMM_WIDTHS_VH") == 1 and vh.rstrip().endswith("`endif")
    # every macro carries a comment saying what it is and what it depends on
    macros = [line for line in vh.splitlines() if line.startswith("`define CPT_") and not line.endswith("_VH")]
    assert macros and all(re.search(r"//\s*\S", line) for line in macros)
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^`define CPT_(\w+)\s+(\d+)\s+//", vh, re.M)}


def test_widths_header_zc706():
    """The derived widths of zc706 (16x16, D = 64, 8-bit operands, k_words 72, 128-column B blocks,
    max_dim 65536, 64-bit addresses), worked out by hand."""
    w = _defines(HardwareConfig.from_preset("zc706"))
    assert {k: w[k] for k in ("ROWS", "COLS", "D", "ACC_W", "OP_BITS", "K_WORDS", "B_BLOCK_COLS", "AXI_DW",
                              "AXI_AW", "BURST_BEATS", "MAX_DIM")} == {
        "ROWS": 16, "COLS": 16, "D": 64, "ACC_W": 32, "OP_BITS": 8, "K_WORDS": 72, "B_BLOCK_COLS": 128,
        "AXI_DW": 64, "AXI_AW": 64, "BURST_BEATS": 16, "MAX_DIM": 65536}
    assert w["RESULT_W"] == 32 and w["LOG_RESULT_BYTES"] == 2
    assert w["DIM_W"] == 17            # 65536 needs 17 bits
    assert w["KW_W"] == 7              # 0..72
    assert w["BITS_W"] == 4            # 0..8
    assert w["RW_W"] == 11             # 0..576, plus the spare bit
    assert (w["A_HALF"], w["A_DEPTH"], w["A_AW"]) == (576, 1152, 11)
    assert (w["B_HALF"], w["B_DEPTH"], w["B_AW"]) == (4608, 9216, 14)   # 128 / 16 x 8 x 72 per half
    assert w["RV_W"] == 5 and w["KEY_W"] == 160
    assert w["TI_W"] == 70             # final bit, 5-bit rows valid, 64-bit address
    assert w["FIFO_AW"] == 5           # 32 rows = 2 x 16
    assert w["POS_W"] == 19            # positions up to 65536 + 128 (17 bits), plus two


@pytest.mark.parametrize("overrides", [{}, {"rows": 10, "cols": 4, "dot_width": 64, "axi_data_width": 32,
                                            "burst_beats": 2, "k_words": 4, "b_block_cols": 8, "max_dim": 1024,
                                            "acc_width": 26}])
def test_widths_header_follows_config(overrides):
    """Powers of two sit exactly at the edges of $clog2: max_dim 1024 needs 11 bits, 10 rows 4 bits."""
    cfg = HardwareConfig.from_preset("sim", overrides)
    w = _defines(cfg)
    assert (w["ROWS"], w["COLS"], w["MAX_DIM"], w["ACC_W"]) == (cfg.rows, cfg.cols, cfg.max_dim, cfg.acc_width)
    assert w["DIM_W"] == len(bin(cfg.max_dim)) - 2 and w["RV_W"] == len(bin(cfg.rows)) - 2
    assert w["B_DEPTH"] == 2 * w["B_HALF"] == 2 * cfg.b_block_cols // cfg.cols * cfg.operand_bits * cfg.k_words
    assert 2 ** (w["B_AW"] - 1) < w["B_DEPTH"] <= 2 ** w["B_AW"]
    assert 2 ** (w["A_AW"] - 1) < w["A_DEPTH"] <= 2 ** w["A_AW"]
    assert w["KEY_W"] == cfg.axi_addr_width + 96
    assert w["TI_W"] == cfg.axi_addr_width + w["RV_W"] + 1
    assert 2 ** (w["FIFO_AW"] - 1) < 2 * cfg.rows <= 2 ** w["FIFO_AW"]
    if overrides:
        assert (w["DIM_W"], w["RV_W"], w["FIFO_AW"]) == (11, 4, 5)   # 20 rows of FIFO: 32
    else:
        assert w["FIFO_AW"] == 3                                      # sim: 3 rows, 6 rows of FIFO: 8


CONFIG_PARAMS = ("ROWS", "COLS", "D", "ACC_W", "OP_BITS", "K_WORDS", "B_BLOCK_COLS", "AXI_DW", "AXI_AW",
                 "BURST_BEATS", "MAX_DIM")


def test_rtl_sources_take_widths_from_the_header():
    """No hand-written module derives a width or restates a config number: they come from the header."""
    from cpt_hw.gen.rtl import widths
    from cpt_hw.paths import rtl_dir
    derived = [name for name, _, _ in widths(HardwareConfig.from_preset("zc706")) if name not in CONFIG_PARAMS]
    assert {"DIM_W", "KW_W", "BITS_W", "RW_W", "A_AW", "B_AW", "B_HALF", "RV_W", "KEY_W", "TI_W",
            "FIFO_AW", "POS_W"} <= set(derived)
    for src in sorted(rtl_dir().glob("*.v")):
        text = src.read_text()
        code = re.sub(r"//[^\n]*", "", text)
        for name in derived:
            assert not re.search(rf"(?:parameter|localparam) integer {name}\b", code), (src.name, name)
        for derivation in ("$clog2(ROWS + 1)", "$clog2(2 * ROWS)", "$clog2(B_BLOCK_COLS + 1)"):
            assert derivation not in code, f"{src.name}: derives {derivation} (RV_W, FIFO_AW, POS_W)"
        assert not re.search(r"OP_BITS \* K_WORDS", code), f"{src.name}: derives the A half"
        assert not re.search(r"\*\s*32\b|<<\s*2\b", code), f"{src.name}: a literal result width"
        for m in re.finditer(r"parameter integer (\w+) = ([^,\s)]+)", code):
            if m.group(1) in CONFIG_PARAMS:
                assert m.group(2) == f"`CPT_{m.group(1)}", (src.name, m.group(0))
        if "`CPT_" in code:
            assert code.index('`include "cpt_gemm_widths.vh"') < code.index("module "), src.name


def test_rtl_refuses_non_power_of_two_word():
    cfg = HardwareConfig.from_preset("sim", {"dot_width": 96})
    with pytest.raises(ConfigError, match="dot_width = 96"):
        render(cfg, ["rtl"])


@pytest.mark.sim
@pytest.mark.parametrize("preset, overrides", [("sim", {}), ("zc706", {}),
                                               ("sim", {"conv_engine": True, "name": "sim_conv"}),
                                               ("zc706", {"conv_engine": True, "name": "zc706_conv"})],
                         ids=["sim", "zc706", "sim_conv", "zc706_conv"])
def test_lint_clean(preset, overrides):
    from cpt_hw.flows import rtl_sim
    clean, out = rtl_sim.lint(HardwareConfig.from_preset(preset, overrides))
    assert clean, out


def test_cycle_model_shape():
    cfg = HardwareConfig.from_preset("zc706")
    assert setup_cycles(cfg) > 0
    # compute-bound: time scales with a_bits x b_bits
    c33 = gemm_cycles(cfg, 1024, 128, cfg.k_max, 3, 3).total
    c88 = gemm_cycles(cfg, 1024, 128, cfg.k_max, 8, 8).total
    assert c33 / c88 <= 1.15 * 9 / 64
    # every cycle of a compute-bound call is accounted for by at most a few % of overhead
    est = gemm_cycles(cfg, 4096, 128, cfg.k_max, 8, 8)
    assert est.utilisation(cfg) > 0.9
    # large calls stay fast (the emulated device calls this for every GEMM of training)
    t0 = time.time()
    gemm_cycles(cfg, 128 * 32 * 32, 16, 144, 8, 8)
    assert time.time() - t0 < 2.0


@pytest.mark.sim
def test_core_refuses_parameters_that_differ_from_the_header(tmp_path):
    """The header sizes the submodules' ports, so a cpt_core override that disagrees with it must stop."""
    import subprocess

    from cpt_hw.flows import rtl_sim
    rtl_sim.check_tools("icarus")
    d = rtl_sim.design(HardwareConfig.from_preset("sim"))
    tb = tmp_path / "tb.v"
    out = tmp_path / "tb.vvp"
    for params, refused in ((".MAX_DIM(2048)", True), ("", False)):
        tb.write_text(f"module tb; cpt_core #({params}) dut (); endmodule\n")
        hand = [str(s) for s in d.sources if s.name != "cpt_gemm.v"]
        subprocess.run(["iverilog", "-g2005", "-o", str(out), "-s", "tb", *[f"-I{i}" for i in d.includes],
                        str(tb), *hand], check=True, capture_output=True)
        run = subprocess.run(["vvp", "-n", str(out)], capture_output=True, text=True, timeout=60)
        assert ("parameters differ from cpt_gemm_widths.vh" in run.stdout) == refused, run.stdout


@pytest.mark.parametrize("preset", ["sim", "zc706"])
def test_suite_runs_the_conv_system_test_with_the_engine(preset):
    """``make sim`` runs the suite on one config; the conv engine's system test must get that config with the
    engine (a derived name: its own build directory), every other module the config unchanged."""
    from cpt_hw.flows import rtl_sim
    cfg = HardwareConfig.from_preset(preset)
    assert "test_cpt_gemm_conv" in rtl_sim.SUITE and not cfg.conv_engine
    conv = rtl_sim.module_config(cfg, "test_cpt_gemm_conv")
    assert conv.conv_engine and conv.name != cfg.name
    assert conv.replace(conv_engine=False, name=cfg.name) == cfg
    assert rtl_sim.module_config(conv, "sim.cpt_gemm.test_cpt_gemm_conv") is conv
    assert all(rtl_sim.module_config(cfg, m) is cfg for m in rtl_sim.SUITE if m != "test_cpt_gemm_conv")
