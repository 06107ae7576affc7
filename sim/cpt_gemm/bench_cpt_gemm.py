"""Benchmark driver (not a test of a module): runs the GEMMs listed in CPT_HW_BENCH_SHAPES.

CPT_HW_BENCH_SHAPES is a JSON list of [M, N, K, a_bits, b_bits]; each GEMM runs without back-pressure,
is checked bit-exactly against cpt_hw.hw.golden and recorded (cycles) for bench/bench_rtl.py.
CPT_HW_BENCH_CHAINS is a JSON list of chains, each a list of such shapes run back to back, every call
prefetching the next one's B (as the driver runs a K-split GEMM); records say which calls hit.
"""

from __future__ import annotations

import json
import os

import cocotb

from sim.cpt_gemm.tb import CptGemmTB, check_gemm, run_staged, stage
from sim.tbutil import seeded_rng


@cocotb.test(timeout_time=10, timeout_unit="sec")
async def bench_shapes(dut):
    shapes = json.loads(os.environ.get("CPT_HW_BENCH_SHAPES", "[]"))
    tb = CptGemmTB(dut, mem_size=int(os.environ.get("CPT_HW_BENCH_MEM", str(1 << 22))))
    await tb.reset()
    rng = seeded_rng("bench")
    for m, n, k, a_bits, b_bits in shapes:
        await check_gemm(tb, rng, m, n, k, a_bits, b_bits, False, False, name="bench_shapes",
                         check_untouched=False)
    for chain in json.loads(os.environ.get("CPT_HW_BENCH_CHAINS", "[]")):
        staged = [stage(tb, rng, m, n, k, a_bits, b_bits) for m, n, k, a_bits, b_bits in chain]
        for i, s in enumerate(staged):
            hint = staged[i + 1].hint() if i + 1 < len(staged) else None
            await run_staged(tb, s, "bench_chains", hint=hint)
            assert tb.last_hit == (i > 0)
        tb.free_all()
