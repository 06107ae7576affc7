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
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import RESULT_BITS, HardwareConfig


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
