"""The vocabulary the quantized front end shares: backend specs, their errors, and one layer call.

Its own module, below every other of :mod:`cpt_hw.nn`, so that the layers, the lowering (:mod:`.ops`) and the
backends name the same types without importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import CptHwError
from .quant import ErrorQuant

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
    path (accel only).  config_overrides: single fields of that config changed, as ``--set`` does
    (:meth:`HardwareConfig.from_preset`; e.g. ``{"conv_engine": True}``).  driver_options: extra keyword
    arguments for ``cpt_driver.Accelerator`` (e.g. a bitfile for pynq).  Both as tuples of (key, value) pairs
    so the spec stays hashable.
    """

    kind: str = "torch"
    numerics: str = "paper"
    device: str = "emu"
    config: str = "zc706"
    config_overrides: tuple[tuple[str, Any], ...] = field(default=())
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
        for key in ("driver_options", "config_overrides"):
            if isinstance(overrides.get(key), dict):
                overrides[key] = tuple(sorted(overrides[key].items()))
        base = BackendSpec(**{**base.__dict__, **overrides})
    return base



@dataclass(frozen=True)
class LayerCall:
    """What one quantized layer call needs besides its tensors: forward bits, the activation range to use
    (0-d float32 tensors: batch range in training, running range in eval) and the error quantizer
    (None: the errors stay in float)."""

    fw: int
    x_min: torch.Tensor
    x_max: torch.Tensor
    error: ErrorQuant | None
