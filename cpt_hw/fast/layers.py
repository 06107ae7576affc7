"""The CUDA fast path of the quantized layers: device-resident precision, fused quantizers, no host sync.

:func:`enable_fast` switches every quantized layer of a model to this path; the trainer then sets the
precision once per iteration with :meth:`DevicePrecision.set` (four small device writes), which a captured
CUDA graph reads at replay.  Numerics are those of the ``torch`` backend (docs/numerics.md): "paper"
(dX = E_hat W_hat) or "hardware" (dX = E_tilde r (Q_w + z_w/s_w), E_tilde the stochastic quantization of
E diag(s_w / r), r = max s_w, taken into the weight operand: :func:`.quant.hardware_weight_operand`);
forward and weight gradient are the same in both.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..nn.layers import ACT_MOMENTUM, QuantLayerMixin, quantized_layers
from ..nn.ops import ConvOps, LinearOps
from .quant import (fq_channel_fused, fq_error_fused, fq_error_pair_fused, fq_tensor_range_fused,
                    fq_tensor_train_fused, hardware_weight_operand_fused, noise_words, noise_words_fused, stream_key)

Ops = ConvOps | LinearOps
STREAM_ERROR, STREAM_SCALED_ERROR = 0, 1
STREAMS = (STREAM_ERROR, STREAM_SCALED_ERROR)


class DevicePrecision:
    """Forward/backward precision and the noise seeds of the iteration as device tensors (read by the fused
    kernels).

    ``fw``/``bw`` = 0 (full precision) is not representable here: the fast path quantizes every
    iteration, and full-precision training uses the plain float layers.  Each quantized layer registers
    its two noise streams (:meth:`add_layer`, before any CUDA-graph capture); :meth:`set` then computes
    the seed words of every stream for the iteration in one kernel, into a buffer the kernels read.
    """

    def __init__(self, device: torch.device | str, seed: int = 0, hardware: bool = False) -> None:
        self.device = torch.device(device)
        self.seed = int(seed)
        self.hardware = bool(hardware)
        self.fw_levels = torch.full((), 255.0, dtype=torch.float32, device=self.device)
        self.bw_levels = torch.full((), 255.0, dtype=torch.float32, device=self.device)
        self.step = torch.zeros((), dtype=torch.int64, device=self.device)
        self.stream_keys = torch.zeros((0,), dtype=torch.int64, device=self.device)
        #: (layers, streams, 2) int32: the seed words of each registered layer's noise streams this iteration
        self.noise_words = torch.zeros((0, len(STREAMS), 2), dtype=torch.int32, device=self.device)

    def add_layer(self, layer_id: int) -> int:
        """Register the noise streams of the layer numbered ``layer_id``; returns its row of
        :attr:`noise_words`.  Reallocates the buffer: call before capturing a CUDA graph."""
        keys = torch.tensor([stream_key(self.seed, layer_id, s) for s in STREAMS], dtype=torch.int64,
                            device=self.device)
        self.stream_keys = torch.cat([self.stream_keys, keys])
        # eagerly: compiled, each new number of streams would be a new kernel
        self.noise_words = noise_words(self.stream_keys, self.step).reshape(-1, len(STREAMS), 2)
        return self.noise_words.shape[0] - 1

    def set(self, fw: int, bw: int, step: int) -> None:
        """Precision of iteration ``step``: fw, bw in 1..16 bits.  No host synchronisation."""
        if not (1 <= fw <= 16 and 1 <= bw <= 16):
            raise ValueError(f"fast path: fw = {fw}, bw = {bw}: must be in 1..16 (0 = float: use plain layers)")
        self.fw_levels.fill_(float(2**fw - 1))
        self.bw_levels.fill_(float(2**bw - 1))
        self.step.fill_(step)
        if self.stream_keys.numel():
            self.noise_words.copy_(noise_words_fused(self.stream_keys, self.step).reshape(self.noise_words.shape))


class _FastQuantGemm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, layer, ops: Ops, dp: DevicePrecision):  # type: ignore[override]
        if layer.training:  # batch range; running range for eval updated with momentum 0.9 (reference)
            x_hat = fq_tensor_train_fused(x, dp.fw_levels, layer.act_min, layer.act_max, ACT_MOMENTUM)
        else:
            x_hat = fq_tensor_range_fused(x, layer.act_min, layer.act_max, dp.fw_levels)
        w_hat, qw, sw, zw = fq_channel_fused(w, dp.fw_levels)
        ctx.ops, ctx.dp, ctx.row, ctx.has_bias = ops, dp, layer.fast_noise_row, b is not None
        ctx.save_for_backward(x_hat, w_hat, qw, sw, zw)
        return ops.forward(x_hat, w_hat, b)

    @staticmethod
    def backward(ctx, e):  # type: ignore[override]
        x_hat, w_hat, qw, sw, zw = ctx.saved_tensors
        ops, dp = ctx.ops, ctx.dp
        words = dp.noise_words[ctx.row]  # (streams, 2): this layer's seed words this iteration
        dx = dw = db = None
        need_dx, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if need_dx and dp.hardware:  # fold s_w / max(s_w) into the error, re-quantize, GEMM with Q_w + z_w/s_w
            ratio, w_op = hardware_weight_operand_fused(qw, sw, zw)
            e_hat, e_tilde = fq_error_pair_fused(e, dp.bw_levels, words, ops.channel_view(ratio, e.dim()))
            dx = ops.grads(e_tilde, x_hat, w_op, True, False)[0]
            need_dx = False
        else:
            e_hat = fq_error_fused(e, dp.bw_levels, words[STREAM_ERROR])
        if need_dx or need_dw:  # both products of e_hat in one call (ops.grads says why)
            gx, dw = ops.grads(e_hat, x_hat, w_hat, need_dx, need_dw)
            dx = gx if need_dx else dx
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = ops.grad_bias(e_hat)
        return dx, dw, db, None, None, None


def fast_forward(layer: QuantLayerMixin, x: torch.Tensor, ops: Ops) -> torch.Tensor:
    """Forward of a quantized layer on the fast path (``layer.fast_precision`` is set)."""
    return _FastQuantGemm.apply(x, layer.weight, layer.bias, layer, ops, layer.fast_precision)  # type: ignore


def enable_fast(model: nn.Module, dp: DevicePrecision | None) -> int:
    """Route every quantized layer of ``model`` through the fast path with ``dp`` (None: back to the
    backend machinery).  Returns the number of layers switched."""
    count = 0
    for _, layer in quantized_layers(model):
        layer.fast_precision = dp  # type: ignore[attr-defined]
        layer.fast_forward = None if dp is None else fast_forward  # type: ignore[attr-defined]
        if dp is not None:  # noise streams registered here, never during a capture
            layer.fast_noise_row = dp.add_layer(layer.layer_id)  # type: ignore[attr-defined]
        count += 1
    return count
