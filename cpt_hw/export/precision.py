"""Per-layer hls4ml precisions of a folded network (:mod:`cpt_hw.export.fold`).

The quantized parts get the CPT precision itself: activation codes ``ufixed<b,b,RND_CONV,SAT>`` (the
quantizer), weight codes ``ufixed<b,b>``, and exact integer accumulators sized for k x L x L.  The float parts
get :data:`COEF_BITS`-bit coefficients (integer bits from their largest magnitude) and activations with
:data:`ACT_FRAC_BITS` fraction bits whose integer bits come from guaranteed interval bounds, so no
intermediate can overflow whatever the input image.  The model input saturates (``SAT``): values beyond the
first quantizer's range clamp to its end codes either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .fold import SHIFT_FRAC_BITS, BlockExport, Bound, DigitsExport, ExportNet, QuantConvUnit, ResNetExport, bits_for

#: Width of every float constant (BN scale/shift folded with the quantizer scales, FC weights and biases).
COEF_BITS = 24
#: Width of the rescale weights g s_x s_w[n] and g s_x z_w[n]: one type holds both, and the z_w column is often
#: ~100x the diagonal, so the diagonal keeps ~COEF_BITS significant bits only with this many.
RESCALE_BITS = 32
#: Fraction bits of the float activations between the quantized layers, and of the logits.
ACT_FRAC_BITS = 20
#: Fraction bits of the float accumulators (each product is truncated to these).
ACC_FRAC_BITS = 24
#: Fraction bits of the model input (the normalised image).
INPUT_FRAC_BITS = 20


def fixed(mag: float, frac: int, rounded: bool = False) -> str:
    """Signed fixed point holding [-mag, mag] with ``frac`` fraction bits; ``rounded``: a cast into it rounds to
    nearest instead of truncating (ap_fixed's default, a bias of half an LSB per cast)."""
    i = bits_for(mag)
    return f"fixed<{i + frac},{i}{',RND' if rounded else ''}>"


def act(mag: float) -> str:
    """A float activation between layers: :data:`ACT_FRAC_BITS` fraction bits, rounded."""
    return fixed(mag, ACT_FRAC_BITS, rounded=True)


def coef(values: torch.Tensor, bits: int = COEF_BITS) -> str:
    """A signed type for constants ``values`` with :data:`COEF_BITS` significant bits below the largest one.

    Small constants (a BN scale times two quantizer scales is often ~1e-4) get extra fraction bits rather than
    fewer significant ones: the integer bits never go below 1 (ap_fixed's integer bits stay positive)."""
    mag = float(values.detach().abs().max())
    extra = max(0, -math.floor(math.log2(mag))) if mag > 0 else 0
    return f"fixed<{bits + extra},{bits_for(mag)}>"


def uint(mag: float) -> str:
    n = max(1, math.ceil(math.log2(mag + 1)))
    return f"ufixed<{n},{n}>"


@dataclass
class TypePlan:
    """Collects ``{hls4ml layer name: {'result': ..., 'weight': ..., ...}}`` while bounds flow through the net."""

    layers: dict[str, dict[str, str]] = field(default_factory=dict)
    input_type: str = ""

    def unit(self, name: str, u: QuantConvUnit) -> Bound:
        """The four layers of a quantized conv; returns the bound of its output."""
        b = u.bits
        self.layers[f"{name}_quant"] = {"result": f"ufixed<{b},{b},RND_CONV,SAT>", "scale": coef(u.quant.weight),
                                        "bias": coef(u.quant.bias)}
        conv_in = u.shift_bound()
        if u.shift is not None:
            self.layers[f"{name}_shift"] = {"result": fixed(conv_in.mag, SHIFT_FRAC_BITS), "scale": "ufixed<2,2>",
                                            "bias": fixed(float(u.shift.bias.detach().abs().max()), SHIFT_FRAC_BITS)}
        acc = u.conv_bound()
        acc_type = uint(acc.hi) if u.shift is None else fixed(acc.mag, SHIFT_FRAC_BITS)
        self.layers[f"{name}_conv"] = {"weight": f"ufixed<{b},{b}>", "bias": "ufixed<1,1>", "accum": acc_type,
                                       "result": acc_type}
        out = u.out_bound()
        self.layers[f"{name}_rescale"] = {"weight": coef(u.rescale.weight, RESCALE_BITS), "bias": coef(u.rescale.bias),
                                          "accum": fixed(out.mag, ACC_FRAC_BITS), "result": act(out.mag)}
        return out

    def same(self, name: str, bound: Bound) -> Bound:
        """A layer that keeps its input's range (ReLU keeps the upper end; flatten)."""
        self.layers[name] = {"result": act(bound.mag)}
        return bound

    def relu(self, name: str, bound: Bound) -> Bound:
        self.layers[name] = {"result": act(bound.mag)}
        return Bound(0.0, max(bound.hi, 0.0))

    def add(self, name: str, a: Bound, b: Bound) -> Bound:
        out = Bound(a.lo + b.lo, a.hi + b.hi)
        self.layers[name] = {"result": act(out.mag)}
        return out

    def pool(self, name: str, bound: Bound, window: int) -> Bound:
        self.layers[name] = {"result": act(bound.mag),
                             "accum": fixed(bound.mag * window, ACT_FRAC_BITS)}
        return bound

    def linear(self, name: str, fc: nn.Linear, bound: Bound) -> Bound:
        w, bias = fc.weight.detach().double(), fc.bias.detach().double()
        worst = float((w.abs().sum(1) * bound.mag + bias.abs()).max())
        self.layers[name] = {"weight": coef(w), "bias": coef(bias), "accum": fixed(worst, ACC_FRAC_BITS),
                             "result": act(worst)}
        return Bound(-worst, worst)

    def model_input(self, u: QuantConvUnit) -> None:
        """Covers the first quantizer's range; saturates beyond it (the quantizer clamps there anyway)."""
        mag = max(abs(u.z_x), abs(u.z_x + u.levels * u.s_x))
        i = bits_for(mag)
        self.input_type = f"fixed<{i + INPUT_FRAC_BITS},{i},RND_CONV,SAT>"


def plan(net: ExportNet) -> TypePlan:
    """The type plan of a folded network (layer names as hls4ml's PyTorch front end gives them)."""
    p = TypePlan()
    p.model_input(net.units[0])
    if isinstance(net, DigitsExport):
        x = Bound(0.0, 0.0)
        for i, u in enumerate(net.units):
            x = p.relu(f"relu{i}", p.unit(f"u{i}", u))
        window = net.pool.kernel_size
    elif isinstance(net, ResNetExport):
        x = p.relu("relu", p.unit("stem", net.stem))
        for i, block in enumerate(net.blocks):
            x = _block(p, f"blocks_{i}", block, x, "add" if i == 0 else f"add_{i}")
        window = net.pool.kernel_size
    else:  # fold() builds only the two above
        raise TypeError(f"no type plan for {type(net).__name__}")
    x = p.pool("pool", x, window * window)
    p.same("flatten", x)
    p.linear("fc", net.fc, x)
    return p


def _block(p: TypePlan, name: str, block: BlockExport, x: Bound, add_name: str) -> Bound:
    # relu1 gets its type here; c2 is typed from its own quantizer's range, not from this bound
    p.relu(f"{name}_relu1", p.unit(f"{name}_c1", block.c1))
    main = p.unit(f"{name}_c2", block.c2)
    shortcut = x if block.down is None else p.unit(f"{name}_down", block.down)
    return p.relu(f"{name}_relu2", p.add(add_name, main, shortcut))


def output_lsb() -> float:
    """Weight of the logits' least significant bit."""
    return 2.0 ** -ACT_FRAC_BITS
