"""The precision context: what the CPT schedule sets once per training iteration.

Quantized layers never take precision arguments; they read one process-wide :class:`Precision`:

* ``fw``: forward bits, the precision of weights and activations (the paper's "FW"); 0 = full precision.
* ``bw``: backward bits, the precision of the errors (gradients w.r.t. layer outputs, "BW"); 0 = float.
* ``step`` and ``seed``: where the stochastic-rounding noise streams stand (see :func:`noise_seed`).
  A trainer sets ``step`` to the global iteration number, so a resumed run draws the same noise.

Typical use by a trainer::

    for t in range(total_iters):
        cpt_hw.nn.set_precision(fw=sched(t), bw=grad_sched(t), step=t)
        loss = criterion(model(x), y); loss.backward(); ...

or temporarily, e.g. for evaluation at a fixed precision::

    with cpt_hw.nn.precision(fw=8, bw=8):
        logits = model(x)

The state is a plain module global (not thread-local): autograd may run a backward pass on another
thread, and each layer captures what it needs (bits, noise seed) in its forward pass anyway.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Iterator

from ..errors import CptHwError
from ..hw.golden import counter_hash

# Largest precision the quantizers accept (int64 codes and float32 exactness are safe far beyond); defined
# with the schedules, which the torch-free CLIs check their flags against.
from ..schedules import MAX_BITS


class PrecisionError(CptHwError, ValueError):
    """A precision (bits, step, seed) outside what the quantizers accept."""


@dataclass(frozen=True)
class Precision:
    """Current precision of the quantized layers and the position of their noise streams."""

    fw: int = 0
    bw: int = 0
    step: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("fw", "bw"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_BITS:
                raise PrecisionError(f"{name} = {v!r}: must be an integer in 0..{MAX_BITS} (0 = full precision)")
        if isinstance(self.step, bool) or not isinstance(self.step, int) or not 0 <= self.step < 1 << 62:
            raise PrecisionError(f"step = {self.step!r}: must be an integer in 0..2^62-1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 1 << 64:
            raise PrecisionError(f"seed = {self.seed!r}: must be an integer in 0..2^64-1")

    @property
    def quantized(self) -> bool:
        """True when the forward pass is quantized (fw > 0); bw alone never quantizes a layer."""
        return self.fw > 0


_current = Precision()


def get_precision() -> Precision:
    """The precision the quantized layers use now."""
    return _current


def set_precision(fw: int | None = None, bw: int | None = None, *, step: int | None = None,
                  seed: int | None = None) -> Precision:
    """Set the fields given (the others keep their values); returns the new :class:`Precision`."""
    global _current
    changes = {k: v for k, v in (("fw", fw), ("bw", bw), ("step", step), ("seed", seed)) if v is not None}
    _current = dataclasses.replace(_current, **changes)
    return _current


@contextlib.contextmanager
def precision(fw: int | None = None, bw: int | None = None, *, step: int | None = None,
              seed: int | None = None) -> Iterator[Precision]:
    """Context manager: set the given fields, restore the previous precision on exit."""
    global _current
    saved = _current
    try:
        yield set_precision(fw, bw, step=step, seed=seed)
    finally:
        _current = saved


# Noise streams ------------------------------------------------------------------------------------------

#: Stream numbers within one layer call: the error of both backward GEMMs (paper and hardware numerics),
#: and the weight-scaled error of the input-gradient GEMM (hardware numerics, docs/numerics.md).
STREAM_ERROR = 0
STREAM_SCALED_ERROR = 1


def noise_seed(seed: int, step: int, layer_id: int, call: int, stream: int) -> int:
    """64-bit seed of one stochastic-rounding stream; element i of the tensor then uses counter i.

    Every stream is a pure function of (run seed, iteration, layer number, call of that layer within
    the iteration, stream number), so runs are reproducible and a resumed run (same ``step``) draws the
    same noise.  Python integers only: no device work, no host synchronisation.

    Bounds: layer_id < 2^34, call < 2^24, stream < 16.
    """
    if not (0 <= layer_id < 1 << 34 and 0 <= call < 1 << 24 and 0 <= stream < 16):
        raise PrecisionError(f"noise stream (layer {layer_id}, call {call}, stream {stream}) out of range")
    a = counter_hash(seed, step)
    b = counter_hash(seed ^ (a << 32), (layer_id << 28) | (call << 4) | stream)
    return (a << 32) | b
