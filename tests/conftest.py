from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``cpt-hw ARGS`` in a subprocess, the way a user does."""
    return subprocess.run([sys.executable, "-m", "cpt_hw", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def cli():
    return run_cli


def load_bench(name: str):
    """bench/<name>.py as module ``name`` (registered in sys.modules: its dataclasses and pickles need it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bench_module():
    """load_bench: a bench script as a module, for the tests of bench/."""
    return load_bench


@pytest.fixture
def driver_on_rtl(tmp_path):
    """run(cfg, simulator, test_file) -> dict: build ``cfg``'s RTL, run the cocotb module ``test_file`` (whose test
    calls sim/cpt_gemm/tb.run_driver_in_sim) and return the JSON its driver code wrote."""
    import json

    from cpt_hw.flows import rtl_sim

    def run(cfg, simulator: str, test_file: str) -> dict:
        result_file = tmp_path / "result.json"
        res = rtl_sim.run(cfg, simulator, Path(test_file).stem, test_dirs=[Path(test_file).parent],
                          extra_env={rtl_sim.ENV_DRIVER_RESULT: str(result_file)})
        assert res.ok and result_file.is_file(), res.summary()
        return json.loads(result_file.read_text())
    return run


@pytest.fixture
def one_torch_thread():
    """Tests of tiny tensors: torch's intra-op threads only spin against each other on 2 shared cores
    (a 10 s test took 110 s with 2 threads under load)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
