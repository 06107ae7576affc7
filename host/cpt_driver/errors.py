"""Exceptions of the driver.  Every one of them says what was wrong, with the values involved."""

from __future__ import annotations


class DriverError(Exception):
    """Base class of every error the driver raises on purpose."""


class ArgumentError(DriverError, ValueError):
    """A shape, range, precision or flag argument is invalid; raised before any register write."""


class ResultSizeError(ArgumentError, MemoryError):
    """The result would not fit the host's memory; raised before anything is allocated."""


class OperandTypeError(DriverError, TypeError):
    """An operand is not an integer array; raised before any register write."""


class SpecError(DriverError, ValueError):
    """The register map / config the driver was given is missing, malformed or inconsistent."""


class DeviceError(DriverError):
    """The device misbehaved or refused a call."""


class DeviceStatusError(DeviceError):
    """The kernel completed with a non-zero status word (it refused the call or saw a bus error)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class DeviceTimeoutError(DeviceError, TimeoutError):
    """ap_done did not appear in time.  The message carries the register state at the deadline."""


class DeviceBusyError(DeviceError):
    """The kernel is not idle (e.g. still running after a timeout); no new call is started."""


class IdMismatchError(DeviceError):
    """The device's ID register does not match the config the driver was built for."""


class PoolExhaustedError(DriverError, MemoryError):
    """The DMA buffer pool cannot provide the requested bytes within its budget."""
