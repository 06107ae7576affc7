"""Models: sizes as published, the paper's layer choices (which layers are quantized), forward shapes."""

from __future__ import annotations

import pytest
import torch

from cpt_hw import nn as cnn
from cpt_hw.models import MODELS, ModelError, build_model, layer_macs


# Tiny tensors: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Parameter counts of the standard CIFAR networks (He et al. 2016 Table 6: ResNet-20 0.27 M, ResNet-110
# 1.7 M; MobileNetV2 for CIFAR 2.30 M), and conv MACs per sample from cpt-reference-facts.md.
PARAMS = {"resnet20": 272_474, "resnet110": 1_730_714, "mobilenetv2": 2_296_922}
MACS_M = {"resnet74": 168.21, "resnet164": 380.6}


@pytest.mark.parametrize("name", MODELS)
def test_model_structure(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7)
    params = sum(p.numel() for p in model.parameters())
    if name in PARAMS:
        assert params == PARAMS[name] - (10 - 7) * (model.fc.in_features + 1 if hasattr(model, "fc") else 1281)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(isinstance(m, cnn.QConv2d) for m in convs), "every conv (stem, 1x1 shortcuts) quantized"
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and not isinstance(linears[0], cnn.QLinear), "the classifier stays float"
    ids = [m.layer_id for _, m in cnn.quantized_layers(model)]
    assert ids == list(range(len(convs)))
    macs = layer_macs(model)
    assert len(macs) == len(convs)
    if name in MACS_M:
        assert abs(sum(m for _, m in macs) / 1e6 - MACS_M[name]) < 0.05
    with torch.no_grad():
        y = model.eval()(torch.randn(2, *model.input_shape))
    assert y.shape == (2, 7)


def test_resnet_depths_follow_the_papers_counting():
    for depth in (20, 38, 74, 110, 152, 164):
        model = build_model(f"resnet{depth}")
        n = (depth - 2) // 6
        assert len(model.blocks) == 3 * n
        downsample = [b for b in model.blocks if b.downsample is not None]
        assert len(downsample) == 2 and downsample[0].downsample[0].kernel_size == (1, 1)


def test_quantized_training_step_runs_and_changes_weights():
    torch.manual_seed(1)
    model = build_model("resnet20")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.conv1.weight.detach().clone()
    with cnn.precision(fw=3, bw=8, step=0):
        loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
        loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.conv1.weight)


def test_names_and_bad_input():
    assert build_model("ResNet-20").depth == 20 and isinstance(build_model("MobileNet_V2"), torch.nn.Module)
    with pytest.raises(ModelError, match="unknown"):
        build_model("resnet50")
    with pytest.raises(ModelError, match="num_classes"):
        build_model("resnet20", num_classes=1)


def _digits_accuracy_with_cpt_on_exact(seed: int) -> float:
    """Test accuracy of digits_cnn after 3 epochs of CPT 3-8/8 (4 cycles) with every GEMM on the integer path."""
    import math

    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:1400], perm[1400:]
    torch.manual_seed(seed)
    model = build_model("digits_cnn")
    cnn.set_backend(model, "exact")
    lr = 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    total, period = 3 * 1400 // 32, 3 * 1400 // 32 // 4
    for t in range(total):
        opt.param_groups[0]["lr"] = lr * 0.5 * (1 + math.cos(math.pi * t / total))
        idx = tr[(t * 32) % 1376:(t * 32) % 1376 + 32]
        fw = int(np.rint(3 + 2.5 * (1 - math.cos(math.pi * (t % period) / period))))
        with cnn.precision(fw=fw, bw=8, step=t):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad(), cnn.precision(fw=8, bw=8):
        return (model.eval()(x[te]).argmax(1) == y[te]).float().mean().item()


def test_digits_cnn_learns_digits_with_cpt_on_integer_hardware_numerics():
    """The embedded demo's model: CPT 3-8/8 with every GEMM on the integer (exact) path reaches >= 90 %.

    The integer GEMMs are exact, but BatchNorm, the float corrections and SGD are float code whose reductions
    differ between CPUs (oneDNN/BLAS kernels), so another machine follows another trajectory, much as another
    seed does.  So the learning rate decays to zero (cosine) and the run ends converged: at a constant 0.1
    the final accuracy was a draw from 0.887-0.987 over seeds 0-4 (seed 0 failed this test on an AMD EPYC).
    With the decay, ``_digits_accuracy_with_cpt_on_exact(s)`` for s = 0..4 gives 0.960 / 0.977 / 0.962 /
    0.985 / 0.977 (AMD EPYC, one thread, at 624732e; the two float-order changes of the host path before it
    moved each seed by at most 1.0 point): the threshold sits 6.0 points below the worst seed, more than
    twice the 2.5 points the five seeds span.
    """
    acc = _digits_accuracy_with_cpt_on_exact(seed=0)
    assert acc >= 0.90, f"test accuracy {acc:.3f}"
