"""Fold a trained CPT model into a network of plain torch layers that hls4ml's PyTorch front end parses.

One quantized convolution (:class:`cpt_hw.nn.QConv2d` at ``b`` bits, input range z_x..z_x + L s_x per tensor,
weights s_w[n] q_w + z_w[n] per output channel, L = 2^b - 1) and the BatchNorm after it become a
:class:`QuantConvUnit` of four hls4ml layers:

1. ``quant``   BatchNormalization y = x / s_x - z_x / s_x whose *result type* is ap_ufixed<b, b, AP_RND_CONV,
   AP_SAT>: the cast rounds half to even and clamps to 0..L, which is the CPT activation quantizer, so its
   output is the activation code q_x (exactly b bits);
2. ``shift``   (only when z_x != 0) BatchNormalization u = q_x + z_x / s_x: the zero point in code units;
3. ``conv``    Conv2D with integer weights: the C_out weight-code kernels q_w (ap_ufixed<b, b>) plus one
   all-ones kernel, so it returns A[n] = sum q_w[n] u and B = sum u over each window (zero padding included);
4. ``rescale`` 1x1 Conv2D with bias, BN folded in: y[n] = g[n] s_x (s_w[n] A[n] + z_w[n] B) + h[n], where
   g, h are the BN's scale and shift.

Exactness: sum_k w_hat[n,k] x_hat[k] = s_x (s_w[n] A[n] + z_w[n] B) holds exactly, padding included (x_hat is 0
there, as u is), so the per-channel weight scales and zero points cost one extra accumulator channel and no
approximation.  The integer ``conv`` is exact in hls4ml when u is an integer (z_x = 0: every layer behind a
ReLU); the stem's u = q_x + z_x / s_x carries :data:`SHIFT_FRAC_BITS` fraction bits.  The float parts (scales,
BN, residual adds, pooling, the float FC) are fixed point with :data:`COEF_BITS`-bit coefficients and
:data:`ACT_FRAC_BITS` fraction bits; their integer bits come from interval bounds (:class:`Bound`), so nothing
can overflow.  Shapes are NCHW; precisions are hls4ml strings, chosen in :mod:`cpt_hw.export.precision`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import CptHwError
from ..models.digits import DigitsCNN
from ..models.resnet import BasicBlock, CifarResNet
from ..nn import QConv2d
from ..nn.quant import channel_range, dequantize, quant_params, quantize_codes

#: Fraction bits of the stem's shifted codes u = q_x + z_x / s_x (the only inexact integer input).
SHIFT_FRAC_BITS = 20


class ExportError(CptHwError, ValueError):
    """A checkpoint or model the exporter cannot turn into an hls4ml project; the message names why."""


@dataclass(frozen=True)
class Bound:
    """Interval [lo, hi] that a tensor's every element lies in (guaranteed, not measured)."""

    lo: float
    hi: float

    @property
    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))


