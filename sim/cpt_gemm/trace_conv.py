"""Event trace of conv calls on the twin: a debugging aid for the conv cycle model (cpt_hw.hw.twin_cycle_model),
not a test.  Icarus only (the probes read cpt_core's and cpt_conv_walker's internal signals).

    python -m sim.cpt_gemm.trace_conv OUT_DIR '[{"name": "t1", "batch": 1, "c": 5, "k": 4, "h": 5, "w": 6, "kh": 3,
        "kw": 3, "stride": 1, "padding": 0, "a_bits": 2, "b_bits": 2, "a_signed": false, "b_signed": false}]' [sim_conv]

Each dict holds ``test_cpt_gemm_conv.place``'s keywords plus ``name``; OUT_DIR receives ``<name>.json``: the call's
arguments, the twin's ``cycles`` and, per event kind (AR/R/AW/W/B handshakes, X words taken, A tiles issued,
loaded and released, B loaded and released, C FIFO pushes, each lane's valid words, the walker's state), the
cycles (cpt_core's cycle_count) at which it happened: compare them with the model's to find where it parts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from cpt_hw.fileio import write_atomic
from sim.cpt_gemm.tb import CptGemmTB
from sim.cpt_gemm.test_cpt_gemm_conv import place, run_conv
from sim.tbutil import seeded_rng


def _v(sig) -> int:
    try:
        return int(sig.value)
    except ValueError:
        return 0


async def _monitor(dut, events: dict[str, list]) -> None:
    core = dut.core
    walker = core.walker
    while True:
        await RisingEdge(dut.ap_clk)
        await ReadOnly()
        c = _v(core.cycle_count)
        if _v(core.kstate) == 0:
            continue
        probes = {
            "ar": _v(dut.m_axi_gmem_ARVALID) and _v(dut.m_axi_gmem_ARREADY),
            "r": _v(dut.m_axi_gmem_RVALID) and _v(dut.m_axi_gmem_RREADY),
            "rvalid": _v(dut.m_axi_gmem_RVALID),
            "x": _v(core.x_valid) and _v(core.fw_x_ready),
            "a_issue": _v(core.a_issue),
            "a_loaded": _v(core.a_loaded),
            "b_loaded": _v(core.b_loaded),
            "a_release": _v(core.a_release),
            "b_release": _v(core.b_release),
            "fifo_push": _v(core.fifo_push),
            "aw": _v(dut.m_axi_gmem_AWVALID) and _v(dut.m_axi_gmem_AWREADY),
            "w": _v(dut.m_axi_gmem_WVALID) and _v(dut.m_axi_gmem_WREADY),
            "b": _v(dut.m_axi_gmem_BVALID) and _v(dut.m_axi_gmem_BREADY),
            "run_start": _v(core.run_start),
        }
        for k, on in probes.items():
            if on:
                events.setdefault(k, []).append(c)
        events.setdefault("wstate", []).append((c, _v(walker.state)))
        for li in range(4):
            f = getattr(walker, "lane")[li].former
            if _v(f.m_valid):
                events.setdefault(f"m{li}", []).append(c)


@cocotb.test(timeout_time=3600, timeout_unit="sec")
async def trace_conv(dut):
    calls = json.loads(os.environ.get("CPT_HW_TRACE_CONV", "[]"))
    out = Path(os.environ["CPT_HW_TRACE_OUT"])
    tb = CptGemmTB(dut, mem_size=int(os.environ.get("CPT_HW_BENCH_MEM", str(1 << 20))))
    tb.variant = ""
    await tb.reset()
    rng = seeded_rng("trace_conv")
    for spec in calls:
        spec = dict(spec)
        name = spec.pop("name")
        call = place(tb, rng, **spec)
        events: dict[str, list] = {}
        mon = cocotb.start_soon(_monitor(dut, events))
        cycles = await run_conv(tb, call, name)
        mon.cancel()
        fields = {f: getattr(call, f) for f in call.__dataclass_fields__}
        write_atomic(out / f"{name}.json", json.dumps({"cycles": cycles, "call": fields, "events": events}))


if __name__ == "__main__":
    import sys

    from cpt_hw.flows import rtl_sim
    from sim.cpt_gemm.test_cpt_gemm_conv import config

    def usage(problem: str) -> None:
        print(f"trace_conv: {problem} (usage: python -m sim.cpt_gemm.trace_conv OUT_DIR CALLS_JSON [CONFIG])",
              file=sys.stderr)
        raise SystemExit(2)

    if len(sys.argv) not in (3, 4):
        usage(f"{len(sys.argv) - 1} arguments, want 2 or 3")
    try:
        specs = json.loads(sys.argv[2])
    except json.JSONDecodeError as e:
        usage(f"CALLS_JSON is not JSON: {e}")
    if not isinstance(specs, list) or not all(isinstance(s, dict) and "name" in s for s in specs):
        usage("CALLS_JSON must be a list of objects, each with a name")
    geometry = sys.argv[3] if len(sys.argv) == 4 else "sim_conv"
    try:
        cfg = config(geometry)
    except KeyError:
        usage(f"config {geometry!r} is not one of the conv test geometries")
    target = Path(sys.argv[1]).resolve()
    target.mkdir(parents=True, exist_ok=True)
    result = rtl_sim.run(cfg, "icarus",
                         "sim.cpt_gemm.trace_conv", toplevel="cpt_gemm",
                         extra_env={"CPT_HW_TRACE_CONV": sys.argv[2], "CPT_HW_TRACE_OUT": str(target)})
    print(result.summary())
