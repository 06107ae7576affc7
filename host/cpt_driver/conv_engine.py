"""Convolutions on the interface-4 engine (regmap.json has ``conv``: the emulated device, and the HLS kernel in
C simulation).

The host packs x (or e) once as row-planes straight from the codes (:mod:`cpt_driver.rowplanes`: no k^2
expansion; an x packed before, a :class:`~cpt_driver.rowplanes.RowPlaneTensor`, is copied), writes the weights
in the engine's B layout, and makes one call per chunk of whole images:

* forward / input gradient: images per call bounded by max_dim result rows, the line buffer (the device's
  ring rule) and the pool; each call writes its rows of the (N Ho Wo) x K / (N H W) x C result;
* weight gradient: images per call bounded by k_max positions (E in one B half) and one half of the tensor
  buffer (the corner-turned X chunk); each call writes a partial dW^T (kh kw C x K) that the host sums in
  int64, as the design says; consecutive equal chunks carry the next chunk as the prefetch hint
  (flags PREFETCH_B, ``next_a``/``next_b``).  An implementation with tighter limits (the Verilog twin's
  formers take fewer images a call on some layers: docs/registers.md, "The Verilog twin") refuses the first
  call with ERR_CONV before any bus request; the driver then halves the images per call until one is taken, and
  later calls of the same geometry and precisions bisect between the most taken and the fewest refused (at most
  one refused call each) until the two meet; refused at one image (a geometry its formers never take, such as
  W > D on the twin), the layer is lowered to GEMMs, then and every later time.

Code sums (flags SUMS, docs/registers.md): a forward call asked for its x window sums and a weight gradient
for its x and e tap sums (:class:`Sums`) set SUMS and read them after the call; an implementation that refuses
SUMS in an op (ERR_CONV before any bus request; the Verilog twin did in weight gradients) has its first such call
made again without them, and no later call of that op asks (``Engine.sums[op]`` False): :mod:`cpt_driver.conv`
then sums the codes on the host.

Results are int16 (flags C16) when the call's worst case fits, else int32: exact either way.  A geometry the
engine cannot take in whole images (an image larger than one call, a line buffer beyond the tensor buffer)
or tensors larger than the pool return None: :mod:`cpt_driver.conv` then lowers it to GEMMs as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import layout, rowplanes
from .errors import DeviceStatusError
from .rowplanes import RowPlaneTensor, channel_pitch, input_rows_read, row_bytes, row_words, tensor_bytes
from .sums import SUM_BYTES, SUM_DTYPE

if TYPE_CHECKING:
    from .accelerator import Accelerator
    from .conv import ConvShape

#: A call's GEMM run on an optional result buffer.
Run = Callable[[np.ndarray | None], np.ndarray]


@dataclass
class Sums:
    """Where a conv call's code sums go, int64 (zeroed by the caller): ``rows`` -- forward, each result row's
    window sum of x, (N Ho Wo); weight gradient, each (tap, c) row's sum of x over the positions, (kh kw C) --
    and ``columns`` -- weight gradient, each tap's sum of e per output channel, (kh kw K) in (tap, k) order; the
    forward's weight sums are not read.  ``written``: the device wrote them (else the host computes them)."""

    rows: np.ndarray
    columns: np.ndarray | None = None
    written: bool = False


class EngineRefused(Exception):
    """A Run's first call was refused with ERR_CONV at its smallest chunk (nothing ran, ``out`` untouched): the
    caller lowers the convolution to GEMMs instead."""


def encode_conv(spec: Any, op: str, kh: int, kw: int, stride: int, padding: int) -> int:
    """The ``conv`` register value: bits 1:0 the op (regmap.json's conv.ops), 7:4 kh, 11:8 kw, 13:12 stride,
    15:14 padding."""
    return spec.conv["ops"][op] | kh << 4 | kw << 8 | stride << 12 | padding << 14


def _model_kernel(g: "ConvShape") -> int:
    """The square kernel side of the device's rules (cpt_hw.hw.conv_calls.model_kernel)."""
    side = max(g.kh, g.kw)
    return side if min(g.h, g.w) + 2 * g.padding >= side else min(g.kh, g.kw)


