"""Argument checks of the public API.  All of them run before the driver touches a register."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ArgumentError, OperandTypeError


def check_bits(name: str, bits: Any, operand_bits: int) -> int:
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)):
        raise ArgumentError(f"{name} = {bits!r}: must be an integer in 1..{operand_bits}")
    if not 1 <= int(bits) <= operand_bits:
        raise ArgumentError(f"{name} = {bits}: must be in 1..{operand_bits} (the accelerator's operand precision)")
    return int(bits)


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError(f"{name} = {value!r}: must be True or False")
    return bool(value)


def operand_range(bits: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest value of a ``bits``-bit operand (two's complement when signed)."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def check_operand(name: str, x: Any, bits: int, signed: bool) -> np.ndarray:
    """``x`` as a 2-D integer ndarray (no copy when it already is one) whose values fit bits/signed."""
    x = np.asarray(x)
    if x.dtype.kind not in "iub":
        raise OperandTypeError(f"{name}: dtype {x.dtype} is not an integer type (quantize to integer codes first)")
    if x.ndim != 2:
        raise ArgumentError(f"{name}: expected a 2-D array, got shape {x.shape}")
    if x.size:
        lo, hi = operand_range(bits, signed)
        xmin, xmax = int(x.min()), int(x.max())
        if xmin < lo or xmax > hi:
            kind = "signed" if signed else "unsigned"
            raise ArgumentError(f"{name}: values {xmin}..{xmax} do not fit {bits}-bit {kind} ({lo}..{hi})")
    return x


def check_gemm_args(a: Any, b: Any, a_bits: Any, b_bits: Any, a_signed: Any, b_signed: Any,
                    operand_bits: int) -> tuple[np.ndarray, np.ndarray, int, int, bool, bool]:
    a_bits = check_bits("a_bits", a_bits, operand_bits)
    b_bits = check_bits("b_bits", b_bits, operand_bits)
    a_signed = check_flag("a_signed", a_signed)
    b_signed = check_flag("b_signed", b_signed)
    a = check_operand("a", a, a_bits, a_signed)
    b = check_operand("b", b, b_bits, b_signed)
    if a.shape[1] != b.shape[0]:
        raise ArgumentError(f"inner dimensions differ: a is {a.shape[0]}x{a.shape[1]}, b is {b.shape[0]}x{b.shape[1]}")
    return a, b, a_bits, b_bits, a_signed, b_signed


def check_scale(name: str, x: Any, length: int, axis_name: str) -> np.ndarray:
    """A per-tensor scalar or a per-row/column vector of ``length`` floats, as float64 of shape () or (length,)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise OperandTypeError(f"{name}: dtype {arr.dtype} is not a real number type")
    arr = arr.astype(np.float64)
    if arr.ndim == 0 or arr.shape == (length,):
        if not np.all(np.isfinite(arr)):
            raise ArgumentError(f"{name}: must be finite")
        return arr
    raise ArgumentError(f"{name}: shape {arr.shape}: expected a scalar or one value per {axis_name} ({length},)")
