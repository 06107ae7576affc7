"""The CUDA fast path of CPT training (issue: fast CPT training on GPU).

* :mod:`.quant`: fused quantizers with the precision in device tensors (no recompilation, no host sync);
* :mod:`.layers`: :class:`DevicePrecision` and :func:`enable_fast`, which routes the quantized layers of a
  model through the fused quantizers;
* :mod:`.graph`: a whole training iteration captured as one CUDA graph;
* :mod:`.data`: a GPU-resident CIFAR pipeline with on-device augmentation.
"""

from .layers import DevicePrecision, enable_fast

__all__ = ["DevicePrecision", "enable_fast"]
