"""The write side of a conv call with its code sums (flags SUMS: a forward call or a weight gradient), stepped cycle
by cycle: the C writer (rtl/cpt_writer.v), the two producers of sums (cpt_sums_rows: each result row's; and
cpt_sums_taps: a forward call's weight sums per tap, or cpt_sums_etaps: a weight gradient's error sums per tap), the
sums writer that shares the one write channel with C (cpt_sums_writer.v: a registered round-robin AW grant, W and B
in the order of the AWs) and AxiRam's write side.

Why stepped: the sums' bursts take turns with C's on AW and W, and when they go depends on the front end (a
tile's row sums follow the walker's `a_loaded`, the tap sums the B words written) while C's depend on the back
end; and each producer holds its own producer back (the walker's next tile, the next B block) while its sums wait.
No tile-by-tile closed form follows both, so :class:`SumsWriteSide` is stepped with the front end
(:mod:`cpt_hw.hw.conv_cycle_model`'s schedule), one :meth:`SumsWriteSide.edge` a cycle, and the drained rows it
writes are given to it as future pushes.
"""

from __future__ import annotations

from collections import deque

from .config import HardwareConfig
from .cycle_model import _burst_lengths

_C = 2                       # the sums writer's sources: port 0 (row sums), port 1 (weight sums), the C writer
_WQ_DEPTH = 8                # cpt_writer's burst queue
_ORDER_DEPTH = 16            # cpt_sums_writer's W and B order queues
_SUM_BYTES = 4


class _RowSums:
    """cpt_sums_rows: a tile's sums leave the accumulators with the walker's a_loaded (registered twice), then one
    a cycle through a shadow into a queue of four tiles' sums; `hold` keeps the walker from its next tile while a
    tile's sums are on their way to the shadow or still in it."""

    def __init__(self, cfg: HardwareConfig, m: int):
        self.rows, self.m = cfg.rows, m
        self.depth = 1 << (4 * cfg.rows - 1).bit_length()
        self.s1_loaded = False
        self.left = 0                        # sums in the shadow
        self.next = 0                        # index of the shadow's next sum
        self.rows_done = 0
        self.queue: deque[int] = deque()     # indices of the queued sums

    def hold(self, a_loaded: bool) -> bool:
        return a_loaded or self.s1_loaded or self.left != 0

    def edge(self, a_loaded: bool, popped: bool) -> None:
        push = self.left != 0 and len(self.queue) < self.depth
        if popped:
            self.queue.popleft()
        if push:
            self.queue.append(self.next)
        if self.s1_loaded:
            if self.rows_done < self.m:          # block 0's tiles; later blocks' repeat them
                self.left = min(self.m - self.rows_done, self.rows)
                self.next = self.rows_done
                self.rows_done += self.rows
        elif push:
            self.next += 1
            self.left -= 1
        self.s1_loaded = a_loaded

    def head(self) -> tuple[int, bool] | None:
        """(index, last) of the sum offered to the sums writer."""
        if not self.queue:
            return None
        return self.queue[0], self.queue[0] == self.m - 1


class _TapSums:
    """cpt_sums_taps: each B column's per-tap sums enter a FIFO (one block's columns) with the column's last word,
    two cycles after the reader's write; they leave one a cycle.  `hold` keeps the reader from the next B block
    until the FIFO is empty."""

    def __init__(self, cfg: HardwareConfig, m: int, n: int, taps: int, col_words: int):
        self.first, self.last_idx, self.taps = m, m + n * taps - 1, taps
        self.col_words = col_words           # B words of a column (all its planes)
        self.word = 0
        self.s1_we = self.s1_end = False
        self.columns = 0                     # columns in the FIFO
        self.ot = 0
        self.idx = m

    def hold(self, c: int) -> bool:
        return self.columns != 0 or self.s1_we

    def idle(self) -> bool:
        return not self.hold(0)

    def due(self, c: int) -> float:
        """The first cycle after c at which its hold changes by itself: never (only words written change it)."""
        return float("inf")

    def edge(self, b_write: bool, popped: bool) -> None:
        if self.s1_we and self.s1_end:
            self.columns += 1
        if popped:
            if self.ot == self.taps - 1:
                self.columns -= 1
                self.ot = 0
            else:
                self.ot += 1
            self.idx += 1
        self.s1_we, self.s1_end = b_write, False
        if b_write:
            self.word += 1
            if self.word == self.col_words:
                self.word, self.s1_end = 0, True

    def head(self) -> tuple[int, bool] | None:
        if not self.columns:
            return None
        return self.idx, self.idx == self.last_idx


