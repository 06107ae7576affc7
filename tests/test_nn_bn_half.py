"""cpt_hw.nn.saved.keep_batchnorm_inputs_half (``--bn-saved float16``): BatchNorm inputs kept as float16 for
backward -- the forward pass untouched, backward from the rounded copy, the same on every integer backend."""

from __future__ import annotations

import copy

import pytest
import torch

from cpt_hw import nn as cnn
from cpt_hw.models.resnet import BasicBlock
from cpt_hw.nn.recompute import recompute_batchnorm_inputs
from cpt_hw.nn.saved import _pack_half, _unpack_half, keep_batchnorm_inputs_half

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: accel:emu on zc706 with the convolution engine (conv calls), as tests/test_nn_recompute.py uses it.
CONV_ENGINE = cnn.parse_backend("accel:emu", config_overrides={"conv_engine": True})


def _block(backend) -> BasicBlock:
    torch.manual_seed(0)
    block = BasicBlock(8, 16, stride=2)
    cnn.number_layers(block)
    cnn.set_backend(block, backend)
    return block


def _train_step(model: torch.nn.Module, x: torch.Tensor, half: bool, recompute: bool = False, fw: int = 4):
    """(input gradient, parameter gradients, buffers, the BatchNorm nodes' saved inputs as backward sees them)."""
    m = copy.deepcopy(model)
    handles = recompute_batchnorm_inputs(m) if recompute else []
    handles += keep_batchnorm_inputs_half(m) if half else []
    nodes = []
    grab = [bn.register_forward_hook(lambda mod, inp, out: nodes.append(out.grad_fn))
            for bn in m.modules() if isinstance(bn, torch.nn.BatchNorm2d)]
    xi = x.clone().requires_grad_()
    with cnn.precision(fw=fw, bw=8, step=1, seed=2):
        y = m(xi)
    saved = [n._saved_input for n in nodes]   # unpacked: what backward normalises
    y.square().sum().backward()
    for h in handles + grab:
        h.remove()
    return xi.grad, [p.grad for p in m.parameters()], [b.clone() for b in m.buffers()], saved


def test_pack_keeps_float16_and_falls_back_beyond_its_range():
    t = torch.randn(2, 3, 4, 5) * 50
    packed = _pack_half(t)
    assert packed.half.dtype == torch.float16 and packed.half.nbytes == t.nbytes // 2
    assert torch.equal(_unpack_half(packed), t.half().float())
    cl = t.contiguous(memory_format=torch.channels_last)
    assert _unpack_half(_pack_half(cl)).is_contiguous(memory_format=torch.channels_last)
    big = t.clone()
    big[0, 0, 0, 0] = -7e4                                   # beyond float16's 65504: kept as it is
    assert _pack_half(big) is big and _unpack_half(big) is big
    assert _pack_half(t.double()).dtype == torch.float64     # only float32 is halved


@pytest.mark.parametrize("backend", ["exact", "accel:emu", CONV_ENGINE], ids=["exact", "accel:emu", "conv-engine"])
def test_backward_sees_the_rounded_input_and_forward_is_unchanged(backend):
    """Every BatchNorm of a block with a downsample path: backward's input is the float16 rounding of the float32
    one; the running statistics (forward) are identical; the gradients move, but by little (the measured
    relative change is ~1e-3 on these 2 images, the bound 0.05: 50x away)."""
    block, x = _block(backend), torch.relu(torch.randn(2, 8, 8, 8))
    kept, half = _train_step(block, x, False), _train_step(block, x, True)
    assert len(kept[3]) == 3
    assert all(h.dtype == torch.float32 and torch.equal(h, k.half().float()) for k, h in zip(kept[3], half[3]))
    assert all(torch.equal(a, b) for a, b in zip(kept[2], half[2]))
    changed = [(a - b).norm() / a.norm() for a, b in zip(kept[1], half[1])]
    assert max(changed) < 0.05 and (kept[0] - half[0]).norm() / kept[0].norm() < 0.05


def test_the_integer_backends_agree_bit_for_bit_with_half_inputs():
    """exact, accel:emu and the convolution engine: the same gradients with float16 BatchNorm inputs too."""
    x = torch.relu(torch.randn(2, 8, 8, 8))
    runs = [_train_step(_block(b), x, True) for b in ("exact", "accel:emu", CONV_ENGINE)]
    for other in runs[1:]:
        assert torch.equal(runs[0][0], other[0])
        assert all(torch.equal(a, b) for a, b in zip(runs[0][1], other[1]))


def test_a_recomputed_input_stays_recomputed():
    """With --recompute-bn registered first, those BatchNorms keep recomputing (bit-exact float32)."""
    block, x = _block("exact"), torch.relu(torch.randn(2, 8, 8, 8))
    kept, both = _train_step(block, x, False), _train_step(block, x, True, recompute=True)
    assert all(torch.equal(k, b) for k, b in zip(kept[3], both[3]))
    assert all(torch.equal(a, b) for a, b in zip(kept[1], both[1]))


def test_trainer_option_is_checked():
    from cpt_hw.train.config import TrainConfig, TrainConfigError
    assert TrainConfig(model="digits_cnn", iters=1, backend="exact", bn_saved="float16").bn_saved == "float16"
    with pytest.raises(TrainConfigError, match="--bn-saved 'float8'"):
        TrainConfig(model="digits_cnn", iters=1, backend="exact", bn_saved="float8")
    assert TrainConfig(model="digits_cnn", iters=1, backend="torch", bn_saved="float16").bn_saved == "float16"
    with pytest.raises(TrainConfigError, match="not with --fast on"):
        TrainConfig(model="digits_cnn", iters=1, device="cuda", fast="on", bn_saved="float16")
