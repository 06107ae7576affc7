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
          padded Q_t (Mi = B x input positions, rows; kh kw N columns), R the rotated weight codes
          (kh kw N x C_in/G) and Mt the real-tap mask (input position x kh kw),
          dX[mi,c] = r (s_t ((T R)[mi,c] + (T o)[mi]) + z_t (Mt sum_n (R + o))[p(mi),c])

The three products Q_x Q_w^T (fw x fw bits), Q_x^T Q_e (fw x bw) and T R (bw x fw) run on the
engine: ``golden.gemm`` (exact) or the accelerator (accel), unsigned operands.  The quantizers write
uint8 codes (int16/int32 above 8 bits, :func:`quant.quantize_int`), which are lowered and handed to the
engine in that dtype: no float, float64 or int64 copy of an operand; the engine writes its result
straight into the float output.  On the accelerator a convolution the driver's convolution calls take
(one group, no dilation, equal stride 1 or 2 and padding 0 or 1 on both axes, kernel <= 3:
:class:`ConvEngine`) hands its codes unlowered to ``conv2d``, ``conv2d_input`` and ``conv2d_weight``
(cpt_driver.conv), which form the same three GEMMs and write into the same buffers; on a device with the
convolution engine the layer packs its input once (:meth:`ConvEngine.pack_tensor`) for its forward and weight-
gradient calls.  Memory: a layer keeps the codes of its input for backward (one byte per element, or packed at
fw bits per element on the engine), and the ReLU that produced that input keeps one bit per element instead
of its float output (:mod:`cpt_hw.nn.saved`); the lowered operands and GEMM outputs go through buffers reused by every
layer (:class:`_Workspace`).  Everything else is O(M N + M K + N K + P K N) host work: the row
sums of A, column sums of B and border products are exact integer sums (int64, or float32/float64 BLAS
below 2^24/2^53; on the accelerator a convolution's forward and weight-gradient calls return the sums of x
and e they need, ``x_sums`` / ``e_sums``: the device's code sums where it computes them); the forward and
input-gradient outputs (M x N, activation-sized) are scaled in place in float32 with the rank-one terms
(u z_w^T, rows 1^T) and the border terms broadcast over the batch; the weight gradient's result is
weight-sized and combined in float64 (its sums over B P reach 2^33 and the z_e terms cancel most of
s_e s_x acc).  The input gradient's rank-one term T o comes from the error
itself (:meth:`ConvOps.weighted_tap_sums`), not from a pass over T; it leaves the engine as B H W x C_in,
not k^2 times that for a col2im.
Q_t are the codes of E_t = E diag(s_w / r) quantized per tensor at bw bits (stochastic, its own noise
stream), so dX = r E_t (Q_w + z_w / s_w): the hardware-true way to get W's per-channel scales out of a GEMM that
reduces over channels (docs/numerics.md).  With bw = 0 the backward pass runs in float on the host.
"""

from __future__ import annotations

import math
import mmap
import threading
from typing import Callable, Protocol

import numpy as np
import torch

from ..hw import golden
from .ops import ConvOps, LinearOps, Lowering, code_sum
from .profiling import region
from .quant import (QParams, channel_range, dequantize, fold_factors, product_range, quant_params, quantize_int,
                    tensor_range)
from .saved import keep_sign_only
from .types import BackendError, LayerCall

Ops = ConvOps | LinearOps
_F32, _F64 = torch.float32, torch.float64


class GemmEngine(Protocol):
    """Computes C = A.B for unsigned integer operands, exactly as ``cpt_hw.hw.golden.gemm``."""

    name: str

    def gemm(self, a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int,
             out: np.ndarray | None = None) -> np.ndarray:
        """C (M, N) exact as int64, or written into ``out`` (any real dtype: rounded once) and returned."""
        ...

    def check_bits(self, fw: int, bw: int) -> None: ...

    def stats(self) -> dict: ...


class ConvEngine(GemmEngine, Protocol):
    """An engine that also runs a convolution's three GEMMs as convolution calls on the unlowered codes (the
    accelerator's driver: cpt_driver.conv), writing each GEMM's exact result into ``out``, the convolution's
    view of the (M, N) result buffer."""

    def runs_conv(self, ops: ConvOps) -> bool: ...

    def pack_tensor(self, x: np.ndarray, bits: int) -> object | None:
        """Unsigned codes (N, C, H, W) packed once in the device's tensor layout, which ``conv2d`` and
        ``conv2d_weight`` take as x (cpt_driver.RowPlaneTensor; its ``codes()`` gives them back), or None
        where the calls would not use it (a device that lowers them to GEMMs)."""
        ...

    def conv2d(self, x: np.ndarray, w: np.ndarray, x_bits: int, w_bits: int, ops: ConvOps,
               out: np.ndarray, x_sums: np.ndarray) -> np.ndarray:
        """The forward GEMM into ``out`` and x's window sums (B, Ho, Wo) into ``x_sums``."""
        ...

    def conv2d_input(self, x_shape: tuple[int, ...], w: np.ndarray, e: np.ndarray, w_bits: int, e_bits: int,
                     ops: ConvOps, out: np.ndarray) -> np.ndarray: ...

    def conv2d_weight(self, x: np.ndarray, w_shape: tuple[int, ...], e: np.ndarray, x_bits: int, e_bits: int,
                      ops: ConvOps, out: np.ndarray, x_sums: np.ndarray, e_sums: np.ndarray) -> np.ndarray:
        """The weight-gradient GEMM into ``out``, the tap sums of x (C, kh, kw) and of e (N, kh, kw) into
        ``x_sums`` and ``e_sums``."""
        ...


class ExactEngine:
    """``golden.gemm`` itself: the reference every other engine is tested against."""

    name = "exact"

    def __init__(self) -> None:
        self.calls = 0
        self.binary_ops = 0

    def gemm(self, a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int,
             out: np.ndarray | None = None) -> np.ndarray:
        self.calls += 1
        self.binary_ops += golden.gemm_cost(a.shape[0], b.shape[1], a.shape[1], a_bits, b_bits)
        c = golden.gemm(a, b, a_bits, b_bits, a_signed=False, b_signed=False)
        if out is None:
            return c
        np.copyto(out, c, casting="unsafe")
        return out

    def check_bits(self, fw: int, bw: int) -> None:
        """Any precision the quantizers accept is exact here."""

    def stats(self) -> dict:
        """GEMM calls and useful binary operations (M N K a_bits b_bits summed) so far."""
        return {"backend": self.name, "gemm_calls": self.calls, "binary_ops": self.binary_ops}


class _Workspace(threading.local):
    """Host buffers reused by every layer and iteration: the lowered A operand of a GEMM and the float output
    of a grouped convolution's forward or input-gradient GEMM.  Each is consumed before the next is built (the
    engines are synchronous, and those outputs are copied by ``raise_out``/``raise_in``), so one buffer per role, kept
    at the largest size seen, serves them all.  Freshly allocated instead, these activation-sized
    temporaries (the largest an iteration makes: a 3x3 layer's lowered operand is 9x its input) landed
    between the long-lived saved tensors and grew the malloc heap; the buffers themselves live in memory
    maps of their own, outside the heap (cpt_driver.layout.offheap_array says why).  Per thread: two
    models trained in two threads never share one."""

    def __init__(self) -> None:
        self.buffers: dict[str, torch.Tensor] = {}

    def scratch(self, role: str) -> Callable[[int, torch.dtype], torch.Tensor]:
        def get(numel: int, dtype: torch.dtype) -> torch.Tensor:
            nbytes = numel * dtype.itemsize
            buf = self.buffers.get(role)
            if buf is None or buf.numel() < nbytes:
                self.buffers.pop(role, None)  # the old one goes before the larger one comes
                buf = self.buffers[role] = torch.frombuffer(mmap.mmap(-1, nbytes), dtype=torch.uint8)
            return buf[:nbytes].view(dtype)
        return get


_WORKSPACE = _Workspace()


def _scratch(ops: Ops, x: torch.Tensor, role: str) -> Callable[[int, torch.dtype], torch.Tensor] | None:
    """The workspace for a CPU convolution (a linear layer's lowerings and outputs are views of its tensors)."""
    return _WORKSPACE.scratch(role) if isinstance(ops, ConvOps) and x.device.type == "cpu" else None


def _out_scratch(ops: Ops, x: torch.Tensor) -> Callable[[int, torch.dtype], torch.Tensor] | None:
    """Where a forward or input-gradient GEMM writes: the workspace only for a grouped convolution, whose output
    ``raise_out``/``raise_in`` rearranges into a new tensor; a one-group convolution's GEMM result, rows (b, h, w)
    and channels as columns, is the layer's output itself as a channels-last tensor (no copy), so it is a
    tensor of its own."""
    return _scratch(ops, x, "c") if ops.groups > 1 else None


def _packs(engine: GemmEngine, ops: Ops, q: torch.Tensor) -> bool:
    """Whether the engine takes a CPU convolution's A operands described (ops.Lowering) rather than built:
    the accelerator's driver packs them from the unlowered codes (cpt_driver.sources), once per tensor
    instead of once per tap."""
    return getattr(engine, "packs_lowerings", False) and isinstance(ops, ConvOps) and q.device.type == "cpu"


def _conv_engine(engine: GemmEngine, ops: Ops, q: torch.Tensor) -> ConvEngine | None:
    """The engine, when it runs this CPU convolution's three GEMMs as convolution calls (:class:`ConvEngine`),
    which form the lowered operands themselves: the same GEMMs, so the same results."""
    if _packs(engine, ops, q) and hasattr(engine, "runs_conv") and engine.runs_conv(ops):
        return engine  # type: ignore[return-value]
    return None


def _conv_call(shape: tuple[int, int, int], dtype: torch.dtype,
               scratch: Callable[[int, torch.dtype], torch.Tensor] | None, kind: str,
               call: Callable[[np.ndarray], object]) -> torch.Tensor:
    """What :func:`_gemm` returns for one group, (1, M, N) ``dtype``, written by an engine's convolution call
    through its ``out=``: ``call`` gets the (M, N) result and passes the convolution its view of it."""
    out = torch.empty(shape, dtype=dtype) if scratch is None else scratch(math.prod(shape), dtype).view(shape)
    with region("gemm." + kind):
        call(out[0].numpy())
    return out


def _dims(a: torch.Tensor | list[Lowering]) -> tuple[int, int, int]:
    """(G, rows, columns) of a lowered operand or of its per-group descriptions."""
    return (len(a), *a[0].shape) if isinstance(a, list) else tuple(a.shape)  # type: ignore[return-value]


def _gemm(engine: GemmEngine, a: torch.Tensor | list[Lowering], b: torch.Tensor, a_bits: int, b_bits: int,
          kind: str, dtype: torch.dtype = _F32, scratch: Callable[[int, torch.dtype], torch.Tensor] | None = None
          ) -> torch.Tensor:
    """Batched over groups: a (G, M, K) (or G descriptions of it), b (G, K, N) integer codes (views welcome)
    -> (G, M, N) ``dtype``.

    The engine writes its exact result into the output, each element rounded once to ``dtype`` (float32:
    relative error <= 2^-24, only where it exceeds 2^24), which the corrections then scale in place: no
    (M, N) int64 copy.  kind: the GEMM class (fwd, dgrad, wgrad), the name of its profiling region."""
    g_count, m, _ = _dims(a)
    shape, device = (g_count, m, b.shape[2]), b.device
    out = torch.empty(shape, dtype=dtype) if scratch is None else scratch(math.prod(shape), dtype).view(shape)
    b = b.cpu()  # the engines are numpy (host) code
    for g in range(g_count):
        with region("gemm." + kind):
            ag = a[g] if isinstance(a, list) else a[g].cpu().numpy()
            engine.gemm(ag, b[g].numpy(), a_bits, b_bits, out=out[g].numpy())
    return out.to(device)


def _exact_mm(a: torch.Tensor, b: torch.Tensor, bound: int) -> torch.Tensor:
    """a @ b for small operands holding integers (or 0/1 masks) whose partial sums stay below ``bound``:
    float32 BLAS is exact below 2^24, float64 beyond; the (small) result comes back as float32."""
    dtype = _F32 if bound < 1 << 24 else _F64
    return (a.to(dtype) @ b.to(dtype)).to(_F32)


def _forward_output(qx: torch.Tensor, qw: torch.Tensor, qpx: QParams, qpw: QParams, b: torch.Tensor | None,
                    ops: Ops, engine: GemmEngine, fw: int, x_shape: torch.Size, x_dtype: torch.dtype,
                    packed_x: object | None = None) -> torch.Tensor:
    """The layer's float output from its input and weight codes: the forward GEMM and its corrections (module
    docstring).  Deterministic, so running it again in backward gives the same tensor bit for bit.
    ``packed_x``: the convolution engine's packed qx (:meth:`ConvEngine.pack_tensor`), given to its call."""
    conv = _conv_engine(engine, ops, qx)
    with region("lowering"):
        # (G, M, K), (G, N, K) codes; a convolution call lowers x itself
        if conv is not None:
            xl = None
        else:
            xl = ops.lowering(qx) if _packs(engine, ops, qx) else ops.lower(qx, _scratch(ops, qx, "a"))
        wl = ops.lower_weight(qw)
        mask = ops.mask(x_shape, qx.device)
    p = ops.positions(x_shape)
    g, m, k = (1, x_shape[0] * p, wl.shape[2]) if xl is None else _dims(xl)
    n = wl.shape[1]
    sx, zx = qpx.scale, qpx.zero_point
    sw, zw = qpw.scale.reshape(g, 1, n), qpw.zero_point.reshape(g, 1, n)

    row = None
    if conv is not None:  # Y's (B Ho Wo, N) rows are its channels-last (B, N, Ho, Wo) view; the call sums x's
        ho, wo = ops.out_size(x_shape)  # windows too (the device's code sums where it has them)
        row = torch.empty((1, m), dtype=_F32)
        y = _conv_call((1, m, n), _F32, _out_scratch(ops, qx), "fwd", lambda o: conv.conv2d(
            qx.numpy() if packed_x is None else packed_x, qw.numpy(), fw, fw, ops,
            out=o.reshape(x_shape[0], ho, wo, n).transpose(0, 3, 1, 2), x_sums=row.numpy().reshape(-1, ho, wo)))
    else:
        y = _gemm(engine, xl, wl.transpose(1, 2), fw, fw, "fwd", scratch=_out_scratch(ops, qx))  # (G, M, N)
    with region("corrections"):
        # Y = s_x s_w acc + u z_w^T + z_x s_w border: u[m] = s_x sum_k Q_x[m,k] + z_x count[p(m)] (rank
        # one), border[p,n] = (Mk Q_w^T)[p,n] broadcast over the batch; integer sums < 2^24 are exact in float32
        if row is None:
            row = ops.row_sums(qx).to(_F32)                           # (G, M), exact: < 2^24
        wsum = wl.sum(2, dtype=torch.int64)                           # (G, N)
        y.mul_(sx * sw)
        if mask is None:
            u = sx * row + zx * float(k)
            y.add_(zx * sw * wsum.to(_F32).reshape(g, 1, n))
        else:
            border = _exact_mm(mask, wl.transpose(1, 2), k * (2**fw - 1))  # (G, P, N)
            u = (sx * row).reshape(g, m // p, p) + zx * mask.sum(1)
            y.view(g, m // p, p, n).add_(((zx * sw) * border).unsqueeze(1))
        y.baddbmm_(u.reshape(g, m, 1), zw)
    with region("lowering"):
        y = ops.raise_out(y.to(x_dtype), x_shape)
    if b is not None:
        y = y + ops.channel_view(b, y.dim())
    return y


class _IntegerGemm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, ops: Ops, call: LayerCall, engine: GemmEngine):  # type: ignore[override]
        fw = call.fw
        with region("rounding"):  # straight to integer codes (quant.quantize_int): no float copy of x
            qpx = quant_params(call.x_min, call.x_max, fw)
            qpw = quant_params(*channel_range(w), fw)
            qx, qw = quantize_int(x, fw, qpx), quantize_int(w, fw, qpw)

        # On the convolution engine x's codes are packed once, here: the forward call copies these bytes, so
        # does the weight gradient's call in backward (which also sums them), and the layer keeps them instead
        # of the codes (as many bytes at 8 bits, fw / 8 of them below)
        conv = _conv_engine(engine, ops, qx)
        packed_x = None
        if conv is not None:
            with region("gemm.fwd"):
                packed_x = conv.pack_tensor(qx.numpy(), fw)
        y = _forward_output(qx, qw, qpx, qpw, b, ops, engine, fw, x.shape, x.dtype, packed_x)
        if packed_x is not None:
            qx = qx.new_empty(0)  # not kept: packed_x holds the codes (saved_codes)
        # what _forward_output needs to run again in backward (cpt_hw.nn.recompute): besides the saved codes
        # and scales, references (the bias parameter is not updated before backward)
        ctx.bias, ctx.x_dtype, ctx.packed_x = b, x.dtype, packed_x
        ctx.ops, ctx.call, ctx.engine, ctx.x_shape, ctx.has_bias = ops, call, engine, x.shape, b is not None
        ctx.save_for_backward(qx, qw, qpx.scale, qpx.zero_point, qpw.scale, qpw.zero_point)
        return y

    @staticmethod
    def backward(ctx, e):  # type: ignore[override]
        qx, qw, sx, zx, sw, zw = ctx.saved_tensors
        ops, err, engine, fw = ctx.ops, ctx.call.error, ctx.engine, ctx.call.fw
        if err is None:  # float errors: the backward GEMMs cannot run on integer hardware
            x_hat, w_hat = saved_codes(ctx, qx).to(_F32) * sx + zx, qw.to(_F32) * sw + zw
            dx = ops.grad_input(e, w_hat, ctx.x_shape) if ctx.needs_input_grad[0] else None
            dw = ops.grad_weight(x_hat, e, w_hat.shape) if ctx.needs_input_grad[1] else None
            db = ops.grad_bias(e) if ctx.has_bias and ctx.needs_input_grad[2] else None
            return dx, dw, db, None, None, None

        bits = err.bits
        with region("rounding"):
            qpe = quant_params(*tensor_range(e), bits)
            qe = quantize_int(e, bits, qpe, err.seed)
        dx = dw = db = None
        if ctx.needs_input_grad[1]:
            if ctx.packed_x is None or _conv_engine(engine, ops, qe) is None:
                qx = saved_codes(ctx, qx)
            dw = _weight_grad(ops, engine, ctx.x_shape, qx, qe, sx, zx, qpe, fw, bits, ctx.packed_x).to(e.dtype)
            dw = ops.raise_weight(dw, qw.shape)
        if ctx.needs_input_grad[0]:
            with region("rounding"):  # E diag(s_w / r), quantized without materialising the product
                ratio, s_ref = fold_factors(sw)
                factor = ops.channel_view(ratio, e.dim())
                qp_t = quant_params(*product_range(e, factor), bits)
                qt = quantize_int(e, bits, qp_t, err.seed_scaled, factor=factor)
            dx = _input_grad(ops, engine, ctx.x_shape, qt, qp_t, qw, sw, zw, s_ref, fw, bits).to(e.dtype)
            with region("lowering"):
                dx = ops.raise_in(dx, ctx.x_shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = ops.grad_bias(dequantize(qe.to(_F32), qpe).to(e.dtype))
        return dx, dw, db, None, None, None


def saved_codes(ctx, qx: torch.Tensor) -> torch.Tensor:
    """The layer's input codes from its autograd node (``ctx``) and its saved ``qx``: qx itself, or, where the
    convolution engine's packed copy was kept instead, the codes unpacked from it."""
    packed = getattr(ctx, "packed_x", None)
    if packed is None or qx.numel():
        return qx
    return torch.from_numpy(packed.codes())


def _weight_grad(ops: Ops, engine: GemmEngine, x_shape: torch.Size, qx: torch.Tensor, qe: torch.Tensor,
                 sx: torch.Tensor, zx: torch.Tensor, qpe, fw: int, bits: int, packed_x: object | None = None
                 ) -> torch.Tensor:
    """dW lowered, (G, N, K) float32, from the activation and error codes (module docstring).  With the
    convolution engine, ``packed_x`` may stand for qx (then empty): its call also gives the code sums."""
    p = ops.positions(x_shape)
    conv = _conv_engine(engine, ops, qe)
    if conv is not None:  # a convolution call lowers x and e itself
        et = xt = None
        g, n, m = 1, qe.shape[1], qe.shape[0] * p
        k = x_shape[1] * ops.kernel[0] * ops.kernel[1]
    else:
        with region("lowering"):
            et = ops.lower_out_t(qe)                                      # (G, N, M) codes
            xt = ops.lowering_t(qx) if _packs(engine, ops, qx) else ops.lower_t(qx, _scratch(ops, qx, "a"))  # G K M
        g, n, m = et.shape
        k = _dims(xt)[1]
    se, ze = qpe.scale, qpe.zero_point
    # (Q_x^T Q_e)^T: the errors (N <= C_out columns) are the B operand the device loads once per
    # call while the activations stream as A (bench/resnet74_gemms.py): 22 % fewer weight-gradient
    # cycles over CPT 3-8/8 than Q_e^T Q_x (measured: docs/zc706-pynq.md, "Measured budget")
    # float64 on this weight-sized (K x N) result only: its sums over M = B P reach 2^33 and the z_e terms
    # cancel most of s_e s_x acc, so float32 would lose ~30 ulps of dW (measured: tests/test_nn_backends.py)
    border = None
    if conv is not None:  # dW^T's (kh kw C, N) rows are its (N, C, kh, kw) view; the call's code sums give the
        kh, kw = ops.kernel  # column sums of the lowered x and the border term's tap sums of e
        c = x_shape[1]
        w_shape = (n, c, kh, kw)
        x_sums, e_sums = torch.empty((kh, kw, c), dtype=_F64), torch.empty((kh, kw, n), dtype=_F64)
        acc = _conv_call((1, k, n), _F64, None, "wgrad", lambda o: conv.conv2d_weight(
            qx.numpy() if packed_x is None else packed_x, w_shape, qe.numpy(), fw, bits, ops,
            out=o.reshape(kh, kw, -1, n).transpose(3, 2, 0, 1), x_sums=x_sums.numpy().transpose(2, 0, 1),
            e_sums=e_sums.numpy().transpose(2, 0, 1)))
        col = x_sums.reshape(1, k)                                        # (G, K): lowered columns (i, j, c)
        border = e_sums.unsqueeze(2).expand(kh, kw, c, n).reshape(1, k, n)  # every channel of a tap alike
    else:
        acc = _gemm(engine, xt, et.transpose(1, 2), fw, bits, "wgrad", _F64)  # (G, K, N)
    with region("corrections"):
        # dW^T = s_e s_x acc + s_e z_x border + z_e v: v[k] = s_x sum_m Q_x[m,k] + z_x count[k] (rank one),
        # border[k,n] = (Mk^T sum_b Q_e)[k,n]
        sx, zx, se, ze = sx.to(_F64), zx.to(_F64), se.to(_F64), ze.to(_F64)
        mask = ops.mask(x_shape, qe.device)
        if border is None:
            col = ops.col_sums(qx)                                        # (G, K)
            # the error codes summed over the batch, per channel and output position: (G, N, P) exact integers
            esum = code_sum(et.reshape(g, n, m // p, p), 2)
            # exact: sums < 2^53
            border = esum.sum(2).reshape(g, 1, n) if mask is None else mask.t().to(_F64) @ esum.transpose(1, 2)
        acc.mul_(se * sx)
        acc.add_((se * zx) * border)                                      # (G, 1 or K, N)
        if mask is None:
            v = sx * col + zx * float(m)
        else:
            v = sx * col + zx * ((m // p) * mask.sum(0).to(_F64))
        acc.add_((ze * v).reshape(g, k, 1))
    return acc.transpose(1, 2)


def _input_grad(ops: Ops, engine: GemmEngine, x_shape: torch.Size, qt: torch.Tensor, qp_t, qw: torch.Tensor,
                sw: torch.Tensor, zw: torch.Tensor, s_ref: torch.Tensor, fw: int, bits: int) -> torch.Tensor:
    """dX lowered, (G, B Pin, Cg) float32: the transposed convolution of the folded error codes qt (module doc)."""
    conv = _conv_engine(engine, ops, qt)
    with region("lowering"):  # the transposed convolution: no k^2-fold result, no col2im
        tl = None if conv is not None else (ops.lowering_transposed(qt, x_shape) if _packs(engine, ops, qt)
                                else ops.lower_transposed(qt, x_shape, _scratch(ops, qt, "a")))  # (G, Mi, kh kw N)
        wr = ops.lower_weight_transposed(qw)                              # (G, kh kw N, Cg)
        mask_t = ops.transposed_mask(x_shape, qt.device)                  # (Pin, kh kw) or None
    g, mi = (1, x_shape[0] * x_shape[2] * x_shape[3]) if tl is None else _dims(tl)[:2]  # Mi = B Pin
    cg = wr.shape[2]
    n = sw.numel() // g
    taps = wr.shape[1] // n
    st, zt = qp_t.scale, qp_t.zero_point
    if conv is not None:  # dX's (B H W, C) rows are its channels-last (B, C, H, W) view; the call lowers qt itself
        b, _, h, w = x_shape
        acc = _conv_call((1, mi, cg), _F32, _out_scratch(ops, qt), "dgrad", lambda o: conv.conv2d_input(
            tuple(x_shape), qw.numpy(), qt.numpy(), fw, bits, ops, out=o.reshape(b, h, w, cg).transpose(0, 3, 1, 2)))
    else:
        acc = _gemm(engine, tl, wr, bits, fw, "dgrad", scratch=_out_scratch(ops, qt))  # (G, Mi, Cg)
    with region("corrections"):
        o = (zw / sw).reshape(g, n)                                       # zero points in code units
        # (T o)[mi] without touching T: the per-position channel contraction of Q_t, summed over the taps
        # that reach each input position (rank one against the columns)
        rows = ops.weighted_tap_sums(qt.to(_F32), o, x_shape)            # (G, Mi, 1)
        wo = wr.reshape(g, taps, n, cg).sum(2, dtype=torch.int64).to(_F32) + o.sum(1).reshape(g, 1, 1)  # (G, taps, Cg)
        acc.add_(rows).mul_(s_ref * st)
        if mask_t is None:
            acc.add_((s_ref * zt) * wo.sum(1, keepdim=True))
        else:
            acc.view(g, x_shape[0], -1, cg).add_((s_ref * zt) * (mask_t @ wo).unsqueeze(1))
    return acc


class IntegerBackend:
    """Quantized layers whose GEMMs run on an integer :class:`GemmEngine`."""

    def __init__(self, engine: GemmEngine) -> None:
        self.engine = engine

    def check_bits(self, fw: int, bw: int) -> None:
        self.engine.check_bits(fw, bw)

    def run(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, ops: Ops,
            call: LayerCall) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            # this layer saves x's codes; a ReLU that produced x need not keep x itself (cpt_hw.nn.saved)
            keep_sign_only(x)
        return _IntegerGemm.apply(x, w, b, ops, call, self.engine)


def check_engine_bits(limit_fw: int, limit_bw: int, fw: int, bw: int, what: str) -> None:
    """Raise a one-line BackendError when fw/bw exceed what ``what`` supports."""
    if fw > limit_fw:
        raise BackendError(f"fw = {fw} bits: {what} supports weights/activations up to {limit_fw} bits")
    if bw > limit_bw:
        raise BackendError(f"bw = {bw} bits: {what} supports errors up to {limit_bw} bits")
