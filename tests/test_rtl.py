"""The quick RTL subset of `make test`: cocotb unit and system tests on Icarus and on Verilator.

`make sim` runs everything (cpt_hw.flows.rtl_sim.SUITE); tests/test_rtl_full.py holds the long system tests
(every precision pair, stress) under the slow marker.  Seeds are fixed so CI is reproducible; set
CPT_HW_SIM_SEED to explore others.
"""

from __future__ import annotations

import os

import pytest

from cpt_hw.flows import rtl_sim
from cpt_hw.hw.config import HardwareConfig

pytestmark = pytest.mark.sim

SEED = int(os.environ.get("CPT_HW_SIM_SEED", "20250101"))

QUICK_SYSTEM = ("test_registers,test_random_gemms,test_backpressure,test_back_to_back,test_refused_calls,"
                "test_bus_error,test_interrupts,test_prefetch,test_prefetch_chain")

#: A second geometry for the paths the sim preset cannot reach: ten rows (a partial tile queues more
#: skipped rows than the writer's burst queue holds), two AXI beats per D-bit word, rows of C split into
#: several bursts, a 26-bit accumulator sign-extended into C, non-power-of-two rows.
WIDE = {"name": "simwide", "rows": 10, "cols": 4, "dot_width": 64, "axi_data_width": 32, "burst_beats": 2,
        "k_words": 4, "b_block_cols": 8, "max_dim": 1024, "acc_width": 26}


@pytest.fixture(scope="module")
def cfg() -> HardwareConfig:
    return HardwareConfig.from_preset("sim")


@pytest.mark.parametrize("simulator", rtl_sim.SIMULATORS)
@pytest.mark.parametrize("module", ["test_and_popcount", "test_pe", "test_pe_array"])
def test_units(cfg, simulator, module):
    result = rtl_sim.run(cfg, simulator, module, toplevel=rtl_sim.toplevel_of(module), seed=SEED)
    assert result.ok, result.summary()


@pytest.mark.parametrize("simulator", rtl_sim.SIMULATORS)
def test_system(cfg, simulator):
    result = rtl_sim.run(cfg, simulator, "test_cpt_gemm", testcase=QUICK_SYSTEM.split(","), seed=SEED)
    assert result.ok, result.summary()
    gemms = [r for r in result.records if r["status"] == 0]
    assert len(gemms) >= 20, "fewer GEMMs than the tests run"
    assert all(r["cycles"] > 0 for r in result.records)


def test_system_wide_geometry():
    """On Verilator only here: Icarus simulates the 40 PEs of D = 64 at under 1k cycles/s (test-all runs it)."""
    cfg = HardwareConfig.from_preset("sim", WIDE)
    result = rtl_sim.run(cfg, "verilator", "test_cpt_gemm",
                       testcase=["test_random_gemms", "test_backpressure", "test_prefetch", "test_prefetch_chain"],
                       seed=SEED)
    assert result.ok, result.summary()
