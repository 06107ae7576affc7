"""The driver's DMA memory: one contiguous arena from the backend, carved into short leases.

One arena, not many buffers, because the accelerator's DMA window is one byte range: the driver programs
``[arena.phys, arena.phys + arena size)`` and so the device can reach the driver's own buffers and
nothing else.  The arena is allocated on first use, sized to the first request rounded up to a power of
two, and replaced by a larger one only when a request does not fit (at most log2(budget) times); a
steady stream of calls therefore never allocates.  Leases are context managers: their memory goes back
to the free list however the ``with`` block ends.
"""

from __future__ import annotations

import bisect
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from .backend import Backend, DmaBuffer
from .errors import PoolExhaustedError

#: Leases start on 64-byte boundaries (a cache line; a multiple of every legal word_bytes up to 512 bits).
MIN_ALIGN = 64
MIN_ARENA = 1 << 20


@dataclass(frozen=True)
class Region:
    """A leased byte range of the arena: host view ``array`` (uint8) at bus address ``phys``."""

    buffer: DmaBuffer
    offset: int
    nbytes: int

    @property
    def phys(self) -> int:
        return self.buffer.phys + self.offset

    @property
    def array(self) -> np.ndarray:
        return self.buffer.array[self.offset:self.offset + self.nbytes]

    def flush(self, nbytes: int | None = None) -> None:
        self.buffer.flush(self.offset, self.nbytes if nbytes is None else nbytes)

    def invalidate(self, nbytes: int | None = None) -> None:
        self.buffer.invalidate(self.offset, self.nbytes if nbytes is None else nbytes)


def round_up(x: int, a: int) -> int:
    """x rounded up to a multiple of a."""
    return -(-x // a) * a


class BufferPool:
    """First-fit allocator with coalescing over one backend buffer.

    backend: where the arena comes from.  budget: largest arena in bytes.  align: lease alignment
    (rounded up to a multiple of 64).  on_new_arena: called with the new buffer whenever the arena is
    (re)allocated, so the driver can reprogram the DMA window.
    """

    def __init__(self, backend: Backend, *, budget: int, align: int = MIN_ALIGN,
                 on_new_arena: Callable[[DmaBuffer], None] | None = None):
        self.backend = backend
        self.budget = int(budget)
        self.align = round_up(max(align, MIN_ALIGN), MIN_ALIGN)
        self.on_new_arena = on_new_arena
        self.arena: DmaBuffer | None = None
        self.arena_allocations = 0   # how many times the backend was asked for an arena
        self._free: list[tuple[int, int]] = []   # sorted (offset, size) of free blocks
        self._leased: dict[int, int] = {}        # offset -> size of blocks in use

    # ------------------------------------------------------------------ public
    @property
    def arena_bytes(self) -> int:
        return self.arena.nbytes if self.arena is not None else 0

    @property
    def outstanding(self) -> int:
        """Blocks currently leased (0 whenever no call is in flight)."""
        return len(self._leased)

    @property
    def free_blocks(self) -> list[tuple[int, int]]:
        return list(self._free)

    def need(self, sizes: Sequence[int]) -> int:
        """Arena bytes a lease of ``sizes`` takes when the arena is empty."""
        return sum(round_up(max(int(s), 1), self.align) for s in sizes)

    @contextmanager
    def lease(self, sizes: Sequence[int]) -> Iterator[tuple[Region, ...]]:
        """Regions of the given byte sizes for the duration of a ``with`` block."""
        regions = self._take(sizes)
        try:
            yield regions
        finally:
            for r in regions:
                self._give(r.offset)

    def close(self) -> None:
        if self._leased:
            raise PoolExhaustedError(f"cannot close the buffer pool: {len(self._leased)} lease(s) outstanding")
        if self.arena is not None:
            self.arena.free()
        self.arena = None
        self._free = []

    # ------------------------------------------------------------------ internals
    def _take(self, sizes: Sequence[int]) -> tuple[Region, ...]:
        need = self.need(sizes)
        if need > self.budget:
            raise PoolExhaustedError(f"a call needs {need} bytes of DMA memory, the pool budget is "
                                     f"{self.budget} bytes (raise pool_bytes or use smaller tiles)")
        taken: list[int] = []
        try:
            for s in sizes:
                off = self._first_fit(round_up(max(int(s), 1), self.align))
                if off is None:
                    if taken or self._leased:
                        raise PoolExhaustedError(f"buffer pool fragmented: {need} bytes requested, free blocks "
                                                 f"{self._free} of an arena of {self.arena_bytes} bytes")
                    self._grow(need)
                    off = self._first_fit(round_up(max(int(s), 1), self.align))
                    assert off is not None
                taken.append(off)
        except BaseException:
            for off in taken:
                self._give(off)
            raise
        assert self.arena is not None
        return tuple(Region(self.arena, off, int(s)) for off, s in zip(taken, sizes))

    def _first_fit(self, size: int) -> int | None:
        for i, (off, blk) in enumerate(self._free):
            if blk >= size:
                if blk == size:
                    del self._free[i]
                else:
                    self._free[i] = (off + size, blk - size)
                self._leased[off] = size
                return off
        return None

    def _give(self, off: int) -> None:
        size = self._leased.pop(off)
        i = bisect.bisect(self._free, (off, size))
        self._free.insert(i, (off, size))
        # Coalesce with the right neighbour, then with the left one.
        if i + 1 < len(self._free) and off + size == self._free[i + 1][0]:
            size += self._free.pop(i + 1)[1]
            self._free[i] = (off, size)
        if i > 0 and self._free[i - 1][0] + self._free[i - 1][1] == off:
            prev_off, prev_size = self._free.pop(i - 1)
            self._free[i - 1] = (prev_off, prev_size + size)

    def _grow(self, need: int) -> None:
        """Replace the (idle) arena by one of the next power of two >= need, capped at the budget."""
        size = max(MIN_ARENA, 1 << (need - 1).bit_length())
        size = min(size, self.budget)
        if self.arena is not None:
            self.arena.free()
            self.arena = None
            self._free = []
        self.arena = self.backend.allocate(size)
        self.arena_allocations += 1
        self._free = [(0, size)]
        if self.on_new_arena is not None:
            self.on_new_arena(self.arena)
