"""From a :class:`~cpt_hw.nn.backends.BackendSpec` to the object that runs a layer's GEMMs.

Implementations are cached per spec, so an accelerator (its driver, buffer pool, device) is opened once
per process and shared by every layer that uses it.
"""

from __future__ import annotations

from .backends import BackendSpec
from .integer import ExactEngine, IntegerBackend
from .torch_backend import TorchBackend

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
