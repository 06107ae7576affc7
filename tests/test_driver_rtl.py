"""The same driver calls on the emu backend and on the generated Verilog under cocotb (Icarus, Verilator).

The pytest function below builds the ``sim`` preset's RTL and runs this very module as the cocotb test
module; inside the simulator :func:`compare` drives ``Accelerator(RtlBackend)`` and ``Accelerator("emu")``
with identical calls and writes what it saw to a JSON file, which the pytest side checks:

* results bit-exact between emu, RTL and ``cpt_hw.hw.golden`` (every precision pair class, signedness, tiling
  over k_max and max_dim, edge tiles);
* every call's cycle count of the emu (the cycle model) equal to the RTL's ``cycles`` register;
* addresses forged past the driver (outside the DMA window it programmed) refused by both devices alike:
  ERR_WINDOW, the same cycles, every byte of the RAM model / emulated memory unchanged;
* no stale B prefetch: a GEMM stopped between two calls (KeyboardInterrupt from a hook), or a process
  killed there and a new one attaching, leaves a prefetched B on the device for an address the next
  GEMM's B gets again; that GEMM (other B, same N, K, b_bits) must equal the golden model and take the
  cycles of a miss, on the RTL as on the emu.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PRESET = "sim"

#: (M, K, N, a_bits, b_bits, a_signed, b_signed): small enough for a quick simulation, yet covering edge
#: tiles of the 3 x 2 array, several B blocks, K > k_max (two calls summed on the host), 1-bit and 8-bit.
CASES = [
    (3, 32, 2, 8, 8, False, False),
    (4, 300, 3, 8, 3, True, True),
    (1, 1, 1, 2, 2, True, True),
    (5, 70, 7, 4, 6, True, False),
    (7, 33, 9, 1, 8, False, True),
    (8, 64, 5, 5, 7, False, False),
]


def compare(tb, clock_period_ns: float) -> dict:
    """Runs in cocotb's bridge thread: identical driver calls on RTL and emu.  tb: sim/cpt_gemm/tb.py's CptGemmTB."""
    from cpt_driver import Accelerator

    # 1 ms of simulated time is 100k cycles at 10 ns: 15x the longest call here, so a hang fails fast.
    def on_rtl(**kwargs):
        return Accelerator("rtl", config=tb.cfg, dut=tb.dut, axil=tb.ctrl, ram=tb.ram,
                           clock_period_ns=clock_period_ns, timeout_s=1e-3, **kwargs)

    rtl = on_rtl()
    emu = Accelerator("emu", config=tb.cfg)
    rng = np.random.default_rng(2024)
    out = {"calls": [], "mismatches": [], "errors": [], "forged": {"rtl": [], "emu": []}}
    for i, case in enumerate(CASES):
        if not run_case(rtl, emu, case, rng, out):
            return out  # a hung kernel stays busy: nothing more can run on this DUT
        if i == 0:  # the pool and its DMA window exist now
            out["forged"]["rtl"] = forge_addresses(rtl, lambda be, p, n: bytes(be.ram.read(p, n)))
            out["forged"]["emu"] = forge_addresses(emu, lambda be, p, n: be.memory.view(p, n).tobytes())
    out["stale"] = {side: stale_prefetch(make) for side, make in
                    (("rtl", on_rtl), ("emu", lambda **kw: Accelerator("emu", config=tb.cfg, **kw)))}
    return out


#: An M-split GEMM (24 rows, 12 per call within this pool budget) whose two calls share one B tile: the
#: first call's hint names that tile's own address (tests/test_driver_emu.py has the same on emu alone).
STALE_POOL, STALE_M, STALE_K, STALE_N, STALE_BITS = 1024, 24, 64, 3, 4


def _record_runs(acc, stop_after=None):
    """Log (b, n, k, hint) of every device call; raise KeyboardInterrupt right after call ``stop_after``."""
    log, run = [], acc._run

    def hooked(*args):
        cycles = run(*args)
        log.append((args[1], args[4], args[5], args[9], cycles))
        if len(log) == stop_after:
            raise KeyboardInterrupt
        return cycles

    acc._run = hooked
    return log


def _interrupted(acc, a, b) -> tuple:
    """Stop a two-call GEMM after its first call; the hint (B address, N, K) that call left behind."""
    log = _record_runs(acc, stop_after=1)
    try:
        acc.gemm(a, b, STALE_BITS, STALE_BITS)
    except KeyboardInterrupt:
        pass
    return tuple(log[0][3])


def _after(acc, hint, a, b) -> dict:
    """The next GEMM with another B: its first call's (b, n, k) against the hint, result, cycles."""
    from cpt_hw.hw import golden

    log = _record_runs(acc)
    c = acc.gemm(a, b, STALE_BITS, STALE_BITS)
    return {"same_key": tuple(log[0][:3]) == hint, "exact": bool(np.array_equal(c, golden.gemm(a, b, STALE_BITS,
            STALE_BITS))), "cycles": [r[4] for r in log]}


def stale_prefetch(make_acc) -> dict:
    """Both ways a prefetched B can outlive its GEMM, on the accelerator ``make_acc(**kwargs)`` builds."""
    from cpt_driver import Accelerator

    rng = np.random.default_rng(7)
    a, b1, b2, b3 = (rng.integers(0, 1 << STALE_BITS, size=s)
                     for s in ((STALE_M, STALE_K), *((STALE_K, STALE_N),) * 3))
    acc = make_acc(pool_bytes=STALE_POOL)
    out = {"interrupted": _after(acc, _interrupted(acc, a, b1), a[:12], b2)}
    # A process killed between two calls runs no clean-up; the next one attaches and gets its DMA memory back.
    dead = make_acc(pool_bytes=STALE_POOL)
    dead._clear_prefetch_after_error = lambda: None
    hint = _interrupted(dead, a, b3)
    dead.backend.allocate = lambda nbytes: dead.pool.arena
    out["attached"] = _after(Accelerator(dead.backend, pool_bytes=STALE_POOL), hint, a[:12], b2)
    return out


