"""The CUDA fast path (cpt_hw.fast): its fused quantizers equal the golden model bit for bit; its layers
compute the torch backend's forward exactly; the graph step and the GPU pipeline run where CUDA exists."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cpt_hw import nn as cnn
from cpt_hw.fast import DevicePrecision, enable_fast
from cpt_hw.fast.quant import (fq_channel, fq_channel_fused, fq_error, fq_error_fused, fq_error_pair,
                               fq_error_pair_fused, fq_tensor_range, fq_tensor_range_fused, fq_tensor_train,
                               fq_tensor_train_fused, noise_words, noise_words_fused, stream_key)
from cpt_hw.hw import golden as g
from cpt_hw.models import build_model

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _check_against_golden(fns: dict, bits: int) -> None:
    """The four fused quantizers ``fns`` (by name) on CPU tensors against golden, bit for bit."""
    torch.manual_seed(bits)
    x = torch.randn(2, 3, 5, 7) * 3
    levels = torch.tensor(float(2**bits - 1))
    run_min, run_max = torch.zeros(()), torch.zeros(())
    x_hat = fns["fq_tensor_train"](x, levels, run_min, run_max, 0.9)
    lo, hi = x.min().numpy(), x.max().numpy()
    np.testing.assert_array_equal(x_hat.numpy(), g.dequantize(g.quantize(x.numpy(), bits, lo, hi), lo, hi, bits))
    assert run_min.item() == pytest.approx(0.1 * lo) and run_max.item() == pytest.approx(0.1 * hi)
    x_range = fns["fq_tensor_range"](x, torch.tensor(lo), torch.tensor(hi), levels)
    np.testing.assert_array_equal(x_range.numpy(), x_hat.numpy())
    w_hat, q, scale, zp = fns["fq_channel"](x, levels)
    wl, wh = x.numpy().reshape(2, -1).min(1)[:, None, None, None], x.numpy().reshape(2, -1).max(1)[:, None, None, None]
    np.testing.assert_array_equal(q.numpy(), g.quantize(x.numpy(), bits, wl, wh))
    np.testing.assert_array_equal(scale.numpy(), g.quant_params(wl, wh, bits)[0])
    np.testing.assert_array_equal(zp.numpy(), wl)
    np.testing.assert_array_equal(w_hat.numpy(), g.dequantize(q.numpy(), wl, wh, bits))
    keys, step = [stream_key(5, 2, 0), stream_key(5, 2, 1)], 17
    seeds = [int(g.counter_hash(k, np.int64(step))) for k in keys]
    words = fns["noise_words"](torch.tensor(keys), torch.tensor(step))
    e_hat = fns["fq_error"](x, levels, words[0])
    qe = g.quantize(x.numpy(), bits, lo, hi, stochastic=True, seed=seeds[0])
    np.testing.assert_array_equal(e_hat.numpy(), g.dequantize(qe, lo, hi, bits))
    ratio = torch.linspace(0.25, 1.0, 3).reshape(1, 3, 1, 1)  # the hardware numerics' s_w / max s_w
    e_tilde = fns["fq_error"](x, levels, words[1], ratio)
    xs = x.numpy() * ratio.numpy()
    qs = g.quantize(xs, bits, xs.min(), xs.max(), stochastic=True, seed=seeds[1])
    np.testing.assert_array_equal(e_tilde.numpy(), g.dequantize(qs, xs.min(), xs.max(), bits))
    pair = fns["fq_error_pair"](x, levels, words, ratio)
    assert torch.equal(pair[0], e_hat) and torch.equal(pair[1], e_tilde)


FUSED = (fq_tensor_train_fused, fq_tensor_range_fused, fq_channel_fused, fq_error_fused, fq_error_pair_fused,
         noise_words_fused)


@pytest.mark.parametrize("bits", range(1, 9))
def test_fused_quantizers_equal_golden(bits):
    """What the fast path runs on CPU tensors (the uncompiled functions: ``*_fused`` dispatches CPU tensors
    there, asserted below) equals golden at every precision.  The compiled kernels are checked against
    golden on CPU by the slow test below, and on CUDA by bench/gpu_exactness.py on the device
    (docs/results/gpu_exactness.md: 0 mismatches)."""
    assert [f.eager for f in FUSED] == [fq_tensor_train, fq_tensor_range, fq_channel, fq_error, fq_error_pair,
                                        noise_words]
    _check_against_golden({f.__name__: f for f in FUSED}, bits)


@pytest.mark.slow
def test_compiled_quantizers_equal_golden_on_cpu():
    """The torch.compile'd kernels (inductor's C++ backend here; minutes of compilation) equal golden too."""
    for bits in range(1, 9):
        _check_against_golden({f.__name__: f.compiled for f in FUSED}, bits)


def test_fused_quantizers_compile_with_exact_numerics(monkeypatch):
    """The CUDA kernels are compiled with IEEE division (div_rn, not Triton's approximate div.full) and no
    FMA contraction: without them the kernels depart from golden on the GPU (docs/results/gpu_exactness.md,
    default options); the options exist in this torch's inductor config."""
    from torch._inductor import config

    from cpt_hw.fast import quant

    seen = {}
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: seen.update(kw) or fn)
    monkeypatch.delenv("CPT_HW_NO_COMPILE", raising=False)
    quant._compile(fq_channel)
    division = {"eager_numerics.division_rounding", "emulate_divison_rounding"} & set(seen["options"])
    assert division and all(seen["options"][k] for k in division)
    assert seen["options"]["emulate_precision_casts"] is True  # inductor: enable_fp_fusion = False
    with config.patch(seen["options"]):  # every key names a real setting
        pass


