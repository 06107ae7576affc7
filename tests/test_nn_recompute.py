"""cpt_hw.nn.recompute: BatchNorm inputs recomputed in backward from the integer layers' codes, bit for bit."""

from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch

from cpt_hw import nn as cnn
from cpt_hw.models.resnet import BasicBlock, CifarResNet
from cpt_hw.nn.recompute import recompute_batchnorm_inputs, stage_selector

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train_step(model: torch.nn.Module, x: torch.Tensor, recompute: bool, fw: int = 3):
    m = copy.deepcopy(model)
    handles = recompute_batchnorm_inputs(m) if recompute else []
    xi = x.clone().requires_grad_()
    with cnn.precision(fw=fw, bw=8, step=1, seed=2):
        y = m(xi)
    y.square().sum().backward()  # not y.sum(): BatchNorm's input gradient would be ~0 after a plain sum
    for h in handles:
        h.remove()
    buffers = [b.clone() for b in m.buffers()]
    return xi.grad, [p.grad for p in m.parameters()], buffers, m


#: accel:emu on zc706 with the convolution engine: the layers keep their input packed (cpt_driver.RowPlaneTensor)
CONV_ENGINE = cnn.parse_backend("accel:emu", config_overrides={"conv_engine": True})


@pytest.mark.parametrize("backend", ["exact", "accel:emu", CONV_ENGINE], ids=["exact", "accel:emu", "conv-engine"])
@pytest.mark.parametrize("fw", [3, 8])
def test_block_trains_bit_identically_with_recomputed_batchnorm_inputs(backend, fw):
    """A residual block with a downsample path (three convolutions, three BatchNorms): input gradient,
    every parameter gradient and the BatchNorm running statistics identical with and without recompute
    (on the convolution engine, the recompute unpacks the codes the layer kept packed)."""
    torch.manual_seed(0)
    block = BasicBlock(8, 16, stride=2)
    cnn.number_layers(block)
    cnn.set_backend(block, backend)
    x = torch.relu(torch.randn(2, 8, 8, 8))
    kept, again = _train_step(block, x, False, fw), _train_step(block, x, True, fw)
    assert torch.equal(kept[0], again[0])
    assert all(torch.equal(a, b) for a, b in zip(kept[1], again[1]))
    assert all(torch.equal(a, b) for a, b in zip(kept[2], again[2]))


def test_recompute_runs_the_forward_gemms_again_on_the_accelerator():
    """Each of the block's three convolutions runs its forward GEMM once more: 9 + 3 calls."""
    torch.manual_seed(0)
    block = BasicBlock(8, 16, stride=2)
    cnn.number_layers(block)
    cnn.set_backend(block, "accel:emu")
    x = torch.relu(torch.randn(2, 8, 8, 8))
    engine = cnn.get_impl(block.conv1.backend).engine
    calls = []
    for recompute in (False, True):
        before = engine.stats()["gemm_calls"]
        _train_step(block, x, recompute)
        calls.append(engine.stats()["gemm_calls"] - before)
    assert calls == [9, 12]


def test_the_batchnorm_input_is_released_after_forward():
    """The conv output a BatchNorm would keep is freed at the end of forward (kept without recompute)."""
    torch.manual_seed(0)
    conv = cnn.QConv2d(4, 8, 3, padding=1, bias=False)
    bn = torch.nn.BatchNorm2d(8)
    model = torch.nn.Sequential(conv, bn)
    cnn.number_layers(model)
    cnn.set_backend(model, "exact")
    x = torch.randn(2, 4, 6, 6)
    alive = {}
    for recompute in (False, True):
        handles = recompute_batchnorm_inputs(model) if recompute else []
        seen = []
        hook = conv.register_forward_hook(lambda mod, inp, out: seen.append(weakref.ref(out)))
        with cnn.precision(fw=4, bw=8, step=1, seed=0):
            y = model(x.clone().requires_grad_())
        hook.remove()
        gc.collect()
        alive[recompute] = seen[0]() is not None
        y.sum().backward()
        for h in handles:
            h.remove()
    assert alive == {False: True, True: False}


def test_a_batchnorm_after_a_float_layer_keeps_its_input():
    bn = torch.nn.BatchNorm2d(3)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), bn)
    recompute_batchnorm_inputs(model)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = model(x)
    assert not y.grad_fn.metadata.get("cpt_hw.recompute")
    y.sum().backward()


def test_stage_selector_names_resnet_stages():
    model = CifarResNet(20)
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    picked = [n for n in names if stage_selector(model, "1")(n)]
    assert picked[0] == "bn1" and all(n == "bn1" or n.split(".")[1] in "012" for n in picked)
    assert len(picked) == 1 + 3 * 2                       # the stem + three blocks of two (no downsample)
    assert len([n for n in names if stage_selector(model, "2,3")(n)]) == 2 * (3 * 2 + 1)
    assert stage_selector(model, "all") is None
    assert not any(stage_selector(model, "none")(n) for n in names)
    with pytest.raises(ValueError, match="expected none, all or stages"):
        stage_selector(model, "4")
    with pytest.raises(ValueError, match="stages apply to the CIFAR ResNets"):
        stage_selector(torch.nn.Sequential(torch.nn.BatchNorm2d(2)), "1")
