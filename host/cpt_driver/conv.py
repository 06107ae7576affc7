"""Convolutions through the driver: ``torch.nn.functional.conv2d`` and ``torch.nn.grad.conv2d_input`` /
``conv2d_weight`` on integer codes (issue 17, item 4).

Today's device (interface 3) multiplies matrices only, so each call here lowers its convolution on the host
to one GEMM and runs it with :meth:`Accelerator.gemm`; the lowered A operand is never built, it is a
:class:`cpt_driver.sources.RowSource` that packs each tile from the unlowered codes:

* forward: A = :class:`Im2colRows` of the zero-padded channels-last x (rows (n, ho, wo), columns (i, j, c)),
  B = w as (kh kw C) x K;
* input gradient, as a transposed convolution: A = :class:`Im2colRows` (stride 1) of e with stride - 1 zeros
  between its entries and kh - 1 - p around (rows (n, h, w), columns (i, j, k)), B = the kernels rotated
  by 180 degrees as (kh kw K) x C;
* weight gradient: A = :class:`TapRows` of the zero-padded x (rows (i, j, c), columns (n, ho, wo)),
  B = e as (N Ho Wo) x K, the result dW^T.

The GEMM writes its result (gemm(out=)) into an array in GEMM order -- (N, Ho, Wo, K), (N, H, W, C),
(kh, kw, C, K) -- returned as the call's (N, K, Ho, Wo), (N, C, H, W), (K, C, kh, kw) view of it: no copy of
the result.  The host's copies are the padded (channels-last for the forward) input, the dilated error and
the error's rows, each in the codes' narrowest dtype and none k^2-fold.

With the convolution engine (interface 4: the device spec has ``conv``; today the emulated device), each
call hands its checked arguments to ``engine`` (:class:`cpt_driver.conv_engine.Engine`) instead, which packs
the codes as row-planes and makes conv calls; a geometry the engine cannot take is lowered as above.

The code sums a quantized convolution's zero-point corrections need (``x_sums``, ``e_sums``: :mod:`cpt_driver.sums`)
come from the engine's calls (flags SUMS) where the device computes them, else from the host's sums of the codes.

Every argument is checked here, before the first register write: types and ranks, the geometry (strides
:data:`CONV_STRIDES`, paddings :data:`CONV_PADDINGS`, kernel sides up to :data:`CONV_MAX_KERNEL`, channels
equal: groups = 1) and the error's shape, bits and flags, ``out`` or the result's size, then the codes'
values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .checks import check_bits, check_flag, check_out, check_result_size, check_values, operand_array
from . import sums as code_sums
from .conv_engine import EngineRefused, Sums
from .errors import ArgumentError
from .rowplanes import RowPlaneTensor
from .sources import Im2colRows, TapRows

if TYPE_CHECKING:
    from .conv_engine import Engine

#: Strides and paddings of the convolution calls (issue 17; the interface-4 engine's set).
CONV_STRIDES = (1, 2)
CONV_PADDINGS = (0, 1)
#: Largest kernel side: the interface-4 line buffer is sized for it (docs/architecture.md, max_kernel);
#: 3 covers CIFAR ResNets (3x3 convolutions, 1x1 downsamples).  ``cpt_hw.hw.golden`` uses this value.
CONV_MAX_KERNEL = 3

#: The accelerator's GEMM on checked arguments: (a, b, a_bits, b_bits, a_signed, b_signed, out) -> C.
Gemm = Callable[..., np.ndarray]


@dataclass(frozen=True)
class ConvShape:
    """Input (N, C, H, W), weights (K, C, kh, kw), stride and padding of one convolution."""

    n: int
    c: int
    h: int
    w: int
    k: int
    kh: int
    kw: int
    stride: int
    padding: int

    @property
    def ho(self) -> int:
        return (self.h + 2 * self.padding - self.kh) // self.stride + 1

    @property
    def wo(self) -> int:
        return (self.w + 2 * self.padding - self.kw) // self.stride + 1

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.k, self.ho, self.wo)

    def describe(self) -> str:
        return (f"input {(self.n, self.c, self.h, self.w)}, weight {(self.k, self.c, self.kh, self.kw)}, "
                f"stride {self.stride}, padding {self.padding}")


def _int(what: str, name: str, v: Any) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ArgumentError(f"{what}: {name} = {v!r}: must be an integer")
    return int(v)


def _size4(what: str, name: str, size: Any, layout: str) -> tuple[int, int, int, int]:
    try:
        dims = tuple(size)
    except TypeError:
        raise ArgumentError(f"{what}: {name} = {size!r}: must be a 4-tuple {layout}") from None
    if len(dims) != 4:
        raise ArgumentError(f"{what}: {name} must be 4-D {layout}, got {dims}")
    out = tuple(_int(what, f"{name} dimension", d) for d in dims)
    if min(out) < 1:
        raise ArgumentError(f"{what}: {name} {layout} = {out}: every dimension must be >= 1")
    return out  # type: ignore[return-value]


def conv_shape(what: str, x_name: str, x_size: Any, w_name: str, w_size: Any, stride: Any, padding: Any) -> ConvShape:
    """Check the geometry (no values read): strides, paddings, kernel sides, channels, kernel inside the
    padded input.  Sizes are (N, C, H, W) and (K, C, kh, kw)."""
    stride, padding = _int(what, "stride", stride), _int(what, "padding", padding)
    if stride not in CONV_STRIDES:
        raise ArgumentError(f"{what}: stride = {stride}: supported strides are {CONV_STRIDES}")
    if padding not in CONV_PADDINGS:
        raise ArgumentError(f"{what}: padding = {padding}: supported paddings are {CONV_PADDINGS}")
    n, c, h, w = _size4(what, x_name, x_size, "(N, C, H, W)")
    k, cw, kh, kw = _size4(what, w_name, w_size, "(K, C, kh, kw)")
    if cw != c:
        raise ArgumentError(f"{what}: {x_name} has C = {c} channels, {w_name} {(k, cw, kh, kw)} has {cw} (groups = 1 "
                            "only: no grouped or depthwise convolution)")
    if max(kh, kw) > CONV_MAX_KERNEL:
        raise ArgumentError(f"{what}: kernel {kh}x{kw}: the largest supported side is {CONV_MAX_KERNEL}")
    if h + 2 * padding < kh or w + 2 * padding < kw:
        raise ArgumentError(f"{what}: kernel {kh}x{kw} does not fit the input {h}x{w} padded by {padding}")
    return ConvShape(n, c, h, w, k, kh, kw, stride, padding)


def _tensor(what: str, name: str, x: Any) -> np.ndarray:
    return operand_array(f"{what}: {name}", x, ndim=4)


def _input_tensor(what: str, x: Any) -> "np.ndarray | RowPlaneTensor":
    """x as a 4-D integer array, or a tensor packed before (checked against the call's bits in
    :func:`_check_input_values`)."""
    return x if isinstance(x, RowPlaneTensor) else _tensor(what, "x", x)


def _check_input_values(what: str, x: "np.ndarray | RowPlaneTensor", bits: int, signed: bool) -> None:
    """x's codes fit its bits: one pass over them, or, for a packed tensor, the bits it was packed (and checked)
    at must be the call's."""
    if not isinstance(x, RowPlaneTensor):
        check_values(f"{what}: x", x, bits, signed)
    elif (x.bits, x.signed) != (bits, signed):
        kind = lambda b, sg: f"{b}-bit {'signed' if sg else 'unsigned'}"  # noqa: E731
        raise ArgumentError(f"{what}: x was packed as {kind(x.bits, x.signed)} codes, the call has "
                            f"x_bits = {bits}, x_signed = {signed}")


