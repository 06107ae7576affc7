"""Cycle model of the Verilog twin's forward calls and input gradients (interface 4): how many cycles one call
takes, cycle for cycle as ``rtl/`` runs it against cocotbext-axi's AxiRam (:func:`conv_cycles`; the entry point for
every conv call is :func:`cpt_hw.hw.twin_cycle_model.twin_cycles`).  Weight gradients are
:mod:`cpt_hw.hw.wgrad_cycle_model`'s, which drives this module's schedule with its own walker.

A call is one run of the engines, or one per phase of a stride-2 input gradient.  A run's front end -- the
reader's commands (the B block, then one command per image for the streamed tensor, X or E), the memory's read
side, which the formers back-pressure, and the walker with its four im2col formers (lanes) -- changes state every
cycle in ways no closed form follows (a former's ring frees rows as requests move on, the stream stalls and
resumes), so it is stepped cycle by cycle, each register as its always block updates it (rtl/cpt_reader.v,
cpt_conv_walker.v, cpt_im2col_former.v).  The back end -- feeder, PE array, drain and writer -- is the GEMM
schedule's (:mod:`cpt_hw.hw.cycle_model`), exact against the twin already: each A tile enters it when the walker
reports it loaded, and the halves and the B buffer it releases gate the walker and the reader.  Periodic stretches
of a large run are skipped (:meth:`_ConvSchedule._skip_periodic`).

A forward call with its code sums (SUMS) shares the write channel with the sums' bursts and is held back by their
producers, so its write side is stepped with the front end too (:class:`sums_cycle_model.SumsWriteSide`), and the
back end's column tiles are worked out as the C FIFO pops they wait for happen (:meth:`_ConvSchedule._advance_array`).

Memory: AxiRam with its defaults (:class:`cycle_model.MemoryTiming`): an AR queue of two requests, one burst
served at a time, R beats queued two ahead of the bus (cocotbext-axi's R source holds two beats); with random
back-pressure the twin takes longer.  A call the twin refuses (an input gradient with SUMS, a forward call's hint)
raises ValueError.  Checked equal to the twin by sim/cpt_gemm/test_cpt_gemm_conv.py (docs/rtl.md, "Cycle model of
the walker's calls").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import HardwareConfig
from .conv_calls import ConvArgs
from .conv_model import channel_pitch, row_words
from .cycle_model import MemoryTiming, _Array, _burst_lengths, _Writer, setup_cycles
from .sums_cycle_model import SumsWriteSide

#: Cycles rtl/cpt_conv_setup.v adds before cpt_setup runs: every refused conv call takes this + setup_cycles
#: (sim/cpt_gemm/test_cpt_gemm_conv.py asserts it).
CONV_SETUP_CYCLES = 9
#: Im2col formers of cpt_conv_walker as cpt_core builds it.
LANES = 4
#: Rows a former's ring holds (cpt_im2col_former RING).
RING = 4
#: Requests AxiRam queues on AR, beats on R (cocotbext-axi's queue_occupancy_limit).
_AR_QUEUE = 2
_R_QUEUE = 2

_NEVER = float("inf")

_IDLE, _TILE, _PIECE, _START, _REQ, _DATA, _NEXT = range(7)      # cpt_conv_walker states
_R_IDLE, _R_WAIT, _R_RUN = range(3)                                 # cpt_im2col_former states


class _Memory:
    """The read side of AxiRam: AR sink (two requests), the read loop (one burst at a time) and the R source
    (two beats queued behind the one on the bus), as cocotb schedules them on each rising edge: the R source
    first, then the AR sink, then the read loop (woken by their queue events)."""

    def __init__(self) -> None:
        self.ar: deque[int] = deque()        # accepted bursts not yet taken: beats
        self.ar_ready = True
        self.ar_asleep = False               # full: ready stays low until an edge after a take
        self.ar_woken = -1                   # edge of the latest take while asleep
        self.q: deque[int] = deque()         # queued R beats: the edge each was put at
        self.left = 0                        # beats of the current burst not yet queued
        self.r_valid = False

    def edge(self, c: int, ar_hs_beats: int, r_hs: bool) -> None:
        """The rising edge at the end of cycle c: ar_hs_beats, the beats of a burst whose AR handshake was in
        cycle c (0: none); r_hs, an R handshake in cycle c."""
        # R source: the beat on the bus went (or none was there): the next beat queued at an earlier edge
        if r_hs or not self.r_valid:
            if self.q and self.q[0] < c:
                self.q.popleft()
                self.r_valid = True
            else:
                self.r_valid = False
        # AR sink
        if self.ar_asleep:
            if self.ar_woken >= 0 and c > self.ar_woken:
                self.ar_ready = len(self.ar) < _AR_QUEUE
                self.ar_asleep = not self.ar_ready
                self.ar_woken = -1
        else:
            if ar_hs_beats:
                self.ar.append(ar_hs_beats)
            self.ar_ready = len(self.ar) < _AR_QUEUE
            self.ar_asleep = not self.ar_ready
        # read loop: fill the R queue, taking the next burst once the current one is all queued
        while True:
            if self.left and len(self.q) < _R_QUEUE:
                self.q.append(c)
                self.left -= 1
            elif not self.left and self.ar:
                self.left = self.ar.popleft()
                if self.ar_asleep:
                    self.ar_woken = c
            else:
                break


@dataclass(frozen=True)
class _Command:
    """A reader descriptor: the command's R beats, and whether it loads B (else the streamed tensor; a weight
    gradient's: to its E former, else to its X former)."""

    beats: int
    is_b: bool
    to_e: bool = False


