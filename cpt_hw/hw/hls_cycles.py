"""The HLS kernel's ``cycles`` output, predicted: the busy counts of its three dataflow stages.

HLS C++ cannot read a clock, so the kernel counts what it can: the iterations of its pipelined loops
(II = 1, one iteration per clock when nothing stalls).  ``cycles`` = max(load beats, compute iterations,
store beats), which is what the dataflow region takes if no stage ever waits for another or for the
bus: a lower bound on the kernel's own clock count (docs/hls.md sets it next to the Verilog twin's).

:func:`busy_counts` replays the loop structure of ``hls/cpt_compute.h`` (and the load/store stages)
exactly; the C-simulation tests assert that the kernel reports precisely this number.

B prefetch: a hit (``b_prefetched``) neither reads block 0's B nor spends the compute stage's load loop
on it (the steps read the prefetch buffer); a call with a hint counts the prefetch's beats
(``prefetch_words`` D-bit words) as load beats.

Conv calls (interface 4, ``hls/cpt_conv*.h``): :func:`conv_cycles` replays the kernel's passes -- one for the
forward and the weight gradient, one per stride phase for the input gradient -- with the same Compute count
and the conv load and store stages' own counts (:func:`conv_pass_counts`), the line buffer's row reads
replayed slot by slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import RESULT_BITS, HardwareConfig
from .conv_calls import ConvArgs
from .conv_model import channel_pitch, row_words


@dataclass(frozen=True)
class BusyCounts:
    load_beats: int       # bus beats the load stage reads
    compute_iters: int    # pipelined-loop iterations of the compute stage
    store_beats: int      # bus beats the store stage writes

    @property
    def cycles(self) -> int:
        return max(self.load_beats, self.compute_iters, self.store_beats)


def busy_counts(cfg: HardwareConfig, m: int, n: int, k: int, a_bits: int, b_bits: int, *,
                b_prefetched: bool = False, prefetch_words: int = 0) -> BusyCounts:
    """Busy counts of one legal call (M x K) . (K x N) at a_bits x b_bits."""
    kw = -(-k // cfg.dot_width)
    wb = cfg.dot_width // cfg.axi_data_width          # bus beats per D-bit word
    bpr = cfg.cols * RESULT_BITS // cfg.axi_data_width  # bus beats per result-tile row
    steps = a_bits * b_bits * kw
    tiles = -(-m // cfg.rows)
    rows = [min(cfg.rows, m - t * cfg.rows) for t in range(tiles)]
    load = prefetch_words * wb
    store = iters = 0
    drain = 0  # result beats still to send from the shadow registers
    for n0 in range(0, n, cfg.b_block_cols):
        nb = min(cfg.b_block_cols, n - n0)
        col_tiles = -(-nb // cfg.cols)
        b_words = 0 if (b_prefetched and n0 == 0) else nb * b_bits * kw
        load += (b_words + sum(rows) * a_bits * kw) * wb
        store += col_tiles * sum(rows) * bpr
        # B block load, then (block 0 only) A tile 0; both drain the previous block's last tile on the side.
        for words in (b_words, rows[0] * a_bits * kw if n0 == 0 else 0):
            iters += words
            drain = max(0, drain - words)
        for t in range(tiles):
            # the next A tile, loaded meanwhile: after a block's last tile, the next block's tile 0
            pending = (rows[t + 1] if t + 1 < tiles else rows[0] if n - n0 > cfg.b_block_cols else 0) * a_bits * kw
            for _ in range(col_tiles):
                trip = max(steps, drain)  # the previous tile's drain must finish inside this loop
                iters += trip
                pending = max(0, pending - trip)
                drain = rows[t] * bpr
            iters += pending  # finish loading the next A tile
            drain = max(0, drain - pending)
    iters += drain
    return BusyCounts(load, iters, store)


# ---------------------------------------------------------------------------------------------- conv calls
@dataclass(frozen=True)
class ConvPassGeom:
    """One GEMM pass of a conv call as ``hls/cpt_conv.h`` builds it (``ConvPass``): M, N, K and, for the
    forward and input-gradient formers, the pixel grid and the source rows a row's segments read."""

    m: int
    n: int
    k: int
    gh: int = 1
    gw: int = 1
    ya: int = 0
    yb: int = 0
    ni: int = 0


