"""Cycle model of the Verilog twin's weight-gradient calls (conv op 3), cycle for cycle as ``rtl/`` runs them against
cocotbext-axi's AxiRam: cold (the call loads its own chunks) or a hit (the previous call's hint loaded them:
:func:`cpt_hw.hw.conv_calls.prefetch_hit`), with a prefetch hint (PREFETCH_B: the call also loads the next call's
chunks and forms its first B block) or without, with code sums (SUMS) or without.

A weight gradient's stream -- the reader's E command, then one X command per image (and the next call's, with a
hint), the memory's read side, and the two formers' write sides (rtl/cpt_wgrad_former.v: each row-plane staged, then
turned two channel rows a cycle) -- takes nothing from downstream: the formers' `s_ready` depends on their own
staging only, and nothing holds the reader back but them.  So the stream is stepped on its own, cycle by cycle, until
both formers have stored what the call streams (:class:`_Stream`); the walks (rtl/cpt_wgrad_walker.v) meet it through
the cycles each former's chunk is `loaded` and is all stored.  A read lane (rtl/cpt_wgrad_lane.v) serves the
walker's requests -- always a whole row of Kw words -- in a fixed time (:class:`_LaneTiming`), so each pass of a walk
is worked out at once (:class:`_WgradFront`), and the conv schedule (:class:`conv_cycle_model._ConvSchedule`) runs
the tiles and blocks through the GEMM back end, with SUMS its write side stepped with the walks (the error sums:
:class:`sums_cycle_model._ErrTapSums`).  :func:`cpt_hw.hw.twin_cycle_model.twin_cycles` is the entry point.  Checked
equal to the twin by sim/cpt_gemm/test_cpt_gemm_conv.py (docs/rtl.md, "Cycle model of the walker's calls").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from .config import HardwareConfig
from .conv_calls import ConvArgs
from .conv_cycle_model import _Command, _ConvSchedule, _ReadChannel, _Run, _c_stride
from .conv_model import row_words
from .sums_cycle_model import _ErrTapSums

_CB = 2                       # channel rows a former turns a cycle (cpt_wgrad_former CB)


@dataclass(frozen=True)
class _LaneTiming:
    """One former's read lane on a whole-row request (word 0, Kw words: the walker's only kind): the next request is
    taken `next` cycles after one, and its words are on the output `words` cycles after it (the last one `last`).
    Whole words a cycle when the former's rows fill words exactly (`fast`), else a row segment a cycle
    (cpt_wgrad_lane R_BASE, R_RUN), a word out whenever the segments reach the next one, a part word flushed last."""

    next: int
    words: tuple[int, ...]

    @property
    def last(self) -> int:
        return self.words[-1]

    @classmethod
    def of(cls, d: int, batch: int, width: int, height: int, kh: int, kw: int, stride: int, pad: int) -> "_LaneTiming":
        ho = (height + 2 * pad - kh) // stride + 1
        wo = (width + 2 * pad - kw) // stride + 1
        lp = min(max(3, (width - 1).bit_length()), d.bit_length() - 1)     # log2 P: W <= P, 8 <= P <= D
        lr = d.bit_length() - 1 - lp
        fast = stride == 1 and width == wo and height == ho and width == 1 << lp and height % (1 << lr) == 0
        segments = batch * ho
        if fast:
            k_words = -(-segments * wo // d)
            return cls(k_words + 1, tuple(range(3, k_words + 3)))
        flush = segments * wo % d != 0               # a part word, flushed a cycle later
        words = [3 + s for s in range(1, segments + 1) if s * wo // d > (s - 1) * wo // d]
        return cls(segments + 3 + flush, tuple(words + ([segments + 4] if flush else [])))


class _Former:
    """One cpt_wgrad_former's write side: each row-plane's words staged, then turned CB channel rows a cycle while
    the next row-plane arrives; `loaded` once the call's own chunk's last row-plane is turned (a hit: from the
    start), `wr_busy` until every row-plane the call streams (its own chunk, the next call's) is turned."""

    def __init__(self, words: int, channels: int, bits: int, rows: int, own: bool, pf: bool, t0: int):
        self.words, self.channels, self.bits, self.rows = words, channels, bits, rows
        self.limit = (rows * bits) << (own and pf) if own or pf else 0      # row-planes streamed
        self.word = self.count = self.wr_c = self.wr_p = self.wr_rb = 0
        self.staged = self.turning = False
        self.loaded_at: int | None = None if own else t0     # first cycle `loaded` is 1
        self.idle_at: int | None = t0 if self.limit == 0 else None   # first cycle `wr_busy` is 0

    @property
    def s_ready(self) -> bool:
        return not self.staged and self.count != self.limit

    def edge(self, c: int, wr: bool) -> None:
        wr_last = wr and self.word == self.words - 1
        turn_done = self.turning and self.wr_c + _CB >= self.channels
        if wr:
            self.word = 0 if wr_last else self.word + 1
        if wr_last:
            self.count += 1
        if self.turning and not turn_done:
            self.wr_c += _CB
        if turn_done:
            self.wr_c = 0
            if self.wr_p != self.bits - 1:
                self.wr_p += 1
            elif self.wr_rb + 1 == self.rows and self.loaded_at is None:
                self.wr_p = self.wr_rb = 0           # the own chunk is stored: the prefetched one follows
                self.loaded_at = c + 1
            else:
                self.wr_p = 0
                self.wr_rb += 1
        if not self.turning or turn_done:
            if self.staged:
                self.staged, self.turning = False, True
            else:
                self.turning = wr_last
        elif wr_last:
            self.staged = True
        if self.idle_at is None and self.count == self.limit and not self.turning:
            self.idle_at = c + 1


class _Stream:
    """The reader (E's command, then X's, one an image), AxiRam's read side and the two formers, stepped."""

    def __init__(self, cfg: HardwareConfig, g: ConvArgs, call: Any, t0: int, own: bool, pf: bool):
        d = cfg.dot_width
        lo, hi = g.a_rows()
        x_words, e_words = row_words(g.w, g.c, d), row_words(g.wo, g.k, d)
        self.x = _Former(x_words, g.c, g.a_bits, g.batch * hi, own, pf, t0)
        self.e = _Former(e_words, g.k, g.b_bits, g.batch * g.rows, own, pf, t0)
        self.reader = _ReadChannel(cfg)
        beat_bytes = self.reader.beat_bytes
        x_row = g.a_bits * x_words * d // 8
        e_bytes = g.batch * g.rows * g.b_bits * e_words * d // 8

        def chunk(e: int, x: int) -> list:
            """The reader's commands of one call's chunks: E whole, then X an image at a time."""
            x_bytes = (hi - lo) * x_row
            return [(e, _Command(e_bytes // beat_bytes, False, True))] + [
                (x + lo * x_row + i * g.h * x_row, _Command(x_bytes // beat_bytes, False)) for i in range(g.batch)]
        # (None: cpt_reader's decision cycle between the own chunks and the next call's, which issues nothing)
        commands: list = chunk(call.b, call.a) if own else []
        if pf:
            commands += ([None] if own else []) + chunk(call.next_b, call.next_a)
        self.commands = deque(commands)
        self.c = t0 - 1

    def run(self) -> None:
        """Step until both formers have stored everything the call streams."""
        while self.e.idle_at is None or self.x.idle_at is None:
            self.step()

    def step(self) -> None:
        c = self.c = self.c + 1
        reader = self.reader
        act = reader.active
        target = None if act is None else (self.e if act.to_e else self.x)
        r_hs, ar_hs = reader.handshakes(target is not None and target.s_ready)
        word = r_hs and reader.last_beat
        self.e.edge(c, word and target is self.e)
        self.x.edge(c, word and target is self.x)
        _, decide = reader.edge(c, r_hs, ar_hs)
        if decide and self.commands:                 # one command decided a cycle
            command = self.commands.popleft()
            if command is not None:
                reader.issue(command[0], command[1].beats * reader.beat_bytes, command[1])


class _WgradFront:
    """The weight-gradient walker (rtl/cpt_wgrad_walker.v) as the conv schedule steps it: its A walk forms each tile
    of every B block (two X lanes, each the rows of its channels' parity, a_bits requests a row) once the tile's half
    is free and no row sums hold it; its B walk forms each own block through the E lane once the B buffer is free
    and no error sums hold it, and, with a hint, the next call's block 0 once the prefetched E chunk is stored.
    A pass works out its whole walk at once (the lanes' timing is fixed); the registers it raises later -- the
    tile's `a_loaded`, the B words' writes -- are kept as the cycles they are high in."""

    def __init__(self, cfg: HardwareConfig, run: Any, t0: int, sched: Any, *, g: ConvArgs, stream: _Stream,
                 hit: bool, sums: bool):
        self.cfg, self.g, self.sched, self.stream, self.hit, self.sums = cfg, g, sched, stream, hit, sums
        d = cfg.dot_width
        lo, hi = g.a_rows()
        self.lane_e = _LaneTiming.of(d, g.batch, g.wo, g.rows, 1, 1, 1, 0)
        self.lane_x = _LaneTiming.of(d, g.batch, g.w, hi, g.kh, g.kw, g.stride, g.padding)
        self.free_e, self.free_x = stream.e.loaded_at, [stream.x.loaded_at] * 2     # lanes take requests from
        self.c = t0 - 1
        self.t0 = t0
        self.a_loaded = self.b_we = False            # the registers in the cycle to come
        self.rows_hold = self.taps_hold = False      # set by the schedule for the cycle to come
        self.tile_event = False                      # (no periodic skip: the schedule steps every cycle)
        # cycles the walker's a_loaded and B write registers are high, not yet reached (each in increasing order)
        self.a_loaded_at: deque[int] = deque()
        self.b_we_at: deque[int] = deque()
        self.last_b_we = 0
        bbc = cfg.b_block_cols
        self.a_tiles = -(-g.m // cfg.rows)
        self.tiles = self.a_tiles * -(-g.n_cols // bbc)
        self.tile = 0
        self.a_entry = t0
        # the B walk: own blocks (a hit's block 0 came with the hint), then the next call's block 0
        self.blocks = list(range(bbc if hit else 0, g.n_cols, bbc))
        self.block = 0
        self.b_state = "wait" if self.blocks else "pre" if g.flag("PREFETCH_B") else "idle"
        self.b_entry = t0
        self.b_pre = False
        self.pre_end = 0

    def step(self) -> None:
        c = self.c = self.c + 1
        g, sched, rows, bbc = self.g, self.sched, self.cfg.rows, self.cfg.b_block_cols
        if c == self.t0 and self.hit:
            sched.b_loaded(self.t0)                  # block 0: formed by the previous call
        if (self.tile < self.tiles and c >= self.a_entry and c >= sched.a_free(self.tile)
                and not self.rows_hold):
            block, mt = divmod(self.tile, self.a_tiles)
            m0 = mt * rows
            tile_rows = min(rows, g.m - m0)
            z = self._a_walk(c, m0, tile_rows)
            self.a_loaded_at.append(z + 1)
            sched.a_loaded(z + 2, block * bbc, m0, tile_rows)
            self.a_entry = z + 2
            self.tile += 1
        if (self.b_state == "wait" and c >= self.b_entry and not self.taps_hold
                and (self.b_pre or c >= sched.b_free(self.block + self.hit))):
            n0 = 0 if self.b_pre else self.blocks[self.block]
            z = self._b_walk(c, min(bbc, g.n_cols - n0))
            self.b_entry = z + 1
            if self.b_pre:
                self.pre_end, self.b_state = z + 1, "idle"
            else:
                sched.b_loaded(z + 2)
                self.block += 1
                if self.block == len(self.blocks):
                    self.b_state = "pre" if g.flag("PREFETCH_B") else "idle"
        elif self.b_state == "pre" and c >= self.b_entry and c >= self.stream.e.idle_at:
            self.b_state, self.b_pre, self.b_entry = "wait", True, c + 1
        self._registers(c)

    def _registers(self, c: int) -> None:
        """The a_loaded and B write registers in cycle c + 1."""
        for due in (self.a_loaded_at, self.b_we_at):
            while due and due[0] <= c:
                due.popleft()
        self.a_loaded = bool(self.a_loaded_at) and self.a_loaded_at[0] == c + 1
        self.b_we = bool(self.b_we_at) and self.b_we_at[0] == c + 1

    def _a_walk(self, x: int, m0: int, tile_rows: int) -> int:
        """A tile whose wait passed at cycle x: each X lane walks the tile's rows, requesting a_bits row-planes of
        its parity's, a cycle for each other row; returns the cycle the last lane is done (a_loaded the next)."""
        g, lane_x, done = self.g, self.lane_x, []
        for lane in (0, 1):
            y, last = x + 1, None
            for r in range(tile_rows):
                if (m0 + r) % g.c % 2 != lane:
                    y += 1
                    continue
                for _ in range(g.a_bits):
                    h = max(y, self.free_x[lane])
                    self.free_x[lane] = h + lane_x.next
                    last, y = h, h + 1
            done.append(y if last is None else max(y, last + lane_x.last + 1))
        return max(done)

    def _b_walk(self, x: int, columns: int) -> int:
        """A block of `columns` error columns whose wait passed at cycle x, plane by plane through the E lane;
        returns the cycle its last word is out (each word written into B the cycle after it is out)."""
        h, lane = x + 1, self.lane_e
        for _ in range(columns * self.g.b_bits):
            h = max(h, self.free_e)
            self.free_e = h + lane.next
            if self.sums:
                self.b_we_at.extend(h + w + 1 for w in lane.words)
                self.last_b_we = self.b_we_at[-1]
            last = h
            h += 1
        return last + lane.last

    def next_event(self) -> float:
        """The first cycle after the current one at which a walk may pass or a register it set rises (inf: none
        known yet, e.g. a release the array has not worked out)."""
        c, sched, due = self.c, self.sched, []
        if self.tile < self.tiles:
            due.append(max(self.a_entry, sched.a_free(self.tile)))
        if self.b_state == "wait":
            due.append(self.b_entry if self.b_pre else max(self.b_entry, sched.b_free(self.block + self.hit)))
        elif self.b_state == "pre":
            due.append(max(self.b_entry, self.stream.e.idle_at))
        due += [q[0] for q in (self.a_loaded_at, self.b_we_at) if q]     # (their heads are > c)
        return max(min(due, default=float("inf")), c + 1)

    def jump(self, c: int) -> None:
        """Skip to the end of cycle c (the cycles before it idle): the registers of cycle c + 1."""
        self.c = c
        self._registers(c)

    @property
    def done(self) -> bool:
        return self.tile == self.tiles and self.b_state == "idle"

    def end_floor(self) -> int:
        """The least cycles register: the call ends once both formers have stored what it streams and the next
        call's block 0 is formed (cpt_core: !wg_wr_busy), and the last error word is counted (etaps busy)."""
        stored = max(self.stream.e.idle_at, self.stream.x.idle_at, self.pre_end) + 1
        return max(stored, self.last_b_we + 3 if self.last_b_we else 0)


def wgrad_cycles(cfg: HardwareConfig, g: ConvArgs, call: Any, t0: int, hit: bool = False) -> int:
    """The twin's cycles of a weight gradient (t0: its run's first cycle; hit: :func:`conv_calls.prefetch_hit`): the
    stream first, then the walks and the GEMM schedule's back end (with SUMS, its write side stepped with them)."""
    stream = _Stream(cfg, g, call, t0, not hit, g.flag("PREFETCH_B"))
    stream.run()
    d, sums = cfg.dot_width, g.flag("SUMS")
    k_words = -(-g.batch * g.rows * g.wo // d)
    c_stride = _c_stride(cfg, g)
    # the GEMM the back end runs (M = kh kw C rows, N = K, Kw words a plane); the stream's fields are _Stream's
    run = _Run(channels=g.c, width=g.w, height=g.h, kh=g.kh, kw=g.kw, stride=g.stride, pad_h=g.padding, row0=0,
               row1=0, band0=0, rows=1, wo=1, batch=1, a_bits=g.a_bits, b_bits=g.b_bits, n=g.n_cols, k_words=k_words,
               x_first=0, x_stride=0, x_bytes=0, b_addr=call.b, b_col_bytes=g.b_bits * k_words * d // 8,
               c_stride=c_stride, c_row=lambda j: call.c + j * c_stride, c_image_bytes=0, gemm_rows=g.m)
    tap_sums = None
    if sums:   # the mask table: made a position a cycle from a cold start, kept by a hit
        tap_sums = _ErrTapSums(g.m, g.n_cols, g.kh * g.kw, cfg.b_block_cols, g.b_bits, k_words, hit,
                               ready_at=t0 if hit else t0 + k_words * d)

    def front(cfg: HardwareConfig, run: Any, t0: int, sched: Any) -> _WgradFront:
        return _WgradFront(cfg, run, t0, sched, g=g, stream=stream, hit=hit, sums=sums)
    schedule = _ConvSchedule(cfg, run, t0, 8 * g.result_bytes_per(), False, call.sums if sums else None, front,
                             tap_sums)
    return schedule.run()