def run_case(rtl, emu, case, rng, out: dict) -> bool:
    """One gemm on both backends; records results and every device call's cycles.  False after a hang."""
    from cpt_driver import DeviceTimeoutError, DriverError
    from cpt_hw.hw import golden

    m, k, n, ab, bb, sa, sb = case
    lo, hi = golden.operand_range(ab, sa)
    a = rng.integers(lo, hi + 1, size=(m, k))
    lo, hi = golden.operand_range(bb, sb)
    b = rng.integers(lo, hi + 1, size=(k, n))
    h_rtl, h_emu = len(rtl.history), len(emu.history)
    try:
        c_rtl = rtl.gemm(a, b, ab, bb, sa, sb)
    except DriverError as e:
        out["errors"].append({"case": case, "error": f"{type(e).__name__}: {e}"})
        return not isinstance(e, DeviceTimeoutError)
    c_emu = emu.gemm(a, b, ab, bb, sa, sb)
    ref = golden.gemm(a, b, ab, bb, sa, sb)
    if not (np.array_equal(c_rtl, ref) and np.array_equal(c_emu, ref)):
        out["mismatches"].append(case)
    for r, e in zip(list(rtl.history)[h_rtl:], list(emu.history)[h_emu:]):
        out["calls"].append({"case": case, "m": r.m, "n": r.n, "k": r.k, "a_bits": r.a_bits, "b_bits": r.b_bits,
                             "rtl_cycles": r.cycles, "emu_cycles": e.cycles,
                             "same_call": (r.m, r.n, r.k, r.a_bits, r.b_bits, r.flags)
                             == (e.m, e.n, e.k, e.a_bits, e.b_bits, e.flags)})
    return True


def forge_addresses(acc, read_memory) -> list[dict]:
    """Memory safety: addresses forged past the driver (as a buggy or hostile caller would write them)
    must be refused with ERR_WINDOW and leave every byte of device memory as it was.

    read_memory(backend, phys, nbytes) -> bytes reads the device's memory (RAM model or emulated DDR).
    """
    be = acc.backend
    victim = be.allocate(4096)  # memory outside the driver's pool
    victim.array[:] = np.arange(4096) % 251
    victim.flush(0, 4096)
    arena = acc.pool.arena
    regions = [(arena.phys, arena.nbytes), (victim.phys, victim.nbytes)]
    snapshot = [read_memory(be, p, n) for p, n in regions]
    base = dict(a=arena.phys, b=arena.phys, c=arena.phys + 1024, m=3, n=2, k=32, a_bits=8, b_bits=8, flags=0)
    seen = []
    for forged in ({"c": victim.phys}, {"a": victim.phys}, {"c": arena.phys + arena.nbytes - 16}):
        for name, value in {**base, **forged}.items():
            acc._write_arg(name, value)
        be.write_reg(acc.spec.registers["CTRL"], 1 << acc.spec.ctrl_bits["AP_START"])
        done = be.wait_done(1e-3)
        unchanged = [read_memory(be, p, n) for p, n in regions] == snapshot
        seen.append({"forged": sorted(forged), "done": done, "status": acc._read_arg("status"),
                     "cycles": acc._read_arg("cycles"), "memory_unchanged": unchanged})
    return seen


try:
    import cocotb

    _IN_SIM = cocotb.is_simulation
except ImportError:  # pragma: no cover - cocotb is a test dependency
    _IN_SIM = False

if _IN_SIM:
    @cocotb.test()
    async def driver_emu_vs_rtl(dut):
        from sim.cpt_gemm.tb import run_driver_in_sim  # the checkout's root is on the simulator's PYTHONPATH

        await run_driver_in_sim(dut, compare)


# ----------------------------------------------------------------------------- pytest side

@pytest.mark.sim
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_driver_emu_vs_rtl(simulator, driver_on_rtl):
    from cpt_hw.hw.config import HardwareConfig

    res = driver_on_rtl(HardwareConfig.from_preset(PRESET), simulator, __file__)
    assert res["errors"] == [], res["errors"]
    assert res["mismatches"] == [] and len(res["forged"]["rtl"]) == 3
    assert len(res["calls"]) >= len(CASES) and all(c["same_call"] for c in res["calls"])
    off = [c for c in res["calls"] if c["emu_cycles"] != c["rtl_cycles"]]
    assert not off, f"cycle model differs from the RTL on {len(off)} of {len(res['calls'])} calls: {off}"
    window = 1 << 3  # ERR_WINDOW
    for side in ("rtl", "emu"):
        assert [f["status"] for f in res["forged"][side]] == [window] * 3, res["forged"]
        assert all(f["done"] and f["memory_unchanged"] for f in res["forged"][side]), res["forged"]
    assert res["forged"]["rtl"] == res["forged"]["emu"]  # refused alike, in the same number of cycles
    for how in ("interrupted", "attached"):
        rtl, emu = res["stale"]["rtl"][how], res["stale"]["emu"][how]
        assert rtl["same_key"] and rtl["exact"] and emu["same_key"] and emu["exact"], res["stale"]
        assert rtl["cycles"] == emu["cycles"], res["stale"]  # the cycles of a miss: the emu hit nothing
