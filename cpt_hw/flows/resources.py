"""FPGA resources of the Verilog twin, measured with Yosys ``synth_xilinx`` against the part's capacity.

Method (docs/rtl.md): the generated top and ``rtl/*.v`` are synthesised for 7-series with the module
hierarchy kept (no ``-flatten``).  Yosys then maps every distinct module once -- one PE, one RAM bank,
the controller blocks -- and ``stat -top`` multiplies each by its instance count, so the zc706 array of
hundreds of PEs costs one PE's synthesis (about a minute on one core instead of an hour flat).  Keeping
the hierarchy also keeps the popcount's LUT6-sized counters as built (one LUT6 per counter output);
cross-boundary optimisation, which Vivado would add, is not counted, so the numbers are an upper bound
on logic.  Counts:

* LUT: LUT1..LUT6 plus LUTs used as memory (RAM32M/RAM64M: 4, RAM32X1D/RAM64X1D: 2, SRL: 1);
* FF: FDRE/FDSE/FDCE/FDPE; DSP: DSP48E1; BRAM: RAMB36E1 + RAMB18E1 / 2 (36 Kb blocks).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass

from ..errors import CptHwError, ToolMissingError
from ..fileio import write_atomic
from ..gen.generator import generate
from ..hw.config import HardwareConfig
from ..paths import build_dir, rtl_dir

#: LUTs per Yosys/7-series cell that occupies LUTs.
LUT_WEIGHTS = {"LUT1": 1, "LUT2": 1, "LUT3": 1, "LUT4": 1, "LUT5": 1, "LUT6": 1, "LUT6_2": 1,
               "RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM32X1S": 1,
               "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM32M16": 8, "RAM64M8": 8,
               "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")
HEADROOM = 0.15


@dataclass(frozen=True)
class Resources:
    """Resource use of one config and the capacity of its part."""

    config: str
    part: str
    lut: int
    ff: int
    dsp: int
    bram36: float
    lut_cap: int
    ff_cap: int
    dsp_cap: int
    bram36_cap: int
    pe_lut: int                 # one PE (AND + popcount + accumulator + shadow + systolic registers)
    pe_ff: int
    popcount_lut: int           # the AND + popcount tree of one PE
    cells: dict[str, int]
    seconds: float

    def utilisation(self) -> dict[str, float]:
        return {"lut": self.lut / self.lut_cap, "ff": self.ff / self.ff_cap, "dsp": self.dsp / self.dsp_cap,
                "bram36": self.bram36 / self.bram36_cap}

    def fits(self, headroom: float = HEADROOM) -> bool:
        return all(u <= 1 - headroom for u in self.utilisation().values())

    def to_dict(self) -> dict:
        return {**asdict(self), "utilisation": self.utilisation(), "fits_with_headroom": self.fits()}


def _parse_stat(text: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Yosys `stat -top` output -> (hierarchy totals, per-module cell counts)."""
    modules: dict[str, dict[str, int]] = {}
    total: dict[str, int] = {}
    current: dict[str, int] | None = None
    for line in text.splitlines():
        m = re.match(r"^=== (.+) ===$", line.strip())
        if m:
            current = total if m.group(1) == "design hierarchy" else modules.setdefault(m.group(1), {})
            continue
        m = re.match(r"^\s+([A-Za-z_$][\w$]*)\s+(\d+)$", line)
        if m and current is not None:
            current[m.group(1)] = int(m.group(2))
    return total, modules


def _luts(cells: dict[str, int]) -> int:
    return sum(n * LUT_WEIGHTS.get(c, 0) for c, n in cells.items())


def _ffs(cells: dict[str, int]) -> int:
    return sum(cells.get(c, 0) for c in FF_CELLS)


def _module(modules: dict[str, dict[str, int]], name: str) -> dict[str, int]:
    for key, cells in modules.items():
        if key == name or key.endswith("\\" + name) or re.search(rf"\\{name}(\\|$)", key):
            return cells
    raise CptHwError(f"yosys report has no module {name!r}")


