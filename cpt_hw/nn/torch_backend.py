"""The ``torch`` backend: fake quantization in float, "paper" or "hardware" numerics (docs/numerics.md).

Forward (both numerics): Y = X_hat W_hat^T with X_hat per-tensor and W_hat per-channel fake-quantized.
Backward, with E_hat the per-tensor stochastic quantization of the error E at ``bw`` bits:

* weight gradient (both): dW = E_hat^T X_hat, passed straight through to W;
* input gradient, paper:     dX = E_hat W_hat                 (what the authors' code computes);
* input gradient, hardware:  dX = s_ref E_tilde (Q_w + z_w / s_w)   (what the integer backends compute),
  E_tilde = per-tensor stochastic quantization of E diag(s_w / s_ref) at ``bw`` bits, s_ref = max s_w,
  Q_w the integer weight codes.

Everything stays on the tensors' device; there is no host synchronisation.
"""

from __future__ import annotations

import torch

from .ops import ConvOps, LinearOps
from .quant import channel_range, dequantize, fold_factors, quant_params, quantize_codes, quantize_error
from .types import LayerCall

Ops = ConvOps | LinearOps


class _FakeQuantGemm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, ops: Ops, call: LayerCall, hardware: bool):  # type: ignore[override]
        fw = call.fw
        qpx = quant_params(call.x_min, call.x_max, fw)
        x_hat = dequantize(quantize_codes(x, fw, qpx), qpx).to(x.dtype)
        qpw = quant_params(*channel_range(w), fw)
        qw = quantize_codes(w, fw, qpw)
        w_hat = dequantize(qw, qpw).to(w.dtype)
        ctx.ops, ctx.call, ctx.hardware, ctx.x_shape = ops, call, hardware, x.shape
        ctx.has_bias = b is not None
        ctx.save_for_backward(x_hat, w_hat, qw, qpw.scale, qpw.zero_point)
        return ops.forward(x_hat, w_hat, b)

    @staticmethod
    def backward(ctx, e):  # type: ignore[override]
        x_hat, w_hat, qw, sw, zw = ctx.saved_tensors
        ops, err = ctx.ops, ctx.call.error
        if err is None:
            e_hat = e
        else:
            qe, qpe = quantize_error(e, err.bits, err.seed)
            e_hat = dequantize(qe, qpe).to(e.dtype)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            if err is None or not ctx.hardware:
                dx = ops.grad_input(e_hat, w_hat, ctx.x_shape)
            else:
                ratio, s_ref = fold_factors(sw)
                q_s, qp_s = quantize_error(e * ops.channel_view(ratio, e.dim()), err.bits, err.seed_scaled)
                e_tilde = dequantize(q_s, qp_s).to(e.dtype)
                dx = ops.grad_input(e_tilde, (qw + zw / sw).to(e.dtype), ctx.x_shape) * s_ref
        if ctx.needs_input_grad[1]:
            dw = ops.grad_weight(x_hat, e_hat, w_hat.shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = ops.grad_bias(e_hat)
        return dx, dw, db, None, None, None


class TorchBackend:
    """Fake-quantized GEMMs through torch; ``hardware`` selects the input-gradient numerics."""

    def __init__(self, hardware: bool = False) -> None:
        self.hardware = hardware

    def check_bits(self, fw: int, bw: int) -> None:
        """Any precision runs in float."""

    def run(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, ops: Ops,
            call: LayerCall) -> torch.Tensor:
        return _FakeQuantGemm.apply(x, w, b, ops, call, self.hardware)