class _ReadChannel:
    """cpt_reader's AR side (a command's bursts, one AR at a time; a descriptor FIFO of four, pushed a cycle after
    the decision) and R side (the active command's beats, a word every bpw of them), against AxiRam's read side
    (:class:`_Memory`).  The owner decides the commands (:meth:`issue`) and says whether a word's last beat may go."""

    def __init__(self, cfg: HardwareConfig) -> None:
        self.cfg = cfg
        self.beat_bytes = cfg.axi_data_width // 8
        self.bpw = cfg.dot_width // cfg.axi_data_width
        self.mem = _Memory()
        self.cstate_next = True              # C_NEXT (False: C_BURST)
        self.bursts: deque[int] = deque()    # the current command's bursts still to request
        self.desc: deque[_Command] = deque()
        self.desc_push: _Command | None = None
        self.active: _Command | None = None
        self.r_left = 0
        self.beat_in_word = 0

    @property
    def last_beat(self) -> bool:
        return self.beat_in_word == self.bpw - 1

    def handshakes(self, word_ready: bool) -> tuple[bool, bool]:
        """(R, AR) handshakes of the cycle: a word's last beat goes only when `word_ready`."""
        r_ready = self.active is not None and (not self.last_beat or word_ready)
        return self.mem.r_valid and r_ready, not self.cstate_next and self.mem.ar_ready

    def edge(self, c: int, r_hs: bool, ar_hs: bool) -> tuple[_Command | None, bool]:
        """The registers at the end of cycle c: (the command whose last beat went, whether C_NEXT may decide)."""
        self.mem.edge(c, self.bursts[0] if ar_hs else 0, r_hs)
        act, finished = self.active, None
        if act is None and self.desc:
            cmd = self.desc.popleft()
            self.active, self.r_left, self.beat_in_word = cmd, cmd.beats, 0
        elif r_hs:
            self.beat_in_word = 0 if self.last_beat else self.beat_in_word + 1
            self.r_left -= 1
            if self.r_left == 0:
                self.active, finished = None, act
        if self.desc_push is not None:
            self.desc.append(self.desc_push)
            self.desc_push = None
        if ar_hs:
            self.bursts.popleft()
            if not self.bursts:
                self.cstate_next = True
            return finished, False
        return finished, self.cstate_next and len(self.desc) < 4

    def issue(self, addr: int, nbytes: int, cmd: _Command) -> None:
        """A command decided: its bursts (never across 4 KiB), its descriptor pushed at the next edge."""
        self.bursts = deque(_burst_lengths(addr & 4095, cmd.beats, self.beat_bytes, self.cfg.burst_beats))
        self.desc_push = cmd
        self.cstate_next = False

    def state(self, c: int) -> tuple:
        mem, act = self.mem, self.active
        return (tuple(mem.ar), mem.ar_ready, mem.ar_asleep, mem.ar_woken - c if mem.ar_woken >= 0 else -1,
                tuple(q - c for q in mem.q), mem.left, mem.r_valid, self.cstate_next, tuple(self.bursts),
                tuple(self.desc), self.desc_push, act, self.r_left, self.beat_in_word)

    def shift(self, dt: int) -> None:
        mem = self.mem
        mem.q = deque(q + dt for q in mem.q)
        if mem.ar_woken >= 0:
            mem.ar_woken += dt


@dataclass(frozen=True)
class _Run:
    """One run of the engines as cpt_conv_setup sets it up: a whole forward call or stride-1 input gradient, or
    one phase of a stride-2 input gradient (a stride-1 walk over E with the phase's taps)."""

    channels: int       # of the streamed tensor (X, or E): its channel pitch
    width: int          # the streamed tensor's row width and rows per image
    height: int
    kh: int             # the walk's kernel (a phase's taps)
    kw: int
    stride: int
    pad_h: int          # the formers' row offset: output row ho's first kernel row reads row ho s - pad_h
    row0: int           # rows of each image streamed, [row0, row1)
    row1: int
    band0: int          # the walk's first result row of an image, result rows an image, pixels a row
    rows: int
    wo: int
    batch: int
    a_bits: int
    b_bits: int
    n: int              # result columns
    k_words: int        # A words per pixel and plane (the reduction's)
    x_first: int        # the tensor's first streamed byte, bytes an image, bytes streamed an image
    x_stride: int
    x_bytes: int
    b_addr: int         # weights: first byte, bytes a column
    b_col_bytes: int
    c_stride: int       # C bytes a result row
    c_row: Callable[[int], int]     # C address of result row j (its first column)
    c_image_bytes: int  # C bytes from one image's rows to the next's
    phase: bool = False  # a stride-2 phase: C row offsets from cpt_conv_rows
    gemm_rows: int = 0  # a weight gradient's result rows (kh kw C; else the pixels' count)

    @property
    def m(self) -> int:
        return self.gemm_rows or self.batch * self.rows * self.wo


