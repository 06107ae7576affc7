"""BitOPs: the paper's training-cost metric, counted on the real model.

One training step of a quantized layer runs three GEMMs of the layer's MACs each: the forward pass at
b_fw x b_fw (weights x activations), the input gradient at b_fw x b_bw (weights x errors) and the weight
gradient at b_bw x b_fw (errors x activations).  Per step

    BitOPs(t) = batch x sum over quantized layers of MACs_per_sample x (b_fw(t)^2 + 2 b_fw(t) b_bw(t))

and a run's cost is the sum over its iterations, reported in GBitOPs (1e9 BitOPs) as the paper's Table 2
does.  Every quantized layer runs at the scheduled precision, so the sum factors into
batch x MACs_per_sample x sum_t (b_fw^2 + 2 b_fw b_bw).  Full precision (bits = 0) is counted as 32-bit.

MACs are counted with forward hooks on the model itself (one forward pass of one sample at full precision):
a convolution's MACs per sample are output elements x (in_channels / groups) x kh x kw, a linear layer's are
output elements x in_features.

Two counting conventions:

* ``gemm`` (what the accelerator executes; the trainer's figure): only the quantized layers' GEMMs.  The
  final FC of the CIFAR models stays in float (cpt-reference-facts.md) and is not counted, nor is anything
  else that runs no quantized GEMM (BN, ReLU, pooling).
* ``paper`` (what reproduces the paper's Table 2): the paper's totals are what a model profiler in the style
  of ``thop`` reports for the whole network, priced at the scheduled precision: the same GEMM MACs plus
  2 operations per BatchNorm output element (scale and shift) and the float FC's MACs.  With zero free
  parameters this reproduces all six Table-2 figures to within 0.6 % (ResNet-74 2.67e8/1.68e8, ResNet-164
  6.04e8/3.80e8, MobileNetV2 1.49e8/1.04e8 at 64,000 iterations of batch 128), where the GEMM-only count
  is 0.9 % low for the ResNets' static runs and 3.8 % low for the BN-heavy MobileNetV2.
  docs/training.md has the numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from ..schedules import PrecisionSchedule

#: Bit-width counted for full-precision (bits = 0) layers.
FULL_PRECISION_BITS = 32

#: Counting conventions (see the module docstring).
CONVENTIONS = ("gemm", "paper")


@dataclass(frozen=True)
class LayerMacs:
    """One quantized layer: its module name, kind and multiply-accumulates per sample."""

    name: str
    kind: str
    macs: int


def default_is_counted(module: torch.nn.Module) -> bool:
    """Quantized layers: the front end's QConv2d / QLinear (the float FC is a plain nn.Linear)."""
    from ..nn import QConv2d, QLinear  # the quantized layers; imported lazily (BitOPs needs no backend)
    return isinstance(module, (QConv2d, QLinear))


def _module_macs(module: torch.nn.Module, out: torch.Tensor, batch: int) -> int:
    per_out = out.numel() // batch
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        return per_out * (2 if module.affine else 1)  # the profiler's count: scale and shift per element
    if isinstance(module, torch.nn.Conv2d):
        kh, kw = module.kernel_size
        return per_out * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, torch.nn.Linear):
        return per_out * module.in_features
    raise TypeError(f"cannot count MACs of {type(module).__name__}")


def paper_is_counted(module: torch.nn.Module) -> bool:
    """The ``paper`` convention: quantized layers, float linear layers and BatchNorm."""
    return default_is_counted(module) or isinstance(module, (torch.nn.Linear,
                                                             torch.nn.modules.batchnorm._BatchNorm))


