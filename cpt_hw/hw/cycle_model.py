"""Cycle model of the accelerator: how many clock cycles one ``cpt_gemm`` call takes.

The emulated device reports these cycles in its ``cycles`` register; the RTL tests check the model
against the Verilog twin cycle for cycle (``test_cpt_gemm_cycle_model`` in sim/cpt_gemm/test_cpt_gemm.py).
It follows the schedule of ``rtl/`` engine by engine (docs/rtl.md), in one pass over the tiles in the order the
hardware runs them:

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
from collections.abc import Sequence
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
    """The write engine (rtl/cpt_writer.v): address side, data side, responses, FIFO pops.

    The address (AW) side walks the rows in FIFO order, one burst per handshake, and queues each burst
    (or a skip token for a row past M) for the data (W) side, which sends a burst's beats back to back
    and chains the next burst without a gap.  A row leaves the FIFO with its last W beat, which is what
    the drain's room check (:meth:`room_cycle`) waits for.
    """

    def __init__(self, cfg: HardwareConfig, mem: MemoryTiming, stride: int, result_bits: int = RESULT_BITS,
                 tile_gap: int = 2):
        self.cfg, self.mem = cfg, mem
        self.stride = stride
        self.beat_bytes = cfg.axi_data_width // 8
        # int32 results, or a conv call's int16 ones (C16): a row of a column tile packed into fewer beats
        self.row_beats = cfg.cols * result_bits // cfg.axi_data_width
        self.col_bytes = cfg.cols * result_bits // 8     # C bytes of one column tile's row
        self.aw_free = 0          # earliest row_ready of the next row
        self.w_end = 0            # last beat of the previous burst (0: none yet)
        self.w_chain = False      # previous W entry was a burst (the next one may chain)
        self.last_wlast = 0
        self.aw_queue = _RequestQueue(mem.request_queue)
        self.pops: deque[int] = deque()   # FIFO pop cycles still of interest, oldest first
        self.popped_before = 0            # pops forgotten (trim) or skipped (fast-forward) before those
        self.beats = 0
        #: cycles from a tile's last row to the next tile's first on the address side: 2; 3 when the rows'
        #: offsets come from rtl/cpt_conv_rows.v, whose `ready` for the next tile rises a cycle after the pop
        self.tile_gap = tile_gap

    def shift(self, dt: int) -> None:
        self.aw_free += dt
        self.w_end += dt
        self.last_wlast += dt
        self.aw_queue.shift(dt)
        self.pops = deque(p + dt for p in self.pops)

    def skip(self, rows: int, dt: int) -> None:
        """Fast-forward: `rows` full rows were written (their pops forgotten), every time stamp dt later."""
        self.popped_before += rows
        self.beats += rows * self.row_beats
        self.shift(dt)

    def state(self, e: int) -> tuple:
        return (self.aw_free - e, self.w_end - e, self.w_chain, self.last_wlast - e, self.aw_queue.state(e),
                tuple(p - e for p in self.pops))

    def tile(self, pushes: list[int], rows_valid: int, row0_addr: int, deltas: Sequence[int] = ()) -> None:
        """Write one drained tile: pushes[k] is the cycle row ROWS-1-k entered the FIFO.  deltas[r]: row r's
        offset from its linear address (a stride-2 input-gradient phase's rows, rtl/cpt_conv_rows.v)."""
        rows = self.cfg.rows
        for k, p in enumerate(pushes):
            r = rows - 1 - k
            # the AW side sees a row the cycle after its push, once it is done with the previous row
            y = max(p + 1, self.aw_free)
            last_row = k == rows - 1
            if r >= rows_valid:                      # skip token: closes at once
                # the token's queue push is registered: the W side sees it two cycles on, and pops the
                # row only between bursts (the FIFO never pops twice in a cycle)
                visible = y + 2
                take = max(visible, self.w_end + 1, p + 1)
                self.pops.append(take)
                self.w_end = max(self.w_end, take)   # the data side is busy for the skip cycle
                self.w_chain = False
                # after a tile's last row the next tile opens a cycle later
                self.aw_free = y + (self.tile_gap if last_row else 1)
                continue
            addr = row0_addr + r * self.stride + (deltas[r] if deltas else 0)
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
            self.aw_free = aw + (self.tile_gap if last_row else 1)

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


class _Reader:
    """The read engine's command side (rtl/cpt_reader.v): demand loads in order, B prefetch chunks between.

    The AR side decides one command at a time (``ar_next``) and hands it to the R side through a
    descriptor queue; the R side takes the descriptor two cycles after the decision, or right after the
    previous command's data is in (``last_pop``).  A load's buffer flag is visible to the feeder two
    cycles after its last R beat.  Prefetch chunks only use the AR side while no demand command can go,
    and only with the descriptor queue empty, so that a demand load waits behind at most one chunk.
    """

    def __init__(self, cfg: HardwareConfig, mem: MemoryTiming, t0: int, prefetch: Prefetch | None):
        self.beat_bytes = cfg.axi_data_width // 8
        # ten cycles before the start: far enough back that nothing waits for the port at first
        self.port = _ReadPort(cfg, mem, r_last=t0 - 10)
        self.ar_next = t0                    # cycle the AR side can decide its next command
        self.last_pop = t0 - 10              # cycle the R side took the latest descriptor
        self.beats = 0                       # R beats so far
        self.pf_addr = prefetch.b_addr if prefetch else 0     # next prefetch chunk
        self.pf_end = self.pf_addr + (prefetch_bytes(cfg, prefetch.n, prefetch.k, prefetch.b_bits)
                                      if prefetch else 0)
        self.pf_chunk = prefetch_chunk_bytes(cfg)
        self.pf_last = 0                     # last R beat of the prefetch

    def load(self, addr: int, nbytes: int, free_at: int) -> int:
        """A demand load into a buffer released at cycle free_at; returns the cycle its flag is visible."""
        self.fill_prefetch(free_at)
        self._command(max(self.ar_next, free_at), addr, nbytes)
        return self.port.r_last + 2

    def fill_prefetch(self, until: float) -> None:
        """Prefetch chunks the AR side issues before cycle `until` (when the demand command may go)."""
        while self.pf_addr < self.pf_end:
            y = max(self.ar_next, self.last_pop + 1)     # the descriptor queue must be empty
            if y >= until:
                return
            size = min(self.pf_chunk, self.pf_end - self.pf_addr)
            self._command(y, self.pf_addr, size)
            self.pf_addr += size
            self.pf_last = self.port.r_last

    def prefetch_done_before(self, cycle: int) -> bool:
        """Every prefetch chunk is issued and its data was in before `cycle`."""
        return self.pf_addr >= self.pf_end and self.pf_last < cycle

    def block_advance(self) -> None:
        """The AR side spends a cycle moving to the next B block's commands."""
        self.ar_next += 1

    def _command(self, x: int, addr: int, nbytes: int) -> None:
        """The AR side issues a command at cycle x: its R beats, descriptor pop and AR bursts."""
        self.last_pop = max(x + 2, self.port.r_last + 1)
        self.beats += nbytes // self.beat_bytes
        self.ar_next = self.port.command(x, addr, nbytes) + 1

    def skip(self, nbytes: int, dt: int) -> None:
        """Fast-forward: loads of nbytes in total happened, and every time stamp moves dt later."""
        self.beats += nbytes // self.beat_bytes
        self.ar_next += dt
        self.last_pop += dt
        self.port.shift(dt)

    def state(self, e: int) -> tuple:
        return (self.ar_next - e, self.last_pop - e, self.port.state(e))


class _Array:
    """The feeder, the PE array and the drain (rtl/cpt_feeder.v, pe_array.v, cpt_drain.v).

    The feeder steps once per cycle, a_bits x b_bits x Kw steps per column tile.  The array's shadow
    registers hold one finished tile, so a tile's last step waits until the previous tile has drained;
    ROWS + COLS + 2 cycles after the last step the shadows are ready, and the drain shifts ROWS rows into
    the C FIFO, one per cycle, once the FIFO has room for a whole tile.  The two A halves ping-pong:
    A tile g computes from half g % 2, which the reader may refill from the cycle after its last step.
    """

    def __init__(self, cfg: HardwareConfig, t0: int, steps: int, writer: _Writer):
        self.rows = cfg.rows
        self.steps = steps                   # steps per column tile
        self.ready_latency = _ready_latency(cfg)
        self.fifo_depth = 1 << (2 * cfg.rows - 1).bit_length()    # 2 x ROWS up to a power of 2: CPT_FIFO_AW
        self.writer = writer
        self.t = t0                          # cycle the feeder enters its next wait state
        self.drain_free = 0                  # cycle drain_busy is low again
        self.compute = 0                     # steps so far
        self.pushed = 0                      # rows pushed into the C FIFO so far
        self.a_release = [0, 0]              # cycle each A half is free again (visible to the reader)
        self.b_release = 0                   # cycle the B buffer is free again
        self.tiles = 0                       # A tiles so far (the next one computes from half tiles % 2)

    def a_free(self, tile: int) -> int:
        """Cycle the A half that A tile number `tile` loads into is free."""
        return self.a_release[tile % 2]

    def start_block(self, b_ready: int) -> None:
        """The feeder waits for the block's B, then idles a cycle."""
        self.t = max(self.t, b_ready) + 1

    def end_block(self) -> None:
        """The feeder releases B with the block's last step + 1."""
        self.b_release = self.t

    def a_tile(self, a_ready: int, col_tiles: int, rows_valid: int, c_addr: int, deltas: Sequence[int] = ()) -> int:
        """One A tile against every column tile of the block (C at c_addr); returns its last step."""
        s = self.first_step(a_ready)
        for ct in range(col_tiles):
            e = self.last_step(s)
            room = self.writer.room_cycle(self.pushed, self.fifo_depth)
            d = self.drain(e, room)
            self.writer.tile(list(range(d, d + self.rows)), rows_valid, c_addr + ct * self.writer.col_bytes, deltas)
            self.writer.trim(self.pushed, self.fifo_depth)
            s = e + 1
        self.tile_done(e)
        return e

    # the steps of a_tile, for a schedule that works out a column tile's drain later (conv_cycle_model, SUMS)
    def first_step(self, a_ready: int) -> int:
        """The first step of an A tile ready at a_ready: it waits for it, then idles a cycle."""
        return max(self.t, a_ready) + 1

    def last_step(self, s: int) -> int:
        """The last step of a column tile whose first may go at cycle s: the shadows must be empty for it."""
        self.compute += self.steps
        return max(s + self.steps - 1, self.drain_free)

    def drain(self, e: int, room: int) -> int:
        """The cycle the column tile of last step e pushes its first row into the C FIFO, which has room for a
        whole tile from cycle `room` (0: at once); its ROWS rows follow one a cycle."""
        d = max(e + self.ready_latency + 1, room + 1 if room else 0)
        self.drain_free = d + self.rows
        self.pushed += self.rows
        return d

    def tile_done(self, e: int) -> None:
        """The A tile's last step was e: its half is free again after it."""
        self.a_release[self.tiles % 2] = e + 1
        self.tiles += 1
        self.t = e + 1

    def skip(self, tiles: int, col_tiles: int, dt: int) -> None:
        """Fast-forward: `tiles` full A tiles happened, and every time stamp moves dt later."""
        self.tiles += tiles
        self.compute += tiles * col_tiles * self.steps
        self.pushed += tiles * col_tiles * self.rows
        self.t += dt
        self.drain_free += dt
        self.a_release = [x + dt for x in self.a_release]

    def state(self, e: int) -> tuple:
        # the rows pushed but not among the writer's remembered pops: where room_cycle will look next
        backlog = self.pushed - self.writer.popped_before - len(self.writer.pops)
        return (self.t - e, self.drain_free - e, self.a_release[0] - e, self.a_release[1] - e, backlog)


class _Schedule:
    """One call's schedule: the reader, the array and the writer, B block by B block, A tile by A tile.

    The reader loads B(0) then A(0); while A tile g computes, it loads tile g + 1 into the other A half
    (the next block's A(0) after the block's last tile, so that it overlaps that tile), and a block's B
    once the previous block released the B buffer.
    """

    def __init__(self, cfg: HardwareConfig, m: int, n: int, k: int, a_bits: int, b_bits: int,
                 timing: MemoryTiming, c_addr: int, a_addr: int, b_addr: int, b_prefetched: bool,
                 prefetch: Prefetch | None, fast_forward: bool):
        self.cfg, self.m, self.n = cfg, m, n
        self.a_addr, self.b_addr, self.c_addr = a_addr, b_addr, c_addr
        kw = -(-k // cfg.dot_width)          # D-bit words per row of A, column of B
        self.a_row_bytes = a_bits * kw * cfg.word_bytes
        self.b_col_bytes = b_bits * kw * cfg.word_bytes
        self.stride = -(-n // cfg.cols) * cfg.cols * RESULT_BITS // 8      # bytes per row of C
        self.b_prefetched = b_prefetched
        self.has_prefetch = prefetch is not None
        self.fast_forward = fast_forward
        self.t0 = setup_cycles(cfg) + 1      # first cycle the engines run
        self.writer = _Writer(cfg, timing, self.stride)
        self.reader = _Reader(cfg, timing, self.t0, prefetch)
        self.array = _Array(cfg, self.t0, a_bits * b_bits * kw, self.writer)
        self.a_ready = 0                     # cycle the next A tile's flag is visible to the feeder
        self.a_tiles = -(-m // cfg.rows)     # A tiles per B block
        # (last step, schedule state) of the block's latest three A tiles, for the fast-forward
        self.window: deque[tuple[int, tuple]] = deque(maxlen=3)

    def run(self) -> tuple[int, int, int]:
        """(total cycles, array steps, AXI beats) of the call."""
        blocks = range(0, self.n, self.cfg.b_block_cols)
        for n0 in blocks:
            self._block(n0, first=n0 == 0, last=n0 == blocks[-1])
        self.reader.fill_prefetch(float("inf"))   # what is left once every demand command is issued
        total = self.writer.finish()
        if self.has_prefetch:                # the call ends once the prefetch is in, too
            total = max(total, self.reader.pf_last + 2)
        return total, self.array.compute, self.reader.beats + self.writer.beats

    def _load_a(self, m0: int, tile: int) -> int:
        """Load the A tile of rows m0.. (A tile number `tile` of the call); returns when it is in."""
        nbytes = min(self.cfg.rows, self.m - m0) * self.a_row_bytes
        return self.reader.load(self.a_addr + m0 * self.a_row_bytes, nbytes, self.array.a_free(tile))

    def _block(self, n0: int, first: bool, last: bool) -> None:
        """B block n0..: every A tile against its column tiles."""
        rows, nb = self.cfg.rows, min(self.cfg.b_block_cols, self.n - n0)
        col_tiles = -(-nb // self.cfg.cols)
        b = (self.b_addr + n0 * self.b_col_bytes, nb * self.b_col_bytes)
        if not first:                        # A(0) of this block is already loading: B goes after it
            b_ready = self.reader.load(*b, self.array.b_release)
        else:
            # a hit: b_full is set with the run's start, the feeder passes its B wait at once
            b_ready = self.t0 if self.b_prefetched else self.reader.load(*b, self.array.b_release)
            self.a_ready = self._load_a(0, 0)
        self.array.start_block(b_ready)
        self.window.clear()
        c_addr = self.c_addr + n0 * RESULT_BITS // 8
        mt = 0
        while mt < self.a_tiles:
            m0 = mt * rows
            a_ready = self.a_ready
            if mt + 1 < self.a_tiles:        # the next A tile loads while this one computes
                self.a_ready = self._load_a(m0 + rows, self.array.tiles + 1)
            e = self.array.a_tile(a_ready, col_tiles, min(rows, self.m - m0), c_addr + m0 * self.stride)
            if mt + 1 == self.a_tiles and not last:     # the next block's A(0), into the freed half
                self.reader.block_advance()
                self.a_ready = self._load_a(0, self.array.tiles)
            mt += 1
            if self.fast_forward:
                mt += self._skip_periodic(e, mt, col_tiles)
        self.array.end_block()

    def _skip_periodic(self, e: int, done: int, col_tiles: int) -> int:
        """After the block's A tile number done - 1 ended at step e: how many A tiles the schedule skips.

        Once the whole schedule state, taken relative to the tile's end, equals the state two A tiles
        earlier (the ping-pong halves keep their roles), every later A tile repeats those two: skip an
        even number of them by shifting every time stamp.  Equal tile spacing alone is not enough (a C
        FIFO or R backlog can still be building up).  Not while prefetch chunks are still to go: whether
        one fits before a demand command turns on the AR side's last handshake, which moves with the
        4 KiB splits of each A tile's load.  The last three A tiles (partial ones) stay exact.
        """
        self.window.append((e, self._state(e)))
        remaining = self.a_tiles - done - 3
        if remaining < 2 or done % 2 or len(self.window) < 3:
            return 0
        (e_before, state_before), _, (_, state_now) = self.window
        if state_now != state_before or not self.reader.prefetch_done_before(e_before):
            return 0
        skip = remaining - remaining % 2
        dt = (e - e_before) * (skip // 2)
        rows = skip * col_tiles * self.cfg.rows                 # C rows of the skipped tiles
        self.array.skip(skip, col_tiles, dt)
        self.writer.skip(rows, dt)
        self.reader.skip(skip * self.cfg.rows * self.a_row_bytes, dt)
        self.a_ready += dt
        self.window.clear()
        return skip

    def _state(self, e: int) -> tuple:
        """Everything that decides the next A tiles' timing, relative to the cycle e."""
        return (self.a_ready - e, self.array.state(e), self.reader.state(e), self.writer.state(e))


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
    total, compute, memory = _Schedule(cfg, m, n, k, a_bits, b_bits, timing, c_addr, a_addr, b_addr,
                                       b_prefetched, prefetch, fast_forward).run()
    return CycleEstimate(total, compute, memory, m * n * k * a_bits * b_bits)