class _Former:
    """One cpt_im2col_former, timing only (its words' values are the emulator's business)."""

    def __init__(self, run: _Run, cfg: HardwareConfig) -> None:
        d = cfg.dot_width
        cp = channel_pitch(run.channels, d)
        self.narrow = cp < d
        unit = cp if self.narrow else cp // d
        self.seg = run.kw * unit
        self.kh, self.stride, self.pad = run.kh, run.stride, run.pad_h
        self.row_words = row_words(run.width, run.channels, d)
        self.k_words = -(-run.kh * run.kw * cp // d)
        self.bits = run.a_bits
        self.row0, self.row1 = run.row0, run.row1
        self.reset()

    def reset(self) -> None:
        self.wr_row, self.wr_plane, self.wr_word = self.row0, 0, 0
        self.state = _R_IDLE
        self.low_row = 0
        self.pend = False
        self.left = 0
        self.last_q = False
        self.h0 = self.t = self.t_last = self.i = self.jw = 0
        self.d_n, self.d_last = 1, False

    def s_ready(self, start: bool) -> bool:
        return not start and self.wr_row < self.row1 and self.wr_row < self.low_row + RING

    def rq_ready(self, start: bool) -> bool:
        return not start and self.state == _R_IDLE

    @property
    def m_valid(self) -> bool:
        return self.left != 0

    @property
    def m_last(self) -> bool:
        return self.last_q and self.left == 1

    def edge(self, start: bool, wr: bool, rq: tuple[int, int] | None) -> None:
        """rq: (ho, count) of a request taken in this cycle."""
        if start:
            self.reset()
            return
        # combinational values of the cycle, before any register moves
        take = self.pend and (self.left == 0 or self.left == 1)     # m_ready is 1: a valid word pops
        issue = self.state == _R_RUN and (not self.pend or take)
        last_in_px = self.narrow or (self.jw == self.seg - 1 and self.i == self.kh - 1)
        last_step = last_in_px and self.t == self.t_last
        need = min(self.h0 + self.kh, self.row1)
        rows_in = self.wr_row >= need
        if wr:
            if self.wr_word != self.row_words - 1:
                self.wr_word += 1
            else:
                self.wr_word = 0
                if self.wr_plane != self.bits - 1:
                    self.wr_plane += 1
                else:
                    self.wr_plane = 0
                    self.wr_row += 1
        if self.state == _R_IDLE:
            if rq is not None:
                ho, count = rq
                self.h0 = ho * self.stride - self.pad
                self.t, self.t_last, self.i, self.jw = 0, count - 1, 0, 0
                self.low_row = max(self.h0, 0)
                self.state = _R_WAIT
        elif self.state == _R_WAIT:
            if rows_in:
                self.state = _R_RUN
        elif issue:
            if last_step:
                self.state = _R_IDLE
            if last_in_px:
                self.t += 1
                self.i = self.jw = 0
            elif self.jw != self.seg - 1:
                self.jw += 1
            else:
                self.jw = 0
                self.i += 1
        # output pipeline: the RAM read (pend), then the A row register (left words)
        if take:
            self.left, self.last_q = self.d_n, self.d_last
        elif self.left:
            self.left -= 1
        if issue:
            self.pend = True
            self.d_n = self.k_words if self.narrow else 1
            self.d_last = last_step
        elif take:
            self.pend = False


class _FrontEnd:
    """Reader (commands, R side), memory, walker and formers of one call, stepped cycle by cycle."""

    def __init__(self, cfg: HardwareConfig, run: _Run, t0: int, sched: "_ConvSchedule"):
        self.cfg, self.run, self.sched = cfg, run, sched
        self.bbc = cfg.b_block_cols
        self.c = t0 - 1                      # the cycle being computed (run_start's)
        # reader: its channel, and the commands it decides
        self.reader = _ReadChannel(cfg)
        self.ar_next_ok = t0                 # first cycle C_NEXT may decide (run_start + 1)
        self.block = 0
        self.b_pending = True
        self.x_sent = 0                      # X commands of the block issued (m0 of cpt_reader)
        self.reader_idle = False
        # walker
        self.formers = [_Former(run, cfg) for _ in range(LANES)]
        self.wstate = _TILE                  # the run's start pulse puts the walker at its first tile
        self.f_start = False
        self.a_loaded = False
        self.rq_valid = [False] * LANES
        self.sent = [False] * LANES
        self.fin = [False] * LANES
        self.rq = (0, [1] * LANES)
        self.tile = 0                        # A tiles formed so far (the call's, over all blocks)
        self.n0 = 0
        self.m0 = 0
        self.r = 0
        self.tile_rows = min(cfg.rows, run.m)
        self.half = 0
        self.img, self.ho, self.col = 0, run.band0, 0
        self.f_valid, self.f_img = False, -1
        self.plane = 0
        self.count = 0
        self.tile_event = False              # the walker reported a tile loaded in the latest step
        # a call with SUMS: the sums producers' hold lines in the cycle being computed (the walker's next tile,
        # the reader's next B block), and the reader's B write register (a B word's last beat the cycle before)
        self.rows_hold = self.taps_hold = False
        self.b_we = False

    # ------------------------------------------------------------------ one cycle
    def step(self) -> None:
        """Advance one cycle c: its combinational values, then the rising edge at its end."""
        c = self.c = self.c + 1
        # ---- the combinational values of cycle c
        start = self.f_start
        f_s_ready = [f.s_ready(start) for f in self.formers]
        reader = self.reader
        act = reader.active
        x_cmd = act is not None and not act.is_b
        r_hs, ar_hs = reader.handshakes(not x_cmd or all(f_s_ready))
        word = r_hs and reader.last_beat
        x_hs = word and x_cmd
        # walker
        rq_ready = [f.rq_ready(start) for f in self.formers]
        rq_hs = [v and r for v, r in zip(self.rq_valid, rq_ready)]
        fin_now = [f_ or (f.m_valid and f.m_last) for f_, f in zip(self.fin, self.formers)]
        plane_done = all(fin_now)
        a_free = self.sched.a_free(self.tile)

        # ---- the edge at the end of cycle c
        # formers
        ho, counts = self.rq
        for li, f in enumerate(self.formers):
            f.edge(start, x_hs, (ho, counts[li]) if rq_hs[li] else None)
        # reader
        self.b_we = word and act.is_b
        finished, decide = reader.edge(c, r_hs, ar_hs)
        if finished is not None and finished.is_b:
            self.sched.b_loaded(c + 2)
        if decide and c >= self.ar_next_ok and not self.reader_idle:
            self._decide(c)
        # walker
        self._walker_edge(c, a_free, rq_hs, fin_now, plane_done)

    def _decide(self, c: int) -> None:
        """cpt_reader C_NEXT at cycle c (the descriptor FIFO has room and nothing is being pushed)."""
        g = self.run
        if self.b_pending:
            if c >= self.sched.b_free(self.block) and not self.taps_hold:
                n0 = self.block * self.bbc
                nb = min(self.bbc, g.n - n0)
                self._issue(g.b_addr + n0 * g.b_col_bytes, nb * g.b_col_bytes, True)
                self.b_pending = False
        elif self.x_sent < g.batch:
            if g.x_bytes == 0:
                self.x_sent = g.batch
            else:
                self._issue(g.x_first + self.x_sent * g.x_stride, g.x_bytes, False)
                self.x_sent += 1
        elif (self.block + 1) * self.bbc < g.n:
            self.block += 1
            self.x_sent = 0
            self.b_pending = True
        else:
            self.reader_idle = True

    def _issue(self, addr: int, nbytes: int, is_b: bool) -> None:
        self.reader.issue(addr, nbytes, _Command(nbytes // self.reader.beat_bytes, is_b))

    def _walker_edge(self, c: int, a_free: float, rq_hs: list[bool], fin_now: list[bool], plane_done: bool) -> None:
        g, rows = self.run, self.cfg.rows
        if self.a_loaded:
            self.a_loaded = False
        self.f_start = False
        self.fin = [False] * LANES if self.wstate == _DATA and plane_done else fin_now
        st = self.wstate
        if st == _TILE:
            if c >= a_free and not self.rows_hold:
                self.wstate = _PIECE
        elif st == _PIECE:
            left_in_tile = self.tile_rows - self.r
            self.count = min(16, left_in_tile, g.wo - self.col)
            self.plane = 0
            if not self.f_valid or self.f_img != self.img:
                self.f_start = True
                self.f_valid, self.f_img = True, self.img
                self.wstate = _START
            else:
                self.wstate = _REQ
        elif st == _START:
            self.wstate = _REQ
        elif st == _REQ:
            q = -(-self.count // LANES)
            counts = [1 if q * li >= self.count else min(q, self.count - q * li) for li in range(LANES)]
            self.rq = (self.ho, counts)
            self.rq_valid = [not s and not (v and h) for s, v, h in zip(self.sent, self.rq_valid, rq_hs)]
            self.sent = [s or h for s, h in zip(self.sent, rq_hs)]
            if all(self.sent):
                self.wstate = _DATA
        elif st == _DATA:
            if plane_done:
                self.sent = [False] * LANES
                if self.plane != g.a_bits - 1:
                    self.plane += 1
                    self.wstate = _REQ
                else:
                    self.wstate = _NEXT
                    r_next = self.r + self.count
                    self.r = r_next
                    if self.count == g.wo - self.col:
                        self.col = 0
                        if self.ho == g.band0 + g.rows - 1:
                            self.ho = g.band0
                            self.img += 1
                        else:
                            self.ho += 1
                    else:
                        self.col += self.count
                    if r_next == self.tile_rows:
                        self.a_loaded = True
                        self.tile_event = True
                        self.sched.a_loaded(c + 2, self.n0, self.m0, self.tile_rows)
                        self.tile += 1
        elif st == _NEXT:
            if self.r != self.tile_rows:
                self.wstate = _PIECE
            else:
                self.r = 0
                self.half ^= 1
                if self.m0 + rows < g.m:
                    self.m0 += rows
                    self.tile_rows = min(rows, g.m - self.m0)
                    self.wstate = _TILE
                elif self.n0 + self.bbc < g.n:
                    self.n0 += self.bbc
                    self.m0 = 0
                    self.tile_rows = min(rows, g.m)
                    self.img, self.ho, self.col = 0, g.band0, 0
                    self.f_valid = False
                    self.wstate = _TILE
                else:
                    self.wstate = _IDLE

    @property
    def done(self) -> bool:
        return self.wstate == _IDLE

    def end_floor(self) -> int:
        """The least cycles register the front end allows (a weight gradient's: its chunks stored): none."""
        return 0

    def state(self) -> tuple:
        """Everything that decides the front end's next cycles, relative to the current cycle, the walker's
        image and the 4 KiB page offset of the next tensor command (absolute counters left out)."""
        c = self.c
        formers = tuple((f.wr_row, f.wr_plane, f.wr_word, f.state, f.low_row, f.pend, f.left, f.last_q, f.h0, f.t,
                         f.t_last, f.i, f.jw, f.d_n, f.d_last) for f in self.formers)
        return (self.reader.state(c),
                self.b_pending, self.x_sent - self.img, (self.run.x_first + self.x_sent * self.run.x_stride) % 4096,
                self.reader_idle, max(self.ar_next_ok - c, 0), formers,
                self.wstate, self.f_start, self.a_loaded, tuple(self.rq_valid), tuple(self.sent), tuple(self.fin),
                self.rq[0], tuple(self.rq[1]), self.r, self.tile_rows, self.half, self.ho, self.col, self.f_valid,
                self.f_img - self.img, self.plane, self.count, self.n0)

    def skip(self, tiles: int, images: int, dt: int) -> None:
        """Fast-forward: `tiles` A tiles and `images` images went by, every time stamp dt later."""
        self.c += dt
        self.reader.shift(dt)
        self.ar_next_ok += dt
        self.x_sent += images
        self.img += images
        self.f_img += images
        self.tile += tiles
        self.m0 += tiles * self.cfg.rows


class _ConvSchedule:
    """One run: the front end stepped cycle by cycle; the GEMM schedule's back end fed tile by tile."""

    def __init__(self, cfg: HardwareConfig, run: _Run, t0: int, result_bits: int, fast_forward: bool = True,
                 sums: int | None = None, front: Callable[..., Any] | None = None, tap_sums: Any = None) -> None:
        self.cfg, self.run_ = cfg, run
        self.result_bytes = result_bits // 8
        # a forward call with SUMS (`sums`: their address): the write side is stepped with the front end, and the
        # array's column tiles are worked out as the C FIFO's pops they wait for happen (_array_ops)
        self.wside: SumsWriteSide | None = None
        if sums is not None:
            self.wside = SumsWriteSide(cfg, run.c_stride, result_bits, run.m, run.n, run.kh * run.kw,
                                       run.b_col_bytes * 8 // cfg.dot_width, sums, tap_sums)
            self.ops: deque[tuple] = deque()     # tiles for the array: (B ready or None, A ready, column tiles,
            self.op: tuple | None = None         # rows valid, C address, last of its block)
            self.op_s = self.op_ct = 0
            self.op_e: int | None = None
        # a stride-2 phase's rows are placed by cpt_conv_rows, whose `ready` opens each later tile a cycle later
        self.writer = _Writer(cfg, MemoryTiming(), run.c_stride, result_bits, tile_gap=3 if run.phase else 2)
        self.array = _Array(cfg, t0, run.a_bits * run.b_bits * run.k_words, self.writer)
        self.a_tiles = -(-run.m // cfg.rows)
        self.b_ready: list[int] = []         # cycle each block's B is visible to the feeder
        self.pending: deque[tuple[int, int, int, int]] = deque()   # formed A tiles not yet fed (B not in)
        self.releases: list[int] = []        # cycle each fed A tile's half is free again
        self.block_end: list[int] = []       # cycle each block's B buffer is free again
        # the walker's side: cpt_conv_walker's, or (given) a weight gradient's (wgrad_cycle_model._WgradFront)
        self.front = (front or _FrontEnd)(cfg, run, t0, self)
        self.fast_forward = fast_forward
        self.snapshots: dict[tuple, tuple[int, int, int]] = {}   # schedule state -> (tile, cycle, image)
        self.snap_block = 0
        self.skipped_tiles = 0
        self.fed = 0                         # A tiles handed to the array

    # callbacks of the front end
    def a_free(self, tile: int) -> float:
        """First cycle the walker sees the half of A tile `tile` free: the tile two before released it (not yet
        known: later than any cycle simulated so far)."""
        if tile < 2:
            return 0
        return self.releases[tile - 2] if tile - 2 < len(self.releases) else _NEVER

    def b_free(self, block: int) -> float:
        """First cycle the reader sees the B buffer free for block `block`."""
        if block == 0:
            return 0
        return self.block_end[block - 1] if block - 1 < len(self.block_end) else _NEVER

    def b_loaded(self, ready: int) -> None:
        self.b_ready.append(ready)
        self._feed()

    def a_loaded(self, ready: int, n0: int, m0: int, rows_valid: int) -> None:
        """An A tile is formed; the feeder sees it from cycle `ready` (it waits for its block's B too: a tile
        of padding rows only is formed before B is in)."""
        self.pending.append((ready, n0, m0, rows_valid))
        self._feed()

    def _feed(self) -> None:
        while self.pending:
            tile = self.fed
            block = tile // self.a_tiles
            if block >= len(self.b_ready):
                return
            ready, n0, m0, rows_valid = self.pending.popleft()
            self.fed += 1
            col_tiles = -(-min(self.cfg.b_block_cols, self.run_.n - n0) // self.cfg.cols)
            run, stride = self.run_, self.run_.c_stride
            linear = run.c_row(0) + m0 * stride
            if self.wside is not None:
                self.ops.append((self.b_ready[block] if tile % self.a_tiles == 0 else None, ready, col_tiles,
                                 rows_valid, linear + n0 * self.result_bytes, tile % self.a_tiles == self.a_tiles - 1))
                continue
            if tile % self.a_tiles == 0:
                self.array.start_block(self.b_ready[block])
            deltas = [run.c_row(m0 + r) - linear - r * stride for r in range(rows_valid)]
            self.array.a_tile(ready, col_tiles, rows_valid, linear + n0 * self.result_bytes,
                              deltas if any(deltas) else ())
            self.releases.append(self.array.a_release[tile % 2])
            if tile % self.a_tiles == self.a_tiles - 1:
                self.array.end_block()
                self.block_end.append(self.array.b_release)

    def _advance_array(self) -> None:
        """The feeder, array and drain of a call with SUMS, as _Array.a_tile works them out, except that a column
        tile's drain is worked out only once the C FIFO pop that makes room for it has happened on the stepped write
        side (called every cycle; the op in progress stays in self.op).  A tile's release and its block's end are
        known before its drain, as the walker and the reader need them."""
        arr, wside = self.array, self.wside
        while True:
            if self.op is None:
                if not self.ops:
                    return
                self.op = self.ops.popleft()
                if self.op[0] is not None:
                    arr.start_block(self.op[0])
                self.op_s, self.op_ct, self.op_e = arr.first_step(self.op[1]), 0, None
            _, _, col_tiles, rows_valid, c_addr, block_end = self.op
            if self.op_e is None:
                self.op_e = arr.last_step(self.op_s)
                if self.op_ct == col_tiles - 1:
                    arr.tile_done(self.op_e)
                    self.releases.append(self.op_e + 1)
                    if block_end:
                        arr.end_block()
                        self.block_end.append(arr.b_release)
            room = wside.room_cycle(arr.pushed, arr.fifo_depth)
            if room is None:
                return
            wside.tile(arr.drain(self.op_e, room), rows_valid, c_addr + self.op_ct * wside.col_bytes)
            self.op_s, self.op_e = self.op_e + 1, None
            self.op_ct += 1
            if self.op_ct == col_tiles:
                self.op = None

    def run(self) -> int:
        if self.wside is not None:
            return self._run_stepped()
        front = self.front
        # the walker may form every tile before B is in (bands of padding rows only): the reader goes on until
        # the feeder has them all
        while not front.done or self.pending:
            front.step()
            if front.tile_event:
                front.tile_event = False
                if self.fast_forward:
                    self._skip_periodic()
        return max(self.writer.finish(), front.end_floor())

    def _run_stepped(self) -> int:
        """A call with SUMS: the front end and the write side stepped together, cycle by cycle."""
        front, wside = self.front, self.wside
        total = self.a_tiles * -(-self.run_.n // self.cfg.b_block_cols)
        jumps = hasattr(front, "next_event")     # a weight gradient's walker tells its next event
        while not (front.done and self.fed == total and self.op is None and not self.ops and wside.done):
            # (an op still waiting here waits for a pop, which only the write side's next event can bring)
            if jumps and wside.quiet():
                due = min(front.next_event(), wside.next_event(front.c))
                if front.c + 1 < due < float("inf"):         # idle until then: skip to the cycle before it
                    front.jump(int(due) - 1)
            a_loaded, b_we = front.a_loaded, front.b_we       # the registers' values in the cycle to come
            front.rows_hold, front.taps_hold = wside.holds(front.c + 1, a_loaded)
            front.step()
            wside.edge(front.c, a_loaded, b_we)
            self._advance_array()
            if front.tile_event:
                front.tile_event = False
                if self.fast_forward:
                    self._skip_periodic()
        return max(wside.finish(), front.end_floor())

    def _skip_periodic(self) -> None:
        """After a tile was fed: once the whole schedule state, taken relative to the cycle, the walker's image and
        the page offsets of the next commands, equals the state at an earlier tile of the block, every later
        period repeats that one: skip whole periods by shifting every time stamp, as cycle_model skips GEMM
        tiles.  At least one period is left before the block's last tile and before the reader's last image, so
        the ends stay exact."""
        front, cfg, run = self.front, self.cfg, self.run_
        if self.pending:
            return
        tile = self.fed
        block, in_block = divmod(tile, self.a_tiles)
        if block != self.snap_block:
            self.snapshots.clear()
            self.snap_block = block
        c = front.c
        # the pages C and the tensor's next command start in: with the walker's place in its image, they give
        # every later address's page
        image_c = run.c_row(0) + front.img * run.c_image_bytes
        key = (front.state(), self._back_state(c, image_c), image_c % 4096,
               tuple(r - c for r in self.releases[-2:]))
        before = self.snapshots.get(key)
        pops = len(self.wside.pops) if self.wside is not None else 0
        self.snapshots[key] = (tile, c, front.img, pops)
        if before is None:
            return
        period, dt, images = tile - before[0], c - before[1], front.img - before[2]
        k = min((self.a_tiles - 1 - in_block) // period - 1,
                (run.batch - front.x_sent) // images - 1 if images else 1 << 62)
        if k < 1:
            return
        col_tiles = -(-min(cfg.b_block_cols, run.n - front.n0) // cfg.cols)
        shift = k * dt
        # the skipped tiles' releases: the period's, later by whole periods
        done = len(self.releases)
        for t in range(done, done + k * period):
            self.releases.append(self.releases[t - period] + dt)
        self.fed += k * period
        self.array.skip(k * period, col_tiles, shift)
        if self.wside is None:
            self.writer.skip(k * period * col_tiles * cfg.rows, shift)
        else:
            addr = k * period * cfg.rows * run.c_stride
            self.ops = deque((None if b is None else b + shift, a + shift, ct, rv, ca + addr, end)
                             for b, a, ct, rv, ca, end in self.ops)
            if self.op is not None:
                b, a, ct, rv, ca, end = self.op
                self.op = (None if b is None else b + shift, a + shift, ct, rv, ca + addr, end)
                self.op_s += shift
                if self.op_e is not None:
                    self.op_e += shift
            self.wside.skip(k, period * cfg.rows, self.wside.pops[before[3]:], period * cfg.rows * run.c_stride, dt)
        front.skip(k * period, k * images, shift)
        self.skipped_tiles += k * period
        self.snapshots.clear()

    def _back_state(self, c: int, image_c: int) -> tuple:
        """The feeder's, array's and writer's state, relative to cycle c and the C address of the walker's image;
        with SUMS, the tiles waiting for the array, the sums' rows relative to the walker's tile, and the page of
        the sums there."""
        if self.wside is None:
            return self.array.state(c), self.writer.state(c)
        arr, wside = self.array, self.wside

        def op(o: tuple) -> tuple:
            b, a, ct, rv, ca, end = o
            return None if b is None else b - c, a - c, ct, rv, ca - image_c, end

        row0 = self.front.m0
        return ((arr.t - c, arr.drain_free - c, arr.a_release[0] - c, arr.a_release[1] - c,
                 arr.pushed - len(wside.pops)), tuple(op(o) for o in self.ops),
                None if self.op is None else (op(self.op), self.op_s - c, self.op_ct,
                                              None if self.op_e is None else self.op_e - c),
                wside.state(c, row0, image_c), wside.row_sums_page(row0))


def _whole_run(cfg: HardwareConfig, g: ConvArgs, call: Any) -> _Run:
    """A forward call's or stride-1 input gradient's one run (cpt_conv_setup's outputs)."""
    d = cfg.dot_width
    if g.op == "dgrad":     # the transposed convolution as a forward walk over E (offsets kh - 1 - p)
        channels, width, height, pad_h, wo = g.k, g.wo, g.ho, g.kh - 1 - g.padding, g.w
    else:
        channels, width, height, pad_h, wo = g.c, g.w, g.h, g.padding, g.wo
    lo, hi = g.a_rows()
    row_bytes = g.a_bits * row_words(width, channels, d) * d // 8
    stride = _c_stride(cfg, g)
    return _Run(channels, width, height, g.kh, g.kw, g.stride, pad_h, lo, hi, g.band0, g.rows, wo, g.batch, g.a_bits,
                g.b_bits, g.n_cols, g.weight_words(d), call.a + lo * row_bytes, height * row_bytes,
                (hi - lo) * row_bytes, call.b, g.b_bits * g.weight_words(d) * d // 8, stride,
                lambda j: call.c + j * stride, g.rows * wo * stride)


def _c_stride(cfg: HardwareConfig, g: ConvArgs) -> int:
    """C bytes a result row: the result's columns up to whole column tiles (cpt_setup's c_stride)."""
    return -(-g.n_cols // cfg.cols) * cfg.cols * g.result_bytes_per()


#: Cycles from cpt_core's ph_next (the check pass's setup done, or a phase's writer done) to the next phase's
#: run_start, besides cpt_setup on the phase's GEMM (setup_cycles) and one cycle per phase without pixels passed
#: over (cpt_conv_setup's P_FIND, P_FORM, P_GEMM, cpt_core's K_PSETUP); and from the last ph_next to the cycles
#: register (ph_none).
PHASE_START_CYCLES = 4
PHASE_END_CYCLES = 3


def _phase_runs(cfg: HardwareConfig, g: ConvArgs, call: Any) -> list[tuple[int, _Run | None]]:
    """A stride-2 input gradient's phases (ry, rx) in cpt_conv_setup's order, each as (phases without pixels
    passed over before it, its run); the last entry's run is None: the phases passed over after the last run."""
    d, s, p = cfg.dot_width, g.stride, g.padding
    cp = channel_pitch(g.k, d)
    row_bytes = g.a_bits * row_words(g.wo, g.k, d) * d // 8
    c_stride = _c_stride(cfg, g)
    b0, band_end = g.band0, g.band0 + g.rows
    out: list[tuple[int, _Run | None]] = []
    passed = woff = 0
    for ph, (ti, tj) in enumerate(g.phases()):
        ry, rx = ph >> 1, ph & 1
        h0 = b0 + (ry ^ (b0 & 1))                      # the phase's first dX row of the band
        gh = (band_end - h0 + 1) >> 1 if h0 < band_end else 0
        gw = (g.w + 1 - rx) >> 1
        kwords = -(-len(ti) * len(tj) * cp // d)
        if gh == 0 or gw == 0:
            passed, woff = passed + 1, woff + kwords
            continue
        empty = not ti or not tj                       # no taps: zero rows, at 1 x 1 bits
        off = (ti[0] - ry - p) // s if ti else 0
        lo_raw = (h0 >> 1) - off
        lo, hi = max(lo_raw, 0), min(lo_raw + gh - 1 + len(ti), g.ho)
        streamed = bool(ti) and lo < hi and not empty
        dh, per_image = ry ^ (b0 & 1), gh * gw

        def c_row(j: int, gw: int = gw, dh: int = dh, rx: int = rx, per_image: int = per_image) -> int:
            img, rem = divmod(j, per_image)
            gy, gx = divmod(rem, gw)
            return call.c + ((img * g.rows + dh + 2 * gy) * g.w + rx + 2 * gx) * c_stride

        bits = (1, 1) if empty else (g.a_bits, g.b_bits)
        run = _Run(1 if empty else g.k, g.wo, 1 if empty else g.ho, 1 if empty else len(ti),
                   1 if empty else len(tj), 1, -1 if empty else off, lo if streamed else 0, hi if streamed else 0,
                   h0 >> 1, gh, gw, g.batch, *bits, g.c, 1 if empty else kwords,
                   call.a + (lo * row_bytes if streamed else 0), g.ho * row_bytes,
                   (hi - lo) * row_bytes if streamed else 0,
                   call.b + (0 if empty else g.c * g.b_bits * woff * d // 8),
                   bits[1] * (1 if empty else kwords) * d // 8, c_stride, c_row, g.rows * g.w * c_stride,
                   phase=True)
        out.append((passed, run))
        passed, woff = 0, woff + kwords
    out.append((passed, None))
    return out


def conv_cycles(cfg: HardwareConfig, call: Any, g: ConvArgs, *, fast_forward: bool = True,
                skipped: list[int] | None = None) -> int:
    """The twin's cycles of a forward call or an input gradient (:func:`twin_cycle_model.twin_cycles` says how)."""
    if g.op not in ("fwd", "dgrad") or g.flag("PREFETCH_B") or (g.op == "dgrad" and g.flag("SUMS")):
        raise ValueError(f"the conv cycle model covers forward calls (with or without SUMS), input gradients and "
                         f"weight gradients, not {g.op} with flags {g.flags:#x}")
    t0 = CONV_SETUP_CYCLES + setup_cycles(cfg) + 1
    result_bits = 8 * g.result_bytes_per()

    sums = call.sums if g.flag("SUMS") else None

    def run(r: _Run, t0: int) -> int:
        schedule = _ConvSchedule(cfg, r, t0, result_bits, fast_forward, sums)
        end = schedule.run()
        if skipped is not None:
            skipped.append(schedule.skipped_tiles)
        return end

    if g.op == "fwd" or g.stride == 1:
        return run(_whole_run(cfg, g, call), t0)
    # a stride-2 input gradient, phase by phase: each phase's engines start afresh once the previous one's
    # results are written (cpt_core K_PHASE)
    ph_next = t0 - 1
    for passed, phase in _phase_runs(cfg, g, call):
        if phase is None:
            return ph_next + PHASE_END_CYCLES + passed
        ph_next = run(phase, ph_next + PHASE_START_CYCLES + setup_cycles(cfg) + passed + 1)
    raise AssertionError("unreachable")