class _ErrTapSums:
    """cpt_sums_etaps (weight gradients): each B block's error sums per tap, counted from the words the walker
    writes (taken in the cycle of its B write register, counted the next) into one of two block slots; a full slot
    leaves tap-major, one sum a cycle through a queue of four.  The next call's block 0 (a prefetching call's last
    block) is parked, not sent; a hit starts with it full.  `hold` keeps the B walk from a block until the mask
    table is made (Kw D cycles from the start of a call that makes it) and while both slots are taken."""

    def __init__(self, m: int, n: int, taps: int, bbc: int, b_bits: int, k_words: int, hit: bool, ready_at: int):
        self.m, self.n, self.taps, self.bbc, self.b_bits, self.k_words = m, n, taps, bbc, b_bits, k_words
        self.ready_at = ready_at                     # the first cycle the mask table is made
        self.w = self.q = self.col = 0
        self.c_n0 = bbc if hit and n > bbc else 0
        self.c_pre = hit and n <= bbc
        self.s1 = None                               # (column end, block end, parked, n0, columns) of the word
        self.full, self.park = [False, False], [False, False]
        self.sn0, self.scols = [0, 0], [0, 0]
        self.wslot = self.rslot = 0
        self.occ = 0
        if hit:                                      # the previous call counted this call's block 0
            self.full[1], self.sn0[1], self.scols[1] = True, 0, min(n, bbc)
            self.occ, self.rslot = 1, 1
        self.d_col = self.d_t = 0
        self.p: tuple[int, bool] | None = None       # the sum issued in the latest cycle: (idx, last)
        self.out: deque[tuple[int, bool]] = deque()

    def hold(self, c: int) -> bool:
        """In cycle c."""
        return c < self.ready_at or self.occ == 2

    def idle(self) -> bool:
        """Nothing counted, queued or due to leave (a parked block waits for the next call)."""
        return (self.p is None and not self.out and self.s1 is None
                and not (self.full[self.rslot] and not self.park[self.rslot]))

    def due(self, c: int) -> float:
        """The first cycle after c at which its hold changes by itself: the mask table made."""
        return self.ready_at if self.ready_at > c + 1 else float("inf")

    def edge(self, b_write: bool, popped: bool) -> None:
        # out: the head of the queue leaves; a full slot issues its next sum (tap-major, column by column)
        cols = self.scols[self.rslot]
        issue = self.full[self.rslot] and not self.park[self.rslot] and len(self.out) + (self.p is not None) < 3
        col_last, tap_last = self.d_col == cols - 1, self.d_t == self.taps - 1
        drain_done = issue and col_last and tap_last
        if popped:
            self.out.popleft()
        if self.p is not None:
            self.out.append(self.p)
        self.p = None
        if issue:
            n0 = self.sn0[self.rslot]
            self.p = (self.m + self.d_t * self.n + n0 + self.d_col,
                      col_last and tap_last and n0 + cols == self.n)
            self.d_col = 0 if col_last else self.d_col + 1
            if col_last:
                self.d_t = 0 if tap_last else self.d_t + 1
        # slots
        alloc = b_write and self.w == 0 and self.q == 0 and self.col == 0
        self.occ += alloc - drain_done
        if self.s1 is not None and self.s1[1]:
            _, _, parked, n0, cols_in = self.s1
            w = self.wslot
            self.full[w], self.park[w], self.sn0[w], self.scols[w] = True, parked, n0, cols_in
            self.wslot ^= 1
        if drain_done:
            self.full[self.rslot] = False
            self.rslot ^= 1
        # stage 0: where the written word lies
        self.s1 = None
        if b_write:
            c_cols = min(self.n - self.c_n0, self.bbc)
            last_word = self.w == self.k_words - 1
            col_end = last_word and self.q == self.b_bits - 1
            blk_end = col_end and self.col == c_cols - 1
            self.s1 = (col_end, blk_end, self.c_pre, self.c_n0, c_cols)
            self.w = 0 if last_word else self.w + 1
            if last_word:
                self.q = 0 if col_end else self.q + 1
            if col_end:
                self.col = 0 if blk_end else self.col + 1
            if blk_end and not self.c_pre:
                if self.c_n0 + self.bbc < self.n:
                    self.c_n0 += self.bbc
                else:
                    self.c_n0, self.c_pre = 0, True

    def head(self) -> tuple[int, bool] | None:
        return self.out[0] if self.out else None


