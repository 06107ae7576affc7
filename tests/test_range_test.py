"""The precision range test (paper section 3.2) and `--bits auto`."""

from __future__ import annotations

import json

import pytest

from cpt_hw.cli import main

COMMON = ["--model", "digits_cnn", "--batch-size", "32", "--threads", "1", "--no-progress"]


def test_range_test_prints_the_curve_saves_a_plot_and_applies_its_rule(tmp_path, capsys):
    out = tmp_path / "rt"
    assert main(["range-test", *COMMON, "--steps-per-bit", "6", "--threshold", "0.05", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "bits  train acc  change" in text and "bounds: bmin =" in text
    result = json.loads((out / "range_test.json").read_text())
    assert (out / "range_test.png").read_bytes()[:4] == b"\x89PNG"
    bits, acc, gains = result["bits"], result["acc"], result["gains"]
    assert bits == list(range(2, 2 + len(bits))) and result["steps_per_bit"] == 6
    assert result["iters"] == 6 * len(bits)
    assert gains[0] == pytest.approx(acc[0] - 0.1)  # 2 bits is compared with chance (10 classes)
    assert gains[1:] == pytest.approx([b - a for a, b in zip(acc, acc[1:])])
    bmin, bmax = result["bounds"]
    assert bmax == 8  # no accelerator: the paper's static baseline precision
    assert all(g <= 0.05 for g in gains[:-1])  # the test stops at the first precision over the threshold
    if result["converged"]:
        assert gains[-1] > 0.05 and bmin == bits[-1]
    else:
        assert bmin == bmax == 8 and bits[-1] == 8


def test_bits_auto_trains_with_the_range_tests_bounds(tmp_path, capsys):
    run = tmp_path / "auto"
    assert main(["train", *COMMON, "--bits", "auto", "--range-steps", "4", "--iters", "8", "--cycles", "2",
                 "--out", str(run), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    lo, hi = summary["range_test"]["bounds"]
    assert summary["bits"] == f"{lo}-{hi}" and 2 <= lo <= hi == 8
    assert summary["range_test"]["iters"] >= 4 and summary["range_test"]["gbitops"] > 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["kind"] == "range_test" and records[0]["bounds"] == [lo, hi]
    # the range test's cost is part of the run's total
    assert summary["gbitops"] > summary["static_gbitops"] * (lo ** 2 + 16 * lo) / 192 * 0.99


def test_range_test_refuses_precisions_the_accelerator_cannot_run(tmp_path, capsys):
    assert main(["range-test", *COMMON, "--backend", "accel:emu", "--max-bits", "9", "--out", str(tmp_path)]) == 2
    assert "the zc706 accelerator runs 1..8 bits" in capsys.readouterr().err
