"""The pytest side of the RTL tests, shared by the runners at the bottom of every sim/<design>/test_<design>.py.

Seeds are fixed so that CI is reproducible; set ``CPT_HW_SIM_SEED`` to explore others.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from cpt_hw.flows import rtl_sim
from cpt_hw.hw.config import HardwareConfig

#: cocotb's random seed in every pytest run of a testbench (``CPT_HW_SIM_SEED`` overrides it).
SEED = int(os.environ.get("CPT_HW_SIM_SEED", "20250101"))

SIMULATORS = rtl_sim.SIMULATORS


def run(cfg: HardwareConfig | str, simulator: str, module_file: str, *, testcase: Sequence[str] | None = None,
        seed: int = SEED, extra_env: Mapping[str, str] | None = None) -> rtl_sim.SimResult:
    """Run the cocotb tests of ``module_file`` (a runner passes its ``__file__``) on geometry or config
    ``cfg``; fail the pytest test with the simulator's summary unless every cocotb test passed."""
    if isinstance(cfg, str):
        cfg = rtl_sim.geometry(cfg)
    result = rtl_sim.run(cfg, simulator, Path(module_file).stem, testcase=testcase, seed=seed, extra_env=extra_env)
    assert result.ok, result.summary()
    return result
