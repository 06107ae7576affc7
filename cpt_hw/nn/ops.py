"""The two layer types as data: their float GEMMs and their lowering to integer GEMMs.

Every quantized layer computes Y = X W^T in some layout.  :class:`LinearOps` and :class:`ConvOps` say,
side by side, how to run that product and its two gradients in float (torch backend) and how to lower a
call to G independent GEMMs (one per convolution group) for the integer backends:

    X_low: (G, M, Kg)   M = batch x output positions, Kg = kh x kw x C_in/G   (im2col, columns (i, j, c))
    W_low: (G, Ng, Kg)  Ng = C_out/G, columns (i, j, c) like X_low
    Y_low: (G, M, Ng)

Zero padding matters for the integer form: a padded input is exactly 0, not a quantized code, so the
zero-point corrections count only real input positions.  ``mask`` is the im2col of an all-ones input,
(P, Kg) with P = output positions per sample; None means "no padding, every position is real".

The input gradient is the transposed convolution, lowered the same way (no col2im of a k^2-fold result):

    E_low:  (G, B*Pin, kh*kw*Ng)   im2col of the error dilated by the stride (s - 1 zeros between
                                   entries) and padded by d (k - 1) - p, Pin = input positions per sample
    W_rot:  (G, kh*kw*Ng, Cg)      the kernels rotated by 180 degrees, C_in/G x C_out/G transposed
    dX_low: (G, B*Pin, Cg)         = E_low W_rot, raised to (B, C_in, H, W) by ``raise_in``

``transposed_mask`` (Pin, kh*kw) marks the real error taps of E_low (not padding, not dilation zeros).

The lowerings work on any dtype, in particular on the quantizers' integer codes as uint8 (``F.unfold`` has
no integer kernel, so the im2col is one strided view and one copy): a lowered operand costs one byte per
entry, not the eight of a float64 copy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .quant import is_channels_last
from .types import BackendError


#: Where a lowering may put its result: ``scratch(numel, dtype)`` returns a flat contiguous tensor of at
#: least ``numel`` elements (cpt_hw.nn.integer reuses one buffer for every layer's lowered A operand).
Scratch = Callable[[int, torch.dtype], torch.Tensor]


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class LinearOps:
    """Y = X W^T + b for X (..., K), W (N, K)."""

    groups = 1

    def forward(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, w, b)

    def grad_input(self, e: torch.Tensor, w: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
        return (e @ w).reshape(x_shape)

    def grad_weight(self, x: torch.Tensor, e: torch.Tensor, w_shape: torch.Size) -> torch.Tensor:
        return (e.reshape(-1, e.shape[-1]).t() @ x.reshape(-1, x.shape[-1])).reshape(w_shape)

    def grad_bias(self, e: torch.Tensor) -> torch.Tensor:
        return e.reshape(-1, e.shape[-1]).sum(0)

    def grads(self, e: torch.Tensor, x: torch.Tensor, w: torch.Tensor, need_input: bool, need_weight: bool
              ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(dX, dW), each only when needed: :meth:`grad_input` and :meth:`grad_weight`."""
        return (self.grad_input(e, w, x.shape) if need_input else None,
                self.grad_weight(x, e, w.shape) if need_weight else None)

    def channel_view(self, v: torch.Tensor, ndim: int) -> torch.Tensor:
        """A per-output-channel vector (N,) shaped to broadcast against an output of ``ndim`` dims."""
        return v.reshape(-1)

    # lowering ------------------------------------------------------------------------------------------
    def lower(self, x: torch.Tensor, scratch: Scratch | None = None) -> torch.Tensor:
        return x.reshape(1, -1, x.shape[-1])

    def lower_t(self, x: torch.Tensor, scratch: Scratch | None = None) -> torch.Tensor:
        """``lower(x)`` transposed and contiguous: (1, K, M)."""
        return x.reshape(-1, x.shape[-1]).t().contiguous().unsqueeze(0)

    def lower_weight(self, w: torch.Tensor) -> torch.Tensor:
        return w.reshape(1, w.shape[0], w.shape[1])

    def lower_out(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(1, -1, y.shape[-1])

    def raise_weight(self, w_low: torch.Tensor, w_shape: torch.Size) -> torch.Tensor:
        return w_low.reshape(w_shape)

    def lower_out_t(self, y: torch.Tensor) -> torch.Tensor:
        """``lower_out(y)`` transposed and contiguous: (1, N, M)."""
        return y.reshape(-1, y.shape[-1]).t().contiguous().unsqueeze(0)

    def raise_out(self, y_low: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
        return y_low.reshape(*x_shape[:-1], y_low.shape[-1])

    def positions(self, x_shape: torch.Size) -> int:
        return 1

    def mask(self, x_shape: torch.Size, device: torch.device) -> torch.Tensor | None:
        return None

    # the input gradient dX = E W: E is already its A operand, W its B operand
    def lower_transposed(self, y: torch.Tensor, x_shape: torch.Size, scratch: Scratch | None = None) -> torch.Tensor:
        return self.lower_out(y)

    def lower_weight_transposed(self, w: torch.Tensor) -> torch.Tensor:
        return self.lower_weight(w)

    def raise_in(self, d: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
        return d.reshape(x_shape)

    def transposed_mask(self, x_shape: torch.Size, device: torch.device) -> torch.Tensor | None:
        return None

    def row_sums(self, q: torch.Tensor) -> torch.Tensor:
        """Row sums of ``lower(q)`` for integer codes q (..., K): (1, M) float64 holding exact integers."""
        return q.reshape(-1, q.shape[-1]).sum(1, dtype=torch.float64).reshape(1, -1)

    def col_sums(self, q: torch.Tensor) -> torch.Tensor:
        """Column sums of ``lower(q)``: (1, K) float64 holding exact integers."""
        return q.reshape(-1, q.shape[-1]).sum(0, dtype=torch.float64).reshape(1, -1)

    def weighted_tap_sums(self, q: torch.Tensor, o: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
        """(E_low o)[m] = sum_n q[m, n] o[n] as (1, M, 1) for q (..., N), o (1, N): the rank-one term of the
        input gradient (a linear layer has one tap)."""
        return (q.reshape(-1, q.shape[-1]) @ o.reshape(-1, 1).to(q.dtype)).reshape(1, -1, 1)


def code_sum(q: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """Exact sum of integer codes along ``dim`` as float64 (:func:`code_sum_int`)."""
    return code_sum_int(q, dim, keepdim).to(torch.float64)


def code_sum_int(q: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """Exact sum of integer codes along ``dim``: int32 on the CPU, where numpy sums a buffer at a time (10x
    faster than torch, which first copies the whole tensor to the sum's dtype) into uint16 where that is exact
    (uint8 codes, at most 257 of them: 1.5-3x faster than int32 sums, measured on ResNet-74's activations),
    else into int32 (exact below 2^31: 8,421,504 codes of 8 bits); elsewhere float32 sums, exact below 2^24
    (C, B <= 65,793 codes of 8 bits); float codes (integer-valued) are summed in float64."""
    if q.device.type == "cpu" and not q.dtype.is_floating_point:
        narrow = q.dtype == torch.uint8 and q.shape[dim] * 255 < 1 << 16
        s = q.numpy().sum(axis=dim, dtype=np.uint16 if narrow else np.int32, keepdims=keepdim)
        return torch.from_numpy(s.astype(np.int32, copy=False))
    if q.dtype == torch.float64:
        return q.sum(dim, keepdim=keepdim)
    return q.to(torch.float32).sum(dim, keepdim=keepdim)


def channel_sums_channels_last(q: torch.Tensor) -> torch.Tensor | None:
    """The channel sums (B, 1, H, W) int32 of integer codes q (B, C, H, W) laid out channels-last on the CPU, as a
    float32 matrix-vector product of its (pixels, C) memory with ones: exact, since every sum is below 2^24 (the
    bound is checked), and 2.5x faster than numpy's or torch's integer sums over the 16 contiguous channels of
    ResNet's first stage (measured).  None where q is not such a tensor (:func:`code_sum_int` then)."""
    b, c, h, w = q.shape
    if q.device.type != "cpu" or q.dtype.is_floating_point or q.dtype == torch.bool or not is_channels_last(q) \
            or c * (torch.iinfo(q.dtype).max - min(0, torch.iinfo(q.dtype).min)) >= 1 << 24:
        return None
    pixels = q.permute(0, 2, 3, 1).reshape(-1, c).to(torch.float32)
    return (pixels @ torch.ones(c)).to(torch.int32).reshape(b, 1, h, w)


def _every(step: int, count: int, first: int = 0) -> slice:
    """``count`` indices ``step`` apart from ``first``: where one tap of a strided window lands on every output."""
    return slice(first, first + step * (count - 1) + 1, step)


def window_sum(a: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
               dilation: tuple[int, int]) -> torch.Tensor:
    """(..., H, W) -> (..., Ho, Wo): each window's sum over the zero-padded ``a`` (a convolution with an
    all-ones kernel), as kw + kh strided slice additions in a's dtype (separable: the columns first), so exact
    on integers and, on floats, one fixed order of additions on every CPU.  ResNet-74's forward row sums take
    0.15-0.19 x86 CPU-s an iteration this way against 0.29-0.39 s with a one-channel float64 ``F.conv2d``."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    if (ph, pw) != (0, 0):
        a = F.pad(a, (pw, pw, ph, ph))
    ho = (a.shape[-2] - dh * (kh - 1) - 1) // sh + 1
    wo = (a.shape[-1] - dw * (kw - 1) - 1) // sw + 1
    rows = a[..., _every(sw, wo)].clone()
    for j in range(1, kw):
        rows += a[..., _every(sw, wo, j * dw)]
    out = rows[..., _every(sh, ho), :].clone()
    for i in range(1, kh):
        out += rows[..., _every(sh, ho, i * dh), :]
    return out


def window_scatter(z: torch.Tensor, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                   padding: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
    """The transpose of :func:`window_sum`: (..., Ho, Wo) -> (..., H, W), each output window's value added to
    every real input position it covers (a transposed convolution with an all-ones kernel, as
    ``torch.nn.grad.conv2d_input`` gives), by strided slice additions in a fixed order (the columns first):
    ResNet-74's input-gradient rank-one terms take 0.06 x86 CPU-s an iteration against 0.47-0.71 s."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    h, w = size
    ho, wo = z.shape[-2:]
    width = max(w + 2 * pw, sw * (wo - 1) + dw * (kw - 1) + 1)
    rows = z.new_zeros((*z.shape[:-1], width))
    for j in range(kw):
        rows[..., _every(sw, wo, j * dw)] += z
    rows = rows[..., pw:pw + w]
    height = max(h + 2 * ph, sh * (ho - 1) + dh * (kh - 1) + 1)
    out = z.new_zeros((*z.shape[:-2], height, w))
    for i in range(kh):
        out[..., _every(sh, ho, i * dh), :] += rows
    return out[..., ph:ph + h, :]


def _materialise(view: torch.Tensor, shape: tuple[int, ...], scratch: Scratch | None) -> torch.Tensor:
    """``view.reshape(shape)``; when that needs a copy and ``scratch`` is given, the copy goes there."""
    if scratch is None:
        return view.reshape(shape)
    try:
        return view.view(shape)  # no copy needed (e.g. a 1x1 stride-1 convolution's channels-last input)
    except RuntimeError:
        out = scratch(view.numel(), view.dtype)[:view.numel()].view(shape)
        out.view(view.shape).copy_(view)
        return out


def _padded_nhwc(x: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> zero-padded, channels-last, contiguous (B, Hp, Wp, C)."""
    if padding != (0, 0):
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    return x.permute(0, 2, 3, 1).contiguous()


@dataclass(frozen=True)
class Lowering:
    """A lowered convolution operand described instead of built, for engines whose driver packs it tile by
    tile from the unlowered codes (cpt_driver.sources): ``im2col`` rows (b, ho, wo) x columns (i, j, c) of
    the zero-padded channels-last ``x`` (B, Hp, Wp, C/G) with ``stride``, or ``taps`` rows (i, j, c) x
    columns (b, ho, wo) of the zero-padded NCHW ``x`` (B, C/G, Hp, Wp); one per group."""

    kind: str
    x: torch.Tensor
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the operand it describes."""
        x = self.x if self.kind == "im2col" else self.x.permute(0, 2, 3, 1)
        b, hp, wp, c = x.shape
        ho = (hp - self.dilation[0] * (self.kernel[0] - 1) - 1) // self.stride[0] + 1
        wo = (wp - self.dilation[1] * (self.kernel[1] - 1) - 1) // self.stride[1] + 1
        positions, taps = b * ho * wo, self.kernel[0] * self.kernel[1] * c
        return (positions, taps) if self.kind == "im2col" else (taps, positions)


@functools.lru_cache(maxsize=64)
def _conv_mask(ops: "ConvOps", chw: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    ones = torch.ones((1, chw[0] // ops.groups, *chw[1:]), device=device)
    return _im2col(ones, ops.kernel, ops.stride, ops.padding, ops.dilation, 1)[0]


@functools.lru_cache(maxsize=64)
def _conv_transposed_mask(ops: "ConvOps", chw: tuple[int, int, int], device: torch.device) -> torch.Tensor | None:
    x_shape = torch.Size((1, *chw))
    ho, wo = ops.out_size(x_shape)
    ones = torch.ones((1, 1, ho, wo), device=device)
    mask = F.unfold(ops._dilate_pad(ones, x_shape), ops.kernel, dilation=ops.dilation)[0].t()
    return None if bool(mask.all()) else mask


def _im2col(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
            dilation: tuple[int, int], groups: int, scratch: Scratch | None = None) -> torch.Tensor:
    """(B, C, H, W) of any dtype -> (G, B*P, kh*kw*C/G): rows (b, position), columns (i, j, c), tap-major so
    that the copy moves runs of C/G contiguous channels (the zero-padded input turned channels-last once,
    1/k^2 of the result; 5x faster on uint8 than (c, i, j) columns, measured on ResNet-20's first layer)."""
    x = _padded_nhwc(x, padding)  # (B, Hp, Wp, C)
    b, h, w, c = x.shape
    ho = (h - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    wo = (w - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    sb, sh, sw, sc = x.stride()
    cg = c // groups
    win = x.as_strided((groups, b, ho, wo, kernel[0], kernel[1], cg),
                       (sc * cg, sb, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1], sc))
    return _materialise(win, (groups, b * ho * wo, kernel[0] * kernel[1] * cg), scratch)


@dataclass(frozen=True)
class ConvOps:
    """2-D convolution (zero padding) with its geometry; Y (B, N, Ho, Wo)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @classmethod
    def of(cls, conv: torch.nn.Conv2d) -> "ConvOps":
        """Geometry of an ``nn.Conv2d`` (zero padding; 'valid' or 'same' with odd kernels)."""
        if conv.padding_mode != "zeros":
            raise BackendError(f"padding_mode {conv.padding_mode!r}: quantized convolutions support 'zeros' only")
        kernel, dilation = _pair(conv.kernel_size), _pair(conv.dilation)
        pad = conv.padding
        if pad == "valid":
            pad = (0, 0)
        elif pad == "same":
            if any(k % 2 == 0 for k in kernel):
                raise BackendError(f"padding='same' with even kernel {kernel}: not supported when quantized")
            pad = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
        return cls(kernel, _pair(conv.stride), _pair(pad), dilation, conv.groups)

    def _kw(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def forward(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return F.conv2d(x, w, b, **self._kw())

    def grad_input(self, e: torch.Tensor, w: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
        return torch.nn.grad.conv2d_input(x_shape, w, e, **self._kw())

    def grad_weight(self, x: torch.Tensor, e: torch.Tensor, w_shape: torch.Size) -> torch.Tensor:
        return torch.nn.grad.conv2d_weight(x, w_shape, e, **self._kw())

    def grad_bias(self, e: torch.Tensor) -> torch.Tensor:
        return e.sum((0, 2, 3))

    def grads(self, e: torch.Tensor, x: torch.Tensor, w: torch.Tensor, need_input: bool, need_weight: bool
              ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(dX, dW) of the convolution from the error ``e``, its input ``x`` and weights ``w`` in one
        ``aten.convolution_backward`` call, as autograd does for F.conv2d.  The same products as
        :meth:`grad_input` and :meth:`grad_weight`, without their stand-in operands: ``torch.nn.grad``'s
        functions pass an expanded one-element tensor for the operand they do not need, which the cuDNN path
        copies at full size (two activation-sized element-wise kernels per layer on the CUDA fast path)."""
        dx, dw, _ = torch.ops.aten.convolution_backward(
            e, x, w, None, self.stride, self.padding, self.dilation, False, [0, 0], self.groups,
            (need_input, need_weight, False))
        return dx, dw

    def channel_view(self, v: torch.Tensor, ndim: int) -> torch.Tensor:
        return v.reshape(1, -1, 1, 1)

    # lowering ------------------------------------------------------------------------------------------
    def out_size(self, x_shape: torch.Size) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            (x_shape[2 + i] + 2 * self.padding[i] - self.dilation[i] * (self.kernel[i] - 1) - 1) // self.stride[i] + 1
            for i in range(2))

    def positions(self, x_shape: torch.Size) -> int:
        ho, wo = self.out_size(x_shape)
        return ho * wo

    def lower(self, x: torch.Tensor, scratch: Scratch | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (G, B*P, Kg): im2col, rows ordered (b, position), columns (i, j, c); any dtype."""
        return _im2col(x, self.kernel, self.stride, self.padding, self.dilation, self.groups, scratch)

    def lower_t(self, x: torch.Tensor, scratch: Scratch | None = None) -> torch.Tensor:
        """``lower(x)`` transposed, built directly: (G, kh*kw*Cg, B*P), contiguous.  The weight gradient's
        A operand: the driver packs its rows, and a transposed view would make it gather bytes K apart
        (6x slower than lowering this way, measured on ResNet-20's first layer); here the copy moves
        runs of Wo entries of the zero-padded NCHW input."""
        ph, pw = self.padding
        x = F.pad(x, (pw, pw, ph, ph)) if (ph, pw) != (0, 0) else x.contiguous()
        b, c, h, w = x.shape
        ho = (h - self.dilation[0] * (self.kernel[0] - 1) - 1) // self.stride[0] + 1
        wo = (w - self.dilation[1] * (self.kernel[1] - 1) - 1) // self.stride[1] + 1
        sb, sc, sh, sw = x.stride()
        g = self.groups
        cg = c // g
        win = x.as_strided((g, *self.kernel, cg, b, ho, wo),
                           (sc * cg, sh * self.dilation[0], sw * self.dilation[1], sc, sb, sh * self.stride[0],
                            sw * self.stride[1]))
        return _materialise(win, (g, self.kernel[0] * self.kernel[1] * cg, b * ho * wo), scratch)

    # the same lowerings described, not built (cpt_driver.sources packs them from the unlowered codes) --------
    def _groups_of(self, x: torch.Tensor, dim: int) -> list[torch.Tensor]:
        return list(x.chunk(self.groups, dim)) if self.groups > 1 else [x]

    def lowering(self, x: torch.Tensor) -> list[Lowering]:
        """``lower(x)`` per group, described."""
        xp = _padded_nhwc(x, self.padding)
        return [Lowering("im2col", xg, self.kernel, self.stride, self.dilation) for xg in self._groups_of(xp, 3)]

    def lowering_t(self, x: torch.Tensor) -> list[Lowering]:
        """``lower_t(x)`` per group, described."""
        ph, pw = self.padding
        xp = F.pad(x, (pw, pw, ph, ph)) if (ph, pw) != (0, 0) else x.contiguous()
        return [Lowering("taps", xg, self.kernel, self.stride, self.dilation) for xg in self._groups_of(xp, 1)]

    def lowering_transposed(self, y: torch.Tensor, x_shape: torch.Size) -> list[Lowering]:
        """``lower_transposed(y, x_shape)`` per group, described."""
        yp = _padded_nhwc(self._dilate_pad(y, x_shape), (0, 0))
        return [Lowering("im2col", yg, self.kernel, (1, 1), self.dilation) for yg in self._groups_of(yp, 3)]

    def lower_weight(self, w: torch.Tensor) -> torch.Tensor:
        """(N, Cg, kh, kw) -> (G, Ng, kh*kw*Cg), columns (i, j, c) like ``lower``."""
        g = self.groups
        return w.permute(0, 2, 3, 1).reshape(g, w.shape[0] // g, -1)

    def raise_weight(self, w_low: torch.Tensor, w_shape: torch.Size) -> torch.Tensor:
        """(G, Ng, kh*kw*Cg) -> (N, Cg, kh, kw): the inverse of ``lower_weight``."""
        n, cg, kh, kw = w_shape
        return w_low.reshape(n, kh, kw, cg).permute(0, 3, 1, 2).contiguous()

    def lower_out(self, y: torch.Tensor) -> torch.Tensor:
        """(B, N, Ho, Wo) -> (G, B*P, Ng)."""
        b, n = y.shape[:2]
        g = self.groups
        return y.reshape(b, g, n // g, -1).permute(1, 0, 3, 2).reshape(g, -1, n // g)

    def lower_out_t(self, y: torch.Tensor) -> torch.Tensor:
        """(B, N, Ho, Wo) -> (G, Ng, B*P) contiguous: ``lower_out`` transposed, built directly (runs of P
        entries), so that the driver packs the weight gradient's B operand from contiguous rows."""
        b, n = y.shape[:2]
        g = self.groups
        return y.reshape(b, g, n // g, -1).permute(1, 2, 0, 3).reshape(g, n // g, -1)

    def raise_out(self, y_low: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
        """(G, B*P, Ng) -> (B, N, Ho, Wo).  One group: y_low's own memory as a channels-last tensor (its rows
        (b, ho, wo) are the pixels, its columns the channels; no copy, so y_low must not be a reused buffer).
        Several: a new contiguous tensor (y_low may be a reused buffer)."""
        g, _, ng = y_low.shape
        b = x_shape[0]
        ho, wo = self.out_size(x_shape)
        if g == 1:
            return y_low.view(b, ho, wo, ng).permute(0, 3, 1, 2)
        out = y_low.new_empty((b, g * ng, ho, wo))
        out.view(b, g, ng, ho * wo).copy_(y_low.reshape(g, b, ho * wo, ng).permute(1, 0, 3, 2))
        return out

    def mask(self, x_shape: torch.Size, device: torch.device) -> torch.Tensor | None:
        """(P, Kg) 0/1: which im2col entries are real input positions; None without padding.  Built once per
        geometry and shared (read only): every call of a layer, and layers alike, use the same."""
        return None if self.padding == (0, 0) else _conv_mask(self, tuple(x_shape[1:]), device)

    # code sums of the lowered operand without lowering it (the zero-point terms' row and column sums) ------
    # The codes are summed over channels or the batch exactly (code_sum_int), then over windows or taps in
    # int32 or float64 (exact integers either way, whatever the order).
    def row_sums(self, q: torch.Tensor) -> torch.Tensor:
        """Row sums of ``lower(q)`` for integer codes q (B, C, H, W): (G, B*P) float64 holding exact
        integers: each group's channel sum, summed over every window (:func:`window_sum`, exact integers)."""
        b, c = q.shape[:2]
        g = self.groups
        qc = channel_sums_channels_last(q) if g == 1 else None
        if qc is None:
            qc = code_sum_int(q.reshape(b, g, c // g, *q.shape[2:]), 2)   # (B, G, H, W)
        if qc.is_floating_point():  # float32 channel sums (off the CPU): their window sums in float64
            qc = qc.to(torch.float64)
        s = window_sum(qc, self.kernel, self.stride, self.padding, self.dilation).to(torch.float64)
        return s.reshape(b, g, -1).permute(1, 0, 2).reshape(g, -1)

    def col_sums(self, q: torch.Tensor) -> torch.Tensor:
        """Column sums of ``lower(q)``: (G, Kg) float64 holding exact integers: the batch sum of q, summed
        for each tap (i, j, c) over the output positions that read it (one strided slice per tap)."""
        s = code_sum(q, 0)                                                 # (C, H, W)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        ho, wo = self.out_size(q.shape)
        if (ph, pw) != (0, 0):
            s = F.pad(s, (pw, pw, ph, ph))
        taps = torch.stack([s[:, _every(sh, ho, i * dh), _every(sw, wo, j * dw)].sum((1, 2))
                            for i in range(kh) for j in range(kw)])       # (kh kw, C)
        g = self.groups
        return taps.reshape(kh * kw, g, -1).transpose(0, 1).reshape(g, -1)

    # input gradient as a transposed convolution ----------------------------------------------------------
    def _dilate_pad(self, y: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
        """(B, N, Ho, Wo) -> the error the transposed convolution correlates with the rotated kernels:
        stride - 1 zeros between entries, d (k - 1) - p zeros before, enough after to give H x W outputs
        (negative amounts crop)."""
        b, n, ho, wo = y.shape
        sh, sw = self.stride
        if (sh, sw) != (1, 1):
            z = y.new_zeros((b, n, (ho - 1) * sh + 1, (wo - 1) * sw + 1))
            z[:, :, ::sh, ::sw] = y
            y = z
        pads = []
        for i in (1, 0):  # F.pad takes the last dimension first
            lead = self.dilation[i] * (self.kernel[i] - 1) - self.padding[i]
            pads += [lead, x_shape[2 + i] + self.dilation[i] * (self.kernel[i] - 1) - y.shape[2 + i] - lead]
        return F.pad(y, pads)

    def lower_transposed(self, y: torch.Tensor, x_shape: torch.Size, scratch: Scratch | None = None) -> torch.Tensor:
        """(B, N, Ho, Wo) error -> (G, B*Pin, kh*kw*Ng): im2col of the dilated, padded error (stride 1)."""
        return _im2col(self._dilate_pad(y, x_shape), self.kernel, (1, 1), (0, 0), self.dilation, self.groups,
                       scratch)

    def lower_weight_transposed(self, w: torch.Tensor) -> torch.Tensor:
        """(N, Cg, kh, kw) -> (G, kh*kw*Ng, Cg): each group's kernels rotated by 180 degrees, rows (i, j, n)."""
        g = self.groups
        n, cg, kh, kw = w.shape
        rot = w.flip(2, 3).reshape(g, n // g, cg, kh, kw).permute(0, 3, 4, 1, 2)
        return rot.reshape(g, kh * kw * (n // g), cg)

    def raise_in(self, d: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
        """(G, B*Pin, Cg) -> (B, C_in, H, W): as :meth:`raise_out`, channels-last without a copy for one group
        (d must not be a reused buffer), a new contiguous tensor for several."""
        g, _, cg = d.shape
        b, _, h, w = x_shape
        if g == 1:
            return d.view(b, h, w, cg).permute(0, 3, 1, 2)
        out = d.new_empty((b, g * cg, h, w))
        out.view(b, g, cg, h * w).copy_(d.reshape(g, b, h * w, cg).permute(1, 0, 3, 2))
        return out

    def transposed_mask(self, x_shape: torch.Size, device: torch.device) -> torch.Tensor | None:
        """(Pin, kh*kw) 0/1: which taps of ``lower_transposed`` hold real errors, not padding or dilation
        zeros (the same for every error channel n, whose columns (i, j, n) repeat it); None: all of them.
        Built once per geometry and shared (read only), as :meth:`mask`."""
        return _conv_transposed_mask(self, tuple(x_shape[1:]), device)

    def weighted_tap_sums(self, q: torch.Tensor, o: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
        """(E_low o_rep)[g, mi] for the error q (B, N, Ho, Wo) and o (G, N/G) repeated over each channel's taps,
        as (G, B*Pin, 1), without E_low: contract q's channels with o per group (z: B, G, Ho, Wo), then sum z
        over the real taps reaching each input position, a single-channel-per-group transposed convolution
        with an all-ones kernel (:func:`window_scatter`)."""
        b, g = q.shape[0], o.shape[0]
        ho, wo = q.shape[2:]
        z = torch.matmul(o.to(q.dtype).reshape(g, 1, -1), q.reshape(b, g, -1, ho * wo))  # (B, G, 1, Ho Wo)
        s = window_scatter(z.reshape(b, g, ho, wo), tuple(x_shape[2:]), self.kernel, self.stride, self.padding,
                           self.dilation)
        return s.reshape(b, g, -1).permute(1, 0, 2).reshape(g, -1, 1)
