"""`make demo` / `cpt-hw demo`: hardware generated, CPT 3-8/8 trained through the emulated accelerator."""

from __future__ import annotations

import re

from conftest import ROOT, run_cli


def test_makefile_demo_runs_the_demo_command():
    recipe = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "-m cpt_hw demo" in recipe


def test_demo_trains_on_the_emulated_zc706_to_90_percent(tmp_path):
    proc = run_cli("demo", "--out", str(tmp_path), "--no-progress", timeout=600, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "[1/3] generated" in out and (ROOT / "build" / "zc706" / "driver" / "regmap.json").is_file()
    assert "--backend accel:emu" in out and "--bits 3-8 --grad-bits 8" in out
    acc = float(re.search(r"test accuracy ([\d.]+) %", out).group(1))
    # Learned, so it varies with the CPU's float reductions as with the seed: `cpt-hw train` with the demo's
    # options (the [2/3] line) and --seed 0..4 gave 98.33 / 98.33 / 97.78 / 98.33 / 98.89 % on an AMD EPYC
    # (at 624732e), so 90 % sits 7.8 points below the worst seed, seven times the 1.1 points they span.
    assert acc >= 90.0, out
    saving = float(re.search(r"saving ([\d.]+) %", out).group(1))
    assert 30.0 < saving < 45.0  # CPT 3-8/8 against static 8/8 (36.7 % over the paper's 64k-iteration run)
    cycles = int(re.search(r"for ([\d,]+) cycles", out).group(1).replace(",", ""))
    assert cycles > 0 and "accelerator time (modelled, zc706 at 200 MHz)" in out
    for png in ("bits_accuracy.png", "accuracy_gbitops.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
