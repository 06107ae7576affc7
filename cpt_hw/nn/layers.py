"""``QConv2d`` and ``QLinear``: drop-in ``nn.Conv2d``/``nn.Linear`` whose GEMMs are CPT-quantized.

Constructors and ``forward`` keep torch's signatures; the precision comes from the context
(:mod:`cpt_hw.nn.context`) and the backend from :mod:`cpt_hw.nn.backends`.  Per call:

* fw = 0: the plain float layer (no quantization at all, errors included), as the authors' code;
* fw > 0: weights per output channel, activations (the layer input) per tensor at fw bits, the range
  being the batch min/max in training and a running range (momentum 0.9, buffers ``act_min``/``act_max``)
  in eval; with bw > 0 the error is quantized per tensor with stochastic rounding at bw bits.

Each layer has a ``layer_id`` (its noise streams depend on it; :func:`number_layers` numbers a model's
layers 0..L-1 in module order, ``build_model`` does it) and an optional ``backend`` override.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn

from .backends import get_impl, resolve
from .context import STREAM_ERROR, STREAM_SCALED_ERROR, get_precision, noise_seed
from .ops import ConvOps, LinearOps
from .quant import ErrorQuant, tensor_range
from .types import BackendSpec, LayerCall, parse_backend

#: Momentum of the running activation range, as the reference: running = m running + (1 - m) batch.
ACT_MOMENTUM = 0.9

_construction_order = itertools.count()
_LINEAR = LinearOps()


class QuantLayerMixin:
    """State and forward logic shared by :class:`QConv2d` and :class:`QLinear`."""

    backend: BackendSpec | None
    layer_id: int

    def _init_quant(self) -> None:
        self.backend = None
        #: Set by cpt_hw.fast.enable_fast: device-resident precision of the CUDA fast path (None: off) and the
        #: forward that runs it.  The fast path registers itself here, so this module never imports it.
        self.fast_precision = None
        self.fast_forward: Callable[..., torch.Tensor] | None = None
        # Fallback numbering by construction order; build_model/number_layers renumber deterministically.
        self.layer_id = next(_construction_order) % (1 << 34)
        self.register_buffer("act_min", torch.zeros(()))  # type: ignore[attr-defined]
        self.register_buffer("act_max", torch.zeros(()))  # type: ignore[attr-defined]
        self._noise_step = -1
        self._noise_calls = 0

    def _next_call(self, step: int) -> int:
        """Index of this call of the layer within training iteration ``step`` (streams stay distinct)."""
        if step != self._noise_step:
            self._noise_step, self._noise_calls = step, 0
        call = self._noise_calls
        self._noise_calls += 1
        return call

    def _activation_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training:  # type: ignore[attr-defined]
            return self.act_min, self.act_max  # type: ignore[attr-defined]
        x_min, x_max = tensor_range(x)
        with torch.no_grad():
            for buf, v in ((self.act_min, x_min), (self.act_max, x_max)):  # type: ignore[attr-defined]
                buf.mul_(ACT_MOMENTUM).add_(v * (1 - ACT_MOMENTUM))
        return x_min, x_max

    def _quant_forward(self, x: torch.Tensor, ops: ConvOps | LinearOps) -> torch.Tensor:
        p = get_precision()
        w, b = self.weight, self.bias  # type: ignore[attr-defined]
        if not p.quantized:
            return ops.forward(x, w, b)
        impl = get_impl(resolve(self.backend))
        impl.check_bits(p.fw, p.bw)
        x_min, x_max = self._activation_range(x)
        error = None
        if p.bw > 0 and torch.is_grad_enabled():
            call = self._next_call(p.step)
            error = ErrorQuant(p.bw, noise_seed(p.seed, p.step, self.layer_id, call, STREAM_ERROR),
                               noise_seed(p.seed, p.step, self.layer_id, call, STREAM_SCALED_ERROR))
        return impl.run(x, w, b, ops, LayerCall(p.fw, x_min, x_max, error))


class QConv2d(QuantLayerMixin, nn.Conv2d):
    """``nn.Conv2d`` with CPT quantization (same constructor and forward signature)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_quant()

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (torch's name)
        """input (B, C_in, H, W) float -> (B, C_out, H_out, W_out)."""
        if self.fast_forward is not None:
            return self.fast_forward(self, input, ConvOps.of(self))
        if not get_precision().quantized:
            return super().forward(input)
        return self._quant_forward(input, ConvOps.of(self))


class QLinear(QuantLayerMixin, nn.Linear):
    """``nn.Linear`` with CPT quantization (same constructor and forward signature)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_quant()

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        """input (..., in_features) float -> (..., out_features)."""
        if self.fast_forward is not None:
            return self.fast_forward(self, input, _LINEAR)
        return self._quant_forward(input, _LINEAR)


def quantized_layers(model: nn.Module) -> Iterator[tuple[str, QuantLayerMixin]]:
    """(name, layer) of every quantized layer of ``model`` in module order."""
    for name, m in model.named_modules():
        if isinstance(m, QuantLayerMixin):
            yield name, m


def number_layers(model: nn.Module) -> int:
    """Set ``layer_id`` = 0, 1, ... on the quantized layers in module order; returns their count."""
    count = 0
    for count, (_, m) in enumerate(quantized_layers(model), start=1):
        m.layer_id = count - 1
    return count


def set_backend(model: nn.Module, spec: "str | BackendSpec | None", **overrides: Any) -> int:
    """Pin every quantized layer of ``model`` to a backend (None: follow the default again).

    Returns the number of layers changed.
    """
    parsed = None if spec is None else parse_backend(spec, **overrides)
    count = 0
    for _, m in quantized_layers(model):
        m.backend = parsed
        count += 1
    return count
