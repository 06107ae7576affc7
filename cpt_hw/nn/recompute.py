"""BatchNorm inputs recomputed in backward instead of kept: memory for accelerator time, bit for bit.

A CIFAR ResNet's largest saved tensors are its BatchNorm inputs (float32, the convolutions' outputs: 350 of
the ~540 MB a ResNet-74 batch-128 iteration keeps for backward, docs/zc706-pynq.md "Memory").  An integer
layer keeps its input codes for its weight gradient anyway, and its output is a deterministic function of
those codes, its weight codes and their scales (``integer._forward_output``: an exact integer GEMM and
float32 corrections in a fixed order).  So the BatchNorm that follows it need not keep the output: its saved
input is replaced by a token (``torch.autograd.graph``'s per-tensor saved-tensor hooks, as
:mod:`cpt_hw.nn.saved` does for ReLU outputs), and BatchNorm's backward gets the output computed again --
the same tensor bit for bit, at the price of the layer's forward GEMM run a second time on the engine
(bench/bench_bn_recompute.py measures that price per ResNet stage).

Only a BatchNorm whose input is exactly an integer layer's output (no bias add or other op in between)
on the CPU integer backends (``exact``, ``accel:*``) is affected; any other BatchNorm keeps its input.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .integer import _forward_output, _IntegerGemm, saved_codes
from .quant import QParams
from .saved import hook_saved, on_batchnorms

#: Node metadata key marking a BatchNorm node whose saved input is already a recompute token.
_MARK = "cpt_hw.recompute"
_BACKWARD = _IntegerGemm._backward_cls  # the autograd node type of an integer layer's output


class _Token(NamedTuple):
    node: torch.autograd.graph.Node   # the integer layer's backward node: its saved codes and scales
    shape: torch.Size


def _recompute(token: _Token) -> torch.Tensor:
    """The integer layer's output again (``_IntegerGemm.forward``'s ``y``), from what its node saved."""
    node = token.node
    qx, qw, sx, zx, sw, zw = node.saved_tensors
    # the convolution engine's layers keep their input packed: the call copies it, the corrections unpack it
    y = _forward_output(saved_codes(node, qx), qw, QParams(sx, zx), QParams(sw, zw), node.bias, node.ops,
                        node.engine, node.call.fw, node.x_shape, node.x_dtype, node.packed_x)
    if y.shape != token.shape:  # a guard against a front-end change that would make this silently wrong
        raise RuntimeError(f"recomputed BatchNorm input has shape {tuple(y.shape)}, {tuple(token.shape)} was saved")
    return y


def _hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    if not isinstance(output, torch.Tensor):
        return
    node, source = output.grad_fn, inputs[0].grad_fn
    if node is None or not isinstance(source, _BACKWARD) or type(node).__name__ != "NativeBatchNormBackward0":
        return  # not training, not after an integer layer, or a BatchNorm kernel whose saved state differs
    if inputs[0].device.type != "cpu":
        return
    shape = inputs[0].shape
    hook_saved(node, "_raw_saved_input", _MARK, lambda t: _Token(source, shape), _recompute)


def recompute_batchnorm_inputs(model: nn.Module, select: Callable[[str], bool] | None = None
                               ) -> list[RemovableHandle]:
    """Make the BatchNorm layers of ``model`` (those whose name ``select`` accepts; all by default) recompute
    their input in backward when it is an integer layer's output, instead of keeping it.

    Returns the forward hooks' handles (``handle.remove()`` undoes it for later iterations).  Bit-exact:
    gradients, BatchNorm statistics and parameters are identical with and without (tests/test_nn_recompute.py);
    each recomputed layer runs its forward GEMM twice per iteration."""
    return on_batchnorms(model, _hook, select)


def stage_selector(model: nn.Module, spec: str) -> Callable[[str], bool] | None:
    """The BatchNorm layers ``--recompute-bn spec`` names: ``none``, ``all``, or, for the CIFAR ResNets
    (cpt_hw.models.resnet: ``blocks`` holds three stages of equal length), a comma-separated list of stages
    1-3 (stage 1 includes the stem's BatchNorm, ``bn1``).  Returns None for ``all`` (every BatchNorm);
    raises ValueError naming what is wrong."""
    spec = spec.strip().lower()
    if spec == "all":
        return None
    if spec == "none":
        return lambda name: False
    parts = [part.strip() for part in spec.split(",")]
    if not parts or any(part not in ("1", "2", "3") for part in parts):
        raise ValueError(f"--recompute-bn {spec!r}: expected none, all or stages from 1, 2, 3 (e.g. 1,2)")
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential) or len(blocks) % 3:
        raise ValueError(f"--recompute-bn {spec!r}: stages apply to the CIFAR ResNets; "
                         f"use none or all for {type(model).__name__}")
    stages, per_stage = {int(part) for part in parts}, len(blocks) // 3

    def select(name: str) -> bool:
        if "." not in name:  # the stem's BatchNorm
            return 1 in stages
        head, index = name.split(".")[:2]
        return head == "blocks" and int(index) // per_stage + 1 in stages
    return select
