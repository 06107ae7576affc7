"""Interface 4 is gated by ``conv_engine``: without it nothing of interface 3 changes; with it the register map
gains the conv arguments (appended), flags SUMS/C16 and status ERR_CONV, the Verilog twin renders (every conv
op) and the board flow builds it from the twin (RTL=1) only: the HLS kernel's engine is C-simulated only."""

from __future__ import annotations

import json

import pytest

from cpt_driver.spec import DeviceSpec
from cpt_hw.errors import ConfigError
from cpt_hw.gen.generator import render
from cpt_hw.hw.calls import Call, ConvCall, call_type
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.regmap import ARGUMENTS, CONV_ARGUMENTS, FLAG_BITS, STATUS_BITS, arguments, register_map

#: The ID words of the presets on interface 3 (before the conv fields existed): any change of the hashed fields,
#: the interface version or the hash itself shows here.
INTERFACE3_IDS = {"zc706": 0x9672F143, "sim": 0xC687CD7B}


@pytest.mark.parametrize("preset", sorted(INTERFACE3_IDS))
def test_without_the_engine_interface_3_is_unchanged(preset):
    cfg = HardwareConfig.from_preset(preset)
    assert (cfg.conv_engine, cfg.max_kernel, cfg.tensor_buffer_bram36) == (False, 3, 64)
    assert cfg.id_word == INTERFACE3_IDS[preset] and cfg.interface_version == 3
    d = register_map(cfg).to_dict()
    assert "conv" not in d and d["interface_version"] == 3
    assert d["flag_bits"] == FLAG_BITS and d["status_bits"] == STATUS_BITS
    assert [a["name"] for a in d["arguments"]] == [a.name for a in ARGUMENTS]
    assert call_type(cfg) is Call
    # the engine's other fields mean nothing without it: not hashed, nothing generated differs
    other = cfg.replace(max_kernel=5, tensor_buffer_bram36=128)
    assert other.id_word == cfg.id_word and render(other) == render(cfg)


def test_with_the_engine_the_arguments_are_appended():
    base = HardwareConfig.from_preset("zc706")
    cfg = HardwareConfig.from_preset("zc706", {"conv_engine": True})
    assert cfg.interface_version == 4 and cfg.id_word != base.id_word
    rm, rm3 = register_map(cfg), register_map(base)
    assert rm.registers[:len(rm3.registers)] == rm3.registers          # no interface-3 offset moves
    assert [a.name for a in arguments(cfg)] == [a.name for a in ARGUMENTS + CONV_ARGUMENTS]
    assert [a.name for a in CONV_ARGUMENTS] == ["conv", "batch", "channels", "size", "band", "sums", "next_a"]
    assert {a: rm.arg_offset(a) for a in ("conv", "batch", "channels", "size", "band", "sums", "next_a")} == {
        "conv": 0xD8, "batch": 0xE0, "channels": 0xE8, "size": 0xF0, "band": 0xF8, "sums": 0x100, "next_a": 0x10C}
    d = json.loads(rm.to_json())
    assert d["flag_bits"] == {**FLAG_BITS, "SUMS": 3, "C16": 4}
    assert d["status_bits"] == {**STATUS_BITS, "ERR_CONV": 6}
    assert d["conv"]["max_kernel"] == 3 and d["conv"]["tensor_buffer_bits"] == 64 * 512 * 64
    spec = DeviceSpec.from_dict(d)
    assert spec.conv == d["conv"] and DeviceSpec.from_dict(register_map(base).to_dict()).conv is None
    assert call_type(cfg) is ConvCall and ConvCall(*[0] * 6, 1, 1, 0, 0, 0).conv == 0


def test_board_flow_builds_the_engine_from_the_twin_only(tmp_path):
    from cpt_hw.errors import ToolMissingError
    from cpt_hw.flows import bitstream as bs

    cfg = HardwareConfig.from_preset("zc706", {"conv_engine": True, "name": "zc706_conv"})
    files = {str(p): text for p, text in render(cfg, ["vivado"]).items()}
    assert "vivado/datapath/cpt_conv_setup.v" in files and "vivado/datapath/cpt_wgrad_walker.v" in files
    # build.tcl refuses the HLS IP for it (run by hand with -tclargs hls), not the twin
    tcl = files["vivado/build.tcl"]
    hls_branch = tcl[tcl.index('} elseif {$source eq "hls"} {'):tcl.index("} else {")]
    assert 'error "conv_engine = true: package the Verilog twin' in hls_branch
    plain = {str(p): text for p, text in render(HardwareConfig.from_preset("zc706"), ["vivado"]).items()}
    assert "conv_engine" not in plain["vivado/build.tcl"]
    with pytest.raises(ConfigError, match=r"^conv_engine = True: the HLS kernel's convolution engine is verified "
                                          r"in C simulation only; build the Verilog twin instead"):
        bs.bitstream(cfg, out_dir=tmp_path / "hls", which=lambda exe: f"/opt/x/{exe}")
    assert not (tmp_path / "hls").exists()                       # refused before anything is written
    with pytest.raises(ToolMissingError, match=r"^vivado not found on PATH"):   # RTL=1 gets to the tools
        bs.bitstream(cfg, rtl=True, out_dir=tmp_path / "rtl", which=lambda exe: None)
    assert (tmp_path / "rtl" / "rtl").is_dir() and (tmp_path / "rtl" / "vivado" / "build.tcl").is_file()


