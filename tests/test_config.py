import os
import re

import pytest

from cpt_hw.errors import ConfigError
from cpt_hw.hw.config import HardwareConfig, available_presets, derived_name, parse_overrides


def test_presets_load_and_validate():
    assert {"zc706", "sim"} <= set(available_presets())
    for name in available_presets():
        cfg = HardwareConfig.from_preset(name)
        assert cfg.name == name


def test_zc706_derived_figures():
    cfg = HardwareConfig.from_preset("zc706")
    assert cfg.part == "xc7z045ffg900-2" and cfg.board.startswith("xilinx.com:zc706:part0")
    assert cfg.peak_binary_ops_per_cycle == cfg.rows * cfg.cols * cfg.dot_width
    assert cfg.peak_binary_tops == pytest.approx(cfg.peak_binary_ops_per_cycle * cfg.clock_mhz * 1e6 / 1e12)
    assert cfg.k_max == cfg.k_words * cfg.dot_width
    # the accumulator holds K_max x (2^b - 1)^2 without overflow, and one more would not fit
    worst = (2**cfg.operand_bits - 1) ** 2
    assert cfg.k_max_accumulator * worst <= 2 ** (cfg.acc_width - 1) - 1
    assert (cfg.k_max_accumulator + 1) * worst > 2 ** (cfg.acc_width - 1) - 1
    assert cfg.k_max <= cfg.k_max_accumulator
    assert cfg.buffer_bytes * 8 == cfg.a_buffer_bits + cfg.b_buffer_bits


def test_overrides_and_id_word():
    base = HardwareConfig.from_preset("zc706")
    cfg = HardwareConfig.from_preset("zc706", ["rows=8", "clock_mhz=150"])
    assert cfg.rows == 8 and cfg.clock_mhz == 150.0
    assert cfg.id_word != base.id_word
    assert HardwareConfig.from_preset("zc706").id_word == base.id_word  # stable
    assert parse_overrides(["name=abc", "rows = 4"]) == {"name": "abc", "rows": 4}


@pytest.mark.parametrize("key, value, fragment", [
    ("rows", 0, "rows = 0: must be in 1..64"),
    ("cols", 65, "cols = 65"),
    ("rows", 2.5, "rows = 2.5: must be an integer"),
    ("rows", True, "must be an integer"),
    ("dot_width", 12, "dot_width = 12: must be a multiple of 8"),
    ("dot_width", 32, "multiple of axi_data_width"),
    ("acc_width", 16, "acc_width = 16: cannot hold K_max"),
    ("acc_width", 40, "acc_width = 40"),
    ("max_bits", 0, "max_bits = 0"),
    ("axi_data_width", 48, "axi_data_width = 48"),
    ("burst_beats", 3, "burst_beats = 3"),
    ("b_block_cols", 24, "b_block_cols = 24: must be a multiple of cols"),
    ("part", "xc7vx690t", "part = 'xc7vx690t': unknown part"),
    ("board", "foo", "board = 'foo'"),
    ("clock_mhz", 1000, "clock_mhz = 1000.0"),
    ("name", "Bad Name", "name = 'Bad Name'"),
])
def test_bad_values_name_field_value_and_rule(key, value, fragment):
    with pytest.raises(ConfigError) as e:
        HardwareConfig.from_preset("zc706", {key: value})
    assert fragment in str(e.value)


def test_contradictory_values():
    with pytest.raises(ConfigError, match="cols x 32 must be a multiple of axi_data_width"):
        HardwareConfig.from_preset("zc706", {"cols": 1})


def test_unknown_preset_key_and_malformed_toml(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        HardwareConfig.from_preset("nope")
    with pytest.raises(ConfigError, match="unknown key 'speed'"):
        HardwareConfig.from_preset("zc706", ["speed=3"])
    bad = tmp_path / "bad.toml"
    bad.write_text("rows = [\n")
    with pytest.raises(ConfigError, match="malformed TOML"):
        HardwareConfig.from_preset(str(bad))
    with pytest.raises(ConfigError, match="--set 'rows': expected key=value"):
        HardwareConfig.from_preset("zc706", ["rows"])


def test_frozen():
    cfg = HardwareConfig.from_preset("sim")
    with pytest.raises(Exception):
        cfg.rows = 4  # type: ignore[misc]


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p, "is a directory, not a .toml file"),
    (lambda p: os.mkfifo(p / "fifo.toml") or p / "fifo.toml", "not a regular file"),
    (lambda p: (p / "latin1.toml").write_bytes(b'name = "caf\xe9"\n') and p / "latin1.toml",
     "not UTF-8 text (byte 0xe9 at offset 11)"),
    (lambda p: (p / "empty.toml").write_text("# nothing\n") and p / "empty.toml", "empty (no keys)"),
    (lambda p: (p / "noname.toml").write_text("rows = 8\n") and p / "noname.toml", "no 'name' key"),
])
def test_unusable_config_files_name_the_file(tmp_path, make, fragment):
    path = make(tmp_path)
    with pytest.raises(ConfigError) as e:
        HardwareConfig.from_preset(str(path))
    assert str(e.value).startswith(f"config file {path}") and fragment in str(e.value)


def test_overrides_that_change_the_design_give_it_a_name_and_id_of_its_own():
    base = HardwareConfig.from_preset("zc706")
    rows8 = HardwareConfig.from_preset("zc706", ["rows=8"])
    assert re.fullmatch(r"zc706-[0-9a-f]{6}", rows8.name) and rows8.id_word != base.id_word
    assert HardwareConfig.from_preset("zc706", {"rows": 8}).name == rows8.name  # stable across runs and forms
    assert HardwareConfig.from_preset("zc706", ["rows=4"]).name not in (rows8.name, "zc706")
    assert HardwareConfig.from_preset("zc706", ["rows=16"]) == base  # no change: still the preset
    assert HardwareConfig.from_preset("zc706", ["rows=8", "name=small"]).name == "small"


def test_derived_names_fit_the_name_rule():
    assert len(derived_name("x" * 40, {"rows": 8})) == 40
    assert derived_name("zc706", {"rows": 8, "cols": 8}) == derived_name("zc706", {"cols": 8, "rows": 8})
