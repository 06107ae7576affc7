"""Vivado flow for the board: block design, IP packaging of the Verilog twin, synthesis to bitstream.

``vivado/build.tcl`` creates the project (part and board part from the config), adds the accelerator IP
(the HLS export, or with ``-tclargs rtl`` the Verilog twin packaged by ``package_rtl.tcl``), builds the
block design of ``bd.tcl``, runs synthesis and implementation, writes the reports and copies
``<name>.bit`` + ``<name>.hwh`` into ``build/<cfg>/overlay/``.  :mod:`cpt_hw.flows.bitstream` drives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2

from ..errors import ConfigError
from ..hw.config import HardwareConfig
from ..hw.regmap import KERNEL_NAME
from ..paths import rtl_dir
from .hls import IP as HLS_IP
from .hls import IpInfo

#: Zynq-7000 PS7: FCLK_CLK0 and the S_AXI_HP ports run at most this fast (DS191, -2 speed grade).
MAX_PS7_FCLK_MHZ = 250.0
#: Data widths of the PS7 S_AXI_HP ports.
HP_WIDTHS = (32, 64)
#: Boards with a Vivado board file this flow knows, by board part prefix.
BOARD_TITLES = {"xilinx.com:zc706": "Xilinx ZC706", "tul.com.tw:pynq-z2": "TUL PYNQ-Z2"}

RTL_IP = IpInfo(library="rtl", display_name="cpt-hw bit-serial GEMM (Verilog twin)")

# Paths relative to build/<cfg>/, so a build directory can be moved as a whole.
HLS_WORK = "hls_work"
HLS_IP_REPO = f"{HLS_WORK}/{KERNEL_NAME}_prj/solution1/impl/ip"
VIVADO_WORK = "vivado_work"
OVERLAY = "overlay"
REPORTS = "reports"
#: Copies of the hand-written Verilog (rtl/), relative to vivado/: package_rtl.tcl reads them from there.
DATAPATH = "datapath"
PROJECT = "cpt_overlay"
BD = "cpt_bd"


@dataclass(frozen=True)
class Vlnv:
    ps7: str = "xilinx.com:ip:processing_system7:5.5"
    reset: str = "xilinx.com:ip:proc_sys_reset:5.0"
    interconnect: str = "xilinx.com:ip:axi_interconnect:2.1"


@dataclass(frozen=True)
class Cells:
    ps: str = "ps7"
    acc: str = f"{KERNEL_NAME}_0"
    reset: str = "rst_fclk0"
    ctrl: str = "ctrl_interconnect"
    mem: str = "mem_interconnect"


def board_title(cfg: HardwareConfig) -> str:
    for prefix, title in BOARD_TITLES.items():
        if cfg.board.startswith(prefix):
            return title
    return cfg.board


def check(cfg: HardwareConfig) -> None:
    """Refuse a config this board flow cannot build, naming the field and the rule."""
    if cfg.part_info.family != "zynq":
        raise ConfigError(f"part = {cfg.part!r}: the Vivado flow builds a Zynq-7000 (processing_system7) design")
    if cfg.clock_mhz > MAX_PS7_FCLK_MHZ:
        raise ConfigError(f"clock_mhz = {cfg.clock_mhz:g}: the PS7 FCLK_CLK0 and S_AXI_HP ports run at most "
                          f"{MAX_PS7_FCLK_MHZ:g} MHz")
    if cfg.axi_data_width not in HP_WIDTHS:
        raise ConfigError(f"axi_data_width = {cfg.axi_data_width}: the accelerator's m_axi port connects to "
                          f"S_AXI_HP0, which is {' or '.join(map(str, HP_WIDTHS))} bits wide")


def datapath_sources() -> dict[str, bytes]:
    """{``datapath/<name>``: its bytes} for the hand-written Verilog (``rtl/*.v``, ``rtl/*.vh``).

    Copied verbatim into the build folder so that package_rtl.tcl names every file relative to itself and
    ``build/<cfg>/`` can be moved or copied to the machine with Vivado as a whole.
    """
    files = sorted([*rtl_dir().glob("*.v"), *rtl_dir().glob("*.vh")])
    return {f"{DATAPATH}/{p.name}": p.read_bytes() for p in files}


def render(cfg: HardwareConfig, env: jinja2.Environment) -> dict[str, str | bytes]:
    check(cfg)
    datapath = datapath_sources()
    ctx = {
        "kernel": KERNEL_NAME,
        "board_title": board_title(cfg),
        "clock_mhz": f"{cfg.clock_mhz:g}",
        "vlnv": Vlnv(),
        "cells": Cells(),
        "hls_ip": HLS_IP,
        "rtl_ip": RTL_IP,
        "hls_ip_repo_rel": HLS_IP_REPO,
        "overlay_rel": OVERLAY,
        "reports_rel": REPORTS,
        "project": PROJECT,
        "rtl_project": "cpt_rtl_ip",
        "bd": BD,
        "jobs": 4,
        "datapath_subdir": DATAPATH,
        "datapath_files": [rel.split("/", 1)[1] for rel in datapath],
    }
    files: dict[str, str | bytes] = {name: env.get_template(f"vivado/{name}.j2").render(ctx)
                                     for name in ("build.tcl", "bd.tcl", "package_rtl.tcl")}
    return {**files, **datapath}
