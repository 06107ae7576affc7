"""Cycle model of the accelerator: how many clock cycles one ``cpt_gemm`` call takes.

The emulated device reports these cycles in its ``cycles`` register; the RTL tests check the model
against the Verilog twin cycle for cycle (tests/test_rtl_cycle_model.py).  It follows the schedule of
``rtl/`` engine by engine (docs/rtl.md), in one pass over the tiles in the order the hardware runs them:

* setup: argument checks and sizes, ``setup_cycles(cfg)`` before the engines start;
* reader: in-order load commands (B block, A tiles; the first A tile of a later block before its B
  block), each waiting until its buffer is released, R data one beat per cycle from
  ``read_latency`` cycles after the address, one idle beat between commands;
* memory: AR and AW requests wait while the memory's request queue is full (:class:`MemoryTiming`
  ``request_queue``; AxiRam serves one burst at a time and queues two), which paces short bursts;
* feeder: one step per cycle, a * b * Kw steps per column tile, an idle cycle per A tile and two per
  block; a tile's last step waits until the previous tile has drained;
* drain: ROWS + COLS + 2 cycles after a last step the shadows are ready; ROWS drain cycles once the
  C FIFO has room for a tile;
* writer: two cycles per row on the address channel, ROWS x COLS x 32 / AXI width data beats per tile,
  write responses ``write_latency`` cycles after a burst's last beat;
* B prefetch: a call whose block 0 was prefetched by the previous call (``b_prefetched``) skips that
  load; a call with a hint (``prefetch``) reads the next call's first B block in chunks of
  :func:`prefetch_chunk_bytes`, each issued when the next demand command still waits for its buffer (or
  none is left) and the descriptor queue is empty, and ends only once the prefetch is in.

Memory timing defaults to cocotbext-axi's AxiRam (the RTL testbenches); pass :class:`MemoryTiming` with a
longer latency for DDR.  With a memory that stalls (random back-pressure) the RTL takes longer than the
model; without, the model gives the RTL's exact cycle count.

Large calls are periodic: once the schedule state relative to an A tile's end repeats two tiles later,
whole A tiles are skipped by shifting every time stamp (the model stays fast enough for the emulated
device's training runs).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache

from .calls import prefetch_bytes
from .config import RESULT_BITS, HardwareConfig


#: Cycles from the last step of a tile entering the feeder's RAM read to tile_ready (rtl/pe_array.v).
def _ready_latency(cfg: HardwareConfig) -> int:
    return cfg.rows + cfg.cols + 2


def setup_cycles(cfg: HardwareConfig) -> int:
    """Cycles of a refused call: the argument checks (rtl/cpt_setup.v) plus the done cycle."""
    return _divider_steps(cfg) + 6


def _divider_steps(cfg: HardwareConfig) -> int:
    """Steps of rtl/cpt_setup.v's divider: clog2(max_dim + 1) + 1."""
    return cfg.max_dim.bit_length() + 1


@dataclass(frozen=True)
class MemoryTiming:
    """Latencies of the memory behind m_axi_gmem, in cycles (defaults: cocotbext-axi AxiRam)."""

    read_latency: int = 2       # AR handshake to first R beat
    write_latency: int = 2      # last W beat of a burst to its B response
    #: requests the memory queues per direction before serving them one burst at a time (AxiRam: 2 on AR
    #: and on AW, and it runs 2 R beats ahead of the bus); None: AR and AW are never held up
    request_queue: int | None = 2


#: A DDR3 controller behind a Zynq HP port, roughly (documentation and benchmarks).
DDR_TIMING = MemoryTiming(read_latency=40, write_latency=30, request_queue=None)


@dataclass(frozen=True)
class Prefetch:
    """A call's B prefetch hint: the next call's B address, N, K and b_bits (flags bit PREFETCH_B)."""

    b_addr: int
    n: int
    k: int
    b_bits: int


