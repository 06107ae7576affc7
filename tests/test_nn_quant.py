"""The torch quantizers against the golden model (bit-exact), STE, running ranges, bits = 0, noise streams."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cpt_hw import nn as cnn
from cpt_hw.hw import golden
from cpt_hw.nn import quant
from cpt_hw.nn.context import STREAM_ERROR

# Tiny tensors: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _golden(x: torch.Tensor, bits: int, mn: torch.Tensor, mx: torch.Tensor, **kw) -> np.ndarray:
    return golden.quantize(x.numpy(), bits, mn.numpy(), mx.numpy(), **kw)


def _tricky(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Random values plus exact rounding ties: min + (j + 0.5) s lands on .5 boundaries."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 3
    x.view(-1)[: x.numel() // 4] = torch.arange(x.numel() // 4, dtype=torch.float32) * 0.5 - 2.0
    return x


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8, 12])
def test_deterministic_per_tensor_and_per_channel_match_golden(bits):
    x = _tricky((6, 4, 3, 3), bits)
    for mn, mx in (quant.tensor_range(x), quant.channel_range(x)):
        q = quant.quantize_codes(x, bits, quant.quant_params(mn, mx, bits))
        np.testing.assert_array_equal(q.numpy().astype(np.int64), _golden(x, bits, mn, mx))
        deq = quant.dequantize(q, quant.quant_params(mn, mx, bits))
        np.testing.assert_array_equal(deq.numpy(), golden.dequantize(q.numpy().astype(np.int64), mn.numpy(),
                                                                    mx.numpy(), bits))


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_stochastic_matches_golden_and_is_unbiased(bits):
    x = _tricky((3, 5, 7, 2), 10 + bits)
    mn, mx = quant.tensor_range(x)
    seed = cnn.noise_seed(7, 123, 4, 0, STREAM_ERROR)
    q = quant.quantize_codes(x, bits, quant.quant_params(mn, mx, bits), noise_seed=seed)
    np.testing.assert_array_equal(q.numpy().astype(np.int64), _golden(x, bits, mn, mx, stochastic=True, seed=seed))
    # unbiased: averaging many independent draws recovers x (within the quantizer's range)
    qp = quant.quant_params(mn, mx, bits)
    mean = torch.stack([quant.dequantize(quant.quantize_codes(x, bits, qp, noise_seed=s), qp)
                        for s in range(400)]).mean(0)
    assert (mean - x).abs().max() < 0.15 * qp.scale


def test_range_zero_uses_scale_floor_like_golden():
    x = torch.full((4, 3), 0.75)
    mn, mx = quant.tensor_range(x)
    q = quant.quantize_codes(x, 4, quant.quant_params(mn, mx, 4))
    np.testing.assert_array_equal(q.numpy().astype(np.int64), _golden(x, 4, mn, mx))
    assert quant.quant_params(mn, mx, 4).scale.item() == np.float32(1e-8)


def test_counter_uniform_is_identical_on_torch_and_numpy():
    counter = np.arange(0, 1 << 40, (1 << 40) // 997, dtype=np.int64)
    for seed in (0, 1, 2**63 + 12345):
        t = golden.counter_uniform(seed, torch.from_numpy(counter)).to(torch.float32).numpy()
        n = golden.counter_uniform(seed, counter).astype(np.float32)
        np.testing.assert_array_equal(t, n)


def test_fast_torch_noise_equals_golden_counter_uniform():
    for seed in (0, 12345, 2**40 + 7, 2**64 - 1):
        ref = golden.counter_uniform(seed, np.arange(3 * 5 * 7, dtype=np.int64).reshape(3, 5, 7)).astype(np.float32)
        np.testing.assert_array_equal(quant.uniform_noise(seed, (3, 5, 7), "cpu").numpy(), ref)


def test_fake_quant_is_straight_through():
    x = torch.randn(5, 7, requires_grad=True)
    mn, mx = quant.tensor_range(x)
    y = quant.fake_quant(x, 3, mn, mx)
    assert len(torch.unique(y.detach())) <= 8
    g = torch.randn(5, 7)
    y.backward(g)
    assert torch.equal(x.grad, g)


def test_bits_zero_is_the_float_layer():
    torch.manual_seed(0)
    q = cnn.QConv2d(3, 5, 3, padding=1)
    ref = torch.nn.Conv2d(3, 5, 3, padding=1)
    ref.load_state_dict(q.state_dict(), strict=False)
    x = torch.randn(2, 3, 6, 6)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    with cnn.precision(fw=0, bw=8):  # bw alone quantizes nothing, as the reference
        y1 = q(x1)
    y2 = ref(x2)
    assert torch.equal(y1, y2)
    g = torch.randn_like(y1)
    y1.backward(g), y2.backward(g)
    assert torch.equal(x1.grad, x2.grad) and torch.equal(q.weight.grad, ref.weight.grad)
    assert torch.equal(q.act_min, torch.zeros(())), "fw = 0 must not touch the running range"


def test_forward_quantizes_weights_per_channel_and_input_per_tensor_with_batch_range():
    torch.manual_seed(1)
    layer = cnn.QLinear(6, 4, bias=False)
    x = torch.randn(9, 6)
    with cnn.precision(fw=3, bw=0):
        y = layer(x)
    w = layer.weight.detach()
    w_hat = golden.dequantize(_golden(w, 3, *quant.channel_range(w)), *[t.numpy() for t in quant.channel_range(w)], 3)
    x_hat = golden.dequantize(_golden(x, 3, *quant.tensor_range(x)), *[t.numpy() for t in quant.tensor_range(x)], 3)
    np.testing.assert_allclose(y.detach().numpy(), x_hat @ w_hat.T, rtol=1e-6, atol=1e-6)


def test_running_range_momentum_and_eval_uses_it():
    torch.manual_seed(2)
    layer = cnn.QConv2d(2, 3, 3, bias=False)
    xs = [torch.randn(4, 2, 5, 5) * (i + 1) for i in range(3)]
    rmin = rmax = torch.zeros(())
    with cnn.precision(fw=4, bw=0):
        for x in xs:
            layer(x)
            rmin = rmin * 0.9 + x.min() * (1 - 0.9)
            rmax = rmax * 0.9 + x.max() * (1 - 0.9)
        assert torch.allclose(layer.act_min, rmin) and torch.allclose(layer.act_max, rmax)
        layer.eval()
        x = torch.randn(4, 2, 5, 5) * 5  # wider than the running range: must be clamped to it
        saved = (layer.act_min.clone(), layer.act_max.clone())
        y = layer(x)
        assert torch.equal(layer.act_min, saved[0]) and torch.equal(layer.act_max, saved[1]), \
            "eval must not update the running range"
    x_hat = quant.dequantize(quant.quantize_codes(x, 4, quant.quant_params(layer.act_min, layer.act_max, 4)),
                             quant.quant_params(layer.act_min, layer.act_max, 4))
    w_hat = quant.fake_quant(layer.weight.detach(), 4, *quant.channel_range(layer.weight))
    assert torch.allclose(y, torch.nn.functional.conv2d(x_hat, w_hat), atol=1e-5)


def test_error_quantized_per_tensor_stochastically_and_feeds_both_gemms():
    """Paper numerics: dW = X_hat^T E_hat and dX = E_hat W_hat with E_hat = golden's stochastic codes."""
    torch.manual_seed(3)
    layer = cnn.QLinear(5, 4, bias=True)
    layer.layer_id = 11
    x = torch.randn(8, 5, requires_grad=True)
    with cnn.precision(fw=4, bw=3, step=42, seed=9):
        y = layer(x)
    e = torch.randn(8, 4)
    y.backward(e)
    seed = cnn.noise_seed(9, 42, 11, 0, STREAM_ERROR)
    mn, mx = quant.tensor_range(e)
    e_hat = torch.from_numpy(golden.dequantize(_golden(e, 3, mn, mx, stochastic=True, seed=seed),
                                               mn.numpy(), mx.numpy(), 3))
    x_hat = quant.fake_quant(x.detach(), 4, *quant.tensor_range(x))
    w_hat = quant.fake_quant(layer.weight.detach(), 4, *quant.channel_range(layer.weight))
    assert torch.allclose(layer.weight.grad, e_hat.t() @ x_hat, atol=1e-6)
    assert torch.allclose(x.grad, e_hat @ w_hat, atol=1e-6)
    assert torch.allclose(layer.bias.grad, e_hat.sum(0), atol=1e-6)