def _line_buffer_bits(spec: Any, op: str, g: "ConvShape", a_bits: int) -> int:
    """The device's ring rule (cpt_hw.hw.conv_model.line_buffer_bits on the model's square kernel)."""
    d, k = spec.dot_width, _model_kernel(g)
    ho, wo = ((size + 2 * g.padding - k) // g.stride + 1 for size in (g.h, g.w))   # of the square kernel
    out_w = wo if op == "fwd" else g.w
    span = min(ho if op == "fwd" else g.h, 2 * -(-spec.rows // out_w) + 1)
    if op == "fwd":
        return input_rows_read(g.h, k, g.stride, g.padding, 0, span) * a_bits * row_words(g.w, g.c, d) * d
    return (span // g.stride + k) * a_bits * row_words(wo, g.k, d) * d


def _wgrad_x_bits(spec: Any, g: "ConvShape", a_bits: int, images: int) -> int:
    d = spec.dot_width
    rows_in = input_rows_read(g.h, _model_kernel(g), g.stride, g.padding, 0, g.ho)
    return images * g.c * a_bits * (-(-rows_in * g.w // d) * d)


def _c16(k_real: int, a_bits: int, b_bits: int) -> bool:
    return k_real * ((1 << a_bits) - 1) * ((1 << b_bits) - 1) < 1 << 15


class Engine:
    """The conv calls of one :class:`~cpt_driver.Accelerator` whose spec has the engine."""

    def __init__(self, acc: "Accelerator"):
        self.acc = acc
        self.spec = acc.spec
        #: by weight-gradient geometry and precisions, where the device refused a call: (the most images a call it
        #: took, the fewest it refused); (0, 1): it refused one image, the layer is lowered
        self.wgrad_limits: dict[tuple[int, ...], tuple[int, int]] = {}
        #: by op ("fwd", "wgrad"): whether the device computes its code sums (flags SUMS); None until a call of
        #: that op asked for them
        self.sums: dict[str, bool | None] = {"fwd": None, "wgrad": None}
        #: conv calls the device took (not refused)
        self.taken = 0

    # ------------------------------------------------------------------ planning
    def _images(self, op: str, g: "ConvShape", a_bits: int, per_image_bytes: int, fixed_bytes: int) -> int:
        """Images per call (0: the engine cannot take this geometry in whole images)."""
        s, d = self.spec, self.spec.dot_width
        tb = int(s.conv["tensor_buffer_bits"])
        if op == "wgrad":
            positions = g.ho * g.wo
            if positions > s.k_max or g.kh * g.kw * g.c > s.max_dim or g.k > s.max_dim:
                return 0
            nb = min(g.n, s.k_max // positions)
            while nb > 1 and _wgrad_x_bits(s, g, a_bits, nb) > tb // 2:
                nb -= 1
            return nb if _wgrad_x_bits(s, g, a_bits, nb) <= tb // 2 else 0
        rows, n_cols = (g.ho * g.wo, g.k) if op == "fwd" else (g.h * g.w, g.c)
        if op == "fwd":
            reduction = g.kh * g.kw * channel_pitch(g.c, d)
        else:
            reduction = max(len(ti) * len(tj) for ti, tj in rowplanes.dgrad_phases(
                g.kh, g.kw, g.stride, g.padding)) * channel_pitch(g.k, d)
        if rows > s.max_dim or n_cols > s.max_dim or reduction > s.k_max \
                or _line_buffer_bits(s, op, g, a_bits) > tb:
            return 0
        room = (self.acc.pool.budget - fixed_bytes) // max(1, per_image_bytes)
        return max(0, min(g.n, s.max_dim // rows, room))

    def _fits(self, sizes: tuple[int, ...]) -> bool:
        return self.acc.pool.need(sizes) <= self.acc.pool.budget

    # ------------------------------------------------------------------ the three calls
    def forward(self, g: "ConvShape", x: "np.ndarray | RowPlaneTensor", w: np.ndarray, x_bits: int, w_bits: int,
                x_signed: bool, w_signed: bool, sums: Sums | None = None) -> Run | None:
        """Run for :func:`cpt_driver.conv._result`: the (N Ho Wo) x K product, or None (lower it instead);
        with ``sums``, the window sums of x too, where the device computes them."""
        d = self.spec.dot_width
        wrows = [rowplanes.fwd_weight_rows(w, d)]
        c16 = _c16(g.kh * g.kw * g.c, x_bits, w_bits)
        return self._streamed("fwd", g, x, (g.n, g.c, g.h, g.w), wrows, x_bits, w_bits, x_signed, w_signed,
                              g.ho * g.wo, g.k, c16, sums)

    def input_grad(self, g: "ConvShape", w: np.ndarray, e: np.ndarray, w_bits: int, e_bits: int, w_signed: bool,
                   e_signed: bool) -> Run | None:
        """Run for the (N H W) x C input gradient (polyphase rotated weights), or None."""
        d = self.spec.dot_width
        wrows = rowplanes.dgrad_weight_rows(w, g.stride, g.padding, d)
        c16 = _c16(g.kh * g.kw * g.k, e_bits, w_bits)
        return self._streamed("dgrad", g, e, (g.n, g.k, g.ho, g.wo), wrows, e_bits, w_bits, e_signed, w_signed,
                              g.h * g.w, g.c, c16)

    def _streamed(self, op: str, g: "ConvShape", t: "np.ndarray | RowPlaneTensor", t_shape: tuple[int, int, int, int],
                  wrows: list[np.ndarray], a_bits: int, b_bits: int, a_signed: bool, b_signed: bool,
                  rows_per_image: int, n_cols: int, c16: bool, sums: Sums | None = None) -> Run | None:
        s, d = self.spec, self.spec.dot_width
        t_bytes = tensor_bytes(t_shape, a_bits, d)
        w_bytes = rowplanes.weight_bytes(wrows, b_bits, d)
        esize = 2 if c16 else 4
        c_row = layout.result_stride(n_cols, s.cols) * esize
        want_sums = sums is not None and self.sums.get(op) is not False
        # a forward call's sums: its result rows' window sums, then the weights' K kh kw tap sums (int32)
        sums_row, sums_fixed = (SUM_BYTES, SUM_BYTES * n_cols * g.kh * g.kw) if want_sums else (0, 0)
        fixed = (t_bytes, w_bytes) + ((sums_fixed,) if want_sums else ())
        nb = self._images(op, g, a_bits, rows_per_image * (c_row + sums_row),
                          self.acc.pool.need(fixed) + 2 * s.word_bytes + (self.acc.pool.align if want_sums else 0))
        sizes = (t_bytes, w_bytes, nb * rows_per_image * c_row) \
            + ((nb * rows_per_image * sums_row + sums_fixed,) if want_sums else ())
        if nb < 1 or not self._fits(sizes):
            return None
        image = t_shape[2] * row_bytes(t_shape[3], t_shape[1], a_bits, d)
        blocks = -(-n_cols // s.b_block_cols)
        rows_read = (input_rows_read(g.h, g.kh, g.stride, g.padding, 0, g.ho) if op == "fwd" else g.ho)
        flags = self._flags(a_signed, b_signed) | (self.spec.flag("C16") if c16 else 0)
        conv = encode_conv(s, op, g.kh, g.kw, g.stride, g.padding)
        reduction = (g.kh * g.kw * channel_pitch(g.c, d) if op == "fwd"
                     else max(len(ti) * len(tj) for ti, tj in rowplanes.dgrad_phases(g.kh, g.kw, g.stride, g.padding))
                     * channel_pitch(g.k, d))

        def run(o: np.ndarray | None) -> np.ndarray:
            result = o if o is not None else np.empty((g.n * rows_per_image, n_cols), dtype=np.int64)
            self.acc._ensure_arena(self.acc.pool.need(sizes))
            with self.acc.pool.lease(sizes) as (rt, rw, rc, *rs):
                rowplanes.write_tensor_into(t, a_bits, d, rt.array)
                rowplanes.pack_weights_into(wrows, b_bits, d, rw.array)
                rt.flush()
                rw.flush()
                for n0 in range(0, g.n, nb):
                    b = min(nb, g.n - n0)
                    m = b * rows_per_image
                    read = blocks * b * rows_read * (image // t_shape[2]) + w_bytes
                    regs = dict(a=rt.phys + n0 * image, b=rw.phys, c=rc.phys, a_bits=a_bits, b_bits=b_bits,
                                flags=flags, conv=conv, batch=b, channels=g.c | g.k << 16, size=g.h | g.w << 16,
                                band=0)
                    summed = self._call(op, regs, m, n_cols, reduction, (read, m * c_row),
                                        sums_at=rs[0] if rs else None,
                                        sums_bytes=SUM_BYTES * m + sums_fixed)
                    rc.invalidate()
                    c = rc.array[:m * c_row].view("<i2" if c16 else "<i4").reshape(m, -1)[:, :n_cols]
                    np.copyto(result[n0 * rows_per_image:n0 * rows_per_image + m], c, casting="unsafe")
                    if summed:
                        rs[0].invalidate()
                        r0 = n0 * rows_per_image
                        sums.rows[r0:r0 + m] = rs[0].array[:SUM_BYTES * m].view(SUM_DTYPE)
                if sums is not None:
                    sums.written = bool(rs) and self.sums.get(op) is True
            return result
        return run

    def _call(self, op: str, regs: dict[str, int], m: int, n: int, k: int, traffic: tuple[int, int],
              hint: bool = False, sums_at: Any = None, sums_bytes: int = 0) -> bool:
        """One conv call; with ``sums_at`` (a pool region) and a device not known to refuse them, with SUMS
        there.  Returns whether it wrote the sums.  The first SUMS call of an op a device refuses (ERR_CONV) is
        made again without them; taken then, the device does not compute that op's sums (``self.sums[op]`` False
        from now on); refused again, that refusal is the call's own and is raised."""
        summed = sums_at is not None and self.sums.get(op) is not False
        if not summed:
            self.acc._conv_call(op, regs, m, n, k, traffic, hint=hint)
        else:
            try:
                self.acc._conv_call(op, {**regs, "flags": regs["flags"] | self.spec.flag("SUMS"),
                                         "sums": sums_at.phys}, m, n, k, (traffic[0], traffic[1] + sums_bytes),
                                    hint=hint)
                self.sums[op] = True
            except DeviceStatusError as err:
                if self.sums.get(op) or err.status != 1 << self.spec.status_bits["ERR_CONV"]:
                    raise
                self.acc._conv_call(op, regs, m, n, k, traffic, hint=hint)
                self.sums[op] = summed = False
        self.taken += 1
        return summed

    def weight_grad(self, g: "ConvShape", x: "np.ndarray | RowPlaneTensor", e: np.ndarray, x_bits: int, e_bits: int,
                    x_signed: bool, e_signed: bool, sums: Sums | None = None) -> Run | None:
        """Run for the (kh kw C) x K weight gradient: partial dW^T per chunk of images, summed here; or None.
        With ``sums``, the x and e tap sums too (summed over the calls), where the device computes them."""
        s, d = self.spec, self.spec.dot_width
        x_bytes = tensor_bytes((g.n, g.c, g.h, g.w), x_bits, d)
        e_bytes = tensor_bytes((g.n, g.k, g.ho, g.wo), e_bits, d)
        m = g.kh * g.kw * g.c
        key = (g.c, g.k, g.h, g.w, g.kh, g.kw, g.stride, g.padding, x_bits, e_bits)
        nb = self._images("wgrad", g, x_bits, 0, 0)
        taken, refused_at = self.wgrad_limits.get(key, (nb, nb + 1))
        # the device refused more before: bisect towards its limit while the gap lasts, else what it took
        # (0 after it refused one image: lowered)
        nb = min(nb, (taken + refused_at) // 2 if taken and refused_at - taken > 1 else taken or refused_at // 2)
        if nb < 1:
            return None
        c16 = _c16(nb * g.ho * g.wo, x_bits, e_bits)
        c_bytes = m * layout.result_stride(g.k, s.cols) * (2 if c16 else 4)
        sums_count = m + g.kh * g.kw * g.k   # (tap, c) rows of x, then (tap, k) columns of e
        want_sums = sums is not None and self.sums["wgrad"] is not False
        sizes = (x_bytes, e_bytes, c_bytes) + ((SUM_BYTES * sums_count,) if want_sums else ())
        if not self._fits(sizes):
            return None
        x_image = g.h * row_bytes(g.w, g.c, x_bits, d)
        e_image = g.ho * row_bytes(g.wo, g.k, e_bits, d)
        blocks = -(-g.k // s.b_block_cols)
        rows_read = input_rows_read(g.h, g.kh, g.stride, g.padding, 0, g.ho)
        conv = encode_conv(s, "wgrad", g.kh, g.kw, g.stride, g.padding)
        base_flags = self._flags(x_signed, e_signed)
        refused = 1 << s.status_bits["ERR_CONV"]

        def calls(rx: Any, re_: Any, rc: Any, rs: Any, images: int, total: np.ndarray) -> None:
            """The layer's calls of ``images`` images each (the last may have fewer), summed into total (and
            their code sums into ``sums`` while the device writes them)."""
            chunks = [(n0, min(images, g.n - n0)) for n0 in range(0, g.n, images)]
            for i, (n0, b) in enumerate(chunks):
                c16_call = _c16(b * g.ho * g.wo, x_bits, e_bits)
                flags = base_flags | (s.flag("C16") if c16_call else 0)
                regs = dict(a=rx.phys + n0 * x_image, b=re_.phys + n0 * e_image, c=rc.phys, a_bits=x_bits,
                            b_bits=e_bits, conv=conv, batch=b, channels=g.c | g.k << 16,
                            size=g.h | g.w << 16, band=0)
                nxt = chunks[i + 1] if i + 1 < len(chunks) else None
                hint = self.acc.prefetch and nxt is not None and nxt[1] == b
                if hint:  # the next chunk, same geometry: the device loads it while this call computes
                    flags |= s.flag("PREFETCH_B")
                    regs.update(next_a=rx.phys + nxt[0] * x_image, next_b=re_.phys + nxt[0] * e_image)
                read = blocks * b * rows_read * (x_image // g.h) + b * e_image
                call_c = m * layout.result_stride(g.k, s.cols) * (2 if c16_call else 4)
                summed = self._call("wgrad", {**regs, "flags": flags}, m, g.k, b * g.ho * g.wo, (read, call_c),
                                    hint=hint, sums_at=rs, sums_bytes=SUM_BYTES * sums_count)
                rc.invalidate()
                c = rc.array[:call_c].view("<i2" if c16_call else "<i4").reshape(m, -1)[:, :g.k]
                np.add(total, c, out=total)
                if summed:
                    rs.invalidate()
                    both = rs.array[:SUM_BYTES * sums_count].view(SUM_DTYPE)
                    np.add(sums.rows, both[:m], out=sums.rows)
                    np.add(sums.columns, both[m:], out=sums.columns)

        def run(o: np.ndarray | None) -> np.ndarray:
            total = np.zeros((m, g.k), dtype=np.int64)
            self.acc._ensure_arena(self.acc.pool.need(sizes))
            with self.acc.pool.lease(sizes) as (rx, re_, rc, *rs):
                rowplanes.write_tensor_into(x, x_bits, d, rx.array)
                rowplanes.pack_tensor_into(e, e_bits, d, re_.array)
                rx.flush()
                re_.flush()
                images = nb
                while True:
                    taken_before = self.taken
                    try:
                        calls(rx, re_, rc, rs[0] if rs else None, images, total)
                        break
                    except DeviceStatusError as err:
                        # a tighter implementation refused the layer's first call (none taken): fewer images
                        if err.status != refused or self.taken != taken_before:
                            raise
                        taken = self.wgrad_limits.get(key, (0, 0))[0]
                        taken = taken if taken < images else 0
                        self.wgrad_limits[key] = (taken, images)
                        images = taken or images // 2
                        if images == 0:
                            raise EngineRefused(f"wgrad {g}: refused at one image") from err
                if key in self.wgrad_limits:
                    self.wgrad_limits[key] = (max(images, self.wgrad_limits[key][0]), self.wgrad_limits[key][1])
                if sums is not None:
                    sums.written = bool(rs) and self.sums["wgrad"] is True
            if o is not None:
                np.copyto(o, total, casting="unsafe")
                return o
            return total
        return run

    def _flags(self, a_signed: bool, b_signed: bool) -> int:
        return (self.spec.flag("A_SIGNED") if a_signed else 0) | (self.spec.flag("B_SIGNED") if b_signed else 0)