def _check_error_shape(what: str, e: np.ndarray, g: ConvShape) -> None:
    if e.shape != g.out_shape:
        raise ArgumentError(f"{what}: e has shape {e.shape}, expected (N, K, Ho, Wo) = {g.out_shape} for "
                            f"{g.describe()}")


def _code_dtype(bits: int, signed: bool) -> type:
    """The narrowest dtype for the host's copies of ``bits``-bit codes (the sources move bytes of them)."""
    if bits <= 8:
        return np.int8 if signed else np.uint8
    return np.int16 if signed else np.uint16


def _padded(x: np.ndarray, p: int, dtype: type, channels_last: bool) -> np.ndarray:
    """(N, C, H, W) -> zero-padded (N, H + 2p, W + 2p, C) or (N, C, H + 2p, W + 2p), contiguous, in ``dtype``."""
    n, c, h, w = x.shape
    if channels_last:
        out = np.zeros((n, h + 2 * p, w + 2 * p, c), dtype=dtype)
        out[:, p:p + h, p:p + w, :] = x.transpose(0, 2, 3, 1)
    else:
        out = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=dtype)
        out[:, :, p:p + h, p:p + w] = x
    return out


def _dilated(e: np.ndarray, g: ConvShape, dtype: type) -> np.ndarray:
    """(N, K, Ho, Wo) error -> channels-last (N, H + kh - 1, W + kw - 1, K): stride - 1 zeros between entries,
    kh - 1 - p before (a negative amount crops), zeros after: its stride-1 correlation with the rotated
    kernels has exactly H x W outputs."""
    out = np.zeros((g.n, g.h + g.kh - 1, g.w + g.kw - 1, g.k), dtype=dtype)
    s = g.stride
    index = []
    for lead, size, length in ((g.kh - 1 - g.padding, out.shape[1], g.ho), (g.kw - 1 - g.padding, out.shape[2], g.wo)):
        first = -(-max(0, -lead) // s)                          # first entry whose place lead + i s is >= 0
        last = min(length, (size - 1 - lead) // s + 1)          # one past the last entry that lands inside
        index.append((first, last, lead + first * s))
    (h0, h1, t0), (w0, w1, u0) = index
    if h1 > h0 and w1 > w0:
        out[:, t0:t0 + s * (h1 - h0 - 1) + 1:s, u0:u0 + s * (w1 - w0 - 1) + 1:s, :] = \
            e[:, :, h0:h1, w0:w1].transpose(0, 2, 3, 1)
    return out


def _result(shape: tuple[int, int, int, int], perm: tuple[int, int, int, int], out: np.ndarray | None,
            run: Callable[[np.ndarray | None], np.ndarray]) -> np.ndarray:
    """Run the GEMM whose (M, N) result is the call's result of ``shape`` with its axes in the order ``perm``
    and the first three merged (M).

    Without ``out``: a new int64 array in GEMM order, returned as the call's view of it.  With ``out``
    (the call's shape, any real dtype): the GEMM writes into it straight when its memory allows an (M, N)
    view in GEMM order (e.g. a channels-last out for the forward), otherwise into a copy in that order,
    copied back once."""
    if out is None:
        return run(None).reshape(tuple(shape[i] for i in perm)).transpose(tuple(np.argsort(perm)))
    ordered = out.transpose(perm)
    matrix = ordered.reshape(-1, ordered.shape[3])   # a view when out's strides allow it, else a copy
    run(matrix)
    if not np.may_share_memory(matrix, out):        # the GEMM wrote into the copy
        np.copyto(ordered, matrix.reshape(ordered.shape))
    return out


def _prepare(what: str, operand_bits: int, bits: dict[str, Any], flags: dict[str, Any],
             shape: tuple[int, int, int, int], gemm_shape: tuple[int, int], out: np.ndarray | None,
             sums: dict[str, tuple[Any, tuple[int, ...]]] | None = None) -> tuple[dict[str, int], dict[str, bool]]:
    """The checks every call shares, after its geometry: the result buffer, or the int64 result's size, and the
    code sums' buffers ({name: (array or None, shape)})."""
    bits = {name: check_bits(f"{what}: {name}", v, operand_bits) for name, v in bits.items()}
    flags = {name: check_flag(f"{what}: {name}", v) for name, v in flags.items()}
    if out is not None:
        check_out(out, *shape)
    else:
        check_result_size(*gemm_shape)
    for name, (array, sums_shape) in (sums or {}).items():
        if array is not None:
            check_out(array, *sums_shape, name=f"{what}: {name}")
    return bits, flags


def _fill_sums(targets: list[tuple[np.ndarray | None, Callable[[], np.ndarray]]]) -> None:
    """Each requested sums buffer (not None) from its source (the device's sums or the host's)."""
    for array, source in targets:
        if array is not None:
            np.copyto(array, source(), casting="unsafe")


def _codes(x: "np.ndarray | RowPlaneTensor") -> np.ndarray:
    return x.codes() if isinstance(x, RowPlaneTensor) else x


def conv2d(gemm: Gemm, operand_bits: int, x: Any, w: Any, *, x_bits: int, w_bits: int, stride: int = 1,
           padding: int = 0, x_signed: bool = False, w_signed: bool = False,
           out: np.ndarray | None = None, x_sums: np.ndarray | None = None,
           engine: "Engine | None" = None) -> np.ndarray:
    """``torch.nn.functional.conv2d(x, w, stride=, padding=)`` on codes: int64 (N, K, Ho, Wo) (see
    :meth:`cpt_driver.Accelerator.conv2d`); ``x_sums`` (N, Ho, Wo): x's window sums."""
    what = "conv2d"
    x, w = _input_tensor(what, x), _tensor(what, "w", w)
    g = conv_shape(what, "x", x.shape, "w", w.shape, stride, padding)
    m = g.n * g.ho * g.wo
    bits, flags = _prepare(what, operand_bits, {"x_bits": x_bits, "w_bits": w_bits},
                           {"x_signed": x_signed, "w_signed": w_signed}, g.out_shape, (m, g.k), out,
                           {"x_sums": (x_sums, (g.n, g.ho, g.wo))})
    _check_input_values(what, x, bits["x_bits"], flags["x_signed"])
    check_values(f"{what}: w", w, bits["w_bits"], flags["w_signed"])
    sums = Sums(np.zeros(m, dtype=np.int64)) if x_sums is not None else None
    run = engine.forward(g, x, w, bits["x_bits"], bits["w_bits"], flags["x_signed"], flags["w_signed"], sums) \
        if engine is not None else None
    if run is not None:
        result = _result(g.out_shape, (0, 2, 3, 1), out, run)
        _fill_sums([(x_sums, lambda: sums.rows.reshape(g.n, g.ho, g.wo) if sums.written
                     else code_sums.window_sums(_codes(x), g))])
        return result
    x = _codes(x)
    _fill_sums([(x_sums, lambda: code_sums.window_sums(x, g))])
    xp = _padded(x, g.padding, _code_dtype(bits["x_bits"], flags["x_signed"]), channels_last=True)
    a = Im2colRows(xp, (g.kh, g.kw), (g.stride, g.stride), (1, 1), bits["x_bits"], flags["x_signed"])
    # B = W as (kh kw C) x K, a transposed view of contiguous rows (i, j, c) per output channel: the driver
    # packs B's columns as rows
    b = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(g.k, -1).T
    return _result(g.out_shape, (0, 2, 3, 1), out, lambda o: gemm(
        a, b, bits["x_bits"], bits["w_bits"], flags["x_signed"], flags["w_signed"], o))


def conv2d_input(gemm: Gemm, operand_bits: int, input_size: Any, w: Any, e: Any, *, w_bits: int, e_bits: int,
                 stride: int = 1, padding: int = 0, w_signed: bool = False, e_signed: bool = False,
                 out: np.ndarray | None = None, engine: "Engine | None" = None) -> np.ndarray:
    """``torch.nn.grad.conv2d_input(input_size, w, e, stride=, padding=)`` on codes: int64 (N, C, H, W)."""
    what = "conv2d_input"
    w, e = _tensor(what, "w", w), _tensor(what, "e", e)
    g = conv_shape(what, "input_size", input_size, "w", w.shape, stride, padding)
    _check_error_shape(what, e, g)
    shape = (g.n, g.c, g.h, g.w)
    bits, flags = _prepare(what, operand_bits, {"w_bits": w_bits, "e_bits": e_bits},
                           {"w_signed": w_signed, "e_signed": e_signed}, shape, (g.n * g.h * g.w, g.c), out)
    check_values(f"{what}: w", w, bits["w_bits"], flags["w_signed"])
    check_values(f"{what}: e", e, bits["e_bits"], flags["e_signed"])
    run = engine.input_grad(g, w, e, bits["w_bits"], bits["e_bits"], flags["w_signed"], flags["e_signed"]) \
        if engine is not None else None
    if run is not None:
        return _result(shape, (0, 2, 3, 1), out, run)
    ep = _dilated(e, g, _code_dtype(bits["e_bits"], flags["e_signed"]))
    a = Im2colRows(ep, (g.kh, g.kw), (1, 1), (1, 1), bits["e_bits"], flags["e_signed"])
    # B = the kernels rotated by 180 degrees, rows (i, j, k): w[k, c, kh - 1 - i, kw - 1 - j]
    b = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 2, 3, 0)).reshape(g.c, -1).T
    return _result(shape, (0, 2, 3, 1), out, lambda o: gemm(
        a, b, bits["e_bits"], bits["w_bits"], flags["e_signed"], flags["w_signed"], o))


