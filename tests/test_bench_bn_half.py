"""bench/bench_bn_half.py: the float16 BatchNorm inputs' change to the gradient, next to CPT's own noise."""

from __future__ import annotations

import pytest
import torch

from cpt_hw import nn as cnn
from cpt_hw.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bbh(bench_module):
    return bench_module("bench_bn_half")


def test_the_rounding_is_far_below_the_noise(bbh):
    """ResNet-20 at init on 8 random images, fw 8: the forward pass is the same and the change the rounding makes
    to the gradient is far below one other draw of the 8-bit errors' noise (measured 6e-4 of it here, the worst
    layer 2e-3; bound 0.05, 25x away or more); the same draw's change lies in between."""
    torch.manual_seed(0)
    model = build_model("resnet20", 10)
    cnn.set_backend(model, "exact")
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    row = bbh.measure(model, x, y, 8, draws=1)
    assert row["loss_float32"] == row["loss_float16"]
    assert 0 < row["bias"] < 0.05 * row["noise"] and row["worst_layer_bias_ratio"] < 0.05
    assert row["bias"] <= row["same_draw"]
    assert set(row["layers"]) == {n for n, p in model.named_parameters() if p.dim() > 1}


@pytest.mark.parametrize("argv, message", [(["--fw", "9"], "--fw 9"), (["--draws", "0"], "--draws"),
                                           (["--data", "/nonexistent.tar.gz"], "no such file"),
                                           (["--model", "mobilenetv2"], "CIFAR ResNet")])
def test_bad_arguments_are_one_line_and_exit_2(bbh, argv, message, capsys):
    assert bbh.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
