"""Leaner autograd state around the integer layers: a ReLU's saved output kept as one bit per element.

A ReLU (``nn.ReLU``, ``F.relu``, in place or not) saves its float output for its backward pass, which
uses it only as ``threshold_backward(grad, result, 0)``: the gradient passes where ``result <= 0`` is
false.  When an integer layer quantizes that output, the float tensor has no other use in backward (the
layer saves its uint8 codes), so the ReLU's copy is the only reason it stays alive until backward: four
bytes per element, the largest saved tensors of a CIFAR ResNet next to the BatchNorm inputs.
:func:`keep_sign_only` replaces the ReLU node's saved tensor by the bit mask ``not (result <= 0)``
(``torch.autograd.graph``'s per-tensor saved-tensor hooks): 1/32 of the memory, and bit-exact, since
``threshold_backward`` with the mask (1.0 where the original passes, 0.0 where it blocks) selects the same
elements, NaN outputs included (``NaN <= 0`` is false, so they pass either way).

:func:`keep_batchnorm_inputs_half` is the one lossy member: a BatchNorm's saved input (the convolution's
output, float32, the largest saved tensors) kept as float16 -- half the bytes, what mixed-precision training keeps
for BatchNorm -- for the backward pass only (the forward pass, its statistics and running averages are
untouched).  The relative rounding (2^-11) is far below the noise of the 8-bit error quantization that follows in
backward (bench/bench_bn_half.py measures both).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .quant import is_channels_last

#: Node metadata key marking a ReLU whose saved output is already a mask (several layers may read it:
#: a residual block's first conv and its downsample conv).
_MARK = "cpt_hw.sign_only"


class _Signs(NamedTuple):
    bits: np.ndarray | torch.Tensor   # packed bits (CPU) or a bool tensor (other devices)
    shape: torch.Size
    dtype: torch.dtype
    device: torch.device
    channels_last: bool = False       # the bits in channels-last memory order (as the output was laid out)


def _pack(t: torch.Tensor) -> _Signs:
    keep = torch.le(t.detach(), 0).logical_not_()   # laid out as t
    if keep.device.type == "cpu":
        # in t's memory order (a view, no copy), so that the mask comes back laid out as the gradient it meets
        cl = is_channels_last(keep)
        flat = (keep.permute(0, 2, 3, 1) if cl else keep).reshape(-1)
        return _Signs(np.packbits(flat.numpy()), t.shape, t.dtype, t.device, cl)
    return _Signs(keep, t.shape, t.dtype, t.device)


def _unpack(s: _Signs) -> torch.Tensor:
    if isinstance(s.bits, torch.Tensor):
        return s.bits.to(s.dtype)
    n = int(torch.Size(s.shape).numel())
    bits = torch.from_numpy(np.unpackbits(s.bits, count=n))
    if s.channels_last:
        b, c, h, w = s.shape
        return bits.reshape(b, h, w, c).permute(0, 3, 1, 2).to(s.dtype)
    return bits.reshape(s.shape).to(s.dtype)


def hook_saved(node: torch.autograd.graph.Node, attr: str, mark: str, pack: Callable[[torch.Tensor], Any],
               unpack: Callable[[Any], torch.Tensor]) -> bool:
    """Give an autograd node's saved tensor ``attr`` (``_raw_saved_result``, ``_raw_saved_input``) the hooks
    ``pack``/``unpack``, once: the node is marked ``mark`` in its metadata.  Returns whether it did (False: marked
    already, a torch whose node saves something else, or hooks of its own already -- a
    torch.autograd.graph.saved_tensors_hooks context or another of this package's)."""
    if node.metadata.get(mark):
        return False
    saved = getattr(node, attr, None)
    if saved is None:
        return False
    try:
        saved.register_hooks(pack, unpack)
    except RuntimeError:
        return False
    node.metadata[mark] = True
    return True


def on_batchnorms(model: nn.Module, hook: Callable[..., None], select: Callable[[str], bool] | None
                  ) -> list[RemovableHandle]:
    """``hook`` as a forward hook of every BatchNorm of ``model`` whose name ``select`` accepts (all: None)."""
    return [m.register_forward_hook(hook) for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and (select is None or select(name))]


def keep_sign_only(x: torch.Tensor) -> bool:
    """If ``x`` came out of a ReLU, make that ReLU's backward keep one bit per element instead of ``x``.
    Returns whether it did (False: not a ReLU output, or already done)."""
    node = x.grad_fn
    if node is None or type(node).__name__ != "ReluBackward0":
        return False
    return hook_saved(node, "_raw_saved_result", _MARK, _pack, _unpack)


#: Node metadata key marking a BatchNorm whose saved input is already kept as float16.
_HALF_MARK = "cpt_hw.half_input"
#: The largest finite float16: a tensor with a value beyond it is kept as it is (the cast would make it infinite).
_HALF_MAX = torch.finfo(torch.float16).max


class _Half(NamedTuple):
    half: torch.Tensor
    dtype: torch.dtype


def _pack_half(t: torch.Tensor) -> _Half | torch.Tensor:
    if t.dtype != torch.float32 or t.numel() == 0:
        return t
    d = t.detach()
    # in memory order (a view): aminmax over a channels-last tensor's strides takes ~9x as long
    lo, hi = torch.aminmax((d.permute(0, 2, 3, 1) if is_channels_last(d) else d).reshape(-1))
    if max(-lo.item(), hi.item()) > _HALF_MAX:  # NaN compares false: kept in float16 as NaN, as it was
        return t
    return _Half(d.to(torch.float16), t.dtype)   # laid out as t (preserve_format)


def _unpack_half(s: _Half | torch.Tensor) -> torch.Tensor:
    return s.half.to(s.dtype) if isinstance(s, _Half) else s


def _half_hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    node = getattr(output, "grad_fn", None)
    if node is None or type(node).__name__ != "NativeBatchNormBackward0":
        return  # not training, or a BatchNorm kernel whose saved state differs
    hook_saved(node, "_raw_saved_input", _HALF_MARK, _pack_half, _unpack_half)  # not when recomputed already


def keep_batchnorm_inputs_half(model: nn.Module, select: Callable[[str], bool] | None = None
                               ) -> list[RemovableHandle]:
    """Make the BatchNorm layers of ``model`` (those whose name ``select`` accepts; all by default) keep their
    input for backward as float16 instead of float32 (``--bn-saved float16``).

    Lossy, unlike the rest of this module: backward normalises the float16 copy with the forward's own mean and
    inverse deviation, a relative rounding of at most 2^-11 per element.  A tensor with a value beyond float16's
    range is kept as float32.  A BatchNorm that recomputes its input (:func:`cpt_hw.nn.recompute
    .recompute_batchnorm_inputs`, whose hooks must then be registered first) keeps doing so.  Returns the forward
    hooks' handles (``handle.remove()`` undoes it for later iterations)."""
    return on_batchnorms(model, _half_hook, select)
