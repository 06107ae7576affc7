"""cpt_hw.cycle_model against the Verilog twin: cycles within 2 % (exact without back-pressure so far),
B prefetch hits, misses and prefetching calls included,
and the precision scaling cycles(3,3) / cycles(8,8) <= 1.15 x 9/64 on a compute-bound GEMM (asserted
inside the cocotb test test_model_shapes, which also checks every result bit-exactly)."""

from __future__ import annotations

import pytest

from cpt_hw import hwsim
from cpt_hw.config import HardwareConfig
from cpt_hw.cycle_model import Prefetch, gemm_cycles, setup_cycles

pytestmark = pytest.mark.sim

TOLERANCE = 0.02


def compare(cfg: HardwareConfig, records: list[dict]) -> list[str]:
    bad = []
    for rec in records:
        if rec["backpressure"]:
            continue
        if rec["status"]:
            est = setup_cycles(cfg)
        else:
            hint = Prefetch(*rec["prefetch"]) if rec.get("prefetch") else None
            est = gemm_cycles(cfg, rec["m"], rec["n"], rec["k"], rec["a_bits"], rec["b_bits"],
                              a_addr=rec["a_addr"], b_addr=rec["b_addr"], c_addr=rec["c_addr"],
                              b_prefetched=rec.get("b_hit", False), prefetch=hint).total
        if abs(est - rec["cycles"]) > TOLERANCE * rec["cycles"]:
            bad.append(f"{rec['m']}x{rec['n']}x{rec['k']} ({rec['a_bits']},{rec['b_bits']}): "
                       f"RTL {rec['cycles']}, model {est}")
    return bad


def test_model_matches_rtl():
    cfg = HardwareConfig.from_preset("sim")
    result = hwsim.run(cfg, "verilator", "test_cpt_gemm",
                       testcase=["test_model_shapes", "test_random_gemms", "test_prefetch"], seed=7)
    assert result.ok, result.summary()
    checked = [r for r in result.records if not r["backpressure"]]
    assert len(checked) >= 15
    # prefetch hits, and calls that prefetch (hits and misses of the next call), are among them
    assert any(r.get("b_hit") for r in checked) and any(r.get("prefetch") for r in checked)
    bad = compare(cfg, checked)
    assert not bad, "cycle model off by more than 2 %:\n" + "\n".join(bad)
