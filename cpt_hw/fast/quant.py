"""Fused CPT quantizers for the CUDA fast path, with the precision held in device tensors.

Same arithmetic as :mod:`cpt_hw.hw.golden` / :mod:`cpt_hw.nn.quant` (float32; s = max((max - min)/L, 1e-8),
q = round_half_even(clamp((x - min)/s [+ u], 0, L)), x_hat = s q + min, L = 2^bits - 1), but:

* ``levels`` L and the noise ``seed`` are 0-d **device tensors**, so a precision change every iteration
  is a tensor write: nothing is recompiled and a captured CUDA graph stays valid;
* min/max reduction and the element-wise quantization are fused by ``torch.compile`` (one reduction
  kernel plus one element-wise kernel per tensor);
* nothing is read back to the host.

Stochastic-rounding noise is :func:`cpt_hw.hw.golden.counter_uniform` of (seed, element index), evaluated
inside the fused kernel from the seed's two int32 words, which :func:`noise_words` computes once per
iteration for every noise stream of the model.
"""

from __future__ import annotations

import os

import torch

from ..hw.golden import SCALE_FLOOR, counter_hash
from ..nn.quant import counter_seed_words, counter_uniform_words, fold_factors

_FLOOR = float(SCALE_FLOOR)


def _quantize(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, levels: torch.Tensor,
              noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_hat, codes, scale): fake quantization of float32 ``x`` over [lo, hi] (broadcasting)."""
    scale = torch.clamp_min((hi - lo) / levels, _FLOOR)
    v = (x - lo) / scale
    if noise is not None:
        v = v + noise
    q = torch.round(torch.minimum(torch.clamp_min(v, 0.0), levels))
    return q * scale + lo, q, scale


def fq_tensor_train(x: torch.Tensor, levels: torch.Tensor, run_min: torch.Tensor, run_max: torch.Tensor,
                    momentum: float) -> torch.Tensor:
    """Per-tensor fake quantization with the batch range; updates the running range in place
    (running = momentum running + (1 - momentum) batch), fused into the same kernels."""
    lo, hi = x.amin(), x.amax()
    run_min.copy_(run_min * momentum + lo * (1.0 - momentum))
    run_max.copy_(run_max * momentum + hi * (1.0 - momentum))
    return _quantize(x, lo, hi, levels)[0]


def fq_tensor_range(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Per-tensor fake quantization with a given range (eval: the running range)."""
    return _quantize(x, lo, hi, levels)[0]


