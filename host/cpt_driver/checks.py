"""Argument checks of the public API.  All of them run before the driver touches a register."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import ArgumentError, OperandTypeError, ResultSizeError

#: Bytes of one element of the result (int64).
RESULT_ITEMSIZE = 8


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


def refuse_masked(name: str, x: Any) -> None:
    """np.asarray drops a masked array's mask: its masked entries would be multiplied like any other."""
    if isinstance(x, np.ma.MaskedArray):
        raise OperandTypeError(f"{name}: a numpy masked array: the accelerator has no masked values and would use the "
                               f"data under the mask; pass {name}.filled(<value>) or {name}.data explicitly")


def operand_array(name: str, x: Any, ndim: int = 2) -> np.ndarray:
    """``x`` as an ``ndim``-D integer ndarray (no copy when it already is one); its values are not looked at."""
    refuse_masked(name, x)
    x = np.asarray(x)
    if x.dtype.kind not in "iub":
        raise OperandTypeError(f"{name}: dtype {x.dtype} is not an integer type (quantize to integer codes first)")
    if x.ndim != ndim:
        raise ArgumentError(f"{name}: expected a {ndim}-D array, got shape {x.shape}")
    return x


def distinct_elements(x: np.ndarray) -> np.ndarray:
    """A view of ``x`` holding each stored element once: broadcast axes (stride 0) cut to length 1, so
    the range check of ``np.broadcast_to(row, (2**40, K))`` reads K values, not 2**40 K."""
    return x[tuple(slice(0, 1) if stride == 0 else slice(None) for stride in x.strides)]


def check_values(name: str, x: np.ndarray, bits: int, signed: bool) -> None:
    """Every value of ``x`` fits ``bits`` bits (two's complement when ``signed``)."""
    if x.size:
        lo, hi = operand_range(bits, signed)
        stored = distinct_elements(x)
        xmin, xmax = int(stored.min()), int(stored.max())
        if xmin < lo or xmax > hi:
            kind = "signed" if signed else "unsigned"
            raise ArgumentError(f"{name}: values {xmin}..{xmax} do not fit {bits}-bit {kind} ({lo}..{hi})")


def check_operand(name: str, x: Any, bits: int, signed: bool) -> np.ndarray:
    """``x`` as a 2-D integer ndarray (no copy when it already is one) whose values fit bits/signed."""
    x = operand_array(name, x)
    check_values(name, x, bits, signed)
    return x


def host_memory_bytes() -> int | None:
    """Physical memory of this host in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _size(nbytes: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.1f} {unit}"
    return f"{nbytes} bytes"


def check_result_size(m: int, n: int, memory: int | None = None) -> None:
    """Refuse an (M, N) int64 result larger than the host's physical memory, before anything is allocated
    (numpy would raise a bare MemoryError, or with overcommit start a computation it cannot finish)."""
    memory = host_memory_bytes() if memory is None else memory
    nbytes = m * n * RESULT_ITEMSIZE
    if memory is not None and nbytes > memory:
        raise ResultSizeError(f"result: {m} x {n} int64 values need {nbytes} bytes ({_size(nbytes)}), more than "
                              f"this host's {_size(memory)} of memory: split the GEMM")


def _is_source(x: Any) -> bool:
    from .sources import RowSource  # late: sources imports layout, which the checks need not
    return isinstance(x, RowSource)


def check_gemm_args(a: Any, b: Any, a_bits: Any, b_bits: Any, a_signed: Any, b_signed: Any,
                    operand_bits: int) -> tuple[Any, np.ndarray, int, int, bool, bool]:
    """Types, shapes and the result's size first (cheap), the operands' values last (a pass over them).
    ``a`` may be a :class:`cpt_driver.sources.RowSource` (codes that fit its ``bits`` and ``signed``)."""
    a_bits = check_bits("a_bits", a_bits, operand_bits)
    b_bits = check_bits("b_bits", b_bits, operand_bits)
    a_signed = check_flag("a_signed", a_signed)
    b_signed = check_flag("b_signed", b_signed)
    a = a if _is_source(a) else operand_array("a", a)
    b = operand_array("b", b)
    if _is_source(a):  # codes of a.bits bits, signed or not, by construction (cpt_driver.sources)
        if a_signed != a.signed:
            kind = "signed" if a.signed else "unsigned"
            raise ArgumentError(f"a: the RowSource holds {kind} codes (a_signed must be {a.signed})")
        if a.bits > a_bits:
            raise ArgumentError(f"a: codes of {a.bits} bits do not fit a_bits = {a_bits}")
    if a.shape[1] != b.shape[0]:
        raise ArgumentError(f"inner dimensions differ: a is {a.shape[0]}x{a.shape[1]}, b is {b.shape[0]}x{b.shape[1]}")
    check_result_size(a.shape[0], b.shape[1])
    if not _is_source(a):
        check_values("a", a, a_bits, a_signed)
    check_values("b", b, b_bits, b_signed)
    return a, b, a_bits, b_bits, a_signed, b_signed


def check_out(out: Any, *shape: int, name: str = "out") -> None:
    """A result buffer: a writeable integer or float ndarray of the result's ``shape`` ((M, N) for
    :meth:`Accelerator.gemm`); ``name``: the argument's, for the message."""
    if not isinstance(out, np.ndarray):
        raise OperandTypeError(f"{name}: {type(out).__name__} is not a numpy array")
    if out.dtype.kind not in "iuf":
        raise OperandTypeError(f"{name}: dtype {out.dtype} is not an integer or float type")
    if out.shape != shape:
        raise ArgumentError(f"{name}: shape {out.shape}, the result is {shape}")
    if not out.flags.writeable:
        raise ArgumentError(f"{name}: read-only array")


def check_scale(name: str, x: Any, length: int, axis_name: str) -> np.ndarray:
    """A per-tensor scalar or a per-row/column vector of ``length`` floats, as float64 of shape () or (length,)."""
    refuse_masked(name, x)
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise OperandTypeError(f"{name}: dtype {arr.dtype} is not a real number type")
    arr = arr.astype(np.float64)
    if arr.ndim == 0 or arr.shape == (length,):
        if not np.all(np.isfinite(arr)):
            raise ArgumentError(f"{name}: must be finite")
        return arr
    raise ArgumentError(f"{name}: shape {arr.shape}: expected a scalar or one value per {axis_name} ({length},)")
