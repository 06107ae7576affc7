"""The rtl generator target, the Verilator lint and the cycle model's shape (no simulation needed)."""

from __future__ import annotations

import re
import time

import pytest

from cpt_hw.config import HardwareConfig
from cpt_hw.cycle_model import gemm_cycles, setup_cycles
from cpt_hw.errors import ConfigError
from cpt_hw.generator import TARGETS, render
from cpt_hw.regmap import OUTPUTS, arguments, register_map

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
    assert params["CTRL_ADDR_W"] == rm.addr_width and params["BANK_AW"] == cfg.axi_addr_width
    assert f"32'h{cfg.id_word:08x}" in vh


def test_top_has_hls_ports():
    cfg = HardwareConfig.from_preset("zc706")
    top = next(t for p, t in render(cfg, ["rtl"]).items() if p.name == "cpt_gemm.v")
    ports = set(re.findall(r"^\s*(?:input|output)\s+wire\s+(?:\[[^\]]+\]\s*)?(\w+)", top, re.M))
    assert ports == HLS_PORTS
    assert f".ROWS({cfg.rows})" in top and f".D({cfg.dot_width})" in top


def test_rtl_refuses_non_power_of_two_word():
    cfg = HardwareConfig.from_preset("sim", {"dot_width": 96})
    with pytest.raises(ConfigError, match="dot_width = 96"):
        render(cfg, ["rtl"])


@pytest.mark.sim
@pytest.mark.parametrize("preset", ["sim", "zc706"])
def test_lint_clean(preset):
    from cpt_hw import hwsim
    clean, out = hwsim.lint(HardwareConfig.from_preset(preset))
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