def fq_channel(w: torch.Tensor, levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-output-channel fake quantization of a weight (C_out, ...): (w_hat, codes, scale, zero point).

    The element-wise part runs on ``w`` itself (not on a (C_out, fan_in) reshape of it), so the outputs
    keep the weight's memory format: a channels_last model's convolutions then take w_hat without a
    layout copy (measured on the H200: a reshaped variant cost two non-vectorised copies per layer)."""
    flat = w.reshape(w.shape[0], -1)
    shape = (w.shape[0],) + (1,) * (w.dim() - 1)
    lo, hi = flat.amin(1).reshape(shape), flat.amax(1).reshape(shape)
    w_hat, q, scale = _quantize(w, lo, hi, levels)
    return w_hat, q, scale, lo


def stream_key(run_seed: int, layer_id: int, stream: int) -> int:
    """Key of one layer's noise stream (an int64 value); the noise seed of iteration t is
    counter_hash(key, t) (:func:`noise_words`)."""
    return ((run_seed & 0xFFFFFFFFFF) << 20) ^ ((layer_id & 0x3FFFF) << 2) ^ (stream & 3)


def noise_words(keys: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """(n, 2) int32: the seed words (s0, s1) of ``counter_uniform_words`` for the noise seed
    counter_hash(key, step) of each of the n stream ``keys`` (int64) at iteration ``step`` (0-d int64).

    The hashing of (key, step) is golden's int64 arithmetic, which GPUs emulate at dozens of instructions
    per product; done once per iteration for every stream of the model (one small kernel) it stays out of
    the per-element noise, which is then two 32-bit finalisers per element."""
    s0, s1 = counter_seed_words(counter_hash(keys, step))
    return torch.stack([s0, s1], dim=1)


def _stochastic(e: torch.Tensor, levels: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    lo, hi = e.amin(), e.amax()
    noise = counter_uniform_words(words[0], words[1], e.numel(), e.device).reshape(e.shape)
    return _quantize(e, lo, hi, levels, noise)[0]


def fq_error(e: torch.Tensor, levels: torch.Tensor, words: torch.Tensor,
             channel_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Per-tensor stochastic fake quantization of an error tensor (of ``e * channel_scale`` when given).

    Noise of element i (row-major) is counter_uniform(seed, i), with ``words`` = (s0, s1) the seed's int32
    words (a row of :func:`noise_words`, on the device): one reduction + one element-wise kernel.
    """
    return _stochastic(e if channel_scale is None else e * channel_scale, levels, words)


def fq_error_pair(e: torch.Tensor, levels: torch.Tensor, words: torch.Tensor,
                  channel_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The hardware numerics' two error quantizations at once: (:func:`fq_error` of ``e`` with the words
    ``words[0]``, :func:`fq_error` of ``e * channel_scale`` with ``words[1]``), bit for bit the same as two
    calls; compiled, both ranges come from one pass over ``e`` and both outputs from a second."""
    return _stochastic(e, levels, words[0]), _stochastic(e * channel_scale, levels, words[1])


def hardware_weight_operand(q: torch.Tensor, scale: torch.Tensor,
                            zero_point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s_w / max s_w per channel, the input-gradient weight operand max(s_w) (Q_w + z_w / s_w)) of the
    hardware numerics, from a weight's codes, per-channel scales and zero points.

    The hardware scales its integer dX by r = max s_w after the GEMM; a float GEMM may take r into its
    (small) weight operand instead of multiplying the (large) dX afterwards: the same product, rounded in
    another place (the fast path's convolutions round their operands to TF32 anyway)."""
    ratio, s_ref = fold_factors(scale)
    return ratio, (q + zero_point / scale) * s_ref


def exact_inductor_options() -> dict[str, bool]:
    """Inductor settings under which the compiled kernels do golden's float32 arithmetic, op for op.

    Without them a CUDA (Triton) kernel departs from golden and from eager CUDA in two ways: ``a / b``
    lowers to the approximate ``div.full.f32`` (up to 2 ulp off the correctly rounded quotient, so
    ``(x - min) / s`` lands on the other side of a rounding boundary now and then), and ``q * s + min`` is
    contracted into one FMA (one rounding instead of golden's two).  ``division_rounding`` makes the
    division ``div_rn``; ``emulate_precision_casts`` compiles the kernels with ``enable_fp_fusion=False``
    (its other effect, keeping fp16/bf16 round trips, never applies here: everything is float32).
    ``disable_ftz`` keeps subnormals as golden does.  The key names moved between torch releases:
    the ones this torch has are returned; a torch without a division-rounding switch cannot compile
    these kernels exactly, and :class:`RuntimeError` says so.
    """
    from torch._inductor import config

    options = {"emulate_precision_casts": True}
    numerics = getattr(config, "eager_numerics", None)
    if numerics is not None and hasattr(numerics, "division_rounding"):
        options["eager_numerics.division_rounding"] = True
        if hasattr(numerics, "disable_ftz"):
            options["eager_numerics.disable_ftz"] = True
    elif hasattr(config, "emulate_divison_rounding"):  # sic: the name in torch releases before ~2.10
        options["emulate_divison_rounding"] = True
    else:
        raise RuntimeError(f"torch {torch.__version__}: torch._inductor.config has no division-rounding switch "
                           "(eager_numerics.division_rounding): the fused quantizers cannot be compiled "
                           "bit-exact; set CPT_HW_NO_COMPILE=1 to run them eagerly")
    return options


def fast_inductor_options() -> dict[str, bool]:
    """Inductor settings that change which kernels launch, not what they compute: ``combo_kernels`` packs
    independent kernels of one compiled function (the two halves of a split min/max reduction, say) into one
    launch.  Measured on the H200 (docs/gpu.md): ResNet-74 CPT 3-8/8 14.18 -> 13.98 ms, ResNet-38 7.30 ->
    7.21 ms; bench/gpu_exactness.py checks the kernels with it.  CPT_HW_COMBO_KERNELS=0 leaves it off (a
    torch whose combo kernels misbehave); a torch without the setting simply does without."""
    from torch._inductor import config

    if os.environ.get("CPT_HW_COMBO_KERNELS") == "0" or not hasattr(config, "combo_kernels"):
        return {}
    return {"combo_kernels": True}


#: Compiled shapes per quantizer: dynamic=False compiles one kernel pair per tensor shape, and a ResNet-74
#: alone has 9 distinct weight shapes (dynamo's default limit is 8; with fullgraph=True one more fails).
RECOMPILE_LIMIT = 64


def _raise_recompile_limit() -> None:
    cfg = torch._dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    setattr(cfg, name, max(getattr(cfg, name), RECOMPILE_LIMIT))


def _compile(fn):
    """``fn`` compiled by ``torch.compile`` (fusion) under :func:`exact_inductor_options` (and
    :func:`fast_inductor_options`), used for CUDA
    tensors; CPU tensors run ``fn`` eagerly (no compile cost on the CPU); CPT_HW_NO_COMPILE=1: eager
    everywhere.  The compiled callable is ``.compiled`` and the plain function ``.eager``, so that tests
    and bench/gpu_exactness.py can check each one on any device."""
    no_compile = os.environ.get("CPT_HW_NO_COMPILE") == "1"
    _raise_recompile_limit()
    compiled = fn if no_compile else torch.compile(fn, fullgraph=True, dynamic=False,
                                                   options={**exact_inductor_options(), **fast_inductor_options()})

    def dispatch(*args):
        return compiled(*args) if args[0].is_cuda else fn(*args)

    dispatch.__name__ = fn.__name__
    dispatch.__doc__ = fn.__doc__
    dispatch.compiled = compiled  # type: ignore[attr-defined]
    dispatch.eager = fn  # type: ignore[attr-defined]
    return dispatch


fq_tensor_train_fused = _compile(fq_tensor_train)
fq_tensor_range_fused = _compile(fq_tensor_range)
fq_channel_fused = _compile(fq_channel)
fq_error_fused = _compile(fq_error)
fq_error_pair_fused = _compile(fq_error_pair)
noise_words_fused = _compile(noise_words)
hardware_weight_operand_fused = _compile(hardware_weight_operand)
