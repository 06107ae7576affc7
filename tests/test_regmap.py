import json
import runpy
import subprocess
from dataclasses import fields
from pathlib import Path

from cpt_hw.gen import hls_vectors
from cpt_hw.gen.generator import generate
from cpt_hw.hw.calls import Call
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.regmap import ARGUMENTS, INPUTS, arg_words, arguments, doc_table_rows, register_map

# Offsets Vitis HLS assigns to the signature of cpt_gemm when nothing is pinned (cpt_hw.hw.regmap._allocate):
# an input takes data words + 1 (64-bit: lo, hi, reserved; 32-bit: data, reserved), an output
# 2 x (data words + 1): data word(s), control word (ap_vld), then data words + 1 reserved words.
EXPECTED_64 = {
    "CTRL": 0x00, "GIE": 0x04, "IER": 0x08, "ISR": 0x0C,
    "a_lo": 0x10, "a_hi": 0x14, "b_lo": 0x1C, "b_hi": 0x20, "c_lo": 0x28, "c_hi": 0x2C,
    "m": 0x34, "n": 0x3C, "k": 0x44, "a_bits": 0x4C, "b_bits": 0x54, "flags": 0x5C,
    "win_base_lo": 0x64, "win_base_hi": 0x68, "win_limit_lo": 0x70, "win_limit_hi": 0x74,
    "status": 0x7C, "status_ctrl": 0x80,                        # 0x84, 0x88 reserved
    "cycles_lo": 0x8C, "cycles_hi": 0x90, "cycles_ctrl": 0x94,  # 0x98..0xA0 reserved
    "id": 0xA4, "id_ctrl": 0xA8,                                # 0xAC, 0xB0 reserved
    "next_b_lo": 0xB4, "next_b_hi": 0xB8, "next_n": 0xC0, "next_k": 0xC8, "next_b_bits": 0xD0,
}
# The same rule with 32-bit addresses: a, b, c, win_base, win_limit, next_b take data + reserved.
EXPECTED_32 = {
    "CTRL": 0x00, "GIE": 0x04, "IER": 0x08, "ISR": 0x0C,
    "a": 0x10, "b": 0x18, "c": 0x20, "m": 0x28, "n": 0x30, "k": 0x38, "a_bits": 0x40, "b_bits": 0x48,
    "flags": 0x50, "win_base": 0x58, "win_limit": 0x60,
    "status": 0x68, "status_ctrl": 0x6C,                        # 0x70, 0x74 reserved
    "cycles_lo": 0x78, "cycles_hi": 0x7C, "cycles_ctrl": 0x80,  # 0x84..0x8C reserved
    "id": 0x90, "id_ctrl": 0x94,                                # 0x98, 0x9C reserved
    "next_b": 0xA0, "next_n": 0xA8, "next_k": 0xB0, "next_b_bits": 0xB8,
}


def test_vitis_unpinned_layout_64bit_addresses():
    rm = register_map(HardwareConfig.from_preset("zc706"))
    assert {r.name: r.offset for r in rm.registers} == EXPECTED_64
    assert rm.addr_width == 8
    assert rm.arg_offset("k") == 0x44 and rm.arg_offset("cycles") == 0x8C and rm.arg_offset("next_b") == 0xB4


def test_vitis_unpinned_layout_32bit_addresses():
    rm = register_map(HardwareConfig.from_preset("zc706", {"axi_addr_width": 32}))
    assert {r.name: r.offset for r in rm.registers} == EXPECTED_32
    assert rm.addr_width == 8


def test_output_words_follow_the_vitis_rule():
    """Each argument's span is (data words + 1) for an input, 2 x (data words + 1) for an output."""
    for aw in (32, 64):
        rm = register_map(HardwareConfig.from_preset("zc706", {"axi_addr_width": aw}))
        starts = [rm.arg_offset(a.name) for a in arguments(rm.config)] + [None]
        for a, start, nxt in zip(arguments(rm.config), starts, starts[1:]):
            data = a.bits // 32
            want = data + 1 if a.direction == "in" else 2 * (data + 1)
            assert arg_words(a) == want
            if nxt is not None:
                assert nxt - start == 4 * want, (aw, a.name)


def test_layout_carries_what_the_prefetch_size_rule_needs():
    cfg = HardwareConfig.from_preset("zc706")
    assert register_map(cfg).to_dict()["layout"]["b_block_cols"] == cfg.b_block_cols


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


def test_docs_register_table_is_rendered_from_the_argument_list():
    """docs/registers.md's argument rows are exactly doc_table_rows (print them to update the doc:
    python -c 'from cpt_hw.hw.regmap import *; from cpt_hw.hw.config import HardwareConfig as H;
    print(doc_table_rows(H.from_preset("zc706")), end="")')."""
    rows = doc_table_rows(HardwareConfig.from_preset("zc706"))
    doc = (Path(__file__).resolve().parents[1] / "docs" / "registers.md").read_text()
    table = doc[doc.index("| 0x0C | ISR |"):].split("\n\n")[0].splitlines(keepends=True)[1:]
    assert "".join(table) + "\n" == rows


def test_one_argument_list_feeds_the_python_consumers():
    """Call, the vector files and the HLS types derive from ARGUMENTS; addresses are the bus-wide ones."""
    assert [a.name for a in ARGUMENTS if a.address] == ["a", "b", "c", "win_base", "win_limit", "next_b"]
    assert [f.name for f in fields(Call)] == [a.name for a in INPUTS]
    assert hls_vectors.N_ARGS == len(INPUTS) == 15
    call = Call(*range(1, 12))
    assert call.registers() == (*range(1, 12), 0, 0, 0, 0)  # the prefetch hint defaults to 0
    for aw in (32, 64):
        cfg = HardwareConfig.from_preset("zc706", {"axi_addr_width": aw})
        assert [a.bits for a in arguments(cfg) if a.address] == [aw] * 6
        data = register_map(cfg).to_dict()["arguments"]
        assert [(d["name"], d["address"], d["flag"]) for d in data] == [(a.name, a.address, a.flag) for a in ARGUMENTS]
        assert {"default", "table"}.isdisjoint(data[0])  # docs-only fields stay out of regmap.json
