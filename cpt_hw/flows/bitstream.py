"""The whole bitstream flow: sources -> HLS IP -> register-map check -> Vivado -> overlay + reports.

1. ``generate`` every target of the config (refusals happen here, before anything is written);
2. find the tools: ``vivado`` and ``vitis_hls`` / ``vivado_hls`` (or Vitis 2024.2+'s ``vitis-run``);
   without them the flow stops here with one line naming the missing tool;
3. HLS (``hls/<tool>.tcl``): csim and cosim against the golden vectors, csynth, IP export;
4. compare the exported ``x<kernel>_hw.h`` with ``driver/regmap.json`` (:mod:`cpt_hw.flows.ip_check`);
5. Vivado (``vivado/build.tcl``): block design, synthesis, implementation, bitstream;
6. parse the reports into ``reports/*.json``, require timing closure, check ``overlay/<name>.{bit,hwh}``.

With ``rtl=True`` steps 3-4 are skipped and the Verilog twin is packaged instead (its register file is
generated from the same register map).  A config with ``conv_engine`` builds only that way: the HLS kernel's
convolution engine is verified in C simulation only.  Every tool step writes ``build/<cfg>/logs/<step>.log``; a failing
step is reported with that path and the first error line of the log.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, CptHwError, ToolMissingError
from ..fileio import write_atomic
from ..gen import vivado as vt
from ..gen.generator import generate
from ..hw.config import HardwareConfig
from ..hw.regmap import KERNEL_NAME
from ..paths import build_dir
from .ip_check import check_hw_header, find_hw_header
from .vivado_reports import parse_csynth_xml, parse_timing_summary, parse_utilization, read_report

#: HLS front ends in order of preference: (executable, argv before the script, tcl name).
HLS_TOOLS = (("vitis_hls", ["-f"], "vitis_hls.tcl"), ("vivado_hls", ["-f"], "vivado_hls.tcl"),
             ("vitis-run", ["--mode", "hls", "--tcl"], "vitis_hls.tcl"))
#: An error line of Vivado/HLS ("ERROR: [HLS 214-...]"), of Tcl ("Error: ...") or of the C++ compiler.
_ERROR_LINE = re.compile(r"^(ERROR|FATAL)\b|^Error:|\berror:")


class StepError(CptHwError):
    """A tool step failed; the message names its log and the log's first error line."""


@dataclass(frozen=True)
class Tools:
    vivado: str
    hls: str | None            # path of the HLS front end (None with rtl=True)
    hls_argv: tuple[str, ...]  # arguments before the script path
    hls_tcl: str               # which generated script it runs


def find_tools(rtl: bool = False, which: Callable[[str], str | None] = shutil.which) -> Tools:
    """Locate Vivado and an HLS front end on PATH, or raise :class:`ToolMissingError` naming the missing one."""
    hls = None
    argv: tuple[str, ...] = ()
    tcl = ""
    if not rtl:
        for exe, pre, script in HLS_TOOLS:
            if which(exe):
                hls, argv, tcl = which(exe), tuple(pre), script
                break
        if hls is None:
            raise ToolMissingError("vitis_hls (or vivado_hls) not found on PATH: source the Vitis/Vivado "
                                   "settings64.sh first, or build the Verilog twin with RTL=1")
    vivado = which("vivado")
    if vivado is None:
        raise ToolMissingError("vivado not found on PATH: source <Xilinx>/Vivado/<version>/settings64.sh first")
    return Tools(vivado, hls, argv, tcl)