def test_the_twin_is_generated_for_the_engine():
    """The Verilog twin renders with the engine's widths, register offsets and bits (forward calls run,
    sim/cpt_gemm/test_cpt_gemm_conv.py); without it its files are interface 3's (test above)."""
    cfg = HardwareConfig.from_preset("sim", {"conv_engine": True})
    files = {str(p): t for p, t in render(cfg, ["rtl"]).items()}
    widths, regs = files["rtl/cpt_gemm_widths.vh"], files["rtl/cpt_gemm_regmap.vh"]
    assert "`define CPT_CONV " in widths and "`define CPT_MAX_ROW_BITS       2048" in widths
    for name in ("ARG_CONV", "ARG_BATCH", "ARG_SUMS", "FLAG_SUMS", "FLAG_C16", "STATUS_ERR_CONV"):
        assert f"localparam integer {name} " in regs, name
    assert "C_S_AXI_CONTROL_ADDR_WIDTH = 9" in files["rtl/cpt_gemm.v"]
    plain = {str(p): t for p, t in render(HardwareConfig.from_preset("sim"), ["rtl"]).items()}
    assert "CPT_CONV" not in plain["rtl/cpt_gemm_widths.vh"] and "ERR_CONV" not in plain["rtl/cpt_gemm_regmap.vh"]


@pytest.mark.parametrize("overrides,fragment", [
    ({"max_kernel": 5}, "max_kernel = 5: the Verilog twin's im2col former takes kernels of at most 3 x 3"),
    ({"tensor_buffer_bram36": 8, "rows": 64}, "tensor_buffer_bram36 = 8: the Verilog twin needs a tensor buffer"),
])
def test_twin_refuses_what_its_former_cannot_serve(overrides, fragment):
    cfg = HardwareConfig.from_preset("sim", {"conv_engine": True, **overrides})
    with pytest.raises(ConfigError, match=fragment):
        render(cfg, ["rtl"])


@pytest.mark.parametrize("key,value,fragment", [
    ("conv_engine", 1, "conv_engine = 1: must be true or false"),
    ("max_kernel", 0, "max_kernel = 0: must be in 1..15"),
    ("max_kernel", 16, "max_kernel = 16: must be in 1..15"),
    ("tensor_buffer_bram36", 60, "tensor_buffer_bram36 = 60: must be a multiple of 8"),
    ("tensor_buffer_bram36", 0, "tensor_buffer_bram36 = 0: must be a multiple of 8"),
])
def test_bad_conv_fields_name_field_value_and_rule(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        HardwareConfig.from_preset("zc706", {key: value})


def test_engine_needs_int16_result_rows_of_whole_beats():
    """C16: a tile row of int16 results is whole bus beats (the HLS kernel's store stage and the twin's writer)."""
    narrow = {"cols": 2, "axi_data_width": 64, "dot_width": 64, "b_block_cols": 2}    # cols x 16 = 32 bits
    HardwareConfig.from_preset("sim", narrow)                        # fine without the engine
    with pytest.raises(ConfigError, match=r"cols = 2: with conv_engine, cols x 16 must be a multiple of "
                                          r"axi_data_width = 64"):
        HardwareConfig.from_preset("sim", {**narrow, "conv_engine": True})


def test_regmap_conv_limits_are_the_drivers():
    """regmap.json's conv strides and paddings (written without importing the driver) equal cpt_driver.conv's."""
    from cpt_driver.conv import CONV_PADDINGS, CONV_STRIDES

    from cpt_hw.hw.config import HardwareConfig
    from cpt_hw.hw.regmap import conv_layout

    layout = conv_layout(HardwareConfig.from_preset("sim").replace(conv_engine=True))
    assert (tuple(layout["strides"]), tuple(layout["paddings"])) == (CONV_STRIDES, CONV_PADDINGS)