def test_precision_change_is_a_tensor_write():
    dp = DevicePrecision("cpu")
    dp.set(3, 8, 5)
    assert dp.fw_levels.item() == 7 and dp.bw_levels.item() == 255 and dp.step.item() == 5
    with pytest.raises(ValueError, match="must be in 1..16"):
        dp.set(0, 8, 0)


@pytest.mark.parametrize("hardware", [False, True])
def test_fast_layers_match_torch_backend_forward_and_train(hardware):
    torch.manual_seed(0)
    model = build_model("resnet20", 10)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    with cnn.use_backend("torch:hardware" if hardware else "torch"), cnn.precision(fw=4, bw=8, step=0):
        ref = model(x)
    dp = DevicePrecision("cpu", hardware=hardware)
    dp.set(4, 8, 0)
    assert enable_fast(model, dp) == 21  # stem + 18 block convs + 2 downsample
    out = model(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    F.cross_entropy(out, y).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    # with nearly float errors (16 bits), the gradients approach those of the float error path
    model.zero_grad()
    dp.set(4, 16, 1)
    F.cross_entropy(model(x), y).backward()
    fast = [p.grad.clone() for p in model.parameters()]
    enable_fast(model, None)
    model.zero_grad()
    with cnn.use_backend("torch"), cnn.precision(fw=4, bw=0, step=1):
        F.cross_entropy(model(x), y).backward()
    for a, b in zip(fast, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-3)


def test_resident_batches_equal_host_batches_on_cpu():
    from cpt_hw.train.batches import Batches
    from cpt_hw.train.data import load_dataset

    data = load_dataset("digits")
    host = Batches(data, 64, seed=3)
    resident = Batches(data, 64, seed=3, resident=True)
    for step in (0, 5, 40):
        for a, b in zip(host.get(step), resident.get(step)):
            assert torch.equal(a, b)


def test_trainer_fast_path_resumes_bit_for_bit(cli, tmp_path):
    common = ["train", "--model", "digits_cnn", "--iters", "24", "--cycles", "3", "--batch-size", "64",
              "--threads", "1", "--fast", "on", "--no-progress", "--log-every", "5"]
    r = cli(*common, "--out", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    r = cli(*common, "--out", str(tmp_path / "b"), "--stop-at", "11")
    assert r.returncode == 0, r.stderr
    r = cli("train", "--resume", str(tmp_path / "b/checkpoint.pt"), "--no-progress")
    assert r.returncode == 0, r.stderr
    a = torch.load(tmp_path / "a/checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b/checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    r = cli(*common, "--backend", "exact", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "--fast on: needs a torch backend" in r.stderr


@cuda
def test_graph_step_trains_on_cuda():
    from cpt_hw.fast.graph import GraphedTrainStep

    torch.manual_seed(0)
    model = build_model("resnet20", 10).cuda()
    dp = DevicePrecision("cuda")
    enable_fast(model, dp)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.randn(32, 3, 32, 32, device="cuda"), torch.randint(0, 10, (32,), device="cuda")
    step = GraphedTrainStep(model, opt, F.cross_entropy, x, y)
    losses = []
    for t in range(30):
        dp.set(3 + t % 6, 8, t)
        step.step(x, y)
        losses.append(step.read_metrics()[0])
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("seed", [0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x1234_5678_9ABC, (1 << 62) - 1, (1 << 64) - 1])
def test_int32_counter_noise_equals_golden(seed):
    """The per-element noise in int32 (counter_uniform_words of the seed's words) is golden's int64
    counter_uniform bit for bit, over every counter of a 2^20-element tensor (sign bit of the int32 products
    set and clear), with the words as Python ints and as 0-d int32 tensors (the fast path's form)."""
    from cpt_hw.nn.quant import counter_seed_words, counter_uniform_i32, counter_uniform_words

    n = 1 << 20
    want = g.counter_uniform(seed, np.arange(n, dtype=np.int64)).astype(np.float32)
    np.testing.assert_array_equal(counter_uniform_i32(seed, n, torch.device("cpu")).numpy(), want)
    s0, s1 = (torch.tensor(w, dtype=torch.int32) for w in counter_seed_words(seed))
    np.testing.assert_array_equal(counter_uniform_words(s0, s1, n, torch.device("cpu")).numpy(), want)


def test_int64_counter_branch_equals_golden(monkeypatch):
    """Tensors of 2^31 elements or more take int64 counters split into words; the same numbers (here with
    the threshold lowered, so that a small tensor takes that branch)."""
    from cpt_hw.nn import quant as nq

    monkeypatch.setattr(nq, "INT32_COUNTERS", 16)
    seed, n = 0x1234_5678_9ABC, 1000
    want = g.counter_uniform(seed, np.arange(n, dtype=np.int64)).astype(np.float32)
    np.testing.assert_array_equal(nq.counter_uniform_i32(seed, n, torch.device("cpu")).numpy(), want)


def test_noise_words_follow_the_step():
    """DevicePrecision.set computes every registered stream's seed words for the iteration: equal to golden's
    counter_hash(key, step) words, and a layer registered later gets its own row."""
    from cpt_hw.nn.quant import counter_seed_words

    dp = DevicePrecision("cpu", seed=7)
    rows = [dp.add_layer(3), dp.add_layer(9)]
    assert rows == [0, 1] and dp.noise_words.shape == (2, 2, 2)
    for step in (0, 123_456_789_012):
        dp.set(4, 8, step)
        for row, layer_id in zip(rows, (3, 9)):
            for stream in (0, 1):
                seed = int(g.counter_hash(stream_key(7, layer_id, stream), np.int64(step)))
                assert dp.noise_words[row, stream].tolist() == list(counter_seed_words(seed))


@pytest.mark.parametrize("stride, padding, kernel", [(1, 1, 3), (2, 1, 3), (2, 0, 1)])
def test_conv_grads_in_one_call_equal_torch_nn_grad(stride, padding, kernel):
    """ConvOps.grads (one aten.convolution_backward with the real operands, as the fast path's backward
    calls it) gives the same dX and dW as torch.nn.grad's conv2d_input / conv2d_weight, bit for bit."""
    from cpt_hw.nn.ops import ConvOps

    torch.manual_seed(stride + kernel)
    conv = torch.nn.Conv2d(6, 8, kernel, stride=stride, padding=padding, bias=False)
    ops = ConvOps.of(conv)
    x = torch.randn(3, 6, 9, 9)
    e = torch.randn(conv(x).shape)
    dx, dw = ops.grads(e, x, conv.weight.detach(), True, True)
    assert torch.equal(dx, ops.grad_input(e, conv.weight.detach(), x.shape))
    assert torch.equal(dw, ops.grad_weight(x, e, conv.weight.shape))
    assert ops.grads(e, x, conv.weight.detach(), False, True)[0] is None
