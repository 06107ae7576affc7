"""Named host-work regions of the integer backends, for benchmarks that attribute host time.

The integer layers (:mod:`cpt_hw.nn.integer`) wrap each kind of host work in ``region(name)``: quantizing
(``rounding``), im2col and layout changes (``lowering``), the scale and zero-point corrections
(``corrections``) and the engine calls (``gemm.fwd``, ``gemm.dgrad``, ``gemm.wgrad``: the forward,
input-gradient and weight-gradient GEMMs).  Without a hook
a region is a shared no-op context (one global read per region); ``bench/bench_board_step.py`` installs a
hook that charges process CPU time to the innermost open region.
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

#: The region names :mod:`cpt_hw.nn.integer` opens (GEMM regions are ``gemm.<class>``).
REGIONS = ("rounding", "lowering", "corrections")
GEMM_CLASSES = ("fwd", "dgrad", "wgrad")

RegionHook = Callable[[str], ContextManager]

_NULL: ContextManager = contextlib.nullcontext()
_hook: RegionHook | None = None


def region(name: str) -> ContextManager:
    """A context manager around one piece of host work named ``name`` (a no-op without a hook)."""
    return _NULL if _hook is None else _hook(name)


def set_region_hook(hook: RegionHook | None) -> RegionHook | None:
    """Install ``hook(name) -> context manager`` (None: none); returns the previous hook."""
    global _hook
    previous, _hook = _hook, hook
    return previous
