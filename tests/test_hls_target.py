"""The generated HLS layer: interface pinned to the register map, constants from the config, refusals."""

import re
import subprocess
from pathlib import Path

import pytest

from cpt_hw.errors import ConfigError
from cpt_hw.flows import csim
from cpt_hw.gen.generator import generate, render
from cpt_hw.gen.hls_vectors import decode_results
from cpt_hw.hw.config import RESULT_BITS, HardwareConfig
from cpt_hw.hw.regmap import KERNEL_NAME, arguments, register_map


@pytest.mark.parametrize("overrides", [{}, {"axi_addr_width": 32}, {"rows": 4, "cols": 8, "dot_width": 128, "k_words": 36}])
def test_top_interface_follows_the_register_map(overrides):
    cfg = HardwareConfig.from_preset("zc706", overrides)
    top = render(cfg, ["hls"])[Path("hls/cpt_gemm.cpp")]
    rm = register_map(cfg)
    pinned = dict(re.findall(r"#pragma HLS INTERFACE s_axilite port=(\w+) bundle=control offset=(0x[0-9a-f]+)", top))
    assert {name: int(off, 16) for name, off in pinned.items()} == {a.name: rm.arg_offset(a.name) for a in arguments(cfg)}
    assert "#pragma HLS INTERFACE s_axilite port=return bundle=control" in top
    assert re.search(r"#pragma HLS INTERFACE m_axi port=mem offset=off bundle=gmem depth=\d+ "
                     rf"max_read_burst_length={cfg.burst_beats} max_write_burst_length={cfg.burst_beats}", top)
    # C argument order is the register map's
    sig = re.search(rf"void {KERNEL_NAME}\((.*?)\) {{", top, re.DOTALL).group(1)
    names = [p.split()[-1].lstrip("*") for p in sig.split(",")]
    assert names == ["mem"] + [a.name for a in arguments(cfg)]


def test_config_header_holds_the_config():
    cfg = HardwareConfig.from_preset("zc706", {"rows": 8, "b_block_cols": 64})
    text = render(cfg, ["hls"])[Path("hls/cpt_config.h")]
    consts = dict(re.findall(r"static const \w+ (\w+) = (\w+);", text))
    for name in ("rows", "cols", "dot_width", "acc_width", "k_words", "b_block_cols", "axi_data_width",
                 "axi_addr_width", "burst_beats", "max_dim"):
        assert int(consts[name]) == getattr(cfg, name), name
    assert int(consts["operand_bits"]) == cfg.operand_bits and int(consts["k_max"]) == cfg.k_max
    assert int(consts["id_word"].rstrip("u"), 16) == cfg.id_word and int(consts["result_bits"]) == RESULT_BITS


@pytest.mark.parametrize("overrides, field, rule", [
    ({"k_words": 4096, "acc_width": 32, "max_bits": 4, "max_grad_bits": 4}, "k_words", "BRAM36"),
    ({"rows": 32, "cols": 32, "dot_width": 256, "k_words": 1, "b_block_cols": 32}, "dot_width", "LUTs"),
    ({"rows": 64, "cols": 1, "dot_width": 1024, "axi_data_width": 32, "k_words": 1, "b_block_cols": 1},
     "dot_width", "banks"),
    ({"clock_mhz": 300.0}, "clock_mhz", "at most 250 MHz"),
    ({"axi_data_width": 128, "dot_width": 128, "k_words": 36}, "axi_data_width", "S_AXI_HP0"),
])
def test_unimplementable_config_is_refused_before_writing(tmp_path, overrides, field, rule):
    cfg = HardwareConfig.from_preset("zc706", overrides)
    with pytest.raises(ConfigError, match=rf"^{field} = .*{re.escape(rule)}"):
        generate(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_refusal_is_one_line(cli):
    proc = cli("generate", "--preset", "zc706", "--set", "clock_mhz=300", "--out", "/nonexistent/never")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "clock_mhz = 300: " in proc.stderr


def test_cosim_vectors_check_themselves(tmp_path):
    """The vectors the HLS tools' csim/cosim use: the testbench passes them, and fails a wrong expectation."""
    cfg = HardwareConfig.from_preset("sim")
    binary = csim.build(cfg)
    vec = tmp_path / "in.bin"
    files = render(cfg, ["hls"])
    vec.write_bytes(files[Path("hls/vectors/cosim_in.bin")])
    expected = files[Path("hls/vectors/cosim_expected.bin")]
    (tmp_path / "good.bin").write_bytes(expected)
    ok = subprocess.run([binary, vec, tmp_path / "out.bin", tmp_path / "good.bin"], capture_output=True, text=True)
    assert ok.returncode == 0 and "all match" in ok.stdout
    res = decode_results((tmp_path / "out.bin").read_bytes())
    assert res.status[0] == 0 and res.status[1] != 0 and res.cycles[0] > 0
    bad = bytearray(expected)
    bad[-100] ^= 1  # one bit of the expected DDR image
    (tmp_path / "bad.bin").write_bytes(bytes(bad))
    fail = subprocess.run([binary, vec, tmp_path / "out2.bin", tmp_path / "bad.bin"], capture_output=True, text=True)
    assert fail.returncode == 1 and "DDR differs" in fail.stderr


def test_csim_command(cli):
    proc = cli("csim", "--preset", "sim", "--quick", "--seed", "4")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.split()[:1] in (["precisions"], ["edges"], ["refused"])]
    assert [r[0] for r in rows] == ["precisions", "edges", "refused"] and all(r[-1] == "bit-exact" for r in rows)
    assert int(rows[0][1]) == 256
