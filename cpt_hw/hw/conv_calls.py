"""Interface-4 convolution calls: what the arguments mean, which calls are refused, which bytes a call touches.

The reference rule of docs/architecture.md, "Convolution-native accelerator (interface 4; design)" and
docs/registers.md, "Interface 4", for an accelerator whose config has ``conv_engine = true``.  The emulated
device (:mod:`cpt_hw.hw.emu_device`) and the HLS kernel (``hls/cpt_conv*.h``, C-simulated, which ports these
rules) implement it; the Verilog twin (``rtl/cpt_conv*.v``, ``rtl/cpt_wgrad*.v``) runs forward calls, input
gradients and weight gradients of whole images, refusing the rest by :func:`conv_status` with ``twin=True``.

A call with ``conv`` bits 1:0 (op) = 0 is an interface-3 GEMM call (:func:`cpt_hw.hw.calls.call_status`);
op 1 forward, 2 input gradient, 3 weight gradient read the arguments decoded by :class:`ConvArgs`:

* ``a``: the tensor the call expands, in the row-plane layout (``conv_model.pack_tensor``) at ``a_bits``:
  X (forward, weight gradient) or E (input gradient); ``b``: the weights in the B layout with
  K = kh kw Cp (forward; tap-major, channel-minor), the rotated weights phase by phase (input gradient,
  :func:`dgrad_phases`), or the E tensor as row-planes at ``b_bits`` (weight gradient);
* ``c``: result rows x round_up(N, cols), int32 (int16 with flags C16) in today's C layout: rows (n, ho, wo)
  x K (forward), (n, h, w) x C (input gradient), (i, j, c) x K (weight gradient: a partial dW^T);
* ``band``: result rows [r0, r0 + rows) of every image (output rows; dX rows for the input gradient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# the conv calls' strides and paddings: the driver's (one definition)
from cpt_driver.conv import CONV_PADDINGS as PADDINGS
from cpt_driver.conv import CONV_STRIDES as STRIDES

from .config import HardwareConfig
from .conv_model import ConvShape, channel_pitch, line_buffer_bits, row_words, wgrad_x_bits
from .golden import conv_output_size
from .regmap import CONV_FLAG_BITS, CONV_OPS, CONV_STATUS_BITS, FLAG_BITS, STATUS_BITS

#: ``conv`` bits 1:0 (regmap.CONV_OPS), both ways.
OP_CODES = dict(CONV_OPS)
OPS = {code: name for name, code in OP_CODES.items()}
#: ``conv`` bits that have a meaning: op 1:0, kh 7:4, kw 11:8, stride 13:12, padding 15:14.
CONV_FIELDS_MASK = 0x3 | 0xF << 4 | 0xF << 8 | 0x3 << 12 | 0x3 << 14
_ALL_FLAGS = {**FLAG_BITS, **CONV_FLAG_BITS}
_FLAGS_MASK = sum(1 << b for b in _ALL_FLAGS.values())
_BIT = {name: 1 << pos for name, pos in {**STATUS_BITS, **CONV_STATUS_BITS}.items()}
#: Bytes of one code sum written with SUMS (int32, little-endian).
SUM_BYTES = 4


def model_kernel(h: int, w: int, kh: int, kw: int, padding: int) -> int:
    """The square kernel side the model (and the ring and chunk rules) take for a kh x kw kernel."""
    side = max(kh, kw)
    return side if min(h, w) + 2 * padding >= side else min(kh, kw)


def encode_conv(op: str, kh: int, kw: int, stride: int, padding: int) -> int:
    """The ``conv`` register value of a call."""
    return OP_CODES[op] | kh << 4 | kw << 8 | stride << 12 | padding << 14


def _inside(x: int, size: int, base: int, limit: int) -> bool:
    return size == 0 or (base <= x and x + size <= limit)


@dataclass(frozen=True)
class ConvArgs:
    """The geometry of one convolution call, decoded from its registers (forward terms throughout: the
    forward input is (batch, c, h, w), the weights (k, c, kh, kw))."""

    op: str
    kh: int
    kw: int
    stride: int
    padding: int
    reserved: int        # conv bits without a meaning that are set
    batch: int
    c: int
    k: int
    h: int
    w: int
    band0: int
    band_rows: int       # as written: 0 means "to the last row"
    a_bits: int
    b_bits: int
    flags: int

    @classmethod
    def decode(cls, call: Any) -> "ConvArgs":
        v = call.conv
        return cls(OPS[v & 3], v >> 4 & 0xF, v >> 8 & 0xF, v >> 12 & 3, v >> 14 & 3, v & ~CONV_FIELDS_MASK,
                   call.batch, call.channels & 0xFFFF, call.channels >> 16, call.size & 0xFFFF, call.size >> 16,
                   call.band & 0xFFFF, call.band >> 16, call.a_bits, call.b_bits, call.flags)

    def flag(self, name: str) -> bool:
        return bool(self.flags >> _ALL_FLAGS[name] & 1)

    # ---------------------------------------------------------------- derived sizes (legal geometry only)
    @property
    def ho(self) -> int:
        return conv_output_size(self.h, self.kh, self.stride, self.padding)

    @property
    def wo(self) -> int:
        return conv_output_size(self.w, self.kw, self.stride, self.padding)

    @property
    def rows_per_image(self) -> int:
        """Result rows of an image: output rows (forward, weight gradient), dX rows (input gradient)."""
        return self.h if self.op == "dgrad" else self.ho

    @property
    def rows(self) -> int:
        return self.band_rows if self.band_rows else self.rows_per_image - self.band0

    @property
    def n_cols(self) -> int:
        """N of the call's GEMM: the result's columns."""
        return self.c if self.op == "dgrad" else self.k

    @property
    def m(self) -> int:
        """Result rows of the call."""
        if self.op == "wgrad":
            return self.kh * self.kw * self.c
        return self.batch * self.rows * (self.w if self.op == "dgrad" else self.wo)

    @property
    def a_channels(self) -> int:
        """Channels of the tensor ``a`` points at (X: C; E: K)."""
        return self.k if self.op == "dgrad" else self.c

    def model_shape(self, batch: int | None = None) -> ConvShape:
        """The conv_model shape of the call: a square kernel (the model's only kind) of side max(kh, kw), or
        min(kh, kw) when the larger square does not fit the padded input."""
        return ConvShape(self.batch if batch is None else batch, self.c, self.k, self.h, self.w,
                         model_kernel(self.h, self.w, self.kh, self.kw, self.padding), self.stride, self.padding)

    def phases(self) -> list[tuple[list[int], list[int]]]:
        """Input gradient: the kernel rows and columns of each output phase (ry, rx), ry, rx = 0..s-1 row-major,
        in the order the rotated weights are stored: tap i meets dX row h iff i = h + p (mod s), and a
        phase's taps run from the largest i down (the 180-degree rotation).  Stride 1: one phase, all taps."""
        s, p = self.stride, self.padding

        def taps(r: int, size: int) -> list[int]:
            return [i for i in range(size - 1, -1, -1) if (i - r - p) % s == 0]

        return [(taps(ry, self.kh), taps(rx, self.kw)) for ry in range(s) for rx in range(s)]

    def reduction(self, d: int) -> int:
        """The longest reduction one result element takes in a single pass (what k_max bounds)."""
        if self.op == "fwd":
            return self.kh * self.kw * channel_pitch(self.c, d)
        if self.op == "dgrad":
            return max(len(ti) * len(tj) for ti, tj in self.phases()) * channel_pitch(self.k, d)
        return self.batch * self.rows * self.wo

    def k_real(self) -> int:
        """Products summed into one result at most (the C16 worst case)."""
        if self.op == "fwd":
            return self.kh * self.kw * self.c
        if self.op == "dgrad":
            return self.kh * self.kw * self.k
        return self.batch * self.rows * self.wo

    def weight_words(self, d: int) -> int:
        """D-bit words of one weight column (all planes together: times b_bits)."""
        if self.op == "fwd":
            return -(-self.kh * self.kw * channel_pitch(self.c, d) // d)
        return sum(-(-len(ti) * len(tj) * channel_pitch(self.k, d) // d) for ti, tj in self.phases())

    # ---------------------------------------------------------------- rows the call reads
    def a_rows(self) -> tuple[int, int]:
        """[lo, hi): the rows of ``a``'s tensor that the band reaches, clipped to the image (empty: lo = hi)."""
        r0, r1 = self.band0, self.band0 + self.rows
        if self.op == "dgrad":
            reach = {(h + self.padding - i) // self.stride for h in range(r0, r1) for i in range(self.kh)
                     if (h + self.padding - i) % self.stride == 0}
            reach = {r for r in reach if 0 <= r < self.ho}
        else:
            reach = {o * self.stride - self.padding + i for o in range(r0, r1) for i in range(self.kh)}
            reach = {r for r in reach if 0 <= r < self.h}
        return (min(reach), max(reach) + 1) if reach else (0, 0)

    def tensor_range(self, addr: int, d: int, bits: int, channels: int, height: int, width: int,
                     rows: tuple[int, int]) -> tuple[int, int]:
        """(address, bytes) of rows [lo, hi) of every image of a row-plane tensor (docs: "DMA window and halos")."""
        lo, hi = rows
        if hi <= lo:
            return addr, 0
        row = bits * row_words(width, channels, d) * d // 8
        image = height * row
        return addr + lo * row, (self.batch - 1) * image + (hi - lo) * row

    def a_range(self, addr: int, d: int) -> tuple[int, int]:
        if self.op == "dgrad":
            return self.tensor_range(addr, d, self.a_bits, self.k, self.ho, self.wo, self.a_rows())
        return self.tensor_range(addr, d, self.a_bits, self.c, self.h, self.w, self.a_rows())

    def b_range(self, addr: int, d: int) -> tuple[int, int]:
        if self.op == "wgrad":  # the E chunk: the band's error rows
            return self.tensor_range(addr, d, self.b_bits, self.k, self.ho, self.wo,
                                     (self.band0, self.band0 + self.rows))
        return addr, self.n_cols * self.b_bits * self.weight_words(d) * d // 8

    def result_bytes_per(self) -> int:
        return 2 if self.flag("C16") else 4

    def c_bytes(self, cols: int) -> int:
        return self.m * (-(-self.n_cols // cols) * cols) * self.result_bytes_per()

    def sums_count(self) -> int:
        """int32 code sums written with SUMS: forward, each result row's window sum then each weight column's
        sum per tap (K x kh kw); weight gradient, each (tap, c) row's sum then each tap's error sums (kh kw x K)."""
        taps = self.kh * self.kw
        if self.op == "fwd":
            return self.m + self.k * taps
        return self.m + taps * self.k


def twin_row_bits(cfg: HardwareConfig) -> int:
    """W Cp of the widest row-plane the Verilog twin's im2col former holds (its ring slot per plane,
    ``MAX_ROW_BITS`` of rtl/cpt_im2col_former.v): 2048 bits, at least two words."""
    return max(2048, 2 * cfg.dot_width)


def twin_wgrad_buf_words(cfg: HardwareConfig) -> int:
    """D-bit words the Verilog twin lets a weight gradient's X chunk have (``WGRAD_BUF_WORDS`` of
    rtl/cpt_conv_setup.v): batch a_bits C ceil(H W / D), each channel row of a plane the image's H W position
    bits.  As many words as half the tensor buffer holds: the design's X-chunk check
    (conv_model.wgrad_x_bits) with every row of the image counted, where the design counts the rows the taps
    read, so it can never refuse a call the twin takes -- at most 65,535, as the formers take the batch (which
    it bounds) in a 16-bit field.  The E chunk has no such limit (the design streams it into a B half); the
    formers' banks bound both chunks further (:func:`twin_wgrad_bank_words`)."""
    return min(cfg.tensor_buffer_bits // 2 // cfg.dot_width, (1 << 16) - 1)


#: Words of each of a weight-gradient former's four banks (``BANK_WORDS`` of rtl/cpt_wgrad_former.v: 4 BRAM36
#: of 64-bit words).
TWIN_WGRAD_BANK_WORDS = 2048


def twin_wgrad_bank_words(d: int, batch: int, height: int, width: int, channels: int, bits: int) -> int:
    """Words a chunk of ``batch`` images (height x width pixels, ``channels`` channels, ``bits`` planes) fills in
    the fullest bank of a twin weight-gradient former (rtl/cpt_wgrad_former.v, "packed rows"): R = D / P rows of
    P = max(8, width rounded up to a power of two) bits share a word; groups of R rows alternate between two bank
    parities, channels between two channel banks: ceil(ceil(batch height / R) / 2) bits ceil(channels / 2)."""
    p = max(8, 1 << max(0, width - 1).bit_length())
    groups = -(-batch * height // max(1, d // p))
    return -(-groups // 2) * bits * -(-channels // 2)


def conv_status(cfg: HardwareConfig, call: Any, twin: bool = False) -> int:
    """The status a conv call (op 1..3) returns on ``cfg`` (0: it runs); see docs/registers.md, Interface 4.

    ``twin=True``: the Verilog twin's status, which adds its limits (docs/registers.md, "The Verilog twin"):
    a streamed row-plane (X; E of an input gradient) wider than :func:`twin_row_bits` and a weight gradient its formers
    do not take (:func:`_twin_wgrad_err`) are ERR_CONV where the tensor-buffer check is made, as is C16 beyond
    int16 (the design's rule).  The prefetch hint is checked as the design checks it.  The line-buffer and X-chunk
    checks themselves can then never refuse (``cpt_hw.gen.rtl.check`` makes sure of that for every config it
    renders).
    """
    g = ConvArgs.decode(call)
    d = cfg.dot_width
    status = 0
    geometry_err = (g.reserved != 0 or not 1 <= g.kh <= cfg.max_kernel or not 1 <= g.kw <= cfg.max_kernel
                    or g.stride not in STRIDES or g.padding not in PADDINGS)
    dim_err = min(g.batch, g.c, g.k, g.h, g.w) == 0 or g.batch > cfg.max_dim
    bits_err = not (1 <= g.a_bits <= cfg.operand_bits and 1 <= g.b_bits <= cfg.operand_bits)
    if not geometry_err and not dim_err:
        if g.ho < 1 or g.wo < 1:
            geometry_err = True       # the kernel does not fit the padded input
        elif g.band0 >= g.rows_per_image or g.band0 + g.rows > g.rows_per_image:
            geometry_err = True       # a band outside the image
        else:
            dim_err = g.n_cols > cfg.max_dim or g.m > cfg.max_dim or g.reduction(d) > cfg.k_max
            if not dim_err and not bits_err:
                geometry_err = _twin_limits_err(cfg, g) if twin else _buffer_or_width_err(cfg, g)
    if g.op == "dgrad" and g.flag("SUMS"):
        geometry_err = True           # the input gradient's rank-one term is the host's (no sums)
    if geometry_err:
        status |= _BIT["ERR_CONV"]
    if dim_err:
        status |= _BIT["ERR_DIM"]
    if bits_err:
        status |= _BIT["ERR_BITS"]
    prefetch = g.flag("PREFETCH_B") and g.op == "wgrad"
    addresses = [call.a, call.b, call.c] + ([call.sums] if g.flag("SUMS") else []) \
        + ([call.next_a, call.next_b] if prefetch else [])
    if any(x % cfg.word_bytes for x in addresses):
        status |= _BIT["ERR_ALIGN"]
    if g.flags & ~_FLAGS_MASK or (g.flag("PREFETCH_B") and g.op != "wgrad"):
        status |= _BIT["ERR_FLAGS"]    # the conv prefetch hint serves weight-gradient chains only
    if not status & (_BIT["ERR_CONV"] | _BIT["ERR_DIM"] | _BIT["ERR_BITS"]):
        if not all(_inside(x, size, call.win_base, call.win_limit) for x, size in operand_ranges(cfg, call, g)):
            status |= _BIT["ERR_WINDOW"]
    return status


#: The flags in the prefetch hint's key besides the geometry (docs/registers.md, "Interface 4"): the hinting call
#: forms the next call's first B block with its sums and signedness, so only a call like it may use that block.
_HINT_FLAGS_MASK = sum(1 << _ALL_FLAGS[f] for f in ("SUMS", "B_SIGNED"))


def _hint_geometry(call: Any) -> tuple[int, ...]:
    return (call.conv, call.batch, call.channels, call.size, call.band, call.a_bits, call.b_bits,
            call.flags & _HINT_FLAGS_MASK)


def hint_key(call: Any) -> tuple[int, ...]:
    """The prefetch hint's key a conv call looks for (cpt_core's cv_key): its X and E chunks' addresses, its
    geometry and precisions, and the flags SUMS and B_SIGNED.  C's place is not in it."""
    return (call.a, call.b, *_hint_geometry(call))


def hint_left(call: Any, status: int) -> tuple[int, ...] | None:
    """The key a conv call leaves for the next one: the chunks it prefetched (next_a, next_b) with its own
    geometry, when it ran (status 0) as a weight gradient with PREFETCH_B (the only calls that hint); None otherwise
    (a refused call, a call without a hint: "the next call, whatever it is" consumes a hint)."""
    g = ConvArgs.decode(call)
    if status or g.op != "wgrad" or not g.flag("PREFETCH_B"):
        return None
    return (call.next_a, call.next_b, *_hint_geometry(call))


def prefetch_hit(previous: Any | None, call: Any) -> bool:
    """Whether ``call`` finds its chunks (and its first B block) loaded by ``previous``, the conv call that ran
    just before it (None: none, or one that was refused): :func:`hint_left` of it equals :func:`hint_key` of
    ``call``.  The one rule the emulated device, the cycle model and the benchmarks' probes follow."""
    return previous is not None and hint_left(previous, 0) == hint_key(call)


def _buffer_or_width_err(cfg: HardwareConfig, g: ConvArgs) -> bool:
    """The tensor buffer's and the result width's limits (ERR_CONV), for an otherwise legal geometry."""
    shape = g.model_shape()
    if g.op == "wgrad":
        if wgrad_x_bits(cfg, shape, g.a_bits, g.rows, g.batch, g.band0) > cfg.tensor_buffer_bits // 2:
            return True
    elif line_buffer_bits(cfg, g.op, shape, g.a_bits) > cfg.tensor_buffer_bits:
        return True
    return _c16_err(g)


def c16_fits(g: ConvArgs) -> bool:
    """Whether the call's worst case K (2^a_bits - 1)(2^b_bits - 1) fits int16: C16 is legal (the driver asks for
    it exactly then)."""
    return g.k_real() * ((1 << g.a_bits) - 1) * ((1 << g.b_bits) - 1) < 1 << 15


def _c16_err(g: ConvArgs) -> bool:
    """C16 with a worst case beyond int16."""
    return g.flag("C16") and not c16_fits(g)


def _twin_limits_err(cfg: HardwareConfig, g: ConvArgs) -> bool:
    """The Verilog twin's ERR_CONV in place of :func:`_buffer_or_width_err`: C16 as the design (its worst case), a
    row-plane of the tensor it forms from (X; E of an input gradient: Wo pixels of K channels) wider than its
    former's ring slot, a weight gradient its formers do not take."""
    width = g.wo if g.op == "dgrad" else g.w
    return _c16_err(g) or width * channel_pitch(g.a_channels, cfg.dot_width) > twin_row_bits(cfg) \
        or (g.op == "wgrad" and _twin_wgrad_err(cfg, g))


def _twin_wgrad_err(cfg: HardwareConfig, g: ConvArgs) -> bool:
    """The weight-gradient calls the twin's two shift/mask formers (rtl/cpt_wgrad_former.v: X, and E as a 1x1
    kernel) do not take: a band of output rows (whole images only), a first row the taps do not reach (1x1
    stride 2 padding 1: output row 0 reads padding only), W or Wo above D (a channel row, a segment is one
    word), a channel pitch of X or E that is not a power of two (C > 2D), an E row-plane wider than
    :func:`twin_row_bits`, an X chunk of batch a_bits C ceil(H W / D) words above :func:`twin_wgrad_buf_words`,
    or a chunk whose packed rows overflow a former's bank (:func:`twin_wgrad_bank_words` >
    ``TWIN_WGRAD_BANK_WORDS``)."""
    d = cfg.dot_width
    cp_x, cp_e = channel_pitch(g.c, d), channel_pitch(g.k, d)
    lo, hi = g.a_rows()
    buf = twin_wgrad_buf_words(cfg)
    return (g.band0 != 0 or g.rows != g.ho or lo != 0 or hi == 0 or g.w > d or g.wo > d
            or cp_x & (cp_x - 1) != 0 or cp_e & (cp_e - 1) != 0 or g.wo * cp_e > twin_row_bits(cfg)
            or g.batch * g.a_bits * g.c * -(-g.h * g.w // d) > buf
            or twin_wgrad_bank_words(d, g.batch, g.h, g.w, g.c, g.a_bits) > TWIN_WGRAD_BANK_WORDS
            or twin_wgrad_bank_words(d, g.batch, g.ho, g.wo, g.k, g.b_bits) > TWIN_WGRAD_BANK_WORDS)


def operand_ranges(cfg: HardwareConfig, call: Any, g: ConvArgs | None = None) -> list[tuple[int, int]]:
    """(address, bytes) of every range a legal conv call may touch: a, b, c, then sums (SUMS) and the
    prefetch hint's next X and E chunks (PREFETCH_B, same geometry)."""
    g = g or ConvArgs.decode(call)
    d = cfg.dot_width
    out = [g.a_range(call.a, d), g.b_range(call.b, d), (call.c, g.c_bytes(cfg.cols))]
    if g.flag("SUMS"):
        out.append((call.sums, SUM_BYTES * g.sums_count()))
    if g.flag("PREFETCH_B") and g.op == "wgrad":
        out += [g.a_range(call.next_a, d), g.b_range(call.next_b, d)]
    return out


# ---------------------------------------------------------------------------------------------- data
def unpack_tensor_rows(raw: np.ndarray, g: ConvArgs, bits: int, signed: bool, channels: int, height: int,
                       width: int, rows: tuple[int, int], d: int) -> np.ndarray:
    """Codes (batch, channels, height, width) int64 from the bytes of :meth:`ConvArgs.tensor_range`: rows
    [lo, hi) of each image as stored, every other row 0 (the call never reads it)."""
    out = np.zeros((g.batch, channels, height, width), dtype=np.int64)
    lo, hi = rows
    if hi <= lo:
        return out
    cp = channel_pitch(channels, d)
    row_bytes = row_words(width, channels, d) * d // 8
    image = height * bits * row_bytes
    span = (hi - lo) * bits * row_bytes
    images = np.lib.stride_tricks.as_strided(raw, shape=(g.batch, span), strides=(image, 1), writeable=False)
    planes = np.unpackbits(images.reshape(g.batch, hi - lo, bits, row_bytes), axis=3, bitorder="little")
    planes = planes[..., :width * cp].reshape(g.batch, hi - lo, bits, width, cp)[..., :channels]
    weights = np.left_shift(np.int64(1), np.arange(bits, dtype=np.int64))
    if signed:
        weights[-1] = -weights[-1]
    codes = np.einsum("nrpwc,p->ncrw", planes.astype(np.int64), weights)
    out[:, :, lo:hi, :] = codes
    return out
