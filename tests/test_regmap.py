import json
import runpy
import subprocess

from cpt_hw.config import HardwareConfig
from cpt_hw.generator import generate
from cpt_hw.regmap import register_map

# Offsets Vivado HLS assigns to the signature of cpt_gemm (64-bit pointers: lo, hi, reserved;
# 32-bit inputs: data, reserved; outputs: data word(s), control word with ap_vld).
EXPECTED_64 = {
    "CTRL": 0x00, "GIE": 0x04, "IER": 0x08, "ISR": 0x0C,
    "a_lo": 0x10, "a_hi": 0x14, "b_lo": 0x1C, "b_hi": 0x20, "c_lo": 0x28, "c_hi": 0x2C,
    "m": 0x34, "n": 0x3C, "k": 0x44, "a_bits": 0x4C, "b_bits": 0x54, "flags": 0x5C,
    "win_base_lo": 0x64, "win_base_hi": 0x68, "win_limit_lo": 0x70, "win_limit_hi": 0x74,
    "status": 0x7C, "status_ctrl": 0x80, "cycles_lo": 0x84, "cycles_hi": 0x88, "cycles_ctrl": 0x8C,
    "id": 0x90, "id_ctrl": 0x94,
    # the B prefetch hint, appended after the outputs so that no earlier offset moved
    "next_b_lo": 0x98, "next_b_hi": 0x9C, "next_n": 0xA4, "next_k": 0xAC, "next_b_bits": 0xB4,
}


def test_hls_layout_64bit_addresses():
    rm = register_map(HardwareConfig.from_preset("zc706"))
    assert {r.name: r.offset for r in rm.registers} == EXPECTED_64
    assert rm.addr_width == 8
    assert rm.arg_offset("k") == 0x44 and rm.arg_offset("cycles") == 0x84


def test_hls_layout_32bit_addresses():
    rm = register_map(HardwareConfig.from_preset("zc706", {"axi_addr_width": 32}))
    offs = {r.name: r.offset for r in rm.registers}
    assert offs["a"] == 0x10 and offs["b"] == 0x18 and offs["c"] == 0x20 and offs["m"] == 0x28
    assert offs["win_base"] == 0x58 and offs["status"] == 0x68 and offs["status_ctrl"] == 0x6C


def test_exports_agree(tmp_path):
    cfg = HardwareConfig.from_preset("sim")
    out, changed = generate(cfg, tmp_path, ["driver"])
    rm = register_map(cfg)
    data = json.loads((out / "driver/regmap.json").read_text())
    assert {r["name"]: r["offset"] for r in data["registers"]} == {r.name: r.offset for r in rm.registers}
    assert data["id_word"] == cfg.id_word
    mod = runpy.run_path(str(out / "driver/regmap.py"))
    assert mod["OFFSETS"] == {r.name: r.offset for r in rm.registers} and mod["ID_WORD"] == cfg.id_word
    # the C header compiles and its values agree
    prog = tmp_path / "t.c"
    prog.write_text('#include "regmap.h"\n#include <stdio.h>\nint main(void){printf("%x %x %x\\n",'
                    "CPT_GEMM_CONTROL_ADDR_K, CPT_GEMM_CONTROL_ADDR_STATUS, CPT_GEMM_ID_WORD);return 0;}\n")
    subprocess.run(["gcc", "-Wall", "-Werror", "-I", str(out / "driver"), str(prog), "-o", str(tmp_path / "t")],
                   check=True)
    got = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout.split()
    assert [int(x, 16) for x in got] == [rm.offset("k"), rm.offset("status"), cfg.id_word]
    # regeneration with identical content rewrites nothing
    assert generate(cfg, tmp_path, ["driver"])[1] == []
