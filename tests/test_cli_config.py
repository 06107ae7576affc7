import json


def test_config_show_json(cli):
    r = cli("config", "show", "--preset", "zc706", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["config"]["part"] == "xc7z045ffg900-2"
    assert data["derived"]["peak_binary_ops_per_cycle"] == 16 * 16 * 64
    assert any(reg["name"] == "id" for reg in data["regmap"]["registers"])


def test_help_on_every_subcommand(cli):
    for args in (["--help"], ["config", "--help"], ["config", "show", "--help"], ["generate", "--help"]):
        r = cli(*args)
        assert r.returncode == 0 and "usage" in r.stdout.lower(), args


def test_bad_input_is_one_line_exit_2(cli):
    for args, fragment in [
        (["config", "show", "--preset", "nope"], "unknown preset 'nope'"),
        (["config", "show", "--set", "rows=0"], "rows = 0: must be in 1..64"),
        (["config", "show", "--set", "bogus=1"], "unknown key 'bogus'"),
        (["config", "show", "--set", "acc_width=12"], "acc_width = 12"),
        (["config", "frobnicate"], "invalid choice"),
    ]:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert fragment in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_unusable_preset_files_are_one_line_exit_2(tmp_path, capsys):
    from cpt_hw.cli import main

    (tmp_path / "latin1.toml").write_bytes(b'name = "caf\xe9"\n')
    (tmp_path / "empty.toml").write_text("")
    for preset, fragment in [(str(tmp_path), "is a directory"), (str(tmp_path / "latin1.toml"), "not UTF-8"),
                             (str(tmp_path / "empty.toml"), "empty (no keys)")]:
        assert main(["config", "show", "--preset", preset]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"cpt-hw: error: config file {preset}: ") and fragment in err
        assert err.count("\n") == 1


def test_generate_with_overrides_writes_a_folder_of_its_own(tmp_path, capsys, monkeypatch):
    from cpt_hw.cli import main
    from cpt_hw.hw.config import HardwareConfig

    monkeypatch.setattr("cpt_hw.gen.generator.build_dir", lambda name: tmp_path / name)
    cfg = HardwareConfig.from_preset("sim", ["rows=2"])
    assert main(["generate", "--preset", "sim", "--set", "rows=2", "--target", "driver"]) == 0
    assert f"generated {tmp_path / cfg.name} (config '{cfg.name}', id 0x{cfg.id_word:08x}" in capsys.readouterr().out
    regmap = json.loads((tmp_path / cfg.name / "driver" / "regmap.json").read_text())
    assert regmap["config"] == cfg.name != "sim" and not (tmp_path / "sim").exists()


def test_every_help_text_is_plain_text(capsys):
    """argparse prints descriptions verbatim: no '%%' escapes, no reStructuredText markup."""
    import pytest

    from cpt_hw.cli import COMMANDS, main

    for name in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([name.replace("_", "-"), "--help"])
        out = capsys.readouterr().out
        assert e.value.code == 0 and "usage:" in out
        assert "%%" not in out and "``" not in out and ":class:" not in out, (name, out)
