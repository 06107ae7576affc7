"""cpt_driver: host driver for the cpt-hw GEMM accelerator.

Depends only on numpy (and pynq for the board backend), so it installs on a PYNQ image without torch.

>>> from cpt_driver import Accelerator
>>> acc = Accelerator()                        # backend="emu", config "zc706"
>>> c = acc.gemm(a, b, a_bits=5, b_bits=8)    # exact int64 A.B, any sizes
"""

from . import layout
from .accelerator import Accelerator, CallRecord
from .backend import Backend, DmaBuffer
from .errors import (ArgumentError, DeviceBusyError, DeviceError, DeviceStatusError, DeviceTimeoutError, DriverError,
                     IdMismatchError, OperandTypeError, PoolExhaustedError, ResultSizeError, SpecError)
from .rowplanes import RowPlaneTensor
from .spec import DeviceSpec, resolve_spec

__all__ = [
    "Accelerator", "ArgumentError", "Backend", "CallRecord", "DeviceBusyError", "DeviceError", "DeviceSpec",
    "DeviceStatusError", "DeviceTimeoutError", "DmaBuffer", "DriverError", "IdMismatchError", "OperandTypeError",
    "PoolExhaustedError", "ResultSizeError", "RowPlaneTensor", "SpecError", "layout", "resolve_spec",
]
