"""Choosing where the three GEMMs of each quantized layer run.

A backend is named by a short spec string (what ``cpt-hw train --backend`` takes):

=====================  ================================================================================
``torch``              fake quantization in float through torch's own conv/matmul ("paper" numerics: what
                       the authors' code computes); fast on CPU and GPU
``torch:hardware``     the same in float, but emulating the integer hardware's numerics (docs/numerics.md)
``exact``              integer GEMMs, bit-exact with ``cpt_hw.hw.golden.gemm``, plus host-side scale/zero-point
                       corrections: hardware numerics, CPU
``accel[:DEVICE]``     the same integer GEMMs through ``cpt_driver.Accelerator``; DEVICE is ``emu``
                       (default), ``rtl`` or ``pynq``
=====================  ================================================================================

Selection: one process-wide default (:func:`set_default_backend`, :func:`use_backend`) and an optional
per-layer override that :func:`cpt_hw.nn.layers.set_backend` puts on every quantized layer of a model.
Implementations (:func:`get_impl`) are cached per spec, so an accelerator (its driver, buffer pool, device) is
opened once per process and shared by every layer that uses it.  The spec types are in :mod:`.types`.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .integer import ExactEngine, IntegerBackend
from .torch_backend import TorchBackend
from .types import BackendSpec, parse_backend

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


def resolve(spec: BackendSpec | None) -> BackendSpec:
    return _default if spec is None else spec


_impls: dict[BackendSpec, TorchBackend | IntegerBackend] = {}


def get_impl(spec: BackendSpec) -> TorchBackend | IntegerBackend:
    """The (cached) implementation of ``spec``."""
    impl = _impls.get(spec)
    if impl is None:
        if spec.kind == "torch":
            impl = TorchBackend(hardware=spec.numerics == "hardware")
        elif spec.kind == "exact":
            impl = IntegerBackend(ExactEngine())
        else:
            from .accel import AccelEngine  # imports cpt_driver only when an accelerator is asked for

            impl = IntegerBackend(AccelEngine(spec))
        _impls[spec] = impl
    return impl


def opened_engines() -> list:
    """The GEMM engines opened so far in this process (accelerators report GEMM counts and cycles)."""
    return [i.engine for i in _impls.values() if isinstance(i, IntegerBackend)]