def _grads(step: int, seed: int) -> torch.Tensor:
    torch.manual_seed(4)
    layer = cnn.QConv2d(3, 4, 3, padding=1)
    layer.layer_id = 0
    x = torch.randn(2, 3, 5, 5)
    with cnn.precision(fw=4, bw=4, step=step, seed=seed):
        layer(x).pow(2).sum().backward()
    return layer.weight.grad


def test_noise_streams_are_reproducible_and_move_with_step_and_seed():
    assert torch.equal(_grads(5, 1), _grads(5, 1))
    assert not torch.equal(_grads(5, 1), _grads(6, 1))
    assert not torch.equal(_grads(5, 1), _grads(5, 2))
    streams = {cnn.noise_seed(1, s, l, c, k) for s in range(3) for l in range(3) for c in range(2) for k in range(2)}
    assert len(streams) == 36


def test_precision_context_validates_and_restores():
    cnn.set_precision(fw=0, bw=0)
    with cnn.precision(fw=3, bw=8, step=10):
        assert cnn.get_precision() == cnn.Precision(3, 8, 10, 0)
    assert cnn.get_precision().fw == 0
    for bad in (dict(fw=-1), dict(bw=17), dict(fw=2.5), dict(step=-3)):
        with pytest.raises(cnn.PrecisionError):
            cnn.set_precision(**bad)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    g = torch.Generator().manual_seed(99)
    data = [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(4)]
    for t in steps:
        x, y = data[t]
        with cnn.precision(fw=3 + t, bw=6, step=t, seed=5):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_resume_from_state_dict_continues_bit_for_bit():
    """Running ranges live in the state dict and the noise depends on (seed, step, layer): a fresh process
    that loads the checkpoint of step 2 continues exactly as the uninterrupted run."""
    from cpt_hw.models import build_model

    def fresh():
        torch.manual_seed(0)
        m = build_model("digits_cnn")
        return m, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)

    full, opt = fresh()
    _train(full, opt, range(4))
    first, opt1 = fresh()
    _train(first, opt1, range(2))
    ckpt = copy.deepcopy({"model": first.state_dict(), "opt": opt1.state_dict()})
    resumed, opt2 = fresh()
    _train(resumed, opt2, range(1))  # a different history, overwritten by the checkpoint
    resumed.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["opt"])
    _train(resumed, opt2, range(2, 4))
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


