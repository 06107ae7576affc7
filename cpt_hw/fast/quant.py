"""Fused CPT quantizers for the CUDA fast path, with the precision held in device tensors.

Same arithmetic as :mod:`cpt_hw.golden` / :mod:`cpt_hw.nn.quant` (float32; s = max((max - min)/L, 1e-8),
q = round_half_even(clamp((x - min)/s [+ u], 0, L)), x_hat = s q + min, L = 2^bits - 1), but:

* ``levels`` L and the noise ``seed`` are 0-d **device tensors**, so a precision change every iteration
  is a tensor write: nothing is recompiled and a captured CUDA graph stays valid;
* min/max reduction and the element-wise quantization are fused by ``torch.compile`` (one reduction
  kernel plus one element-wise kernel per tensor);
* nothing is read back to the host.

Stochastic-rounding noise is :func:`cpt_hw.golden.counter_uniform` of (seed, element index), evaluated
inside the fused kernel.
"""

from __future__ import annotations

import os

import torch

from ..golden import SCALE_FLOOR, counter_hash, counter_uniform

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
    """Per-output-channel fake quantization of a weight (C_out, ...): (w_hat, codes, scale, zero point)."""
    flat = w.reshape(w.shape[0], -1)
    shape = (w.shape[0],) + (1,) * (w.dim() - 1)
    lo, hi = flat.amin(1).reshape(shape), flat.amax(1).reshape(shape)
    w_hat, q, scale = _quantize(w, lo, hi, levels)
    return w_hat, q, scale, lo


def stream_key(run_seed: int, layer_id: int, stream: int) -> int:
    """Key of one layer's noise stream (an int64 value); the noise seed of iteration t is
    counter_hash(key, t), computed on the device inside the fused kernel."""
    return ((run_seed & 0xFFFFFFFFFF) << 20) ^ ((layer_id & 0x3FFFF) << 2) ^ (stream & 3)


def fq_error(e: torch.Tensor, levels: torch.Tensor, key: torch.Tensor, step: torch.Tensor,
             channel_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Per-tensor stochastic fake quantization of an error tensor (of ``e * channel_scale`` when given).

    Noise of element i (row-major) is counter_uniform(counter_hash(key, step), i): the seed hashing runs
    inside the same fused kernel, so a layer's backward quantization is one reduction + one element-wise
    kernel, whatever the iteration.
    """
    if channel_scale is not None:
        e = e * channel_scale
    lo, hi = e.amin(), e.amax()
    index = torch.arange(e.numel(), device=e.device, dtype=torch.int64).reshape(e.shape)
    noise = counter_uniform(counter_hash(key, step), index).to(torch.float32)
    return _quantize(e, lo, hi, levels, noise)[0]


def _compile(fn):
    """torch.compile on CUDA (fusion); plain eager elsewhere or when CPT_HW_NO_COMPILE=1."""
    if os.environ.get("CPT_HW_NO_COMPILE") == "1":
        return fn
    compiled = torch.compile(fn, fullgraph=True, dynamic=False)

    def dispatch(*args):
        return compiled(*args) if args[0].is_cuda else fn(*args)

    dispatch.__name__ = fn.__name__
    dispatch.__doc__ = fn.__doc__
    return dispatch


fq_tensor_train_fused = _compile(fq_tensor_train)
fq_tensor_range_fused = _compile(fq_tensor_range)
fq_channel_fused = _compile(fq_channel)
fq_error_fused = _compile(fq_error)