def prefetch_chunk_bytes(cfg: HardwareConfig) -> int:
    """Bytes of one prefetch command (rtl/cpt_reader.v PF_CHUNK): four bursts, in whole D-bit words."""
    beat_bytes = cfg.axi_data_width // 8
    return -(-4 * cfg.burst_beats * beat_bytes // cfg.word_bytes) * cfg.word_bytes


@dataclass(frozen=True)
class CycleEstimate:
    total: int
    compute: int          # steps the PE array performs (cycles it is stepping)
    memory: int           # beats the AXI master moves (reads + writes)
    useful_binary_ops: int

    def utilisation(self, cfg: HardwareConfig) -> float:
        """Useful binary ops / (peak ops per cycle x cycles)."""
        return self.useful_binary_ops / (cfg.peak_binary_ops_per_cycle * self.total) if self.total else 0.0


def _burst_runs(addr: int, beats: int, beat_bytes: int, max_beats: int) -> list[tuple[int, int]]:
    """The AXI bursts of a contiguous transfer (at most max_beats, never across 4 KiB) as (length, how
    many in a row): at most two runs per 4 KiB page."""
    runs: list[tuple[int, int]] = []

    def add(length: int, count: int) -> None:
        if runs and runs[-1][0] == length:
            runs[-1] = (length, runs[-1][1] + count)
        elif count:
            runs.append((length, count))

    while beats > 0:
        page = min(beats, (4096 - (addr & 4095)) // beat_bytes)
        add(max_beats, page // max_beats)
        if page % max_beats:
            add(page % max_beats, 1)
        addr += page * beat_bytes
        beats -= page
    return runs


@lru_cache(maxsize=4096)
def _burst_lengths(page_offset: int, beats: int, beat_bytes: int, max_beats: int) -> tuple[int, ...]:
    """Beats of each burst of :func:`_burst_runs`, one entry per burst (only the address's offset in its
    4 KiB page matters; cached: the writer asks for every row of C)."""
    return tuple(length for length, count in _burst_runs(page_offset, beats, beat_bytes, max_beats)
                 for _ in range(count))


class _RequestQueue:
    """The memory's AR or AW request queue (MemoryTiming.request_queue deep; AxiRam).

    The memory serves one burst at a time: a request leaves the queue when the memory starts on it, and
    the queue's ready line rises a cycle later.  So burst k is accepted no earlier than two cycles after
    burst k - depth was, nor before burst k - depth - 1 has freed the memory (``free`` of `served`).
    """

    def __init__(self, depth: int | None):
        self.depth = depth
        self.recent: deque[tuple[int, int]] = deque(maxlen=(depth or 0) + 1)   # (accepted, free)

    def accept(self, cycle: int) -> int:
        """First cycle >= cycle at which the next request is accepted."""
        q = self.depth
        if q is None or len(self.recent) < q:
            return cycle
        earliest = self.recent[-q][0] + 2
        if len(self.recent) > q:
            earliest = max(earliest, self.recent[-q - 1][1])
        return max(cycle, earliest)

    def served(self, accepted: int, free: int) -> None:
        self.recent.append((accepted, free))

    def shift(self, dt: int) -> None:
        self.recent = deque(((a + dt, f + dt) for a, f in self.recent), maxlen=self.recent.maxlen)

    def state(self, e: int) -> tuple:
        return tuple((a - e, f - e) for a, f in self.recent)


class _ReadPort:
    """AR and R timing of the read engine (rtl/cpt_reader.v) against the memory.

    A burst's R beats start ``read_latency`` cycles after its AR handshake at the earliest, and right
    after the previous burst's beats (one idle beat after another command's).  AxiRam queues R beats 2
    ahead of the bus: it is done with a burst, and takes the next AR, once the burst's last beat is
    queued, i.e. when the beat two before it is on the bus.
    """

    def __init__(self, cfg: HardwareConfig, mem: MemoryTiming, r_last: int):
        self.cfg, self.mem = cfg, mem
        self.queue = _RequestQueue(mem.request_queue)
        self.beats: deque[int] = deque([r_last - 1, r_last], maxlen=2)   # the last two R beats
        self.queued_last = r_last           # cycle the memory queued the latest burst's last beat

    @property
    def r_last(self) -> int:
        """The last R beat so far."""
        return self.beats[-1]

    def command(self, x: int, addr: int, nbytes: int) -> int:
        """R beats of a command the AR side starts at cycle x; returns its last AR handshake.

        A long command settles into a steady state within a few bursts of equal length (the port state,
        relative to the last R beat, repeats from one burst to the next); the rest of such a run is
        skipped by shifting every time stamp, as gemm_cycles does with A tiles.
        """
        beat_bytes = self.cfg.axi_data_width // 8
        ar, first = x, True
        for length, count in _burst_runs(addr, nbytes // beat_bytes, beat_bytes, self.cfg.burst_beats):
            before = None
            while count:
                last = self.r_last
                ar = self._burst(ar, length, first)
                first, count = False, count - 1
                if count < 8:                    # too few left for a skip to pay for comparing states
                    continue
                state = self.state(self.r_last) + (ar - self.r_last,)
                if state == before:              # every further burst repeats this one, dt later
                    dt = self.r_last - last
                    self.shift(dt * count)
                    ar += dt * count
                    count = 0
                before = state
        return ar

    def _burst(self, ar: int, length: int, first: bool) -> int:
        """One burst of `length` beats whose AR may go from cycle ar + 1; returns its AR handshake."""
        ar = self.queue.accept(ar + 1)
        start = max(ar + self.mem.read_latency, self.r_last + (2 if first else 1))
        # the beat two before this burst's last one: the memory queues the last beat once it is on the bus
        lead = start + length - 3 if length >= 3 else self.beats[length - 3]
        self.queued_last = max(ar + 1, self.queued_last, lead)
        self.queue.served(ar, self.queued_last + 1)
        end = start + length - 1
        self.beats.extend(range(max(start, end - 1), end + 1))
        return ar

    def shift(self, dt: int) -> None:
        self.queue.shift(dt)
        self.queued_last += dt
        self.beats = deque((b + dt for b in self.beats), maxlen=2)

    def state(self, e: int) -> tuple:
        return (self.queued_last - e, tuple(b - e for b in self.beats), self.queue.state(e))


class _Writer:
    """The write engine (rtl/cpt_writer.v): address side, data side, responses, FIFO pops."""

    def __init__(self, cfg: HardwareConfig, mem: MemoryTiming, stride: int):
        self.cfg, self.mem = cfg, mem
        self.stride = stride
        self.beat_bytes = cfg.axi_data_width // 8
        self.row_beats = cfg.cols * RESULT_BITS // cfg.axi_data_width
        self.aw_free = 0          # earliest row_ready of the next row
        self.w_end = 0            # last beat of the previous burst (0: none yet)
        self.w_chain = False      # previous W entry was a burst (the next one may chain)
        self.last_wlast = 0
        self.aw_queue = _RequestQueue(mem.request_queue)
        self.pops: deque[int] = deque()   # FIFO pop cycles still of interest, oldest first
        self.popped_before = 0            # pops forgotten (trim) or skipped (fast-forward) before those
        self.beats = 0

    def shift(self, dt: int) -> None:
        self.aw_free += dt
        self.w_end += dt
        self.last_wlast += dt
        self.aw_queue.shift(dt)
        self.pops = deque(p + dt for p in self.pops)

    def state(self, e: int) -> tuple:
        return (self.aw_free - e, self.w_end - e, self.w_chain, self.last_wlast - e, self.aw_queue.state(e),
                tuple(p - e for p in self.pops))

    def tile(self, pushes: list[int], rows_valid: int, row0_addr: int) -> None:
        """Write one drained tile: pushes[k] is the cycle row ROWS-1-k entered the FIFO."""
        rows = self.cfg.rows
        for k, p in enumerate(pushes):
            r = rows - 1 - k
            y = max(p + 1, self.aw_free)
            last_row = k == rows - 1
            if r >= rows_valid:                      # skip token: closes at once
                visible = y + 2
                take = max(visible, self.w_end + 1, p + 1)
                self.pops.append(take)
                self.w_end = max(self.w_end, take)   # the data side is busy for the skip cycle
                self.w_chain = False
                self.aw_free = y + (2 if last_row else 1)
                continue
            addr = row0_addr + r * self.stride
            aw = y
            for length in _burst_lengths(addr & 4095, self.row_beats, self.beat_bytes, self.cfg.burst_beats):
                aw = self.aw_queue.accept(aw + 1)
                visible = aw + 2
                take = max(visible, self.w_end if self.w_chain else self.w_end + 1)
                self.w_end = take + length
                self.w_chain = True
                # the memory is done with the burst once its last W beat is in (and B queued)
                self.aw_queue.served(aw, self.w_end + 2)
                self.beats += length
            self.pops.append(self.w_end)
            self.last_wlast = self.w_end
            self.aw_free = aw + (2 if last_row else 1)

    def room_cycle(self, pushed: int, depth: int) -> int:
        """First cycle at which at most depth - ROWS of `pushed` rows are still in the FIFO."""
        need = pushed - (depth - self.cfg.rows)      # pops that must have happened
        if need <= 0:
            return 0
        # pops are in increasing order; keep only the ones still needed for future queries
        idx = need - 1 - self.popped_before
        assert 0 <= idx < len(self.pops), (need, self.popped_before, len(self.pops))
        return self.pops[idx] + 1

    def trim(self, pushed: int, depth: int) -> None:
        """Forget pops no future room query can need."""
        keep_from = pushed - (depth - self.cfg.rows) - 1   # index of the oldest pop still relevant
        while self.pops and self.popped_before < keep_from:
            self.pops.popleft()
            self.popped_before += 1

    def finish(self) -> int:
        """Cycle at which the writer reports done (all responses in)."""
        return self.last_wlast + self.mem.write_latency + 3


def gemm_cycles(cfg: HardwareConfig, m: int, n: int, k: int, a_bits: int, b_bits: int,
                timing: MemoryTiming = MemoryTiming(), *, c_addr: int = 0, a_addr: int = 0,
                b_addr: int = 0, b_prefetched: bool = False, prefetch: Prefetch | None = None,
                fast_forward: bool = True) -> CycleEstimate:
    """Cycles of one legal call (M x K) . (K x N) at a_bits x b_bits, as rtl/ runs it.

    Addresses only matter through 4 KiB boundaries splitting bursts (a few cycles); the defaults assume
    4 KiB aligned operands.  b_prefetched: the previous call prefetched this call's block 0 (a hit);
    prefetch: this call's own hint for the next call.  fast_forward=False times every A tile instead of
    skipping periodic ones (the same result, slower: for testing the skip).
    """
    rows, cols, bbc = cfg.rows, cfg.cols, cfg.b_block_cols
    kw = -(-k // cfg.dot_width)
    beat_bytes = cfg.axi_data_width // 8
    bpw = cfg.dot_width // cfg.axi_data_width
    word_bytes = cfg.word_bytes
    a_row_bytes = a_bits * kw * word_bytes
    b_col_bytes = b_bits * kw * word_bytes
    stride = -(-n // cols) * cols * 4
    steps = a_bits * b_bits * kw
    depth = 1 << (2 * rows - 1).bit_length()
    ready_lat = _ready_latency(cfg)
    t0 = setup_cycles(cfg) + 1               # first cycle the engines run

    writer = _Writer(cfg, timing, stride)
    # reader state
    ar_next = t0                             # cycle the AR side can decide its next command
    port = _ReadPort(cfg, timing, r_last=t0 - 10)
    last_pop = t0 - 10                       # cycle the R side took the latest descriptor
    read_beats = 0
    pf_addr = prefetch.b_addr if prefetch else 0
    pf_end = pf_addr + (prefetch_bytes(cfg, prefetch.n, prefetch.k, prefetch.b_bits) if prefetch else 0)
    pf_chunk = prefetch_chunk_bytes(cfg)
    pf_last = 0                              # last R beat of the prefetch

    def command(x: int, addr: int, nbytes: int) -> None:
        """The AR side issues a command at cycle x: its R beats, descriptor pop and AR bursts."""
        nonlocal ar_next, read_beats, last_pop
        last_pop = max(x + 2, port.r_last + 1)
        read_beats += nbytes // beat_bytes
        ar_next = port.command(x, addr, nbytes) + 1

    def fill_prefetch(until: float) -> None:
        """Prefetch chunks the AR side issues before cycle `until` (when the demand command may go)."""
        nonlocal pf_addr, pf_last
        while pf_addr < pf_end:
            y = max(ar_next, last_pop + 1)   # the descriptor queue must be empty
            if y >= until:
                return
            size = min(pf_chunk, pf_end - pf_addr)
            command(y, pf_addr, size)
            pf_addr += size
            pf_last = port.r_last

    def load(addr: int, nbytes: int, free_at: int) -> int:
        """Issue one load command; returns the cycle its buffer flag is visible to the feeder."""
        fill_prefetch(free_at)
        command(max(ar_next, free_at), addr, nbytes)
        return port.r_last + 2

    def schedule_state(e: int) -> tuple:
        """Everything that decides the next A tiles' timing, relative to the cycle e."""
        return (t - e, drain_free - e, ar_next - e, last_pop - e, a_ready_next - e, a_release[0] - e,
                a_release[1] - e, port.state(e), writer.state(e), pushed - writer.popped_before - len(writer.pops))

    n_tiles_m = -(-m // rows)
    blocks = list(range(0, n, bbc))
    # feeder state
    t = t0                                   # cycle the feeder enters its next wait state
    drain_free = 0                           # cycle drain_busy is low again
    compute = 0
    pushed = 0                               # rows pushed into the C FIFO so far
    a_release = [0, 0]                       # cycle each A half is free again (visible to the reader)
    b_release = 0
    g = 0                                    # A tile counter over the call (ping-pong half = g % 2)
    a_ready_next: int | None = None          # first A tile of a block, loaded ahead of its B block
    total_skip = 0

    for bi, n0 in enumerate(blocks):
        nb = min(bbc, n - n0)
        col_tiles = -(-nb // cols)
        # reader: block 0 loads B then A(0); later blocks load A(0) first (it overlaps the previous block)
        if bi == 0:
            # a hit: b_full is set with the run's start, the feeder passes its B wait at once
            b_ready = t0 if b_prefetched else load(b_addr + n0 * b_col_bytes, nb * b_col_bytes, b_release)
            a_ready_next = load(a_addr, min(rows, m) * a_row_bytes, a_release[g % 2])
        else:
            assert a_ready_next is not None
            b_ready = load(b_addr + n0 * b_col_bytes, nb * b_col_bytes, b_release)
        # feeder: wait for B
        t = max(t, b_ready) + 1
        ends: list[int] = []
        states: list[tuple] = []
        mt = 0
        while mt < n_tiles_m:
            m0 = mt * rows
            rows_valid = min(rows, m - m0)
            assert a_ready_next is not None
            start_a = max(t, a_ready_next) + 1
            # the reader loads the next A tile (of this block, or the first of the next block)
            if mt + 1 < n_tiles_m:
                nxt = (g + 1) % 2
                a_ready_next = load(a_addr + (m0 + rows) * a_row_bytes,
                                    min(rows, m - m0 - rows) * a_row_bytes, a_release[nxt])
                pending_next = None
            else:
                pending_next = bi + 1 < len(blocks)
            s = start_a
            for ct in range(col_tiles):
                e = max(s + steps - 1, drain_free)
                compute += steps
                ready = e + ready_lat
                room = writer.room_cycle(pushed, depth)
                d = max(ready + 1, room + 1 if room else 0)
                drain_free = d + rows
                pushes = [d + i for i in range(rows)]
                pushed += rows
                writer.tile(pushes, rows_valid, c_addr + m0 * stride + (n0 + ct * cols) * 4)
                writer.trim(pushed, depth)
                s = e + 1
            a_release[g % 2] = e + 1
            g += 1
            t = e + 1
            if pending_next:                 # first A tile of the next block, into the freed half
                ar_next += 1                 # (after the reader's block-advance cycle)
                a_ready_next = load(a_addr, min(rows, m) * a_row_bytes, a_release[g % 2])
            # periodicity: once the whole schedule state, taken relative to the tile's end, equals the
            # state two A tiles earlier (the ping-pong halves keep their roles), every later A tile
            # repeats those two: skip an even number of them by shifting every time stamp.  Equal tile
            # spacing alone is not enough (a C FIFO or R backlog can still be building up).  Not while
            # prefetch chunks are still to go: whether one fits before a demand command turns on the
            # AR side's last handshake, which moves with the 4 KiB splits of each A tile's load.
            ends.append(e)
            states.append(schedule_state(e))
            mt += 1
            remaining = n_tiles_m - mt - 3   # the last three A tiles (partial ones) stay exact
            if (fast_forward and len(states) >= 3 and states[-1] == states[-3] and remaining >= 2 and mt % 2 == 0
                    and pf_addr >= pf_end and pf_last < ends[-3]):
                skip = remaining - remaining % 2
                dt = (ends[-1] - ends[-3]) * (skip // 2)
                mt += skip
                g += skip
                compute += skip * col_tiles * steps
                pushed += skip * col_tiles * rows
                writer.popped_before += skip * col_tiles * rows
                writer.shift(dt)
                writer.beats += skip * col_tiles * rows * writer.row_beats
                read_beats += skip * rows * a_row_bytes // beat_bytes
                t += dt
                drain_free += dt
                ar_next += dt
                port.shift(dt)
                a_ready_next += dt
                a_release = [x + dt for x in a_release]
                last_pop += dt
                ends = [x + dt for x in ends]
                states.clear()
                total_skip += skip
        b_release = t                        # the feeder released B with the block's last step + 1

    fill_prefetch(float("inf"))             # what is left once every demand command is issued
    total = writer.finish()
    if prefetch:                             # the call ends once the prefetch is in, too
        total = max(total, pf_last + 2)
    return CycleEstimate(total, compute, read_beats + writer.beats, m * n * k * a_bits * b_bits)