def count_macs(model: torch.nn.Module, input_shape: tuple[int, ...],
               is_counted: Callable[[torch.nn.Module], bool] | None = None,
               run: Callable[[torch.nn.Module, torch.Tensor], object] | None = None,
               convention: str = "gemm") -> list[LayerMacs]:
    """MACs per sample of every counted layer, in execution order (a layer called twice counts twice).

    input_shape: one sample's shape, e.g. (3, 32, 32).  ``run(model, x)`` performs the forward pass (the
    default calls ``model(x)`` in eval mode without gradients; the trainer passes one that also sets full
    precision).  The model's training mode is restored afterwards.  ``convention``: gemm | paper (module
    docstring); ``is_counted`` overrides it.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention {convention!r}: unknown (known: {', '.join(CONVENTIONS)})")
    is_counted = is_counted or (default_is_counted if convention == "gemm" else paper_is_counted)
    names = {m: n for n, m in model.named_modules()}
    found: list[LayerMacs] = []

    def hook(module: torch.nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        found.append(LayerMacs(names.get(module, "?"), type(module).__name__, _module_macs(module, out, 1)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if is_counted(m)]
    was_training, threads = model.training, torch.get_num_threads()
    try:
        model.eval()
        torch.set_num_threads(1)  # one sample: more threads only spin against each other on a busy machine
        param = next(model.parameters(), None)
        x = torch.zeros((1, *input_shape), device=param.device if param is not None else "cpu")
        with torch.no_grad():
            (run or (lambda m, t: m(t)))(model, x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        torch.set_num_threads(threads)
    return found


def _bits(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.int64)
    return np.where(b == 0, FULL_PRECISION_BITS, b)


def step_bitops(macs_per_sample: int, batch: int, fw_bits: int, bw_bits: int) -> int:
    """BitOPs of one training step (forward + input-gradient + weight-gradient GEMMs), exact integer."""
    fw, bw = int(_bits(np.array(fw_bits))), int(_bits(np.array(bw_bits)))
    return batch * macs_per_sample * (fw * fw + 2 * fw * bw)


#: Iterations evaluated at once by :func:`schedule_bitops` (memory stays bounded whatever the run's length).
_CHUNK = 1 << 20


def schedule_bitops(macs_per_sample: int, batch: int, schedule: PrecisionSchedule, iters: int) -> int:
    """Total BitOPs of ``iters`` iterations under ``schedule`` (exact integer).

    The schedule is evaluated ``_CHUNK`` iterations at a time (a few MiB), never as one array of ``iters``.
    """
    per_sample_bits = 0
    for start in range(0, iters, _CHUNK):
        t = np.arange(start, min(start + _CHUNK, iters), dtype=np.int64)
        fw, bw = _bits(schedule.fw.bits_array(t)), _bits(schedule.bw.bits_array(t))
        per_sample_bits += int(np.sum(fw * fw + 2 * fw * bw))
    return batch * macs_per_sample * per_sample_bits


@dataclass(frozen=True)
class BitopsReport:
    """A run's cost and its saving against static training at the top precision (both in GBitOPs)."""

    macs_per_sample: int
    layers: int
    iters: int
    batch_size: int
    schedule: str
    gbitops: float
    static_gbitops: float
    static_bits: tuple[int, int]

    @property
    def saving(self) -> float:
        """1 - gbitops / static_gbitops (0.367 for CPT 3-8/8 vs static 8/8)."""
        return 1.0 - self.gbitops / self.static_gbitops if self.static_gbitops else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "static_bits": list(self.static_bits), "saving": self.saving}


def report(layers: list[LayerMacs], batch: int, schedule: PrecisionSchedule, iters: int) -> BitopsReport:
    """Cost of a run and of static training at the schedule's top precisions (bmax, grad bmax)."""
    macs = sum(layer.macs for layer in layers)
    top = (schedule.fw.bmax, schedule.bw.bmax)
    static = batch * macs * iters * (int(_bits(np.array(top[0]))) ** 2 +
                                     2 * int(_bits(np.array(top[0]))) * int(_bits(np.array(top[1]))))
    return BitopsReport(macs, len(layers), iters, batch, schedule.describe(),
                        schedule_bitops(macs, batch, schedule, iters) / 1e9, static / 1e9, top)


class BitopsMeter:
    """Running total of a training run's BitOPs (exact integer), fed one step at a time."""

    def __init__(self, macs_per_sample: int, total: int = 0) -> None:
        self.macs_per_sample, self.total = macs_per_sample, total

    def add(self, batch: int, fw_bits: int, bw_bits: int) -> int:
        step = step_bitops(self.macs_per_sample, batch, fw_bits, bw_bits)
        self.total += step
        return step

    @property
    def gbitops(self) -> float:
        return self.total / 1e9
