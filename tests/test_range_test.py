"""The precision range test (paper section 3.2) and `--bits auto`."""

from __future__ import annotations

import json
import os

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


@pytest.mark.parametrize("args, msg", [
    (["--max-bits", "99"], "--max-bits 99: must be in 2..16"),
    (["--max-bits", "1"], "--max-bits 1: must be in 2..16"),
    (["--grad-bits", "20"], "--grad-bits '20'"),
    (["--threshold", "nan"], "--threshold nan: must be an accuracy change in [0, 1)"),
    (["--steps-per-bit", "0"], "--steps-per-bit 0: must be a positive integer"),
])
def test_bad_range_test_flags_are_one_line_naming_the_flag_before_anything_runs(tmp_path, capsys, args, msg):
    out = tmp_path / "rt"
    assert main(["range-test", *COMMON, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and "fw =" not in err and "bw =" not in err
    assert not out.exists()


def test_a_fifo_as_data_is_refused_without_hanging(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = tmp_path / "rt"
    assert main(["range-test", *COMMON, "--dataset", "cifar10", "--data", str(fifo), "--data-cache",
                 str(tmp_path / "cache"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not a folder or a regular file" in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_the_help_constants_are_the_packages():
    from cpt_hw.cli import range_test_cmd
    from cpt_hw.nn.context import MAX_BITS
    from cpt_hw.train.range_test import START_BITS

    assert (range_test_cmd.START_BITS, range_test_cmd.MAX_BITS) == (START_BITS, MAX_BITS)
