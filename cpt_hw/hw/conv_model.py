"""Traffic and cycle model of the convolution-native accelerator -- a DESIGN, not yet built (issue 17).

Everything here predicts what the engine of docs/architecture.md, "Convolution-native accelerator
(interface 4; design)", would move and how long it would take: the design's numbers, not those of the HLS
kernel (``hls_cycles.conv_cycles``) or of the Verilog twin's forward calls, so no number from this module is a
measurement.  It is pure Python (no numpy in the model itself) so that the
benchmark runs every ResNet-74 layer at every precision in a fraction of a second.

The layout (the executable form of the design's DDR tensor layout, with :func:`pack_tensor`):

* a tensor (N, C, H, W) of ``bits``-bit codes is stored as **row-planes**: for each image n, row h and bit
  plane p (LSB first) one string of W x Cp bits, pixel-major and channel-minor (bit w Cp + c is bit p of
  code [n, c, h, w]; channels C..Cp-1 are 0), zero-padded to ``row_words`` = ceil(W Cp / D) D-bit words.
  Row-plane (n, h, p) starts at word ((n H + h) bits + p) row_words.  Cp = :func:`channel_pitch`: the next
  power of two below D, whole D-bit words above, so a pixel's channels never straddle a word.
* weights keep the GEMM path's B layout with K = kh kw Cp (tap-major, channel-minor, as the im2col rows the
  device forms); the input gradient's rotated weights are stored phase by phase (stride-2 polyphase).

Calls and their traffic (``op``):

* ``fwd``: A rows = im2col rows of X formed on chip from the line buffer (X read once per B block, halo
  rows included, padding never read); B = weights; C = int16/int32 (B Ho Wo) x round_up(C_out, cols)
  (int16 when the call's worst case fits it: :func:`result_bits`).
* ``dgrad``: the transposed convolution of E, split into s^2 output phases (polyphase: a stride-2 phase
  only uses the kernel taps that meet real error entries, so no dilation zero is computed); E read once.
* ``wgrad``: A rows = (tap, c) rows of X over a chunk of output positions, formed by a shift/mask unit
  from an on-chip X chunk (transposed to channel-major bits by a corner turn); B = the E chunk (also
  corner-turned); one call per chunk (whole images, so no halo for ResNet-74), next chunk loaded in the
  background (X chunk ping-pong, B prefetch half); int32 partial dW per call summed by the host.

Cycles follow the GEMM engine's schedule in the large (cpt_hw.hw.cycle_model, rtl/): decoupled reader,
former, array and writer, so that in steady state each A tile costs the largest of its array steps
(a_bits b_bits Kw per column tile, at least ``rows`` for the drain, plus one idle cycle), its share of the
read and write beats (one 64-bit beat per cycle each way) and its formation (A words / former rate); plus
setup, fill (B block, first rows, first tile) and tail (drain, last writes, write response).  The same
method applied to today's GEMM calls (:func:`gemm_path_estimate`) is compared with the exact cycle model
in bench/bench_conv_traffic.py, which says how far to trust it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from .config import BRAM36_BITS, RESULT_BITS, HardwareConfig
from .cycle_model import MemoryTiming, setup_cycles
from .golden import conv_output_size

OPS = ("fwd", "dgrad", "wgrad")


# ----------------------------------------------------------------------------- design parameters


@dataclass(frozen=True)
class ConvDesign:
    """Parameters of the convolution engine that :class:`HardwareConfig` does not hold yet; they become
    config fields when the engine is built (docs/architecture.md)."""

    max_kernel: int = 3
    #: The tensor buffer: the line buffer of fwd/dgrad, the two X chunk halves of wgrad (64 BRAM36 = 2 Mbit).
    tensor_buffer_bram36: int = 64
    #: A words per cycle the im2col former writes into the A ping-pong banks (fwd, dgrad): the tensor
    #: buffer's 8 banks deliver a 512-bit window per cycle, about a third of what 16 A rows consume.
    former_words_fwd: int = 8
    #: A words per cycle of the wgrad shift/mask former (each word is a funnel shift of two buffer words).
    former_words_wgrad: int = 4
    #: Stride-2 input gradients computed as s^2 phases with the taps each phase really uses.
    polyphase_dgrad: bool = True
    #: Row/column code sums for the zero-point corrections written after C (and wgrad's mask rows).
    sums: bool = True
    #: Results written as int16 when the call's worst case fits (K x max|a| x max|b| <= 2^15 - 1), else
    #: int32: exact either way, and half the writes of low-precision forward calls (argument c_bits).
    narrow_results: bool = True

    @property
    def tensor_buffer_bits(self) -> int:
        return self.tensor_buffer_bram36 * BRAM36_BITS

    @classmethod
    def for_config(cls, cfg: HardwareConfig, **changes: Any) -> "ConvDesign":
        """The design of ``cfg``'s engine: its max_kernel and tensor_buffer_bram36 (config fields since the
        emulated device implements interface 4), the model's defaults for the rest."""
        return cls(max_kernel=cfg.max_kernel, tensor_buffer_bram36=cfg.tensor_buffer_bram36, **changes)


