"""Backends against each other: exact (integer, golden GEMMs) vs torch hardware numerics vs float64
formulas; exact vs accel (emu) bit-identical; backend selection."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cpt_hw import nn as cnn
from cpt_hw.hw import golden
from cpt_hw.models.resnet import BasicBlock
from cpt_hw.nn import quant
from cpt_hw.nn.context import STREAM_ERROR, STREAM_SCALED_ERROR
from cpt_hw.nn.integer import ExactEngine, _IntegerGemm

# Tiny tensors: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(model: torch.nn.Module, backend: str, x: torch.Tensor, fw: int, bw: int, steps: int = 1):
    """Train-mode forward + backward under ``backend``; returns output, input grad, parameter grads."""
    model = copy.deepcopy(model)
    cnn.set_backend(model, backend)
    outs = []
    for step in range(steps):
        model.zero_grad()
        xi = x.clone().requires_grad_()
        with cnn.precision(fw=fw, bw=bw, step=step, seed=3):
            y = model(xi)
        y.backward(torch.linspace(-1, 1, y.numel()).reshape(y.shape) * y.detach().abs().mean())
        outs.append((y.detach(), xi.grad, {n: p.grad.clone() for n, p in model.named_parameters()}))
    return outs[-1]


def _assert_close(a, b, rel: float) -> None:
    ya, gxa, pa = a
    yb, gxb, pb = b
    for u, v, what in [(ya, yb, "output"), (gxa, gxb, "input grad")] + [(pa[k], pb[k], k) for k in pa]:
        tol = rel * max(float(v.abs().max()), 1e-12)
        assert (u - v).abs().max() <= tol, f"{what}: max diff {(u - v).abs().max():.3g} > {tol:.3g}"


def _block(downsample: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    block = BasicBlock(8, 16, stride=2) if downsample else BasicBlock(8, 8)
    cnn.number_layers(block)
    return block


@pytest.mark.parametrize("downsample", [True, False])
def test_resnet_block_torch_hardware_matches_exact(downsample):
    block = _block(downsample)
    x = torch.randn(4, 8, 8, 8)
    _assert_close(_run(block, "torch:hardware", x, 4, 6), _run(block, "exact", x, 4, 6), rel=2e-3)


def test_paper_and_hardware_numerics_share_forward_and_weight_gradient():
    torch.manual_seed(5)
    layer = cnn.QConv2d(4, 6, 3, padding=1, bias=False)
    x = torch.randn(3, 4, 6, 6)
    paper, hw = _run(layer, "torch", x, 3, 8), _run(layer, "torch:hardware", x, 3, 8)
    assert torch.equal(paper[0], hw[0]) and torch.equal(paper[2]["weight"], hw[2]["weight"])
    assert not torch.equal(paper[1], hw[1])  # the input gradients differ by design
    rel = (paper[1] - hw[1]).norm() / paper[1].norm()
    # One step, no training: rel is 0.0076 here and 0.0065-0.0103 over torch seeds 5-9, >= 9x under 0.1.
    assert rel < 0.1, f"hardware input gradient strays {rel:.3f} from the paper's at 8-bit errors"


@pytest.mark.parametrize("geometry", [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=1, stride=2),
                                      dict(kernel_size=3, padding=1, groups=4), dict(kernel_size=3, padding=2,
                                                                                    dilation=2)])
def test_exact_equals_float64_formulas(geometry):
    """exact: forward = conv(X_hat, W_hat); dW = conv_weight(X_hat, E_hat); dX = hardware formula."""
    torch.manual_seed(6)
    layer = cnn.QConv2d(4, 8, bias=True, **geometry)
    layer.layer_id = 2
    cnn.set_backend(layer, "exact")
    x = torch.randn(2, 4, 7, 7, requires_grad=True)
    with cnn.precision(fw=5, bw=4, step=1, seed=8):
        y = layer(x)
    e = torch.randn_like(y)
    y.backward(e)
    d = torch.float64
    x_hat = quant.fake_quant(x.detach(), 5, *quant.tensor_range(x)).to(d)
    qpw = quant.quant_params(*quant.channel_range(layer.weight), 5)
    qw = quant.quantize_codes(layer.weight.detach(), 5, qpw)
    w_hat = quant.dequantize(qw, qpw).to(d)
    ops = cnn.layers.ConvOps.of(layer)
    np.testing.assert_allclose(y.detach(), ops.forward(x_hat, w_hat, layer.bias.detach().to(d)), rtol=1e-5, atol=1e-5)
    e_hat = quant.dequantize(*quant.quantize_error(e, 4, cnn.noise_seed(8, 1, 2, 0, STREAM_ERROR))).to(d)
    np.testing.assert_allclose(layer.weight.grad, ops.grad_weight(x_hat, e_hat, w_hat.shape), rtol=1e-5, atol=1e-5)
    s_ref = qpw.scale.max()
    scaled = e * (qpw.scale / s_ref).reshape(1, -1, 1, 1)
    e_t = quant.dequantize(*quant.quantize_error(scaled, 4, cnn.noise_seed(8, 1, 2, 0, STREAM_SCALED_ERROR))).to(d)
    o = (qpw.zero_point.to(d) / qpw.scale.to(d)).expand_as(w_hat)
    dx = ops.grad_input(e_t, qw.to(d) + o, x.shape) * s_ref.to(d)
    np.testing.assert_allclose(x.grad, dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.bias.grad, e_hat.sum((0, 2, 3)), rtol=1e-5, atol=1e-5)


def test_linear_torch_hardware_matches_exact():
    torch.manual_seed(7)
    layer = torch.nn.Sequential(cnn.QLinear(12, 9), torch.nn.ReLU(), cnn.QLinear(9, 5, bias=False))
    cnn.number_layers(layer)
    x = torch.randn(3, 4, 12)
    _assert_close(_run(layer, "torch:hardware", x, 3, 5), _run(layer, "exact", x, 3, 5), rel=2e-3)


def test_exact_engine_is_golden_gemm():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 8, (5, 70)), rng.integers(0, 32, (70, 3))
    np.testing.assert_array_equal(ExactEngine().gemm(a, b, 3, 5), golden.gemm_bitplanes(a, b, 3, 5))
    with pytest.raises(ValueError):
        ExactEngine().gemm(a, b, 2, 5)  # codes that do not fit their bits are refused


def _accel_available() -> bool:
    try:
        from cpt_driver import Accelerator  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _accel_available(), reason="cpt_driver.Accelerator (host driver branch) not present")
@pytest.mark.parametrize("downsample", [True, False])
def test_resnet_block_accel_emu_is_bit_identical_to_exact(downsample):
    block = _block(downsample)
    x = torch.randn(4, 8, 8, 8)
    ex, ac = _run(block, "exact", x, 3, 8, steps=2), _run(block, "accel:emu", x, 3, 8, steps=2)
    assert torch.equal(ex[0], ac[0]) and torch.equal(ex[1], ac[1])
    for k in ex[2]:
        assert torch.equal(ex[2][k], ac[2][k]), k


@pytest.mark.skipif(not _accel_available(), reason="cpt_driver.Accelerator (host driver branch) not present")
def test_resnet_block_on_the_twins_limits_is_bit_identical_to_exact():
    """zc706 with the engine on an emulated device that refuses what the Verilog twin refuses: a stage-2 block's
    weight gradients of 16 images are refused (the twin's formers take 8 a call, their banks full of 8-bit errors),
    the driver halves its chunks, bisects up to the limit on the next calls (12, 10 and 9 refused), and the block's
    outputs and gradients are exact's bit for bit.  The forward calls and the weight gradients write their code
    sums: the first weight gradient's SUMS call of 16 images is refused with its retry without SUMS (the geometry's
    own refusal: whether SUMS is refused stays open), the 8 images' SUMS call is taken, and the bisection's
    refusals since are SUMS calls."""
    torch.manual_seed(0)
    block = BasicBlock(32, 32)
    cnn.number_layers(block)
    x = torch.randn(16, 32, 16, 16)
    spec = cnn.parse_backend("accel:emu", config="zc706", driver_options={"twin_limits": True},
                             config_overrides={"conv_engine": True})
    ex, tw = _run(block, "exact", x, 3, 8, steps=2), _run(block, spec, x, 3, 8, steps=2)
    assert torch.equal(ex[0], tw[0]) and torch.equal(ex[1], tw[1])
    for k in ex[2]:
        assert torch.equal(ex[2][k], tw[2][k]), k
    acc = cnn.get_impl(spec).engine.accelerator
    refused = [r for r in acc.history if r.op == "wgrad" and r.status]
    sums = acc.spec.flag("SUMS")
    assert [r.k // 256 for r in refused if not r.flags & sums] == [16]
    assert [r.k // 256 for r in refused if r.flags & sums] == [16, 12, 10, 9]
    assert set(acc.engine.wgrad_limits.values()) == {(8, 9)} and acc.engine.sums == {"fwd": True, "wgrad": True}


@pytest.mark.skipif(not _accel_available(), reason="cpt_driver.Accelerator (host driver branch) not present")
def test_a_layer_on_the_convolution_engine_keeps_its_input_packed(monkeypatch):
    """With the engine a layer packs its input codes once: the forward call and the weight gradient's call copy
    those bytes (pack_tensor_into runs for x once, and once per error tensor), the layer keeps them instead of
    the codes (the packed bytes unpack to exact's codes), and outputs and gradients are exact's bit for bit.
    Without the engine (interface 3: lowered calls) it keeps the codes."""
    from cpt_driver import RowPlaneTensor, rowplanes

    packed = []
    real = rowplanes.pack_tensor_into
    monkeypatch.setattr(rowplanes, "pack_tensor_into", lambda q, *a: (packed.append(q.shape), real(q, *a))[1])
    torch.manual_seed(3)
    layer = cnn.QConv2d(6, 4, 3, padding=1, bias=False)
    cnn.number_layers(layer)
    x = torch.randn(3, 6, 7, 9)
    engine = cnn.parse_backend("accel:emu", config_overrides={"conv_engine": True})
    ex, ac = _run(layer, "exact", x, 5, 8), _run(layer, engine, x, 5, 8)
    assert torch.equal(ex[0], ac[0]) and torch.equal(ex[1], ac[1])
    assert all(torch.equal(ex[2][k], ac[2][k]) for k in ex[2])
    assert packed == [(3, 6, 7, 9), (3, 4, 7, 9), (3, 4, 7, 9)]   # x once; the errors of dgrad and wgrad
    nodes = {}
    for spec in ("exact", engine, "accel:emu"):
        model = copy.deepcopy(layer)   # the same activation range for each
        cnn.set_backend(model, spec)
        with cnn.precision(fw=5, bw=8, step=0, seed=0):
            nodes[spec if isinstance(spec, str) else "engine"] = model(x.clone().requires_grad_()).grad_fn
    codes = nodes["exact"].saved_tensors[0]
    assert codes.shape == x.shape and nodes["exact"].packed_x is None
    assert nodes["accel:emu"].packed_x is None and torch.equal(nodes["accel:emu"].saved_tensors[0], codes)
    node = nodes["engine"]
    assert isinstance(node.packed_x, RowPlaneTensor) and node.packed_x.bits == 5
    assert node.saved_tensors[0].numel() == 0
    np.testing.assert_array_equal(node.packed_x.codes(), codes.numpy())


@pytest.mark.parametrize("backend", ["exact", "accel:emu"])
def test_a_one_group_convolution_returns_its_gemm_result_channels_last(backend):
    """A one-group convolution's output and input gradient are its GEMM results' own memory, (B, H, W, C) rows,
    as channels-last tensors (no copy into NCHW); a grouped one's are new contiguous tensors."""
    torch.manual_seed(2)
    x = torch.randn(2, 4, 5, 6)
    for groups, channels_last in ((1, True), (2, False)):
        layer = cnn.QConv2d(4, 6, 3, padding=1, groups=groups, bias=False)
        cnn.number_layers(layer)
        cnn.set_backend(layer, backend)
        xi = x.clone().requires_grad_()
        grads = []
        with cnn.precision(fw=4, bw=8, step=0, seed=1):
            inner = xi * 1.0   # not a leaf: its gradient is the layer's, as a previous layer would receive it
            inner.register_hook(grads.append)
            y = layer(inner)
        y.backward(torch.ones_like(y).contiguous(memory_format=torch.channels_last))
        for t in (y, grads[0]):
            assert t.is_contiguous(memory_format=torch.channels_last) == channels_last, (groups, t.stride())
            assert t.is_contiguous() != channels_last


def test_backend_specs_parse_and_select():
    assert cnn.parse_backend("torch").name == "torch"
    assert cnn.parse_backend("torch:hardware").numerics == "hardware"
    assert cnn.parse_backend("exact").numerics == "hardware"
    assert cnn.parse_backend("accel").device == "emu"
    assert cnn.parse_backend("accel:rtl", config="sim").config == "sim"
    for bad in ("gpu", "torch:fast", "accel:fpga", "exact:x", 3):
        with pytest.raises(cnn.BackendError):
            cnn.parse_backend(bad)
    with cnn.use_backend("exact"):
        assert cnn.get_default_backend().kind == "exact"
    assert cnn.get_default_backend().kind == "torch"
    model = torch.nn.Sequential(cnn.QConv2d(1, 2, 1), torch.nn.Conv2d(2, 2, 1), cnn.QLinear(2, 2))
    assert cnn.set_backend(model, "exact") == 2 and model[0].backend.kind == "exact"
    cnn.set_backend(model, None)
    assert model[2].backend is None


@pytest.mark.skipif(not _accel_available(), reason="cpt_driver.Accelerator (host driver branch) not present")
def test_accel_refuses_bits_beyond_the_config_and_counts_its_work():
    from cpt_hw.hw.config import HardwareConfig

    cfg = HardwareConfig.from_preset("sim")
    torch.manual_seed(8)
    layer = cnn.QConv2d(2, 3, 3, padding=1, bias=False)
    cnn.set_backend(layer, "accel:emu", config="sim")
    x = torch.randn(2, 2, 4, 4, requires_grad=True)
    with pytest.raises(cnn.BackendError, match="up to"):
        with cnn.precision(fw=cfg.max_bits + 1, bw=4):
            layer(x)
    engine = cnn.get_impl(layer.backend).engine
    before = engine.stats()
    with cnn.precision(fw=cfg.max_bits, bw=cfg.max_grad_bits):
        layer(x).sum().backward()
    after = engine.stats()
    assert after["gemm_calls"] - before["gemm_calls"] == 3  # forward, weight gradient, input gradient
    assert after["cycles"] > before["cycles"] and after["seconds"] > 0


class _RecordingEngine(ExactEngine):
    """golden.gemm, recording each call's (M, K, N, a_bits, b_bits) and its operands' dtypes."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []
        self.dtypes: list[tuple[np.dtype, np.dtype]] = []

    def gemm(self, a, b, a_bits, b_bits, out=None):
        self.shapes.append((a.shape[0], a.shape[1], b.shape[1], a_bits, b_bits))
        self.dtypes.append((a.dtype, b.dtype))
        return super().gemm(a, b, a_bits, b_bits, out=out)


@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 1), (1, 2, 0), (3, 1, 1), (1, 1, 1), (3, 2, 0)])
def test_input_gradient_is_a_transposed_convolution(kernel, stride, padding):
    """The input-gradient lowering (dilated, padded error im2col x rotated kernels) is conv2d_input exactly
    (integer operands: every float64 sum is exact), its mask marks the real error taps, and the engine's
    input-gradient GEMM is B H W x C_out k^2 x C_in at (bw, fw) bits: no k^2-fold result, no col2im."""
    ops = cnn.layers.ConvOps((kernel, kernel), (stride, stride), (padding, padding), (1, 1), 1)
    x_shape = torch.Size((2, 3, 7, 7))
    gen = torch.Generator().manual_seed(9)
    w = torch.randint(0, 256, (5, 3, kernel, kernel), generator=gen).double()
    e = torch.randint(0, 256, (2, 5, *ops.out_size(x_shape)), generator=gen).double()
    lowered = ops.lower_transposed(e, x_shape) @ ops.lower_weight_transposed(w)
    assert torch.equal(ops.raise_in(lowered, x_shape),
                       torch.nn.grad.conv2d_input(x_shape, w, e, stride=stride, padding=padding))
    mask = ops.transposed_mask(x_shape, "cpu")
    taps = ops.lower_transposed(torch.ones_like(e), x_shape)[0, :7 * 7, ::5]  # columns (i, j, n): n = 0
    assert torch.equal(taps, torch.ones_like(taps) if mask is None else mask.double())

    engine = _RecordingEngine()
    layer = cnn.QConv2d(3, 5, kernel, stride=stride, padding=padding, bias=False)
    x = torch.randn(x_shape, requires_grad=True)
    with cnn.precision(fw=4, bw=8, step=0, seed=1):
        y = _IntegerGemm.apply(x, layer.weight, None, ops, _layer_call(layer, x), engine)
    y.backward(torch.randn_like(y))
    fwd, wgrad, dgrad = engine.shapes
    ho, wo = ops.out_size(x_shape)
    assert fwd == (2 * ho * wo, 3 * kernel ** 2, 5, 4, 4)
    assert wgrad == (3 * kernel ** 2, 2 * ho * wo, 5, 4, 8)
    assert dgrad == (2 * 7 * 7, 5 * kernel ** 2, 3, 8, 4)
    # the quantizers' codes reach the engine as uint8: no int64 or float64 copy of an operand
    assert engine.dtypes == [(np.uint8, np.uint8)] * 3


@pytest.mark.parametrize("kernel, stride, padding, dilation, groups",
                         [(3, 1, 1, 1, 1), (3, 2, 1, 1, 1), (1, 2, 0, 1, 1), (3, 1, 2, 2, 2), (3, 2, 0, 1, 4)])
def test_integer_lowering_is_unfold_and_tap_sums_are_the_rank_one_term(kernel, stride, padding, dilation, groups):
    """The uint8 im2col (forward and transposed) holds exactly F.unfold's entries (columns tap-major),
    row_sums/col_sums are its row and column sums exactly (without lowering), and weighted_tap_sums
    equals E_low times o repeated over each channel's taps (float64: exact enough to compare at 1e-12)."""
    ops = cnn.layers.ConvOps((kernel, kernel), (stride, stride), (padding, padding), (dilation, dilation), groups)
    x_shape = torch.Size((2, 8, 9, 9))
    gen = torch.Generator().manual_seed(4)
    x = torch.randint(0, 256, x_shape, generator=gen)
    e = torch.randint(0, 256, (2, 8, *ops.out_size(x_shape)), generator=gen)

    def unfold_lowered(t, **kw):
        cols = torch.nn.functional.unfold(t.double(), (kernel, kernel), dilation=dilation, **kw)
        b, k, p = cols.shape  # columns (c, i, j) -> the lowering's (i, j, c)
        cols = cols.reshape(b, groups, k // groups // kernel**2, kernel**2, p).permute(1, 0, 4, 3, 2)
        return cols.reshape(groups, b * p, k // groups)

    lowered = ops.lower(x.to(torch.uint8))
    assert lowered.dtype == torch.uint8
    assert torch.equal(lowered.double(), unfold_lowered(x, padding=padding, stride=stride))
    for layout in (torch.contiguous_format, torch.channels_last):   # channels-last: the float32 channel sums
        xq = x.to(torch.uint8).contiguous(memory_format=layout)
        assert torch.equal(ops.row_sums(xq), lowered.double().sum(2))  # exact integers
        assert torch.equal(ops.col_sums(xq), lowered.double().sum(1))
    lowered_t = ops.lower_t(x.to(torch.uint8))
    assert lowered_t.is_contiguous() and torch.equal(lowered_t, lowered.transpose(1, 2))
    e_t = ops.lower_out_t(e.to(torch.uint8))
    assert e_t.is_contiguous() and torch.equal(e_t, ops.lower_out(e.to(torch.uint8)).transpose(1, 2))
    w = torch.randint(0, 256, (12, 8 // groups, kernel, kernel), generator=gen)
    assert torch.equal(ops.raise_weight(ops.lower_weight(w), w.shape), w)
    assert torch.equal(ops.raise_out(lowered.double() @ ops.lower_weight(w).double().transpose(1, 2), x_shape),
                       torch.nn.functional.conv2d(x.double(), w.double(), stride=stride, padding=padding,
                                                  dilation=dilation, groups=groups))
    e_low = ops.lower_transposed(e.to(torch.uint8), x_shape)
    assert torch.equal(e_low.double(), unfold_lowered(ops._dilate_pad(e.double(), x_shape)))
    o = torch.randn(groups, 8 // groups, generator=gen, dtype=torch.float64)
    expect = e_low.double() @ o.repeat(1, kernel * kernel).unsqueeze(2)  # columns (i, j, n)
    torch.testing.assert_close(ops.weighted_tap_sums(e.double(), o, x_shape), expect, rtol=1e-12, atol=1e-9)


def _layer_call(layer, x):
    from cpt_hw.nn.quant import ErrorQuant, tensor_range
    from cpt_hw.nn.types import LayerCall

    return LayerCall(4, *tensor_range(x), ErrorQuant(8, 11, 12))


@pytest.mark.parametrize("shape, kernel", [((2, 4, 6, 6), 3), ((3, 4, 1, 1), 1)])
def test_reused_workspace_never_leaks_into_results(shape, kernel):
    """The integer layers lower operands and receive GEMM outputs in buffers reused by the next call
    (cpt_hw.nn.integer._Workspace): what a call returns (its output, its gradients) must not change when
    another layer of the same shapes runs afterwards, 1x1 outputs (whose raise could be a view) included."""
    torch.manual_seed(8)
    layers = [cnn.QConv2d(4, 4, kernel, padding=kernel // 2, bias=False) for _ in range(2)]
    for i, layer in enumerate(layers):
        layer.layer_id = i
        cnn.set_backend(layer, "exact")
    xs = [torch.randn(shape, requires_grad=True) for _ in layers]
    with cnn.precision(fw=5, bw=6, step=0):
        y0 = layers[0](xs[0])
        y0_copy = y0.detach().clone()
        y1 = layers[1](xs[1])
    assert torch.equal(y0, y0_copy)
    (y0.sum() + y1.sum()).backward()
    grads = [(x.grad.clone(), layer.weight.grad.clone()) for x, layer in zip(xs, layers)]
    for i, layer in enumerate(layers):  # each alone: the same gradients
        x = xs[i].detach().clone().requires_grad_()
        layer.weight.grad, layer._noise_step = None, -1  # the same noise stream as in the first run
        with cnn.precision(fw=5, bw=6, step=0):
            layer(x).sum().backward()
        assert torch.equal(x.grad, grads[i][0]) and torch.equal(layer.weight.grad, grads[i][1])


def test_code_sums_are_exact_integer_sums():
    q = torch.randint(0, 256, (5, 6, 7), dtype=torch.uint8)
    for dim in range(3):
        s = cnn.ops.code_sum(q, dim)
        assert s.dtype == torch.float64 and torch.equal(s, q.to(torch.int64).sum(dim).to(torch.float64))
    assert torch.equal(cnn.ops.code_sum(q, 1, keepdim=True), q.to(torch.float64).sum(1, keepdim=True))


@pytest.mark.skipif(not _accel_available(), reason="cpt_driver.Accelerator (host driver branch) not present")
def test_accel_packs_every_convolution_operand_from_unlowered_codes(monkeypatch):
    """On accel, the forward, input-gradient and weight-gradient A operands of a convolution reach the driver
    described (cpt_driver.sources), not lowered; the block still matches exact bit for bit (above)."""
    import cpt_driver.sources as sources

    kinds = []
    real = sources.pack_tile
    monkeypatch.setattr(sources, "pack_tile", lambda src, *a: (kinds.append(type(src).__name__), real(src, *a))[1])
    block = _block(False)
    _run(block, "accel:emu", torch.randn(2, 8, 8, 8), 3, 8)
    assert kinds.count("Im2colRows") >= 4 and kinds.count("TapRows") >= 2  # 2 convs: fwd, dgrad / wgrad


@pytest.mark.skipif(not _accel_available(), reason="cpt_driver.Accelerator (host driver branch) not present")
def test_accel_runs_convolutions_through_the_driver_conv_calls(monkeypatch):
    """On accel, a convolution's forward, input gradient and weight gradient are the driver's conv2d,
    conv2d_input and conv2d_weight (one GEMM each, as before: the same gemm_calls and binary_ops); geometries
    those calls do not take (groups, dilation, unequal strides) stay on gemm.  Both match exact bit for bit."""
    from cpt_driver import Accelerator

    seen = []
    for name in ("conv2d", "conv2d_input", "conv2d_weight", "gemm"):
        real = getattr(Accelerator, name)
        monkeypatch.setattr(Accelerator, name, lambda self, *a, _n=name, _r=real, **k: (seen.append(_n),
                                                                                         _r(self, *a, **k))[1])
    torch.manual_seed(5)
    # gemms: 0 where the conv calls run, else gemm calls per GEMM class (one per group)
    for kwargs, gemms in [(dict(kernel_size=3, stride=2, padding=1, bias=False), 0),
                           (dict(kernel_size=(1, 3), padding=1), 0),
                           (dict(kernel_size=(1, 3), padding=(0, 1)), 1),       # unequal paddings
                           (dict(kernel_size=3, padding=2, dilation=2), 1),
                           (dict(kernel_size=3, padding=1, groups=2), 2)]:
        layer = cnn.QConv2d(6, 4, **kwargs)
        cnn.number_layers(layer)
        x = torch.randn(3, 6, 7, 9)
        seen.clear()
        ex, ac = _run(layer, "exact", x, 5, 8), _run(layer, "accel:emu", x, 5, 8)
        assert seen == (["gemm"] * 3 * gemms if gemms else ["conv2d", "conv2d_weight", "conv2d_input"])
        assert torch.equal(ex[0], ac[0]) and torch.equal(ex[1], ac[1])
        for k in ex[2]:
            assert torch.equal(ex[2][k], ac[2][k]), k


@pytest.mark.parametrize("kernel, stride, padding, dilation", [
    ((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1), (1, 1)), ((1, 1), (2, 2), (0, 0), (1, 1)),
    ((3, 1), (1, 2), (2, 0), (2, 1)), ((2, 3), (2, 1), (0, 1), (1, 2)), ((3, 3), (2, 2), (0, 0), (1, 1))])
@pytest.mark.parametrize("size", [(9, 9), (8, 7)])
def test_window_sum_and_scatter_are_the_all_ones_convolution_and_its_transpose(kernel, stride, padding, dilation,
                                                                               size):
    """window_sum = F.conv2d with an all-ones kernel and window_scatter = its transpose (conv2d_input), exactly
    on integers (int32, and float64 holding integers), over odd sizes where the stride leaves rows unread."""
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    gen = torch.Generator().manual_seed(7)
    a = torch.randint(0, 1 << 12, (2, 3, *size), generator=gen)
    ones = torch.ones((1, 1, *kernel), dtype=torch.float64)
    expect = torch.nn.functional.conv2d(a.double().reshape(6, 1, *size), ones, **kw)
    expect = expect.reshape(2, 3, *expect.shape[2:])
    got = cnn.ops.window_sum(a.to(torch.int32), kernel, stride, padding, dilation)
    assert got.dtype == torch.int32 and torch.equal(got.double(), expect)
    assert torch.equal(cnn.ops.window_sum(a.double(), kernel, stride, padding, dilation), expect)
    z = torch.randint(0, 1 << 12, got.shape, generator=gen).double()
    back = torch.nn.grad.conv2d_input((6, 1, *size), ones, z.reshape(6, 1, *z.shape[2:]), **kw)
    assert torch.equal(cnn.ops.window_scatter(z, size, kernel, stride, padding, dilation), back.reshape(2, 3, *size))
