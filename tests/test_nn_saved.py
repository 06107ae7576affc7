"""cpt_hw.nn.saved: a ReLU whose output an integer layer quantizes keeps one bit per element for backward."""

from __future__ import annotations

import copy

import pytest
import torch

from cpt_hw import nn as cnn
from cpt_hw.models.resnet import BasicBlock
from cpt_hw.nn.saved import keep_sign_only

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("shape, channels_last", [((4, 5, 6), False), ((2, 3, 4, 5), False), ((2, 3, 4, 5), True)])
def test_relu_backward_is_unchanged_and_its_output_is_released(shape, channels_last):
    """The mask gives ReLU's gradient bit for bit; a channels-last output's mask comes back channels-last (the
    bits kept in its memory order), as the gradient it meets."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(shape, generator=g)
    y.view(-1)[:4] = torch.tensor([0.0, -0.0, float("nan"), 1e-38])  # zeros, NaN, a denormal-sized value
    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    grads = []
    for compact in (False, True):
        a = y.clone().requires_grad_()
        z = torch.relu(a * 1.0)
        if compact:
            assert keep_sign_only(z) and not keep_sign_only(z)  # once per ReLU node
            saved = z.grad_fn._saved_result
            assert saved.dtype == z.dtype and set(saved.unique().tolist()) <= {0.0, 1.0}
            assert torch.equal(saved, (~(z.detach() <= 0)).to(z.dtype)) and saved.stride() == z.stride()
        g_out = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
        z.backward(g_out)
        grads.append(a.grad)
    assert torch.equal(grads[0], grads[1])


def test_only_relu_outputs_are_compacted():
    a = torch.randn(3, 4, requires_grad=True)
    assert not keep_sign_only(torch.sigmoid(a))
    assert not keep_sign_only(a)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):  # hooks of its own: left alone
        assert not keep_sign_only(torch.relu(a * 2))


def test_a_layer_compacts_the_relu_that_produced_its_input():
    """After the integer layer's forward, the ReLU node holds the 0/1 mask, not the float output, so
    nothing but the caller's variable keeps that output alive until backward."""
    torch.manual_seed(0)
    layer = cnn.QConv2d(4, 4, 3, padding=1, bias=False)
    cnn.set_backend(layer, "exact")
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    with cnn.precision(fw=4, bw=8, step=0):
        z = torch.relu(x * 1.0)
        out = layer(z)
    saved = z.grad_fn._saved_result
    assert torch.equal(saved, (z > 0).to(z.dtype)) and not torch.equal(saved, z)
    out.sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("backend", ["exact", "accel:emu"])
def test_block_gradients_match_with_and_without_compaction(backend, monkeypatch):
    """A residual block (two layers reading one ReLU output through the downsample path) trains the same
    with the masks as with the float outputs."""
    torch.manual_seed(0)
    block = BasicBlock(8, 16, stride=2)
    cnn.number_layers(block)
    cnn.set_backend(block, backend)
    x = torch.randn(2, 8, 8, 8)

    def run():
        b = copy.deepcopy(block)
        xi = torch.relu(x.clone()).requires_grad_()
        with cnn.precision(fw=3, bw=8, step=1, seed=2):
            y = b(torch.relu(xi * 1.0))
        y.sum().backward()
        return xi.grad, [p.grad for p in b.parameters()]

    with_masks = run()
    monkeypatch.setattr("cpt_hw.nn.integer.keep_sign_only", lambda x: False)
    without = run()
    assert torch.equal(with_masks[0], without[0])
    assert all(torch.equal(a, b) for a, b in zip(with_masks[1], without[1]))
