"""bench/bench_twin_cycles.py: the driver's conv calls of each layer, timed by the twin's cycle model and the design's
model; a small run (two images, fw 3) end to end, and its usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def btc(bench_module):
    return bench_module("bench_twin_cycles")


def test_small_run(btc, tmp_path: Path) -> None:
    out = tmp_path / "twc"
    assert btc.main(["--batch", "2", "--fw", "3", "--out", str(out), "--no-progress"]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    # every layer's forward with and without the code sums, every layer but the stem's input gradient, every
    # layer's weight gradient with the code sums, one precision
    assert len(res["rows"]) == 8 + 8 + 7 + 8
    for r in res["rows"]:
        assert r["calls"] >= 1 and r["twin_cycles"] > 0 and r["model_cycles"] > 0
        assert r["images_per_call"] == [2]
    # the sums cost the twin cycles (the stem's C = 3 most), the design's model a little
    by = {(r["layer"], r["op"]): r for r in res["rows"]}
    assert by["stem", "fwd_sums"]["twin_cycles"] > by["stem", "fwd"]["twin_cycles"]
    # the classes' seconds are the rows' cycles times the layers' counts over the clock (integer sums: exact)
    hz = res["clock_mhz"] * 1e6
    for op in ("fwd_sums", "fwd", "dgrad", "wgrad_sums"):
        cycles = sum(r["twin_cycles"] * r["count"] for r in res["rows"] if r["op"] == op)
        assert res["summary"][op]["per_fw_s"]["3"]["twin_cycles"] == pytest.approx(cycles / hz, rel=1e-12)
        assert not res["summary"][op]["cpt_complete"]
    md = out.with_suffix(".md").read_text()
    assert "| s1.conv | dgrad | 3 |" in md and "(fw measured only)" in md


@pytest.mark.parametrize("args, message", [(["--batch", "0"], "--batch 0"), (["--fw", "9"], "--fw 9")])
def test_usage_errors(btc, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as e:
        btc.main([*args, "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "nothing written"
