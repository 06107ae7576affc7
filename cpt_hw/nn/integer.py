"""The integer backends (``exact``, ``accel``): three integer GEMMs per layer and step, host corrections.

A layer call is lowered to G GEMMs (:mod:`cpt_hw.nn.ops`); per group, with integer codes Q, per-tensor
activation scale/zero point (s_x, z_x), per-channel weight (s_w[n], z_w[n]), per-tensor error (s_e, z_e),
padding mask Mk (P x K, 1 where an im2col entry is a real input) and m = (b, p):

forward   Y[m,n]  = s_x s_w[n] (Q_x Q_w^T)[m,n] + s_x z_w[n] sum_k Q_x[m,k]
                    + z_x s_w[n] (Mk Q_w^T)[p,n] + z_x z_w[n] sum_k Mk[p,k]
weight    dW[n,k] = s_e s_x (Q_e^T Q_x)[n,k] + s_e z_x (sum_b Q_e)^T Mk [n,k]
                    + z_e s_x sum_m Q_x[m,k] + z_e z_x B sum_p Mk[p,k]
input     dX = r sum over real taps (s_t Q_t + z_t)(Q_w + o),  o[n] = z_w[n] / s_w[n],  r = max_n s_w,
          as a transposed convolution (:meth:`ConvOps.lower_transposed`): with T the im2col of the dilated,
          padded Q_t (Mi = B x input positions, rows; N kh kw columns), R the rotated weight codes
          (N kh kw x C_in/G) and Mt the real-tap mask (input position x kh kw),
          dX[mi,c] = r (s_t ((T R)[mi,c] + (T o)[mi]) + z_t (Mt sum_n (R + o))[p(mi),c])

The three products Q_x Q_w^T (fw x fw bits), Q_x^T Q_e (fw x bw) and T R (bw x fw) run on the
engine: ``golden.gemm`` (exact) or the accelerator (accel), unsigned operands.  Everything else is
O(M N + M K + N K + P K N) host work, exact integer sums in float64 followed by float64 scaling; the
input gradient leaves the engine as B H W x C_in, not k^2 times that for a col2im.
Q_t are the codes of E_t = E diag(s_w / r) quantized per tensor at bw bits (stochastic, its own noise
stream), so dX = r E_t (Q_w + z_w / s_w): the hardware-true way to get W's per-channel scales out of a GEMM that
reduces over channels (docs/numerics.md).  With bw = 0 the backward pass runs in float on the host.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from .. import golden
from .backends import BackendError
from .ops import ConvOps, LinearOps
from .profiling import region
from .quant import channel_range, dequantize, fold_factors, quant_params, quantize_codes, quantize_error
from .torch_backend import LayerCall

Ops = ConvOps | LinearOps
_F64 = torch.float64


class GemmEngine(Protocol):
    """Computes C = A.B for unsigned integer operands, exactly as ``cpt_hw.golden.gemm``."""

    name: str

    def gemm(self, a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int) -> np.ndarray: ...

    def check_bits(self, fw: int, bw: int) -> None: ...

    def stats(self) -> dict: ...


class ExactEngine:
    """``golden.gemm`` itself: the reference every other engine is tested against."""

    name = "exact"

    def __init__(self) -> None:
        self.calls = 0
        self.binary_ops = 0

    def gemm(self, a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int) -> np.ndarray:
        self.calls += 1
        self.binary_ops += golden.gemm_cost(a.shape[0], b.shape[1], a.shape[1], a_bits, b_bits)
        return golden.gemm(a, b, a_bits, b_bits, a_signed=False, b_signed=False)

    def check_bits(self, fw: int, bw: int) -> None:
        """Any precision the quantizers accept is exact here."""

    def stats(self) -> dict:
        """GEMM calls and useful binary operations (M N K a_bits b_bits summed) so far."""
        return {"backend": self.name, "gemm_calls": self.calls, "binary_ops": self.binary_ops}


def _gemm(engine: GemmEngine, a: torch.Tensor, b: torch.Tensor, a_bits: int, b_bits: int, kind: str) -> torch.Tensor:
    """Batched over groups: a (G, M, K), b (G, K, N) float codes -> (G, M, N) float64 (exact integers).

    kind: the GEMM class (fwd, dgrad, wgrad), the name of its profiling region."""
    out = []
    for g in range(a.shape[0]):
        with region("conversions"):
            ag, bg = a[g].to(torch.int64).cpu().numpy(), b[g].to(torch.int64).cpu().numpy()
        with region("gemm." + kind):
            out.append(engine.gemm(ag, bg, a_bits, b_bits))
    with region("conversions"):
        return torch.from_numpy(np.stack(out)).to(device=a.device, dtype=_F64)


class _IntegerGemm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, ops: Ops, call: LayerCall, engine: GemmEngine):  # type: ignore[override]
        fw = call.fw
        with region("rounding"):
            qpx = quant_params(call.x_min, call.x_max, fw)
            qx = quantize_codes(x, fw, qpx)
            qpw = quant_params(*channel_range(w), fw)
            qw = quantize_codes(w, fw, qpw)

        with region("lowering"):
            xl, wl = ops.lower(qx), ops.lower_weight(qw)
            mask = ops.mask(x.shape, x.device)
        with region("conversions"):
            xl, wl = xl.to(_F64), wl.to(_F64)                             # (G, M, K), (G, N, K)
        g, m, _ = xl.shape
        n = wl.shape[1]
        p = ops.positions(x.shape)
        sx, zx = qpx.scale.to(_F64), qpx.zero_point.to(_F64)
        sw, zw = qpw.scale.to(_F64).reshape(g, 1, n), qpw.zero_point.to(_F64).reshape(g, 1, n)

        acc = _gemm(engine, xl, wl.transpose(1, 2), fw, fw, "fwd")       # (G, M, N)
        with region("corrections"):
            row = xl.sum(2, keepdim=True)                                 # (G, M, 1)
            if mask is None:
                border, count = wl.sum(2).reshape(g, 1, n), float(xl.shape[2])
            else:
                mk = mask.to(_F64)
                border = (mk @ wl.transpose(1, 2)).repeat(1, m // p, 1)   # (G, M, N): (Mk Q_w^T)[p(m), n]
                count = mk.sum(1).repeat(m // p).reshape(1, m, 1)
            y = sx * sw * acc + sx * zw * row + zx * sw * border + zx * zw * count
        with region("lowering"):
            y = ops.raise_out(y.to(x.dtype), x.shape)
        if b is not None:
            y = y + ops.channel_view(b, y.dim())

        ctx.ops, ctx.call, ctx.engine, ctx.x_shape, ctx.has_bias = ops, call, engine, x.shape, b is not None
        ctx.save_for_backward(qx, qw, qpx.scale, qpx.zero_point, qpw.scale, qpw.zero_point)
        return y

    @staticmethod
    def backward(ctx, e):  # type: ignore[override]
        qx, qw, sx, zx, sw, zw = ctx.saved_tensors
        ops, err, engine, fw = ctx.ops, ctx.call.error, ctx.engine, ctx.call.fw
        if err is None:  # float errors: the backward GEMMs cannot run on integer hardware
            x_hat, w_hat = qx * sx + zx, qw * sw + zw
            dx = ops.grad_input(e, w_hat, ctx.x_shape) if ctx.needs_input_grad[0] else None
            dw = ops.grad_weight(x_hat, e, w_hat.shape) if ctx.needs_input_grad[1] else None
            db = ops.grad_bias(e) if ctx.has_bias and ctx.needs_input_grad[2] else None
            return dx, dw, db, None, None, None

        bits = err.bits
        with region("rounding"):
            qe, qpe = quantize_error(e, bits, err.seed)
        with region("lowering"):
            el, xl = ops.lower_out(qe), ops.lower(qx)
        with region("conversions"):
            el, xl = el.to(_F64), xl.to(_F64)                            # (G, M, N), (G, M, K)
        g, m, n = el.shape
        p = ops.positions(ctx.x_shape)
        se, ze = qpe.scale.to(_F64), qpe.zero_point.to(_F64)

        dx = dw = db = None
        if ctx.needs_input_grad[1]:
            sx64, zx64 = sx.to(_F64), zx.to(_F64)
            # (Q_x^T Q_e)^T: the errors (N <= C_out columns) are the B operand the device loads once per
            # call while the activations stream as A (bench/resnet74_gemms.py): 22 % fewer weight-gradient
            # cycles over CPT 3-8/8 than Q_e^T Q_x (measured: docs/zc706-pynq.md, "Measured budget")
            acc = _gemm(engine, xl.transpose(1, 2), el, fw, bits, "wgrad").transpose(1, 2)  # (G, N, K)
            with region("corrections"):
                col = xl.sum(1, keepdim=True)                             # (G, 1, K)
                mask = ops.mask(ctx.x_shape, e.device)
                if mask is None:
                    border, count = el.sum(1).reshape(g, n, 1), float(m)
                else:
                    mk = mask.to(_F64)
                    esum = el.reshape(g, m // p, p, n).sum(1)             # (G, P, N)
                    border, count = esum.transpose(1, 2) @ mk, (m // p) * mk.sum(0)
                dwl = se * sx64 * acc + se * zx64 * border + ze * sx64 * col + ze * zx64 * count
                dw = dwl.to(e.dtype).reshape(qw.shape)
        if ctx.needs_input_grad[0]:
            with region("rounding"):
                ratio, s_ref = fold_factors(sw)
                q_t, qp_t = quantize_error(e * ops.channel_view(ratio, e.dim()), bits, err.seed_scaled)
            with region("lowering"):  # the transposed convolution: no k^2-fold result, no col2im
                tl = ops.lower_transposed(q_t, ctx.x_shape)               # (G, Mi, N kh kw), Mi = B Pin
                wr = ops.lower_weight_transposed(qw)                      # (G, N kh kw, Cg)
                mask_t = ops.transposed_mask(ctx.x_shape, e.device)       # (Pin, kh kw) or None
            with region("conversions"):
                tl, wr = tl.to(_F64), wr.to(_F64)
            st, zt = qp_t.scale.to(_F64), qp_t.zero_point.to(_F64)
            acc = _gemm(engine, tl, wr, bits, fw, "dgrad")                # (G, Mi, Cg)
            with region("corrections"):
                taps = wr.shape[1] // n
                o = (zw.to(_F64) / sw.to(_F64)).reshape(g, n, 1).repeat_interleave(taps, 1)  # (G, N kh kw, 1)
                rows = tl @ o                                             # (G, Mi, 1): sum over real taps of Q_t o
                wo = (wr + o).reshape(g, n, taps, -1).sum(1)              # (G, kh kw, Cg): sum_n (Q_w + o)
                if mask_t is None:
                    border = wo.sum(1, keepdim=True)                      # (G, 1, Cg)
                else:
                    border = (mask_t.to(_F64) @ wo).repeat(1, ctx.x_shape[0], 1)  # (G, Mi, Cg)
                dxl = s_ref.to(_F64) * (st * (acc + rows) + zt * border)
            with region("lowering"):
                dx = ops.raise_in(dxl.to(e.dtype), ctx.x_shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = ops.grad_bias(dequantize(qe, qpe).to(e.dtype))
        return dx, dw, db, None, None, None


class IntegerBackend:
    """Quantized layers whose GEMMs run on an integer :class:`GemmEngine`."""

    def __init__(self, engine: GemmEngine) -> None:
        self.engine = engine

    def check_bits(self, fw: int, bw: int) -> None:
        self.engine.check_bits(fw, bw)

    def run(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, ops: Ops,
            call: LayerCall) -> torch.Tensor:
        return _IntegerGemm.apply(x, w, b, ops, call, self.engine)


def check_engine_bits(limit_fw: int, limit_bw: int, fw: int, bw: int, what: str) -> None:
    """Raise a one-line BackendError when fw/bw exceed what ``what`` supports."""
    if fw > limit_fw:
        raise BackendError(f"fw = {fw} bits: {what} supports weights/activations up to {limit_fw} bits")
    if bw > limit_bw:
        raise BackendError(f"bw = {bw} bits: {what} supports errors up to {limit_bw} bits")