# ------------------------------------------------------------------ integer codes (the integer backends' path)
@pytest.mark.parametrize("bits", [1, 3, 8, 12])
@pytest.mark.parametrize("stochastic", [False, True])
def test_quantize_int_equals_quantize_codes_and_golden(bits, stochastic, monkeypatch):
    """The chunked CPU quantizer (uint8/int16 codes) is golden's quantizer bit for bit, across chunk
    boundaries (chunks of 64 elements here), for non-contiguous input, and on the tensor-expression path."""
    monkeypatch.setattr(quant, "_CHUNK", 64)
    x = _tricky((5, 6, 7, 3), 20 + bits).transpose(1, 3)  # non-contiguous: codes follow the logical order
    mn, mx = quant.tensor_range(x)
    qp = quant.quant_params(mn, mx, bits)
    seed = cnn.noise_seed(3, 17, 2, 0, STREAM_ERROR) if stochastic else None
    q = quant.quantize_int(x, bits, qp, seed)
    assert q.dtype == quant.code_dtype(bits) and q.shape == x.shape and q.is_contiguous()
    ref = _golden(x, bits, mn, mx, stochastic=stochastic, seed=seed or 0)
    np.testing.assert_array_equal(q.numpy().astype(np.int64), ref)
    assert torch.equal(q.to(torch.float32), quant.quantize_codes(x, bits, qp, seed))
    per_channel = quant.quant_params(*quant.channel_range(x), bits)  # takes the tensor-expression path
    assert torch.equal(quant.quantize_int(x, bits, per_channel).to(torch.float32),
                       quant.quantize_codes(x, bits, per_channel))


