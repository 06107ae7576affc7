"""cpt_hw.hw.cycle_model against the Verilog twin, cycle for cycle, on both geometries of the RTL tests:
every call without back-pressure -- edge and random shapes, B prefetch hits, misses and random chains of
prefetching calls -- takes exactly the cycles the model gives.  The precision scaling cycles(3,3) /
cycles(8,8) <= 1.15 x 9/64 on a compute-bound GEMM is asserted inside the cocotb test test_model_shapes,
which also checks every result bit-exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_rtl import WIDE

from cpt_hw.flows import rtl_sim
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.cycle_model import Prefetch, gemm_cycles, setup_cycles

pytestmark = pytest.mark.sim


def compare(cfg: HardwareConfig, records: list[dict]) -> list[str]:
    """The calls (without back-pressure) whose RTL cycles differ from the model's."""
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
        if est != rec["cycles"]:
            bad.append(f"{rec['m']}x{rec['n']}x{rec['k']} ({rec['a_bits']},{rec['b_bits']})"
                       f"{' hit' if rec.get('b_hit') else ''}{' hinted' if rec.get('prefetch') else ''}: "
                       f"RTL {rec['cycles']}, model {est}")
    return bad


def random_chains(cfg: HardwareConfig, count: int, seed: int) -> list[list[list[int]]]:
    """Chains of 2-3 calls sharing N (as the driver's K chunks do), random M, K and precisions (K at most
    8 D-bit words, so that a zc706 chain simulates in seconds)."""
    rng = np.random.default_rng(seed)
    chains = []
    for _ in range(count):
        n = int(rng.integers(1, 2 * cfg.b_block_cols + 2))
        k_max = min(cfg.k_max, 8 * cfg.dot_width)
        chains.append([[int(rng.integers(1, 4 * cfg.rows + 1)), n, int(rng.integers(1, k_max + 1)),
                        *(int(b) for b in rng.integers(1, cfg.operand_bits + 1, size=2))]
                       for _ in range(int(rng.integers(2, 4)))])
    return chains


@pytest.mark.parametrize("geometry", ["sim", "simwide"])
def test_model_matches_rtl(geometry):
    cfg = HardwareConfig.from_preset("sim", WIDE if geometry == "simwide" else ())
    result = rtl_sim.run(cfg, "verilator", "test_cpt_gemm",
                       testcase=["test_model_shapes", "test_random_gemms", "test_prefetch"], seed=7)
    assert result.ok, result.summary()
    chains = rtl_sim.run(cfg, "verilator", "bench_cpt_gemm", seed=7,
                       extra_env={"CPT_HW_BENCH_CHAINS": json.dumps(random_chains(cfg, 10, seed=7))})
    assert chains.ok, chains.summary()
    checked = [r for r in result.records + chains.records if not r["backpressure"]]
    assert len(checked) >= 60
    # prefetch hits, and calls that prefetch (hits and misses of the next call), are among them
    assert sum(bool(r.get("b_hit")) for r in checked) >= 10 and sum(bool(r.get("prefetch")) for r in checked) >= 20
    bad = compare(cfg, checked)
    assert not bad, "cycle model differs from the RTL:\n" + "\n".join(bad)
