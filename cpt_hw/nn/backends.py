"""Choosing where the three GEMMs of each quantized layer run.

A backend is named by a short spec string (what ``cpt-hw train --backend`` takes):

=====================  ================================================================================
``torch``              fake quantization in float through torch's own conv/matmul ("paper" numerics: what
                       the authors' code computes); fast on CPU and GPU
``torch:hardware``     the same in float, but emulating the integer hardware's numerics (docs/numerics.md)
``exact``              integer GEMMs, bit-exact with ``cpt_hw.golden.gemm``, plus host-side scale/zero-point
                       corrections: hardware numerics, CPU
``accel[:DEVICE]``     the same integer GEMMs through ``cpt_driver.Accelerator``; DEVICE is ``emu``
                       (default), ``rtl`` or ``pynq``
=====================  ================================================================================

Selection: one process-wide default (:func:`set_default_backend`, :func:`use_backend`) and an optional
per-layer override that :func:`set_backend` puts on every quantized layer of a model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import CptHwError

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn

KINDS = ("torch", "exact", "accel")
NUMERICS = ("paper", "hardware")
DEVICES = ("emu", "rtl", "pynq")


class BackendError(CptHwError, ValueError):
    """An unknown backend spec, or a precision the chosen backend cannot run."""


@dataclass(frozen=True)
class BackendSpec:
    """Where a layer's GEMMs run.

    kind: torch | exact | accel.  numerics: paper | hardware (torch only; exact and accel always compute
    hardware numerics).  device: emu | rtl | pynq (accel only).  config: hardware preset name or TOML
    path (accel only).  driver_options: extra keyword arguments for ``cpt_driver.Accelerator`` (e.g. a
    bitfile for pynq), as a tuple of (key, value) pairs so the spec stays hashable.
    """

    kind: str = "torch"
    numerics: str = "paper"
    device: str = "emu"
    config: str = "zc706"
    driver_options: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BackendError(f"backend {self.kind!r}: unknown (known: {', '.join(KINDS)})")
        if self.numerics not in NUMERICS:
            raise BackendError(f"numerics {self.numerics!r}: unknown (known: {', '.join(NUMERICS)})")
        if self.kind != "torch" and self.numerics != "hardware":
            object.__setattr__(self, "numerics", "hardware")  # integer backends compute hardware numerics
        if self.device not in DEVICES:
            raise BackendError(f"accelerator device {self.device!r}: unknown (known: {', '.join(DEVICES)})")

    @property
    def name(self) -> str:
        """The spec string that parses back to this spec (config and driver options aside)."""
        if self.kind == "torch":
            return "torch" if self.numerics == "paper" else "torch:hardware"
        return "exact" if self.kind == "exact" else f"accel:{self.device}"


def parse_backend(spec: "str | BackendSpec", **overrides: Any) -> BackendSpec:
    """``"torch"``, ``"torch:paper"``, ``"torch:hardware"``, ``"exact"``, ``"accel"``, ``"accel:emu"`` ... ->
    :class:`BackendSpec`; keyword overrides (e.g. ``config="sim"``) replace fields."""
    if isinstance(spec, BackendSpec):
        base = spec
    elif isinstance(spec, str):
        kind, _, sub = spec.strip().lower().partition(":")
        if kind == "torch":
            base = BackendSpec("torch", numerics=sub or "paper")
        elif kind == "exact" and not sub:
            base = BackendSpec("exact")
        elif kind == "accel":
            base = BackendSpec("accel", device=sub or "emu")
        else:
            raise BackendError(f"backend {spec!r}: unknown (known: torch, torch:hardware, exact, "
                               "accel:emu, accel:rtl, accel:pynq)")
    else:
        raise BackendError(f"backend {spec!r}: must be a string such as 'torch' or 'accel:emu'")
    if overrides:
        if "driver_options" in overrides and isinstance(overrides["driver_options"], dict):
            overrides["driver_options"] = tuple(sorted(overrides["driver_options"].items()))
        base = BackendSpec(**{**base.__dict__, **overrides})
    return base


_default = BackendSpec()


def get_default_backend() -> BackendSpec:
    """The backend of every quantized layer that has no override."""
    return _default


def set_default_backend(spec: "str | BackendSpec", **overrides: Any) -> BackendSpec:
    """Set the process-wide backend; returns the parsed spec."""
    global _default
    _default = parse_backend(spec, **overrides)
    return _default


@contextlib.contextmanager
def use_backend(spec: "str | BackendSpec", **overrides: Any) -> Iterator[BackendSpec]:
    """Context manager: the default backend within the block."""
    global _default
    saved = _default
    try:
        yield set_default_backend(spec, **overrides)
    finally:
        _default = saved


def set_backend(model: "torch.nn.Module", spec: "str | BackendSpec | None", **overrides: Any) -> int:
    """Pin every quantized layer of ``model`` to a backend (None: follow the default again).

    Returns the number of layers changed.
    """
    from .layers import QuantLayerMixin  # late import: layers imports this module

    parsed = None if spec is None else parse_backend(spec, **overrides)
    count = 0
    for m in model.modules():
        if isinstance(m, QuantLayerMixin):
            m.backend = parsed
            count += 1
    return count


def resolve(spec: BackendSpec | None) -> BackendSpec:
    return _default if spec is None else spec