@pytest.mark.parametrize("shape, factor_shape", [((4, 6, 5, 5), (1, 6, 1, 1)), ((7, 6), (6,)), ((3, 2, 6), (6,))])
def test_quantize_int_with_factor_is_the_product_quantized(shape, factor_shape, monkeypatch):
    """Folding per-channel factors into the quantizer: the codes (and the range) of x * factor, never
    materialised; chunks of whole samples (the factor pattern repeats once per sample)."""
    monkeypatch.setattr(quant, "_CHUNK", 100)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(shape, generator=g) * 2
    x.view(-1)[:3] = torch.tensor([0.0, -0.0, float(np.float32(1e-30))])
    factor = torch.rand(factor_shape, generator=g) + 1e-3
    seed = cnn.noise_seed(1, 2, 3, 0, STREAM_ERROR)
    lo, hi = quant.product_range(x, factor)
    ref_lo, ref_hi = quant.tensor_range(x * factor)
    assert torch.equal(lo, ref_lo) and torch.equal(hi, ref_hi)
    qp = quant.quant_params(lo, hi, 6)
    q = quant.quantize_int(x, 6, qp, seed, factor=factor)
    assert torch.equal(q.to(torch.float32), quant.quantize_codes(x * factor, 6, qp, seed))


@pytest.mark.parametrize("shape", [(5, 3, 2, 2), (2, 6, 5, 5), (3, 1, 4, 4), (4, 5, 1, 1)])
@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("with_factor", [False, True])
def test_quantize_int_on_a_channels_last_tensor_keeps_its_layout(shape, stochastic, with_factor, monkeypatch):
    """A channels-last x (a one-group convolution's output or input gradient) is quantized in its memory order:
    the codes come back channels-last, equal to the tensor expression's and to those of x made contiguous (each
    element's noise by its logical index), across chunks of several samples (12-element samples, chunks of 60)
    and of one; shapes where both layouts are one (C = 1, H = W = 1) take the contiguous path."""
    monkeypatch.setattr(quant, "_CHUNK", 64)
    g = torch.Generator().manual_seed(sum(shape))
    x = (torch.randn(shape, generator=g) * 3).contiguous(memory_format=torch.channels_last)
    factor = torch.rand((1, shape[1], 1, 1), generator=g) + 0.5 if with_factor else None
    lo, hi = quant.product_range(x, factor) if with_factor else quant.tensor_range(x)
    if with_factor:   # a channels-last x's per-channel extrema in two stages (quant.channel_extremum)
        assert torch.equal(lo, (x * factor).amin()) and torch.equal(hi, (x * factor).amax())
    qp = quant.quant_params(lo, hi, 5)
    seed = cnn.noise_seed(2, 9, 1, 0, STREAM_ERROR) if stochastic else None
    q = quant.quantize_int(x, 5, qp, seed, factor=factor)
    both = x.is_contiguous()
    assert q.is_contiguous(memory_format=torch.channels_last) and (both or not q.is_contiguous())
    expect = quant.quantize_codes(x * factor if with_factor else x, 5, qp, seed)
    assert torch.equal(q.to(torch.float32), expect)
    assert torch.equal(q, quant.quantize_int(x.contiguous(), 5, qp, seed, factor=factor))


def test_product_range_falls_back_for_factors_that_are_not_positive():
    x = torch.randn(3, 4, 2, 2)
    for bad in (torch.tensor([1.0, -2.0, 0.5, 1.0]), torch.tensor([1.0, 0.0, 0.5, 1.0])):
        f = bad.reshape(1, 4, 1, 1)
        assert all(torch.equal(a, b) for a, b in zip(quant.product_range(x, f), quant.tensor_range(x * f)))
