"""CPT-quantized layers for PyTorch whose GEMMs run on a chosen backend (docs/numerics.md).

Public API::

    from cpt_hw import nn as cnn
    cnn.set_precision(fw=4, bw=8, step=t)        # the trainer, once per iteration (0 = full precision)
    with cnn.precision(fw=8, bw=8): ...           # temporarily
    cnn.set_default_backend("accel:emu")          # torch | torch:hardware | exact | accel[:emu|rtl|pynq]
    cnn.set_backend(model, "exact")               # per model (None: follow the default)
    layer = cnn.QConv2d(16, 32, 3, padding=1, bias=False)   # nn.Conv2d's signature
"""

from .backends import get_default_backend, get_impl, opened_engines, set_default_backend, use_backend
from .context import Precision, PrecisionError, get_precision, noise_seed, precision, set_precision
from .layers import ACT_MOMENTUM, QConv2d, QLinear, QuantLayerMixin, number_layers, quantized_layers, set_backend
from .types import BackendError, BackendSpec, parse_backend

__all__ = [
    "ACT_MOMENTUM", "BackendError", "BackendSpec", "Precision", "PrecisionError", "QConv2d", "QLinear",
    "QuantLayerMixin", "get_default_backend", "get_impl", "get_precision", "noise_seed", "number_layers",
    "opened_engines", "parse_backend", "precision", "quantized_layers", "set_backend", "set_default_backend",
    "set_precision", "use_backend",
]
