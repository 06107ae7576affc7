"""The long RTL tests (`make test-all`; `make sim` runs them too): every precision pair, stress, the
wide geometry on both simulators, and the zc706 array itself on a few calls."""

from __future__ import annotations

import json

import pytest
from test_rtl import SEED, WIDE
from test_rtl_cycle_model import compare, random_chains

from cpt_hw.flows import rtl_sim
from cpt_hw.hw.config import HardwareConfig

pytestmark = [pytest.mark.sim, pytest.mark.slow]


@pytest.mark.parametrize("simulator", rtl_sim.SIMULATORS)
def test_precision_pairs_and_stress(simulator):
    cfg = HardwareConfig.from_preset("sim")
    result = rtl_sim.run(cfg, simulator, "test_cpt_gemm", testcase=["test_precision_pairs", "test_stress",
                                                                  "test_model_shapes"], seed=SEED)
    assert result.ok, result.summary()
    pairs = {(r["a_bits"], r["b_bits"]) for r in result.records if r["name"] == "test_precision_pairs"}
    assert len(pairs) == cfg.operand_bits ** 2


@pytest.mark.parametrize("simulator", rtl_sim.SIMULATORS)
def test_wide_geometry_all(simulator):
    cfg = HardwareConfig.from_preset("sim", WIDE)
    result = rtl_sim.run(cfg, simulator, "test_cpt_gemm", seed=SEED)
    assert result.ok, result.summary()


def test_zc706_array():
    """The 16 x 16, D = 64 array of the board preset: registers, refused calls and a few GEMMs with
    partial tiles and prefetch chains, bit-exact, and their cycles equal to the cycle model's (Verilator: the first build of
    the large array takes several minutes, later runs reuse it)."""
    cfg = HardwareConfig.from_preset("zc706")
    result = rtl_sim.run(cfg, "verilator", "test_cpt_gemm", testcase=["test_registers", "test_refused_calls"],
                       seed=SEED)
    assert result.ok, result.summary()
    shapes = [[20, 20, 64, 1, 1], [40, 24, 200, 3, 3], [33, 70, 130, 2, 8], [48, 16, 1024, 8, 8]]
    # B prefetch chains: a single-block and a two-block B (block 0 prefetched, block 1 loaded), and random ones
    chains = [[[40, 24, 200, 3, 8], [40, 24, 264, 3, 8]], [[33, 140, 130, 2, 8], [20, 140, 130, 2, 8]],
              *random_chains(cfg, 4, seed=SEED)]
    result = rtl_sim.run(cfg, "verilator", "bench_cpt_gemm", seed=SEED,
                       extra_env={"CPT_HW_BENCH_SHAPES": json.dumps(shapes), "CPT_HW_BENCH_CHAINS": json.dumps(chains)})
    assert result.ok, result.summary()
    assert len(result.records) == len(shapes) + sum(map(len, chains))
    assert sum(bool(r.get("b_hit")) for r in result.records) == sum(len(c) - 1 for c in chains)
    bad = compare(cfg, result.records)
    assert not bad, "cycle model differs from the RTL:\n" + "\n".join(bad)