class _Port:
    """One of cpt_sums_writer's burst buffers: a run of consecutive sums, closed when the next one does not
    follow (or would start a beat past BURST_BEATS or on a 4 KiB page), or with the port's last sum."""

    def __init__(self, base: int, beat_bytes: int, burst_beats: int):
        self.base, self.beat_bytes, self.burst_beats = base, beat_bytes, burst_beats
        self.open = self.closed = self.final_seen = self.sent_final = False
        self.next_idx = 0
        self.beats = 0
        self.w_beat = 0
        self.aw_sent = False

    def ready_for(self, idx: int) -> bool:
        if self.closed:
            return False
        if not self.open:
            return True
        addr = self.base + _SUM_BYTES * idx
        lane = addr % self.beat_bytes
        return idx == self.next_idx and (lane != 0 or (self.beats != self.burst_beats and
                                                       (addr - lane) % 4096 != 0))

    def edge(self, offered: tuple[int, bool] | None, take: bool, w_hs: bool) -> None:
        if take:
            idx, last = offered
            lane = (self.base + _SUM_BYTES * idx) % self.beat_bytes
            if not self.open:
                self.beats = 1
            elif lane == 0:
                self.beats += 1
            self.open = True
            self.next_idx = idx + 1
            if last:
                self.closed = self.final_seen = True
        elif offered is not None and self.open and not self.closed:
            self.closed = True                   # the sum does not follow: send what is held first
        if w_hs:
            self.w_beat += 1
            if self.w_beat == self.beats:
                self.open = self.closed = False
                self.w_beat = 0
                self.aw_sent = False
                if self.final_seen:
                    self.sent_final = True

    @property
    def requesting(self) -> bool:
        return self.closed and not self.aw_sent


