"""BitOPs: MAC counting by hooks, the per-step formula, and the paper's Table 2 (cpt-reference-facts.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cpt_hw.cli import main
from cpt_hw.models import build_model
from cpt_hw.nn import QConv2d, QLinear, precision
from cpt_hw.schedules import CyclicPrecision, PrecisionSchedule
from cpt_hw.train import bitops


def _fp(model, x):
    with precision(0, 0):
        model(x)


def test_hooks_count_conv_groups_strides_and_skip_the_float_fc():
    model = torch.nn.Sequential(QConv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                QConv2d(8, 8, 3, stride=2, padding=1, groups=8), QConv2d(8, 16, 1),
                                torch.nn.Flatten(), QLinear(16 * 8 * 8, 10), torch.nn.Linear(10, 10))
    layers = bitops.count_macs(model, (3, 16, 16), run=_fp)
    assert [layer.macs for layer in layers] == [16 * 16 * 8 * 27, 8 * 8 * 8 * 9, 8 * 8 * 16 * 8, 10 * 1024]
    assert [layer.name for layer in layers] == ["0", "2", "3", "5"]
    paper = bitops.count_macs(model, (3, 16, 16), run=_fp, convention="paper")
    # the profiler's count adds 2 ops per BN output element and the float FC
    assert sum(x.macs for x in paper) == sum(x.macs for x in layers) + 2 * 8 * 16 * 16 + 100
    assert model.training  # the count does not leave the model in eval mode


def test_resnet74_conv_macs_match_the_facts_file():
    layers = bitops.count_macs(build_model("resnet74", 10), (3, 32, 32), run=_fp)
    assert sum(x.macs for x in layers) == pytest.approx(168.21e6, abs=0.01e6)
    assert len(layers) == 75  # 73 3x3 convs + 2 1x1 downsample convs; the FC is float


def test_step_formula_and_meter_agree_with_the_schedule_sum():
    assert bitops.step_bitops(1000, 4, 3, 8) == 4 * 1000 * (9 + 48)
    assert bitops.step_bitops(10, 1, 0, 0) == 10 * 3 * 32 * 32  # full precision counts as 32-bit
    sched = PrecisionSchedule.build("cpt", (3, 8), (6, 8), 640, 4)
    meter = bitops.BitopsMeter(777)
    for t in range(640):
        meter.add(32, *sched.at(t))
    assert meter.total == bitops.schedule_bitops(777, 32, sched, 640)


@pytest.mark.parametrize("bits, grad, static, saving", [
    ((3, 8), (8, 8), (8, 8), 0.367), ((3, 6), (6, 6), (6, 6), 0.300),
    ((5, 8), (8, 8), (8, 8), 0.232), ((4, 6), (6, 6), (6, 6), 0.207)])
def test_cpt_savings_against_static_match_the_facts_file(bits, grad, static, saving):
    layers = [bitops.LayerMacs("x", "QConv2d", 1000)]
    rep = bitops.report(layers, 128, PrecisionSchedule.build("cpt", bits, grad, 64000, 32), 64000)
    assert rep.static_bits == static
    assert rep.saving == pytest.approx(saving, abs=0.0006)


def _cli_bitops(capsys, *args: str) -> dict:
    assert main(["bitops", "--dataset", "cifar10", "--iters", "64000", "--batch-size", "128", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("model, bits, static_paper, cpt_paper", [
    ("resnet74", "3-8", 2.67e8, 1.68e8),
    ("resnet164", "3-8", 6.04e8, 3.80e8),
    ("mobilenetv2", "4-8", 1.49e8, 1.04e8)])
def test_table2_reproduced_within_2_percent(capsys, model, bits, static_paper, cpt_paper):
    static = _cli_bitops(capsys, "--model", model, "--schedule", "static", "--bits", "8", "--grad-bits", "8")
    cpt = _cli_bitops(capsys, "--model", model, "--schedule", "cpt", "--bits", bits, "--grad-bits", "8",
                      "--cycles", "32")
    assert static["gbitops"] == pytest.approx(static_paper, rel=0.02)
    assert cpt["gbitops"] == pytest.approx(cpt_paper, rel=0.02)
    assert cpt["static_gbitops"] == pytest.approx(static["gbitops"])
    # the GEMM-only count (what the accelerator executes) is below the paper's profiler count
    assert cpt["gemm_gbitops"] < cpt["gbitops"] and cpt["count"] == "paper"


def test_resnet74_gemm_count_is_the_facts_files_arithmetic(capsys):
    cpt = _cli_bitops(capsys, "--model", "resnet74", "--bits", "3-8", "--count", "gemm")
    assert cpt["gbitops"] == pytest.approx(1.675e8, rel=5e-4)
    assert cpt["static_gbitops"] == pytest.approx(2.646e8, rel=5e-4)
    assert cpt["saving"] == pytest.approx(0.367, abs=5e-4)
    # exact: MACs x batch x sum over iterations of (b^2 + 16 b)
    b = CyclicPrecision(3, 8, 32, 64000).bits_array(np.arange(64000))
    assert cpt["gbitops"] == pytest.approx(cpt["macs_per_sample"] * 128 * int(np.sum(b * b + 16 * b)) / 1e9,
                                           rel=1e-12)


def test_epochs_use_the_trainers_epoch_length(capsys):
    out = _cli_bitops(capsys, "--model", "resnet20", "--schedule", "static", "--bits", "8")
    assert out["iters"] == 64000
    assert main(["bitops", "--model", "resnet20", "--epochs", "2", "--batch-size", "128", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["iters"] == 2 * (50000 // 128)


@pytest.mark.parametrize("args, msg", [
    (["--model", "resnet75", "--iters", "100"], "model 'resnet75'"),
    (["--model", "resnet20", "--iters", "10"], "num_cycles (--cycles) = 32"),
    (["--model", "resnet20", "--iters", "10", "--bits", "8-3"], "--bits '8-3'"),
    (["--model", "resnet20", "--iters", "0"], "--iters 0"),
    (["--model", "resnet20", "--iters", "640", "--bits", "3-20"],
     "--bits '3-20': at most 16 bits, the quantizers' limit (0 = full precision)"),
    (["--model", "resnet20", "--iters", "640", "--grad-bits", "17"], "--grad-bits '17': at most 16 bits"),
    (["--model", "resnet20", "--iters", "99999999999999999999"],
     "--iters 99999999999999999999: more than the 10,000,000 iterations"),
    (["--model", "resnet20", "--epochs", "100000", "--batch-size", "128"],
     "--epochs 100000 (39000000 iterations): more than the 10,000,000"),
])
def test_bad_arguments_are_one_line_exit_2(capsys, args, msg):
    assert main(["bitops", *args]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_float_notation_for_iters_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bitops", "--model", "resnet20", "--iters", "1e10"])
    assert e.value.code == 2 and "--iters: invalid int value: '1e10'" in capsys.readouterr().err


def test_schedule_bitops_in_chunks_equals_the_whole_sum(monkeypatch):
    sched = PrecisionSchedule.build("cpt", (3, 8), (6, 8), 64000, 32)
    fw, bw = (np.where(a == 0, 32, a) for a in sched.arrays(64000))
    whole = 5 * 7 * int(np.sum(fw * fw + 2 * fw * bw))
    monkeypatch.setattr(bitops, "_CHUNK", 999)  # 65 chunks, the last one partial
    assert bitops.schedule_bitops(7, 5, sched, 64000) == whole
