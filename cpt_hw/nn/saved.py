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
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

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


def keep_sign_only(x: torch.Tensor) -> bool:
    """If ``x`` came out of a ReLU, make that ReLU's backward keep one bit per element instead of ``x``.
    Returns whether it did (False: not a ReLU output, or already done)."""
    node = x.grad_fn
    if node is None or type(node).__name__ != "ReluBackward0" or node.metadata.get(_MARK):
        return False
    saved = getattr(node, "_raw_saved_result", None)
    if saved is None:  # a torch whose ReLU node saves something else: leave it alone
        return False
    try:
        saved.register_hooks(_pack, _unpack)
    except RuntimeError:  # hooks of its own already (a torch.autograd.graph.saved_tensors_hooks context)
        return False
    node.metadata[_MARK] = True
    return True