def _bn_affine(bn: nn.BatchNorm2d | None, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(g, h) of an eval-mode BatchNorm, y = g x + h, in float64; identity when there is none."""
    if bn is None:
        return torch.ones(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64)
    g = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return g, bn.bias.double() - bn.running_mean.double() * g


def _affine_bn(channels: int, scale: float, shift: float) -> nn.BatchNorm2d:
    """The per-tensor affine x * scale + shift as a BatchNorm2d hls4ml parses (mean 0, var 1, eps 0)."""
    bn = nn.BatchNorm2d(channels, eps=0.0)
    with torch.no_grad():
        bn.weight.fill_(scale)
        bn.bias.fill_(shift)
    return bn.eval()


class QuantConvUnit(nn.Module):
    """One QConv2d (+ its BN) at ``bits``; see the module docstring.  (B, C_in, H, W) -> (B, C_out, H', W')."""

    def __init__(self, name: str, conv: QConv2d, bn: nn.BatchNorm2d | None, bits: int) -> None:
        super().__init__()
        self.name, self.bits, self.levels = name, bits, 2**bits - 1
        x_min, x_max = conv.act_min.detach().float(), conv.act_max.detach().float()
        if not bool(x_max > x_min):
            raise ExportError(f"layer {name!r}: its activation range is empty (min = max = {float(x_min):g}); "
                              "the checkpoint was never trained or evaluated")
        qpx = quant_params(x_min, x_max, bits)
        self.s_x, self.z_x = float(qpx.scale), float(qpx.zero_point)
        w = conv.weight.detach().float()
        qpw = quant_params(*channel_range(w), bits)
        codes = quantize_codes(w, bits, qpw)
        c_out = w.shape[0]
        cin = w.shape[1]
        self.quant = _affine_bn(cin, 1.0 / self.s_x, -self.z_x / self.s_x)
        self.shift = None if self.z_x == 0.0 else _affine_bn(cin, 1.0, self.z_x / self.s_x)
        self.conv = nn.Conv2d(cin, c_out + 1, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                              bias=False)
        self.rescale = nn.Conv2d(c_out + 1, c_out, 1)
        g, h = _bn_affine(bn, c_out)
        s_w, z_w = qpw.scale.double().flatten(), qpw.zero_point.double().flatten()
        bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros(c_out, dtype=torch.float64)
        w1 = torch.zeros(c_out, c_out + 1, dtype=torch.float64)
        w1[range(c_out), range(c_out)] = g * self.s_x * s_w
        w1[:, c_out] = g * self.s_x * z_w
        with torch.no_grad():
            self.conv.weight.copy_(torch.cat([codes, torch.ones_like(codes[:1])]))
            self.rescale.weight.copy_(w1.float().view(c_out, c_out + 1, 1, 1))
            self.rescale.bias.copy_((g * bias + h).float())
        #: The dequantized weights the PyTorch model multiplies by (for tests).
        self.w_hat = dequantize(codes, qpw)
        self.round_codes = False  # True: torch forward rounds like the hls4ml result type (never while traced)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.quant(x)
        if self.round_codes:
            q = torch.round(torch.clamp(q, 0.0, float(self.levels)))
        if self.shift is not None:
            q = self.shift(q)
        return self.rescale(self.conv(q))

    def shift_bound(self) -> Bound:
        """Range of the integer conv's input u (codes, or codes + z_x / s_x)."""
        a = 0.0 if self.shift is None else self.z_x / self.s_x
        return Bound(min(a, a + self.levels), max(a, a + self.levels))

    def conv_bound(self) -> Bound:
        """Range of A and B: the window sums of |codes| x |u| (k = C_in kh kw taps)."""
        k = self.conv.weight[0].numel()
        u = self.shift_bound()
        return Bound(k * self.levels * min(u.lo, 0.0), k * self.levels * max(u.hi, 0.0))

    def out_bound(self) -> Bound:
        """Range of the rescale output: |W1| . max|A, B| + |bias| per channel, the worst channel."""
        m = self.conv_bound().mag
        w1 = self.rescale.weight.detach().double().flatten(1).abs().sum(1)
        worst = float((w1 * m + self.rescale.bias.detach().double().abs()).max())
        return Bound(-worst, worst)


class ExportNet(nn.Module):
    """Base of the folded networks: a ``units`` list and the float classifier; ``set_round_codes`` makes the
    torch forward round the codes as hls4ml's types do (to check the folding against the quantized model)."""

    units: list[QuantConvUnit]

    def set_round_codes(self, on: bool) -> None:
        for u in self.units:
            u.round_codes = on


class DigitsExport(ExportNet):
    """DigitsCNN folded: 3 x (unit, ReLU), global average pool, flatten, float FC."""

    def __init__(self, model: DigitsCNN, bits: int) -> None:
        super().__init__()
        blocks = list(model.features)
        self.u0, self.u1, self.u2 = (QuantConvUnit(f"features.{i}.0", b[0], b[1], bits) for i, b in enumerate(blocks))
        self.units = [self.u0, self.u1, self.u2]
        self.relu0, self.relu1, self.relu2 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        side = model.input_shape[1] // 2  # the one stride-2 conv
        self.pool = nn.AvgPool2d(side)
        self.fc = copy.deepcopy(model.fc)  # the folded net may be cast (.double()) without touching the model
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu0(self.u0(x))
        x = self.relu1(self.u1(x))
        x = self.relu2(self.u2(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class BlockExport(nn.Module):
    """A ResNet BasicBlock folded: relu(unit2(relu(unit1(x))) + shortcut(x))."""

    def __init__(self, name: str, block: BasicBlock, bits: int) -> None:
        super().__init__()
        self.c1 = QuantConvUnit(f"{name}.conv1", block.conv1, block.bn1, bits)
        self.c2 = QuantConvUnit(f"{name}.conv2", block.conv2, block.bn2, bits)
        self.down = None
        if block.downsample is not None:
            self.down = QuantConvUnit(f"{name}.downsample.0", block.downsample[0], block.downsample[1], bits)
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.down is None else self.down(x)
        return self.relu2(self.c2(self.relu1(self.c1(x))) + shortcut)


class ResNetExport(ExportNet):
    """CifarResNet folded: stem unit + ReLU, the blocks, global average pool, flatten, float FC."""

    def __init__(self, model: CifarResNet, bits: int) -> None:
        super().__init__()
        self.stem = QuantConvUnit("conv1", model.conv1, model.bn1, bits)
        self.relu = nn.ReLU()
        self.blocks = nn.Sequential(*(BlockExport(f"blocks.{i}", b, bits) for i, b in enumerate(model.blocks)))
        self.units = [self.stem] + [u for b in self.blocks for u in (b.c1, b.c2, b.down) if u is not None]
        self.pool = nn.AvgPool2d(model.input_shape[1] // 4)  # two stride-2 stages
        self.fc = copy.deepcopy(model.fc)  # the folded net may be cast (.double()) without touching the model
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.relu(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def fold(model: nn.Module, bits: int) -> ExportNet:
    """The folded network of a trained ``model`` (eval-mode BN and activation ranges) at ``bits`` (1..16)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.groups != 1:
            raise ExportError(f"layer {name!r} is a grouped convolution (groups = {m.groups}), which hls4ml's "
                              "PyTorch front end cannot express")
    if isinstance(model, DigitsCNN):
        return DigitsExport(model, bits)
    if isinstance(model, CifarResNet):
        return ResNetExport(model, bits)
    raise ExportError(f"model {type(model).__name__}: no hls4ml export for it (digits_cnn and the CIFAR ResNets "
                      "have one)")


def bits_for(mag: float) -> int:
    """Integer bits (sign included) of a signed fixed-point type that holds [-mag, mag]."""
    return max(1, math.floor(math.log2(mag)) + 2) if mag > 0 else 1