def conv_passes(cfg: HardwareConfig, g: ConvArgs) -> list[ConvPassGeom]:
    """The passes of a legal conv call, in the kernel's order (input gradient: phase ry s + rx)."""
    d = cfg.dot_width
    if g.op == "fwd":
        return [ConvPassGeom(g.m, g.k, g.kh * g.kw * channel_pitch(g.c, d), g.rows, g.wo, g.stride,
                             g.band0 * g.stride - g.padding, g.kh)]
    if g.op == "wgrad":
        return [ConvPassGeom(g.m, g.k, g.batch * g.rows * g.wo)]
    out = []
    end = g.band0 + g.rows
    for ph, (ti, tj) in enumerate(g.phases()):
        ry, rx = divmod(ph, g.stride)
        h0 = g.band0 + (ry - g.band0) % g.stride
        gh = -(-(end - h0) // g.stride) if h0 < end else 0
        gw = -(-(g.w - rx) // g.stride) if rx < g.w else 0
        yb = (h0 + g.padding - ti[0]) // g.stride if ti else 0
        out.append(ConvPassGeom(g.batch * gh * gw, g.c, len(ti) * len(tj) * channel_pitch(g.k, d), gh, gw, 1, yb,
                                len(ti)))
    return out


def _formed_rows(cfg: HardwareConfig, m: int, n: int) -> list[range]:
    """The A rows the load stage forms, run by run, between line-buffer resets: block 0's rows, and per later
    block its tile 0 (formed at the end of the block before, after a reset) then its other tiles."""
    r0 = min(m, cfg.rows)
    runs = [range(0, m)]
    for _ in range(cfg.b_block_cols, n, cfg.b_block_cols):
        runs += [range(0, r0), range(cfg.rows, m)]
    return runs


def _ring_reads(cfg: HardwareConfig, g: ConvArgs, ps: ConvPassGeom, runs: list[range]) -> int:
    """Source rows the forward / input-gradient line buffer reads (kh slots, row y in slot y mod kh; a reset
    before each run but the continuation of a block's tiles)."""
    src_rows = g.ho if g.op == "dgrad" else g.h
    reads = 0
    tags: list[tuple[int, int] | None] = []
    for i, run in enumerate(runs):
        if i == 0 or i % 2 == 1:   # runs 0, 1, 3, ... start after a reset; 2, 4, ... continue a block's tiles
            tags = [None] * g.kh
        for r in run:
            img, gy = r // (ps.gh * ps.gw), r // ps.gw % ps.gh
            y0 = ps.ya * gy + ps.yb
            for y in range(y0, y0 + ps.ni):
                if 0 <= y < src_rows and tags[y % g.kh] != (img, y):
                    tags[y % g.kh] = (img, y)
                    reads += 1
    return reads


def conv_pass_counts(cfg: HardwareConfig, g: ConvArgs, ps: ConvPassGeom) -> BusyCounts:
    """Busy counts of one pass with M, K > 0: the load stage's beats plus formed words, Compute's trips,
    the store stage's beats (plus one written beat per code sum with SUMS)."""
    d, wb = cfg.dot_width, cfg.dot_width // cfg.axi_data_width
    kw_words = -(-ps.k // d)
    blocks = -(-ps.n // cfg.b_block_cols)
    runs = _formed_rows(cfg, ps.m, ps.n)
    formed = sum(len(r) for r in runs) * g.a_bits * kw_words
    if g.op == "wgrad":
        lo, hi = g.a_rows()
        stored = len(range(lo, hi, 2 if g.kh < g.stride else 1))
        x_words = g.batch * stored * g.a_bits * row_words(g.w, g.c, d)
        e_words = g.batch * g.rows * g.b_bits * row_words(g.wo, g.k, d)   # read once per B block
        load = (x_words + blocks * e_words) * (wb + 1) + ps.n * g.b_bits * kw_words + formed
    else:
        src_width, src_channels = (g.wo, g.k) if g.op == "dgrad" else (g.w, g.c)
        row = g.a_bits * row_words(src_width, src_channels, d)           # words of one source row
        load = (ps.n * g.b_bits * kw_words + _ring_reads(cfg, g, ps, runs) * row) * wb + formed
    compute = busy_counts(cfg, ps.m, ps.n, ps.k, g.a_bits, g.b_bits).compute_iters
    out_beats = cfg.cols * (16 if g.flag("C16") else RESULT_BITS) // cfg.axi_data_width
    col_tiles = sum(-(-min(cfg.b_block_cols, ps.n - n0) // cfg.cols) for n0 in range(0, ps.n, cfg.b_block_cols))
    store = col_tiles * ps.m * out_beats + (g.sums_count() if g.flag("SUMS") else 0)
    return BusyCounts(load, compute, store)


def conv_cycles(cfg: HardwareConfig, g: ConvArgs) -> int:
    """The kernel's ``cycles`` of a legal conv call: per pass the largest stage count, summed; an input-gradient
    phase without taps writes its zero rows directly (their beats), one without pixels costs nothing."""
    total = 0
    for ps in conv_passes(cfg, g):
        if ps.m == 0:
            continue
        if ps.k == 0:
            total += ps.m * -(-g.n_cols // cfg.cols) * cfg.cols * (16 if g.flag("C16") else 32) // cfg.axi_data_width
            continue
        total += conv_pass_counts(cfg, g, ps).cycles
    return total
