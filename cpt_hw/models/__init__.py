"""Models of cpt-hw: CIFAR ResNets and MobileNetV2 as the CPT paper uses them, and the digits demo CNN.

``build_model(name, num_classes)`` returns a model whose convolutions are :class:`cpt_hw.nn.QConv2d`
(first conv and 1x1 downsample convs included) and whose classifier is a float ``nn.Linear``, with its
quantized layers numbered 0..L-1 (their stochastic-rounding streams depend on it).  Each model has an
``input_shape`` (C, H, W) attribute.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from ..errors import CptHwError
from ..nn import QuantLayerMixin, number_layers, precision
from .digits import DigitsCNN
from .mobilenetv2 import CifarMobileNetV2
from .resnet import DEPTHS, CifarResNet


class ModelError(CptHwError, ValueError):
    """Unknown model name or bad model arguments."""


_BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    **{f"resnet{d}": (lambda nc, d=d: CifarResNet(d, nc)) for d in sorted(DEPTHS)},
    "mobilenetv2": lambda nc: CifarMobileNetV2(nc),
    "digits_cnn": lambda nc: DigitsCNN(nc),
}

#: Model names build_model accepts ('-' and '_' are interchangeable, case does not matter).
MODELS: tuple[str, ...] = tuple(_BUILDERS)


def canonical_name(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_")
    key = {"resnet_" + str(d): f"resnet{d}" for d in DEPTHS}.get(key, key)
    key = {"mobilenet_v2": "mobilenetv2", "digits": "digits_cnn"}.get(key, key)
    if key not in _BUILDERS:
        raise ModelError(f"model {name!r}: unknown (known: {', '.join(MODELS)})")
    return key


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    """A fresh model; ``name`` is one of :data:`MODELS`.  Parameters from torch's global RNG."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ModelError(f"num_classes = {num_classes!r}: must be an integer >= 2")
    model = _BUILDERS[canonical_name(name)](num_classes)
    number_layers(model)
    return model


def layer_macs(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> list[tuple[str, int]]:
    """(name, multiply-accumulates per sample) of every quantized layer, by a float forward pass of one
    zero sample of ``input_shape`` (default ``model.input_shape``).  MACs = output elements x C_in/groups
    x kh x kw for a conv, x in_features for a linear layer."""
    shape = tuple(input_shape or model.input_shape)  # type: ignore[attr-defined]
    macs: dict[str, int] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, QuantLayerMixin):
            def hook(mod, inp, out, name=name):
                per_out = mod.weight[0].numel()  # C_in/groups x kh x kw, or in_features
                macs[name] = macs.get(name, 0) + out[0].numel() * per_out
            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), precision(fw=0, bw=0):
            model(torch.zeros((1, *shape)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return list(macs.items())


__all__ = ["MODELS", "ModelError", "build_model", "canonical_name", "layer_macs", "CifarResNet",
           "CifarMobileNetV2", "DigitsCNN"]
