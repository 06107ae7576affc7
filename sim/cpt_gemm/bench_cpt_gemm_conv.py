"""Benchmark driver (not a test of a module): runs the conv calls listed in CPT_HW_BENCH_CONV on the twin.

CPT_HW_BENCH_CONV is a JSON list of calls, each a dict of ``test_cpt_gemm_conv.place``'s keywords (op, batch,
c, k, h, w, kh, kw, stride, padding, a_bits, b_bits, a_signed, b_signed, flags) plus ``name``; each runs without
back-pressure, is checked byte for byte against the emulated device (``test_cpt_gemm_conv.run_conv``) and
recorded (the twin's cycles next to the design's model and the HLS busy count) for bench/bench_conv_twin.py.

A weight gradient with ``"chain": True`` runs as a chain of three calls of ``batch`` images each, as the driver
runs a layer's calls (``test_cpt_gemm_conv.wgrad_chunks``): the first cold with the prefetch hint (recorded as
``name``), the second hitting it with a hint (``name/hit``), the last hitting it without (``name/last``).
"""

from __future__ import annotations

import json
import os

import cocotb

from sim.cpt_gemm.tb import CptGemmTB
from sim.cpt_gemm.test_cpt_gemm_conv import place, run_conv, wgrad_chunks
from sim.tbutil import seeded_rng


@cocotb.test(timeout_time=6 * 3600, timeout_unit="sec")   # all of ResNet-74's weight gradients: about an hour
async def bench_conv(dut):
    calls = json.loads(os.environ.get("CPT_HW_BENCH_CONV", "[]"))
    tb = CptGemmTB(dut, mem_size=int(os.environ.get("CPT_HW_BENCH_MEM", str(1 << 22))))
    tb.variant = ""
    await tb.reset()
    rng = seeded_rng("bench_conv")
    for spec in calls:
        spec = dict(spec)
        name = spec.pop("name")
        if spec.pop("chain", False):
            spec.pop("op")
            chunk = wgrad_chunks(tb, rng, 3, **spec)
            await run_conv(tb, chunk(0, 1), name, keep=True)
            await run_conv(tb, chunk(1, 2), name + "/hit", keep=True)
            await run_conv(tb, chunk(2), name + "/last")
        else:
            await run_conv(tb, place(tb, rng, **spec), name)
