"""cocotb system tests of cpt_gemm: whole calls through AXI4-Lite and AXI4, bit-exact against golden."""

from __future__ import annotations

import cocotb
import numpy as np

from cpt_hw import golden
from cpt_tb import CptGemmTB
from tbutil import random_operand, seeded_rng


@cocotb.test()
async def test_smoke(dut):
    tb = CptGemmTB(dut)
    await tb.reset()
    rng = seeded_rng("smoke")
    cfg = tb.cfg
    for (m, n, k, ab, bb, sa, sb) in [(3, 2, 32, 1, 1, False, False), (5, 7, 70, 3, 2, True, False),
                                      (4, 9, 256, 8, 8, True, True)]:
        a = random_operand(rng, (m, k), ab, sa)
        b = random_operand(rng, (k, n), bb, sb)
        run = await tb.gemm(a, b, ab, bb, sa, sb, name="smoke")
        assert run.status == 0, f"status {run.status:#x}"
        want = golden.gemm(a, b, ab, bb, sa, sb, acc_width=cfg.acc_width)
        assert np.array_equal(run.c, want), f"{m}x{n}x{k} ({ab},{bb}):\n{run.c}\n!=\n{want}"
        dut._log.info("%dx%dx%d (%d,%d): %d cycles", m, n, k, ab, bb, run.cycles)
