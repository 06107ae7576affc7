"""How the driver learns the register map and sizes: regmap.json (board), a HardwareConfig, or a name."""

import json

import numpy as np
import pytest

from cpt_driver import Accelerator, DeviceSpec, SpecError, resolve_spec
from cpt_hw.gen.generator import generate
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.regmap import register_map

SIM = HardwareConfig.from_preset("sim")


def test_sources_agree(tmp_path, monkeypatch):
    out, _ = generate(SIM, tmp_path / "build" / "sim", ["driver"])
    path = out / "driver" / "regmap.json"
    from_cfg = resolve_spec(SIM)
    from_json = resolve_spec(str(path))
    from_dict = resolve_spec(json.loads(path.read_text()))
    monkeypatch.setenv("CPT_HW_ROOT", str(tmp_path))
    from_name = resolve_spec("sim")
    assert from_name.source == str(path)
    assert from_cfg == from_json == from_dict == from_name  # source and hw_config are not compared
    assert from_cfg.hw_config is SIM and from_json.hw_config is None
    rm = register_map(SIM)
    assert dict(from_json.registers) == {r.name: r.offset for r in rm.registers}
    assert from_json.arg_words["a"] == (rm.offset("a_lo"), rm.offset("a_hi"))
    assert (from_json.k_max, from_json.max_dim, from_json.word_bytes, from_json.cols) == (
        SIM.k_max, SIM.max_dim, SIM.word_bytes, SIM.cols)


def test_name_falls_back_to_the_preset(tmp_path, monkeypatch):
    monkeypatch.setenv("CPT_HW_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    spec = resolve_spec("zc706")
    assert spec.id_word == HardwareConfig.from_preset("zc706").id_word
    with pytest.raises(SpecError, match="unknown preset 'nope'"):  # the driver's own error type
        resolve_spec("nope")


def test_bad_register_maps(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        resolve_spec(str(tmp_path / "regmap.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(SpecError, match="malformed JSON"):
        resolve_spec(str(bad))
    d = register_map(SIM).to_dict()
    d["registers"] = [r for r in d["registers"] if r["arg"] != "win_limit"]
    del d["layout"]["k_max"]
    with pytest.raises(SpecError, match="register map lacks k_max, win_limit"):
        resolve_spec(d)
    with pytest.raises(SpecError, match="malformed register map"):
        resolve_spec({"registers": [{"name": "CTRL"}]})
    with pytest.raises(SpecError, match="expected a HardwareConfig"):
        resolve_spec(42)


def test_32_bit_addresses_end_to_end():
    cfg = SIM.replace(axi_addr_width=32)
    spec = resolve_spec(cfg)
    assert spec.arg_words["a"] == (register_map(cfg).offset("a"),)
    with Accelerator("emu", config=cfg) as acc:
        rng = np.random.default_rng(0)
        a, b = rng.integers(0, 8, (9, 100)), rng.integers(0, 8, (100, 5))
        np.testing.assert_array_equal(acc.gemm(a, b, 3, 3), a @ b)
        assert acc.pool.arena.phys + acc.pool.arena_bytes < 1 << 32


def test_decoders():
    spec = resolve_spec(SIM)
    assert spec.decode_status(0) == "none"
    assert spec.decode_status(0b1001 | 1 << 12) == ("ERR_DIM (M, N or K is zero, M or N > max_dim, or K > k_max "
                                                    "(with PREFETCH_B: next_n or next_k too)), "
                                                    "ERR_WINDOW (an operand, result or prefetch byte range lies "
                                                    "outside [win_base, win_limit)), unknown bits 0x1000")
    assert spec.decode_ctrl(0x5) == ("CTRL=0x00000005 (ap_start=1 ap_done=0 ap_idle=1 ap_ready=0 auto_restart=0 "
                                     "interrupt=0)")
    assert isinstance(spec, DeviceSpec)