def synthesize(cfg: HardwareConfig, yosys: str = "yosys") -> Resources:
    """Run Yosys on the config's RTL and count its resources (writes build/<cfg>/resources/)."""
    exe = shutil.which(yosys)
    if exe is None:
        raise ToolMissingError(f"{yosys} not found on PATH (Yosys 0.23 is installed by tools/setup.sh)")
    out, _ = generate(cfg, targets=["rtl"])
    gen = out / "rtl"
    work = build_dir(cfg.name) / "resources"
    work.mkdir(parents=True, exist_ok=True)
    sources = [str(gen / "cpt_gemm.v")] + [str(p) for p in sorted(rtl_dir().glob("*.v"))]
    stat_file = work / "stat.txt"
    # -defer: elaborate each module only under `hierarchy -top` with the parameters it is instantiated with.  Read
    # eagerly, Yosys also elaborates every module at its default parameters, where cpt_control's check of its
    # widths against the register map ($finish) fires.
    script = (f"read_verilog -defer -I{gen} {' '.join(sources)}\n"
              "synth_xilinx -top cpt_gemm\n"
              f"tee -q -o {stat_file} stat -top cpt_gemm\n")
    (work / "synth.ys").write_text(script)
    t0 = time.time()
    proc = subprocess.run([exe, "-q", "-l", str(work / "yosys.log"), "-s", str(work / "synth.ys")],
                          capture_output=True, text=True)
    seconds = time.time() - t0
    if proc.returncode != 0 or not stat_file.is_file():
        tail = (work / "yosys.log").read_text()[-2000:] if (work / "yosys.log").is_file() else proc.stderr
        raise CptHwError(f"yosys failed on config {cfg.name!r} (log {work / 'yosys.log'}):\n{tail}")
    total, modules = _parse_stat(stat_file.read_text())
    pe = _module(modules, "pe")
    pop_cells = _module(modules, "and_popcount")
    pop_lut = _luts(pop_cells)
    for short in ("and_popcount_leaf", "and_popcount_counter"):
        n_inst = next((v for k, v in pop_cells.items() if k.endswith(short)), 0)
        pop_lut += n_inst * _luts(_module(modules, short))
    part = cfg.part_info
    res = Resources(
        config=cfg.name, part=cfg.part,
        lut=_luts(total), ff=_ffs(total), dsp=total.get("DSP48E1", 0),
        bram36=total.get("RAMB36E1", 0) + total.get("RAMB18E1", 0) / 2,
        lut_cap=part.lut, ff_cap=part.ff, dsp_cap=part.dsp, bram36_cap=part.bram36,
        pe_lut=_luts(pe) + pop_lut, pe_ff=_ffs(pe), popcount_lut=pop_lut,
        cells={k: v for k, v in sorted(total.items()) if not k.startswith("Number")},
        seconds=round(seconds, 1),
    )
    write_atomic(work / "resources.json", json.dumps(res.to_dict(), indent=2) + "\n")
    return res


def format_report(res: Resources, cfg: HardwareConfig) -> str:
    lines = [f"config {cfg.name!r}: {cfg.rows} x {cfg.cols} PEs, D = {cfg.dot_width}, {cfg.clock_mhz:g} MHz, "
             f"peak {cfg.peak_binary_tops:.2f} binary TOPS ({cfg.peak_binary_ops_per_cycle} AND+popcount pairs/cycle)",
             f"part {res.part} (Yosys {res.seconds:.0f} s, hierarchical synth_xilinx)",
             f"{'resource':8} {'used':>10} {'capacity':>10} {'util':>7} {'headroom':>9}"]
    for key, used, cap in (("LUT", res.lut, res.lut_cap), ("FF", res.ff, res.ff_cap), ("DSP", res.dsp, res.dsp_cap),
                           ("BRAM36", res.bram36, res.bram36_cap)):
        frac = used / cap
        flag = "" if frac <= 1 - HEADROOM else "  < 15 % headroom"
        lines.append(f"{key:8} {used:>10g} {cap:>10d} {100 * frac:6.1f}% {100 * (1 - frac):8.1f}%{flag}")
    lines.append(f"per PE: {res.pe_lut} LUT ({res.popcount_lut} in the AND+popcount of {cfg.dot_width} bits, "
                 f"{res.popcount_lut / cfg.dot_width:.2f} LUT/bit), {res.pe_ff} FF")
    lines.append("fits with >= 15 % headroom on every resource" if res.fits()
                 else "does NOT fit with 15 % headroom")
    return "\n".join(lines)