@dataclass(frozen=True)
class ConvShape:
    """One convolution layer as the forward pass sees it (square kernel, stride, padding)."""

    batch: int
    in_ch: int
    out_ch: int
    height: int          # forward input H
    width: int           # forward input W
    kernel: int
    stride: int
    padding: int

    @property
    def out_h(self) -> int:
        return conv_output_size(self.height, self.kernel, self.stride, self.padding)

    @property
    def out_w(self) -> int:
        return conv_output_size(self.width, self.kernel, self.stride, self.padding)

    @property
    def macs(self) -> int:
        """Real multiply-accumulates of the forward pass (the input and weight gradients have as many)."""
        return self.batch * self.out_h * self.out_w * self.out_ch * self.in_ch * self.kernel ** 2


# ----------------------------------------------------------------------------- DDR layout


def channel_pitch(channels: int, dot_width: int) -> int:
    """Cp: bits one pixel's channels occupy in a row-plane (the next power of two up to D, whole D-bit words
    beyond), so that no pixel straddles a word and a tap's slice starts at a multiple of Cp."""
    if channels < 1:
        raise ValueError(f"channels = {channels}: must be >= 1")
    if channels >= dot_width:
        return -(-channels // dot_width) * dot_width
    return 1 << (channels - 1).bit_length()


def row_words(width: int, channels: int, dot_width: int) -> int:
    """D-bit words of one row-plane: ceil(W Cp / D)."""
    return -(-width * channel_pitch(channels, dot_width) // dot_width)


def tensor_bytes(cfg: HardwareConfig, n: int, c: int, h: int, w: int, bits: int) -> int:
    """Bytes of a (N, C, H, W) tensor of ``bits``-bit codes in the row-plane layout."""
    return n * h * bits * row_words(w, c, cfg.dot_width) * cfg.word_bytes


def pack_tensor(q: Any, bits: int, dot_width: int) -> Any:
    """The row-plane layout of integer codes q (N, C, H, W) as uint8 bytes (numpy; the reference the driver's
    packer must equal).  Signed codes are stored as their ``bits``-bit two's complement."""
    import numpy as np

    q = np.asarray(q)
    n, c, h, w = q.shape
    cp = channel_pitch(c, dot_width)
    words = row_words(w, c, dot_width)
    code = (q.astype(np.int64) & ((1 << bits) - 1)).transpose(0, 2, 3, 1)          # (N, H, W, C)
    if cp != c:
        code = np.concatenate([code, np.zeros((n, h, w, cp - c), dtype=np.int64)], axis=3)
    planes = (code.reshape(n, h, 1, w * cp) >> np.arange(bits).reshape(1, 1, bits, 1)) & 1   # (N, H, bits, W Cp)
    rows = np.zeros((n, h, bits, words * dot_width), dtype=np.uint8)
    rows[..., :w * cp] = planes
    return np.packbits(rows, axis=3, bitorder="little").reshape(-1)


# ----------------------------------------------------------------------------- geometry helpers


def input_rows_read(size: int, kernel: int, stride: int, padding: int, out0: int, out1: int) -> int:
    """Distinct input rows that output rows [out0, out1) read: padding rows are made on chip, never read;
    rows no tap reaches (1x1 stride 2: the odd ones) are skipped."""
    rows = {o * stride - padding + i for o in range(out0, out1) for i in range(kernel)}
    return sum(1 for r in rows if 0 <= r < size)


def dgrad_phases(shape: ConvShape, polyphase: bool = True) -> list[tuple[int, int]]:
    """(output rows, kernel taps) of each phase of the input gradient.  Phase (ry, rx) holds the dX pixels
    with h = ry, w = rx (mod s); tap i reaches them iff i = r + p (mod s).  Without polyphase: one phase of
    every pixel and all k^2 taps (dilation zeros computed)."""
    s, k, p = shape.stride, shape.kernel, shape.padding
    if not polyphase or s == 1:
        return [(shape.batch * shape.height * shape.width, k * k)]

    def count(size: int, r: int) -> int:
        return len(range(r, size, s))

    def taps(r: int) -> int:
        return sum(1 for i in range(k) if (i - r - p) % s == 0)

    return [(shape.batch * count(shape.height, ry) * count(shape.width, rx), taps(ry) * taps(rx))
            for ry in range(s) for rx in range(s)]


# ----------------------------------------------------------------------------- estimates


@dataclass
class Estimate:
    """Predicted traffic and time of one layer's GEMM class (one or several device calls)."""

    op: str
    calls: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    reads: dict[str, int] = field(default_factory=dict)     # by operand
    steps: int = 0                 # PE array steps
    cycles: int = 0
    useful_binary_ops: int = 0     # real MACs x a_bits x b_bits
    input_elements: int = 0        # elements of the tensor(s) the call expands (X; E; X and E)

    def add_read(self, what: str, nbytes: int) -> None:
        self.reads[what] = self.reads.get(what, 0) + nbytes
        self.read_bytes += nbytes

    def seconds(self, cfg: HardwareConfig) -> float:
        return self.cycles / (cfg.clock_mhz * 1e6)

    def utilisation(self, cfg: HardwareConfig) -> float:
        return self.useful_binary_ops / (cfg.peak_binary_ops_per_cycle * self.cycles) if self.cycles else 0.0

    @property
    def bytes_read_per_input_element(self) -> float:
        return self.read_bytes / self.input_elements if self.input_elements else 0.0


def _beats(cfg: HardwareConfig, nbytes: float) -> float:
    return nbytes / (cfg.axi_data_width // 8)


def _tile_steps(cfg: HardwareConfig, col_tiles: int, a_bits: int, b_bits: int, kw: int) -> int:
    """Cycles the array spends on one A tile: a b Kw steps per column tile, at least ``rows`` (the drain of
    the previous tile's shadows), plus the idle cycle of a new A tile (rtl/cpt_feeder.v)."""
    return col_tiles * max(a_bits * b_bits * kw, cfg.rows) + 1


def _tail(cfg: HardwareConfig, timing: MemoryTiming, write_beats_per_tile: float) -> int:
    """After the last step: tile_ready latency, the drain, the last tile's writes and its response."""
    return cfg.rows + cfg.cols + 2 + cfg.rows + math.ceil(write_beats_per_tile) + timing.write_latency + 3


def result_bits(k_real: int, a_bits: int, b_bits: int, narrow: bool = True) -> int:
    """Width of the int results of a call whose sums have at most k_real unsigned a x b-bit products: 16 when
    the worst case K (2^a - 1)(2^b - 1) fits int16 (and ``narrow``), else RESULT_BITS (32)."""
    return 16 if narrow and k_real * ((1 << a_bits) - 1) * ((1 << b_bits) - 1) < 1 << 15 else RESULT_BITS


def _out_bytes(cfg: HardwareConfig, rows: int, n: int, outputs: str, out_bits: int | None,
               code_tensor: tuple[int, int, int, int] | None, c_bits: int = RESULT_BITS) -> int:
    """Result bytes: c_bits-bit rows x round_up(N, cols) (this step), or the row-plane codes (next step)."""
    if outputs == "int":
        return rows * (-(-n // cfg.cols) * cfg.cols) * c_bits // 8
    if outputs != "codes" or out_bits is None or code_tensor is None:
        raise ValueError(f"outputs = {outputs!r}: 'int', or 'codes' with out_bits and the output tensor")
    nb, c, h, w = code_tensor
    return tensor_bytes(cfg, nb, c, h, w, out_bits)


def estimate(cfg: HardwareConfig, op: str, shape: ConvShape, a_bits: int, b_bits: int, *,
             design: ConvDesign = ConvDesign(), timing: MemoryTiming = MemoryTiming(), outputs: str = "int",
             out_bits: int | None = None, passes: int = 1) -> Estimate:
    """Traffic and cycles of one layer's ``op`` on the convolution engine.

    Bits follow the GEMM operand order of bench/bench_rtl.py: fwd (x, w), dgrad (e, w), wgrad (x, e).
    outputs="int": integer results (int16 where :func:`result_bits` allows, else int32) and the code sums;
    outputs="codes" with out_bits: the next step's epilogue writes requantized codes in the row-plane
    layout instead (fwd, dgrad); passes=2: its exact mode by recomputation, a statistics pass (no writes)
    before the writing pass; outputs="spill": its exact mode by spilling the integer results and
    requantizing them in an epilogue call.  wgrad always writes int32 partial sums.
    """
    if op not in OPS:
        raise ValueError(f"op = {op!r}: one of {OPS}")
    if shape.kernel > design.max_kernel:
        raise ValueError(f"kernel {shape.kernel} > max_kernel = {design.max_kernel}")
    if op == "wgrad":
        return _wgrad(cfg, shape, a_bits, b_bits, design, timing)
    if outputs == "spill":
        return _spill(cfg, op, shape, a_bits, b_bits, design, timing, out_bits)
    return _streamed(cfg, op, shape, a_bits, b_bits, design, timing, outputs, out_bits, passes)


def _spill(cfg: HardwareConfig, op: str, s: ConvShape, a_bits: int, b_bits: int, design: ConvDesign,
           timing: MemoryTiming, out_bits: int | None) -> Estimate:
    """The next step's other exact mode: the integer results (and sums) go to DDR as in this step, then an
    epilogue call reads them back and writes the codes once the range is known."""
    if out_bits is None:
        raise ValueError("outputs = 'spill' needs out_bits")
    est = _streamed(cfg, op, s, a_bits, b_bits, design, timing, "int", None, 1)
    shape = (s.batch, s.out_ch, s.out_h, s.out_w) if op == "fwd" else (s.batch, s.in_ch, s.height, s.width)
    codes = tensor_bytes(cfg, *shape, out_bits)
    spilled = est.write_bytes
    est.add_read("spill", spilled)
    est.write_bytes += codes
    est.calls += 1
    est.cycles += setup_cycles(cfg) + timing.read_latency + math.ceil(max(_beats(cfg, spilled), _beats(cfg, codes))) \
        + timing.write_latency + 3
    return est


def _streamed(cfg: HardwareConfig, op: str, s: ConvShape, a_bits: int, b_bits: int, design: ConvDesign,
              timing: MemoryTiming, outputs: str, out_bits: int | None, passes: int) -> Estimate:
    """fwd and dgrad: one call per layer (per B block); the expanded tensor streams once through the line
    buffer, A tiles formed on chip, weights as the resident B block."""
    d, wb = cfg.dot_width, cfg.word_bytes
    est = Estimate(op)
    if op == "fwd":
        # A = im2col of X: M = B Ho Wo, K = k^2 Cp(C_in); N = C_out
        n_cols, cin, t_rows = s.out_ch, s.in_ch, s.batch * s.out_h * s.out_w
        phases = [(t_rows, s.kernel ** 2)]
        tensor = s.batch * input_rows_read(s.height, s.kernel, s.stride, s.padding, 0, s.out_h) \
            * a_bits * row_words(s.width, s.in_ch, d) * wb
        est.input_elements = s.batch * s.in_ch * s.height * s.width
        out_tensor = (s.batch, s.out_ch, s.out_h, s.out_w)
        first_rows = min(s.kernel, s.height)
        row_w = row_words(s.width, s.in_ch, d)
    else:
        # A = im2col of the dilated, padded E (phase by phase): M = B H W, K = taps Cp(C_out); N = C_in
        n_cols, cin = s.in_ch, s.out_ch
        phases = dgrad_phases(s, design.polyphase_dgrad)
        t_rows = s.batch * s.height * s.width
        tensor = s.batch * s.out_h * a_bits * row_words(s.out_w, s.out_ch, d) * wb   # every E row, once
        est.input_elements = s.batch * s.out_ch * s.out_h * s.out_w
        out_tensor = (s.batch, s.in_ch, s.height, s.width)
        first_rows = min(s.kernel, s.out_h)
        row_w = row_words(s.out_w, s.out_ch, d)
    cp = channel_pitch(cin, d)
    kws = [(m, -(-taps * cp // d)) for m, taps in phases]
    ring = line_buffer_bits(cfg, op, s, a_bits)
    if ring > design.tensor_buffer_bits:
        raise ValueError(f"{op}: the line buffer ({design.tensor_buffer_bits} bits) cannot hold {ring} bits of "
                         f"rows for {s} (row bands are not modelled)")
    blocks = -(-n_cols // cfg.b_block_cols)
    weight_bytes = n_cols * b_bits * sum(kw for _, kw in kws) * wb
    est.add_read("tensor", tensor * blocks * passes)
    est.add_read("weights", weight_bytes * passes)
    # code sums for the zero-point corrections (docs/architecture.md): forward, each A row's sum (the window
    # sum of X) and each weight column's sum per tap; the input gradient's rank-one term weighs E's channels
    # by the float z_w / s_w, so the host forms it from the error codes it quantized itself (none here)
    sums = (t_rows + n_cols * s.kernel ** 2) * 4 if design.sums and outputs == "int" and op == "fwd" else 0
    k_real = cin * s.kernel ** 2
    out = _out_bytes(cfg, t_rows, n_cols, outputs, out_bits, out_tensor,
                     result_bits(k_real, a_bits, b_bits, design.narrow_results))
    est.write_bytes = out + sums
    est.useful_binary_ops = s.macs * a_bits * b_bits
    est.calls = blocks * passes

    # cycles: per block, the phases' A tiles stream; each tile's share of reads and writes
    tiles_total = sum(-(-m // cfg.rows) for m, _ in kws if m) * blocks
    read_per_tile = _beats(cfg, tensor * blocks) / tiles_total
    write_per_tile = _beats(cfg, est.write_bytes) / tiles_total
    line_fill = _beats(cfg, first_rows * a_bits * row_w * wb)
    cycles = 0
    for pass_no in range(passes):
        writes = pass_no == passes - 1                      # the statistics pass writes nothing
        for b0 in range(0, n_cols, cfg.b_block_cols):
            nb = min(cfg.b_block_cols, n_cols - b0)
            col_tiles = -(-nb // cfg.cols)
            cycles += setup_cycles(cfg) + timing.read_latency + math.ceil(
                _beats(cfg, nb * b_bits * sum(kw for _, kw in kws) * wb) + line_fill) + 2
            for m, kw in kws:
                if not m:
                    continue
                tiles = -(-m // cfg.rows)
                steps = _tile_steps(cfg, col_tiles, a_bits, b_bits, kw) if kw else 1   # no tap: zero rows
                form = cfg.rows * a_bits * kw / design.former_words_fwd
                per_tile = max(steps, read_per_tile, write_per_tile if writes else 0.0, form)
                cycles += math.ceil(tiles * per_tile)
                est.steps += tiles * col_tiles * a_bits * b_bits * kw
            cycles += _tail(cfg, timing, write_per_tile if writes else 0.0)
    est.cycles = cycles
    return est


def line_buffer_bits(cfg: HardwareConfig, op: str, s: ConvShape, a_bits: int) -> int:
    """Bits of the fwd/dgrad line buffer's ring: the input rows (all their planes) of two A tiles, the one being
    formed and the next, halo included; must fit the tensor buffer (else the call is refused, ERR_CONV)."""
    d = cfg.dot_width
    out_w = s.out_w if op == "fwd" else s.width
    span = min(s.out_h if op == "fwd" else s.height, 2 * -(-cfg.rows // out_w) + 1)
    if op == "fwd":
        return input_rows_read(s.height, s.kernel, s.stride, s.padding, 0, span) * a_bits \
            * row_words(s.width, s.in_ch, d) * d
    return (span // s.stride + s.kernel) * a_bits * row_words(s.out_w, s.out_ch, d) * d


def wgrad_x_bits(cfg: HardwareConfig, s: ConvShape, a_bits: int, rows_out: int, images: int = 1, row0: int = 0) -> int:
    """Bits of a weight-gradient call's X chunk corner-turned into channel rows of input-position bits: the
    input rows that output rows [row0, row0 + rows_out) read, of ``images`` images; must fit one half of the
    tensor buffer."""
    d = cfg.dot_width
    rows_in = input_rows_read(s.height, s.kernel, s.stride, s.padding, row0, row0 + rows_out)
    return images * s.in_ch * a_bits * (-(-rows_in * s.width // d) * d)


def wgrad_chunk(cfg: HardwareConfig, s: ConvShape, a_bits: int, design: ConvDesign = ConvDesign()) \
        -> tuple[int, int]:
    """(images per call, output rows per call): whole images while their positions fit k_max (E in one B
    half) and their X rows, corner-turned to channel rows, fit one X chunk half; else bands of output rows
    of one image (then halo rows are read twice)."""
    half = design.tensor_buffer_bits // 2

    def x_bits(rows_out: int, images: int = 1) -> int:
        return wgrad_x_bits(cfg, s, a_bits, rows_out, images)

    per_image = s.out_h * s.out_w
    images = min(s.batch, cfg.k_max // per_image) if per_image <= cfg.k_max else 0
    while images > 1 and x_bits(s.out_h, images) > half:
        images -= 1
    if images >= 1 and x_bits(s.out_h, images) <= half:
        return images, s.out_h
    band = min(s.out_h, cfg.k_max // s.out_w)
    while band > 1 and x_bits(band) > half:
        band -= 1
    if band < 1 or x_bits(band) > half or s.out_w > cfg.k_max:
        raise ValueError(f"wgrad: one output row of {s} does not fit the chunk buffers")
    return 1, band


def _wgrad(cfg: HardwareConfig, s: ConvShape, a_bits: int, b_bits: int, design: ConvDesign,
           timing: MemoryTiming) -> Estimate:
    d, wb = cfg.dot_width, cfg.word_bytes
    est = Estimate("wgrad")
    images, band = wgrad_chunk(cfg, s, a_bits, design)
    m_rows = s.kernel ** 2 * s.in_ch                   # A rows (tap, c)
    n_cols = s.out_ch
    blocks = -(-n_cols // cfg.b_block_cols)
    x_row, e_row = row_words(s.width, s.in_ch, d), row_words(s.out_w, s.out_ch, d)
    # the calls: (images, output rows) each
    calls: list[tuple[int, int, int]] = []             # (images, out row0, out rows)
    if band == s.out_h:
        for n0 in range(0, s.batch, images):
            calls.append((min(images, s.batch - n0), 0, s.out_h))
    else:
        for _ in range(s.batch):
            for r0 in range(0, s.out_h, band):
                calls.append((1, r0, min(band, s.out_h - r0)))
    est.input_elements = s.batch * (s.in_ch * s.height * s.width + s.out_ch * s.out_h * s.out_w)
    est.useful_binary_ops = s.macs * a_bits * b_bits
    col_tiles_total = -(-n_cols // cfg.cols)
    sum_rows = s.kernel ** 2 if design.sums else 0     # the 1-bit mask rows (border terms), own A tile
    per_call: list[tuple[float, float, float, float]] = []   # (compute, read beats, write beats, form)
    for imgs, r0, rows in calls:
        k_pos = imgs * rows * s.out_w
        kw = -(-k_pos // d)
        x_bytes = imgs * input_rows_read(s.height, s.kernel, s.stride, s.padding, r0, r0 + rows) * a_bits \
            * x_row * wb
        e_bytes = imgs * rows * b_bits * e_row * wb
        est.add_read("x", x_bytes * blocks)
        est.add_read("e", e_bytes)
        out = m_rows * col_tiles_total * cfg.cols * RESULT_BITS // 8
        # the mask rows' results (border terms) and each A row's code sum (X summed over the chunk per tap)
        sums = (sum_rows * col_tiles_total * cfg.cols + m_rows) * 4 if design.sums else 0
        est.write_bytes += out + sums
        compute = form = 0.0
        for b0 in range(0, n_cols, cfg.b_block_cols):
            col_tiles = -(-min(cfg.b_block_cols, n_cols - b0) // cfg.cols)
            tiles = -(-m_rows // cfg.rows)
            compute += tiles * _tile_steps(cfg, col_tiles, a_bits, b_bits, kw) + 2
            est.steps += tiles * col_tiles * a_bits * b_bits * kw
            if sum_rows:
                compute += _tile_steps(cfg, col_tiles, 1, b_bits, kw)
                est.steps += col_tiles * b_bits * kw
            form += tiles * cfg.rows * a_bits * kw / design.former_words_wgrad
        per_call.append((compute, _beats(cfg, x_bytes * blocks + e_bytes), _beats(cfg, out + sums), form))
        est.calls += 1
    # each call overlaps the next call's loads (X chunk ping-pong, B prefetch half); the first call's own
    # loads are exposed
    cycles = timing.read_latency + math.ceil(per_call[0][1])
    for i, (compute, _, write, form) in enumerate(per_call):
        nxt = per_call[i + 1][1] if i + 1 < len(per_call) else 0.0
        cycles += setup_cycles(cfg) + math.ceil(max(compute, nxt, write, form)) \
            + _tail(cfg, timing, write / max(1, -(-m_rows // cfg.rows)))
    est.cycles = cycles
    return est


# ----------------------------------------------------------------------------- today's GEMM path


def gemm_path_reads(cfg: HardwareConfig, m: int, n: int, k: int, a_bits: int, b_bits: int) -> int:
    """Bytes today's GEMM engine reads for one call: A once per B block, B once (docs/ddr-layout.md)."""
    kw = -(-k // cfg.dot_width)
    blocks = -(-n // cfg.b_block_cols)
    return (m * a_bits * blocks + n * b_bits) * kw * cfg.word_bytes


def gemm_path_estimate(cfg: HardwareConfig, m: int, n: int, k: int, a_bits: int, b_bits: int, *,
                       b_prefetched: bool = False, timing: MemoryTiming = MemoryTiming()) -> Estimate:
    """The same per-tile method applied to one call of today's GEMM engine (to check the method against the
    exact cycle model): A tiles read from DDR, B block loaded first unless prefetched."""
    est = Estimate("gemm", calls=1)
    kw = -(-k // cfg.dot_width)
    est.add_read("gemm", gemm_path_reads(cfg, m, n, k, a_bits, b_bits))
    est.write_bytes = m * (-(-n // cfg.cols) * cfg.cols) * RESULT_BITS // 8
    est.useful_binary_ops = m * n * k * a_bits * b_bits
    tiles = -(-m // cfg.rows)
    cycles = setup_cycles(cfg)
    for n0 in range(0, n, cfg.b_block_cols):
        nb = min(cfg.b_block_cols, n - n0)
        col_tiles = -(-nb // cfg.cols)
        if not (b_prefetched and n0 == 0):
            cycles += timing.read_latency + math.ceil(_beats(cfg, nb * b_bits * kw * cfg.word_bytes))
        a_tile = _beats(cfg, cfg.rows * a_bits * kw * cfg.word_bytes)
        write_per_tile = _beats(cfg, cfg.rows * col_tiles * cfg.cols * RESULT_BITS // 8)
        cycles += timing.read_latency + math.ceil(a_tile) + 2
        per_tile = max(_tile_steps(cfg, col_tiles, a_bits, b_bits, kw), a_tile, write_per_tile)
        cycles += math.ceil(tiles * per_tile)
        est.steps += tiles * col_tiles * a_bits * b_bits * kw
    est.cycles = cycles + _tail(cfg, timing, write_per_tile)
    return est


# ----------------------------------------------------------------------------- on-chip memory


def bram_budget(cfg: HardwareConfig, design: ConvDesign = ConvDesign()) -> dict[str, int]:
    """BRAM36 of today's plane banks (as Yosys maps them: 64-bit words, 512 deep per block) and of the
    convolution engine's additions."""
    def banks(count: int, words: int) -> int:
        return count * -(-words // 512)

    a = banks(cfg.rows, 2 * cfg.operand_bits * cfg.k_words)
    b = banks(cfg.cols, 2 * (cfg.b_block_cols // cfg.cols) * cfg.operand_bits * cfg.k_words)
    return {"a_banks": a, "b_banks": b, "tensor_buffer": design.tensor_buffer_bram36,
            "sums_fifo": 1, "total": a + b + design.tensor_buffer_bram36 + 1}


def with_design(design: ConvDesign, **changes: Any) -> ConvDesign:
    """A variant of ``design`` (benchmark ablations)."""
    return replace(design, **changes)