def conv2d_weight(gemm: Gemm, operand_bits: int, x: Any, weight_size: Any, e: Any, *, x_bits: int, e_bits: int,
                  stride: int = 1, padding: int = 0, x_signed: bool = False, e_signed: bool = False,
                  out: np.ndarray | None = None, x_sums: np.ndarray | None = None,
                  e_sums: np.ndarray | None = None, engine: "Engine | None" = None) -> np.ndarray:
    """``torch.nn.grad.conv2d_weight(x, weight_size, e, stride=, padding=)`` on codes: int64 (K, C, kh, kw);
    ``x_sums`` (C, kh, kw), ``e_sums`` (K, kh, kw): the tap sums of x and e."""
    what = "conv2d_weight"
    x, e = _input_tensor(what, x), _tensor(what, "e", e)
    g = conv_shape(what, "x", x.shape, "weight_size", weight_size, stride, padding)
    _check_error_shape(what, e, g)
    shape = (g.k, g.c, g.kh, g.kw)
    bits, flags = _prepare(what, operand_bits, {"x_bits": x_bits, "e_bits": e_bits},
                           {"x_signed": x_signed, "e_signed": e_signed}, shape, (g.kh * g.kw * g.c, g.k), out,
                           {"x_sums": (x_sums, (g.c, g.kh, g.kw)), "e_sums": (e_sums, (g.k, g.kh, g.kw))})
    _check_input_values(what, x, bits["x_bits"], flags["x_signed"])
    check_values(f"{what}: e", e, bits["e_bits"], flags["e_signed"])
    sums = Sums(np.zeros(g.kh * g.kw * g.c, dtype=np.int64), np.zeros(g.kh * g.kw * g.k, dtype=np.int64)) \
        if x_sums is not None or e_sums is not None else None
    run = engine.weight_grad(g, x, e, bits["x_bits"], bits["e_bits"], flags["x_signed"], flags["e_signed"], sums) \
        if engine is not None else None
    if run is not None:
        try:
            result = _result(shape, (2, 3, 1, 0), out, run)
        except EngineRefused:   # an implementation that never takes this geometry (it is lowered from now on)
            pass
        else:
            device = sums is not None and sums.written   # (tap, c) and (tap, k) order
            _fill_sums([(x_sums, lambda: sums.rows.reshape(g.kh, g.kw, g.c).transpose(2, 0, 1) if device
                         else code_sums.x_tap_sums(_codes(x), g)),
                        (e_sums, lambda: sums.columns.reshape(g.kh, g.kw, g.k).transpose(2, 0, 1) if device
                         else code_sums.e_tap_sums(e, g))])
            return result
    x = _codes(x)
    _fill_sums([(x_sums, lambda: code_sums.x_tap_sums(x, g)), (e_sums, lambda: code_sums.e_tap_sums(e, g))])
    xp = _padded(x, g.padding, _code_dtype(bits["x_bits"], flags["x_signed"]), channels_last=False)
    a = TapRows(xp, (g.kh, g.kw), (g.stride, g.stride), (1, 1), bits["x_bits"], flags["x_signed"])
    # B = E as (N Ho Wo) x K: a transposed view of E's contiguous per-channel rows (n, ho, wo).  The errors
    # (K <= C_out columns) are B, loaded once per call, while the k^2-fold activations stream as A
    et = np.empty((g.k, g.n, g.ho * g.wo), dtype=_code_dtype(bits["e_bits"], flags["e_signed"]))
    et[...] = e.reshape(g.n, g.k, -1).transpose(1, 0, 2)
    b = et.reshape(g.k, -1).T
    return _result(shape, (2, 3, 1, 0), out, lambda o: gemm(
        a, b, bits["x_bits"], bits["e_bits"], flags["x_signed"], flags["e_signed"], o))
