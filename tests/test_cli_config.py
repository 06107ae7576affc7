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
