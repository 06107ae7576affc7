"""The DMA buffer pool: first-fit leases over one arena, returned on every exception, no growth in steady state."""

import gc
import sys

import numpy as np
import pytest

from cpt_driver import Accelerator, ArgumentError, PoolExhaustedError, resolve_spec
from cpt_driver.backends.emu import EmuBackend
from cpt_driver.pool import BufferPool
from cpt_hw.hw.config import HardwareConfig

SIM = HardwareConfig.from_preset("sim")


@pytest.fixture
def backend():
    return EmuBackend(resolve_spec(SIM))


def test_leases_are_aligned_coalesced_and_returned(backend):
    arenas = []
    pool = BufferPool(backend, budget=1 << 20, on_new_arena=arenas.append)
    with pool.lease([100, 1, 64]) as (r1, r2, r3):
        assert [r.offset for r in (r1, r2, r3)] == [0, 128, 192]
        assert r1.phys % 64 == 0 and r1.array.size == 100 and r2.array.size == 1
        assert pool.outstanding == 3
        with pool.lease([10]) as (r4,):
            assert r4.offset == 256
        r1.array[:] = 7
        assert backend.memory.view(r1.phys, 100).tolist() == [7] * 100  # host view = device memory
    assert pool.outstanding == 0 and pool.free_blocks == [(0, pool.arena_bytes)]
    assert len(arenas) == 1 and pool.arena_allocations == 1


def test_growth_budget_and_fragmentation(backend):
    pool = BufferPool(backend, budget=4 << 20)
    with pool.lease([10]):
        pass
    first = pool.arena
    with pool.lease([3 << 20]):  # does not fit the 1 MiB arena: an idle pool grows to the next power of two
        assert pool.arena_bytes == 4 << 20
    assert pool.arena_allocations == 2 and first.phys not in backend.memory.regions()  # old arena freed
    with pytest.raises(PoolExhaustedError, match="needs 5242880 bytes of DMA memory, the pool budget is 4194304"):
        with pool.lease([5 << 20]):
            pass
    with pool.lease([3 << 20]):
        with pytest.raises(PoolExhaustedError, match="fragmented"):  # no growth while leases are out
            with pool.lease([2 << 20]):
                pass
    assert pool.outstanding == 0 and pool.free_blocks == [(0, 4 << 20)]


def test_exception_inside_lease_returns_everything(backend):
    pool = BufferPool(backend, budget=1 << 20)
    with pytest.raises(KeyboardInterrupt):
        with pool.lease([100, 200]):
            raise KeyboardInterrupt
    assert pool.outstanding == 0 and pool.free_blocks == [(0, pool.arena_bytes)]


class FlakyEmu(EmuBackend):
    """Completes every call, but the wait raises on a schedule (a host-side failure mid-call)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.waits = 0

    def wait_done(self, timeout_s):
        self.waits += 1
        if self.waits % 5 == 0:
            raise RuntimeError("injected host failure")
        if self.waits % 7 == 0:
            raise KeyboardInterrupt
        return super().wait_done(timeout_s)


def test_no_growth_over_10000_calls_with_failures():
    backend = FlakyEmu(resolve_spec(SIM))
    acc = Accelerator(backend)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 16, size=(7, 60))
    b = rng.integers(0, 16, size=(60, 5))
    bad = a + 16
    expected = a @ b
    outcomes = {"ok": 0, "RuntimeError": 0, "KeyboardInterrupt": 0, "ArgumentError": 0}
    for i in range(10_000):
        if i == 1000:  # after warm-up (the bounded call history is full by now)
            gc.collect()
            base_objects, base_blocks = len(gc.get_objects()), sys.getallocatedblocks()
        try:
            if i % 11 == 0:
                acc.gemm(bad, b, 4, 4)
            else:
                np.testing.assert_array_equal(acc.gemm(a, b, 4, 4), expected)
                outcomes["ok"] += 1
        except (RuntimeError, KeyboardInterrupt, ArgumentError) as e:
            outcomes[type(e).__name__] += 1
            # the injected failure leaves ap_done unread; the next call's idle check consumes it
        assert acc.pool.outstanding == 0
    gc.collect()
    grown_objects, grown_blocks = len(gc.get_objects()) - base_objects, sys.getallocatedblocks() - base_blocks
    assert all(outcomes.values()), outcomes
    assert acc.pool.arena_allocations == 1 and acc.pool.free_blocks == [(0, acc.pool.arena_bytes)]
    assert len(backend.memory.regions()) == 1  # the arena is the only DMA memory ever held
    # a leak of one object or block per call would show up 9,000 times
    assert grown_objects < 100 and grown_blocks < 1000, (grown_objects, grown_blocks)