def first_error(log: Path) -> str:
    """The first error line of a tool log (or its last non-empty line when none looks like an error)."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    for line in lines:
        if _ERROR_LINE.search(line):
            return line.strip()
    tail = [line.strip() for line in lines if line.strip()]
    return tail[-1] if tail else "(empty log)"


def run_step(name: str, cmd: list[str], cwd: Path, log: Path) -> None:
    """Run one tool step with its output in ``log``; raise :class:`StepError` if it fails."""
    cwd.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"cpt-hw bitstream: {name} (log: {log})", flush=True)
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise StepError(f"{name} failed with exit code {rc} (log: {log}): {first_error(log)}")
    # HLS tools can return 0 after a failed Tcl command in a sourced script; their log says ERROR.
    err = first_error(log)
    if _ERROR_LINE.search(err):
        raise StepError(f"{name} reported an error (log: {log}): {err}")


@dataclass
class BitstreamResult:
    overlay_bit: Path
    overlay_hwh: Path
    reports: dict[str, Path]


def _write_json(path: Path, data: dict) -> Path:
    write_atomic(path, json.dumps(data, indent=2) + "\n")
    return path


def run_hls(cfg: HardwareConfig, out: Path, tools: Tools) -> dict[str, Path]:
    """HLS csim/csynth/cosim/export, then the register-map check; returns the JSON reports written."""
    work = out / vt.HLS_WORK
    run_step("HLS (csim, csynth, cosim, export)", [tools.hls, *tools.hls_argv, str(out / "hls" / tools.hls_tcl)],
             work, out / "logs" / "hls.log")
    hw_h = find_hw_header(out / vt.HLS_IP_REPO, KERNEL_NAME)
    check_hw_header(hw_h, out / "driver" / "regmap.json")
    print(f"cpt-hw bitstream: exported register map matches regmap.json ({hw_h.name})", flush=True)
    csynth = work / f"{KERNEL_NAME}_prj" / "solution1" / "syn" / "report" / "csynth.xml"
    return {"hls_csynth": _write_json(out / vt.REPORTS / "hls_csynth.json", read_report(csynth, parse_csynth_xml))}


def run_vivado(cfg: HardwareConfig, out: Path, tools: Tools, rtl: bool) -> dict[str, Path]:
    log = out / "logs" / "vivado.log"
    run_step("Vivado (block design, synthesis, implementation, bitstream)",
             [tools.vivado, "-mode", "batch", "-nojournal", "-log", str(log), "-source",
              str(out / "vivado" / "build.tcl"), "-tclargs", "rtl" if rtl else "hls"],
             out / vt.VIVADO_WORK, out / "logs" / "vivado_console.log")
    reports = out / vt.REPORTS
    util = read_report(reports / "utilization.rpt", parse_utilization)
    timing = read_report(reports / "timing_summary.rpt", parse_timing_summary)
    paths = {"utilization": _write_json(reports / "utilization.json", util),
             "timing": _write_json(reports / "timing.json", timing)}
    if not timing["met"]:
        raise StepError(f"timing not met at {cfg.clock_mhz:g} MHz: WNS {timing['wns_ns']} ns, WHS "
                        f"{timing['whs_ns']} ns (report: {reports / 'timing_summary.rpt'}); lower clock_mhz")
    return paths


def bitstream(cfg: HardwareConfig, *, rtl: bool = False, out_dir: str | Path | None = None,
              which: Callable[[str], str | None] = shutil.which) -> BitstreamResult:
    """Run the whole flow for ``cfg`` in ``out_dir`` (default ``build/<name>``); see the module docstring."""
    if cfg.conv_engine and not rtl:
        raise ConfigError("conv_engine = True: the HLS kernel's convolution engine is verified in C simulation "
                          "only; build the Verilog twin instead (make bitstream RTL=1, cpt-hw bitstream --rtl)")
    out = Path(out_dir) if out_dir else build_dir(cfg.name)
    generate(cfg, out)
    if rtl and not any((out / "rtl").glob("*.v")):
        raise CptHwError(f"RTL=1 needs the generated Verilog top in {out / 'rtl'}: the rtl target is missing")
    tools = find_tools(rtl, which)
    reports = {} if rtl else run_hls(cfg, out, tools)
    reports.update(run_vivado(cfg, out, tools, rtl))
    bit, hwh = out / vt.OVERLAY / f"{cfg.name}.bit", out / vt.OVERLAY / f"{cfg.name}.hwh"
    for path in (bit, hwh):
        if not path.is_file():
            raise StepError(f"Vivado finished but {path} is missing (log: {out / 'logs' / 'vivado.log'})")
    return BitstreamResult(bit, hwh, reports)