class SumsWriteSide:
    """The C writer, the sums producers and writer, and AxiRam's write side of one call with SUMS,
    stepped: :meth:`holds` gives the cycle's hold lines (before its edge), :meth:`edge` moves every register;
    :meth:`tile` queues a drained column tile's rows (their push cycles are in the future)."""

    def __init__(self, cfg: HardwareConfig, stride: int, result_bits: int, m: int, n: int, taps: int,
                 b_col_words: int, sums_base: int, tap_sums: _ErrTapSums | None = None):
        self.cfg, self.stride = cfg, stride
        self.beat_bytes = cfg.axi_data_width // 8
        self.row_beats = cfg.cols * result_bits // cfg.axi_data_width
        self.col_bytes = cfg.cols * result_bits // 8
        self.rows = cfg.rows
        self.row_sums = _RowSums(cfg, m)
        # the second producer: a forward call's weight sums, or (given) a weight gradient's error sums
        self.tap_sums = tap_sums if tap_sums is not None else _TapSums(cfg, m, n, taps, b_col_words)
        self.ports = [_Port(sums_base, self.beat_bytes, cfg.burst_beats) for _ in range(2)]
        # C writer, AW side
        self.tiles: deque[tuple[int, int]] = deque()     # (rows valid, address of row 0) of tiles not yet open
        self.pushes: deque[int] = deque()    # cycles rows enter the C FIFO, not yet reached
        self.tile_open = False
        self.tile_rows = 0
        self.k = 0
        self.row_addr = 0
        self.in_row = False
        self.cur = 0
        self.left = 0
        self.avail = 0
        self.q_push: tuple[bool, bool, int] | None = None  # (skip, row end, beats) in flight to the queue
        self.wq: deque[tuple[bool, bool, int]] = deque()
        # C writer, W side
        self.w_busy = False
        self.w_left = 0
        self.w_row_end = False
        self.fifo = 0                        # rows in the C FIFO
        self.pops: list[int] = []            # cycle of each row's pop
        # the arbiter and the order queues
        self.granted = False
        self.gsel = self.last_sel = _C
        self.w_order: deque[int] = deque()
        # the memory: [AW handshake, cycle it is free again (None: its last W beat has not gone)] of the latest
        # three bursts, and the bursts whose last W beat has not gone
        self.aw_hist: deque[list] = deque(maxlen=3)
        self.aw_count = 0
        self.w_open: deque[list] = deque()
        self.c_last_w = 0
        self.s_last_w = 0

    # ------------------------------------------------------------------ the array's side
    def tile(self, d: int, rows_valid: int, row0_addr: int) -> None:
        self.tiles.append((rows_valid, row0_addr))
        self.pushes.extend(range(d, d + self.rows))

    def room_cycle(self, pushed: int, depth: int) -> int | None:
        """First cycle at which at most depth - ROWS of `pushed` rows are still in the C FIFO; None while the pop
        that decides it has not happened."""
        need = pushed - (depth - self.rows)
        if need <= 0:
            return 0
        return self.pops[need - 1] + 1 if len(self.pops) >= need else None

    # ------------------------------------------------------------------ one cycle
    def holds(self, c: int, a_loaded: bool) -> tuple[bool, bool]:
        """(rows_hold, taps_hold) in a cycle whose walker a_loaded register is `a_loaded`."""
        return self.row_sums.hold(a_loaded), self.tap_sums.hold(c)

    def _aw_ready(self, c: int) -> bool:
        """AxiRam's AW sink: two requests queued, one burst served at a time (cycle_model._RequestQueue)."""
        hist = self.aw_hist
        if len(hist) >= 2 and c < hist[-2][0] + 2:
            return False
        if self.aw_count >= 3:
            free = hist[-3][1]
            return free is not None and c >= free
        return True

    def edge(self, c: int, a_loaded: bool, b_write: bool) -> None:
        """Cycle c's combinational values, then the registers at its end."""
        rows = self.rows
        # ---- C writer, AW side
        q_room = len(self.wq) + (self.q_push is not None) < _WQ_DEPTH
        beats = 0
        if self.in_row:
            beats = _burst_lengths(self.cur & 4095, self.left, self.beat_bytes, self.cfg.burst_beats)[0]
        c_awvalid = self.in_row and q_room
        r = rows - 1 - self.k
        row_valid = r < self.tile_rows
        row_ready = self.tile_open and not self.in_row and self.avail != 0 and q_room
        # ---- sums producers' offers and the ports
        offers = [self.row_sums.head(), self.tap_sums.head()]
        takes = [o is not None and p.ready_for(o[0]) for o, p in zip(offers, self.ports)]
        # ---- arbiter (registered grant) and the memory's AW
        req = [self.ports[0].requesting, self.ports[1].requesting, c_awvalid]
        aw_hs = self.granted and req[self.gsel] and self._aw_ready(c)
        c_aw_hs = aw_hs and self.gsel == _C
        row_closing = (row_ready and not row_valid) or (c_aw_hs and beats == self.left)
        # ---- W: the order queue's head burst
        src = self.w_order[0] if self.w_order else None
        w_hs, w_last = False, False
        p_w_hs = [False, False]
        c_w_ending = False
        if src == _C:
            if self.w_busy:
                w_hs = True
                w_last = c_w_ending = self.w_left == 1
        elif src is not None:
            p = self.ports[src]
            w_hs = p_w_hs[src] = True
            w_last = p.w_beat + 1 == p.beats
        head = self.wq[0] if self.wq else None
        take_burst = head is not None and not head[0] and (not self.w_busy or c_w_ending)
        take_skip = head is not None and head[0] and not self.w_busy and self.fifo != 0
        fifo_pop = take_skip or (c_w_ending and self.w_row_end)

        # ---- the edge
        # memory
        if aw_hs:
            self.aw_hist.append([c, None])
            self.aw_count += 1
            self.w_open.append(self.aw_hist[-1])
        if w_hs and w_last:
            self.w_open.popleft()[1] = c + 2
            if src == _C:
                self.c_last_w = c
            else:
                self.s_last_w = c
        # sums producers, ports
        self.row_sums.edge(a_loaded, takes[0])
        self.tap_sums.edge(b_write, takes[1])
        for i, port in enumerate(self.ports):
            port.edge(offers[i], takes[i], p_w_hs[i])
        if aw_hs and self.gsel != _C:
            self.ports[self.gsel].aw_sent = True
        # arbiter and order queues
        if w_hs and w_last:
            self.w_order.popleft()
        if aw_hs:
            self.w_order.append(self.gsel)
            self.granted = False
            self.last_sel = self.gsel
        elif not self.granted and any(req) and len(self.w_order) < _ORDER_DEPTH:
            s1 = 0 if self.last_sel == _C else self.last_sel + 1
            s2 = 0 if s1 == _C else s1 + 1
            self.granted = True
            self.gsel = s1 if req[s1] else s2 if req[s2] else self.last_sel
        # C writer: FIFO
        if fifo_pop:
            self.pops.append(c)
            self.fifo -= 1
        if self.pushes and self.pushes[0] == c:
            self.pushes.popleft()
            self.fifo += 1
            pushed = True
        else:
            pushed = False
        # C writer, W side
        if take_burst or take_skip:
            self.wq.popleft()
        if take_burst:
            self.w_busy, self.w_left, self.w_row_end = True, head[2], head[1]
        elif src == _C and w_hs:
            self.w_left -= 1
            if c_w_ending:
                self.w_busy = False
        if self.q_push is not None:
            self.wq.append(self.q_push)
            self.q_push = None
        # C writer, AW side
        self.avail += pushed - row_closing
        if not self.tile_open and self.tiles:
            self.tile_open, self.k = True, 0
            self.tile_rows, base = self.tiles[0]
            self.row_addr = base + (rows - 1) * self.stride
        if row_ready:
            if row_valid:
                self.in_row, self.cur, self.left = True, self.row_addr, self.row_beats
            else:
                self.q_push = (True, True, 0)
        if c_aw_hs:
            row_end = beats == self.left
            self.q_push = (False, row_end, beats)
            self.cur += beats * self.beat_bytes
            self.left -= beats
            if row_end:
                self.in_row = False
        if row_closing:
            self.row_addr -= self.stride
            self.k += 1
            if self.k == rows:
                self.tile_open = False
                self.tiles.popleft()

    # ------------------------------------------------------------------ idle stretches (weight gradients)
    def quiet(self) -> bool:
        """Nothing moves at the next edges but what a future event starts: no row in the C FIFO or on its way
        through the writer, no sum queued or being sent, no AW wanted (an open burst waits for its next sum)."""
        rs = self.row_sums
        return (all(not p.closed for p in self.ports) and self.tap_sums.idle()
                and not rs.s1_loaded and rs.left == 0 and not rs.queue
                and self.tile_open == bool(self.tiles) and not self.in_row and self.avail == 0 and self.fifo == 0
                and self.q_push is None and not self.wq and not self.w_busy and not self.w_order
                and not self.granted)

    def next_event(self, c: int) -> float:
        """The first cycle after c at which something is due: a row pushed, the error sums' mask table made."""
        return min(self.pushes[0] if self.pushes else float("inf"), self.tap_sums.due(c))

    # ------------------------------------------------------------------ fast-forward (conv_cycle_model's skip)
    def state(self, c: int, row0: int, addr0: int) -> tuple:
        """Everything that decides the next cycles, relative to cycle c, the result row row0 and the C address
        addr0 (the page offsets of addr0 and of the sums at row0 are the caller's to add)."""
        rs, ts = self.row_sums, self.tap_sums
        if rs.rows_done >= rs.m:             # a later block's tiles: the row sums move no more
            row0 = 0
        ports = tuple((p.open, p.closed, p.final_seen, p.sent_final, p.next_idx - row0 if p is self.ports[0]
                       else p.next_idx, p.beats, p.w_beat, p.aw_sent) for p in self.ports)
        return (rs.s1_loaded, rs.left, rs.next - row0, rs.rows_done - row0, tuple(q - row0 for q in rs.queue),
                ts.word, ts.s1_we, ts.s1_end, ts.columns, ts.ot, ts.idx, ports,
                tuple((rv, a - addr0) for rv, a in self.tiles), tuple(p - c for p in self.pushes), self.tile_open,
                self.tile_rows, self.k, self.row_addr - addr0, self.in_row, self.cur - addr0, self.left, self.avail,
                self.q_push, tuple(self.wq), self.w_busy, self.w_left, self.w_row_end, self.fifo,
                tuple(p - c for p in self.pops[-4 * self.rows:]), self.granted, self.gsel, self.last_sel,
                tuple(self.w_order), tuple((a - c, None if f is None else f - c) for a, f in self.aw_hist),
                min(self.aw_count, 3), len(self.w_open), self.c_last_w - c, self.s_last_w - c)

    def row_sums_page(self, row0: int) -> int:
        """Where row row0's sum lies, as far as the row sums' bursts can tell: its offset in a 4 KiB page, or only
        in a full burst when the sums start on a full burst's boundary (a page boundary is then one too: the
        bursts split nowhere else)."""
        addr = self.ports[0].base + _SUM_BYTES * row0
        burst = self.cfg.burst_beats * self.beat_bytes
        return addr % burst if 4096 % burst == 0 and self.ports[0].base % burst == 0 else addr % 4096

    def skip(self, k: int, rows: int, pops: list[int], addr: int, dt: int) -> None:
        """Fast-forward k periods of dt cycles: in each, `rows` result rows went by (of block 0: their sums too),
        the C FIFO popped as in `pops` (the latest period's pops) and C's addresses moved on by `addr`."""
        rs = self.row_sums
        if rs.rows_done < rs.m:
            rs.next += k * rows
            rs.rows_done += k * rows
            rs.queue = deque(q + k * rows for q in rs.queue)
            self.ports[0].next_idx += k * rows
        for i in range(1, k + 1):
            self.pops.extend(p + i * dt for p in pops)
        shift, addr = k * dt, k * addr
        self.tiles = deque((rv, a + addr) for rv, a in self.tiles)
        self.pushes = deque(p + shift for p in self.pushes)
        self.row_addr += addr
        self.cur += addr
        for h in self.aw_hist:
            h[0] += shift
            if h[1] is not None:
                h[1] += shift
        self.c_last_w += shift
        self.s_last_w += shift

    @property
    def done(self) -> bool:
        """Every row pushed so far written, every sum written (the call's last sum included)."""
        return (not self.pushes and not self.tiles and not self.tile_open and not self.wq and self.q_push is None
                and not self.w_busy and not self.w_order and self.ports[0].sent_final and self.ports[1].sent_final)

    def finish(self) -> int:
        """The call's cycles register, once done: C's last response counted (the C writer's done, five cycles
        after its last W beat, as cycle_model._Writer.finish) and the sums' (four after theirs)."""
        return max(self.c_last_w + 5, self.s_last_w + 4)
