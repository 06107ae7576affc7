"""``cpt-hw bitstream``: HLS export, register-map check and Vivado flow to a PYNQ overlay (.bit + .hwh)."""

from __future__ import annotations

import argparse

from ..flows.bitstream import bitstream
from .common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bitstream", help="build the FPGA bitstream and PYNQ overlay (needs Vivado + Vitis HLS)",
                       description="Generate every source, then run Vitis/Vivado HLS and Vivado to "
                                   "build/<cfg>/overlay/<name>.bit + .hwh.  Without the Xilinx tools on PATH "
                                   "it stops after generating, naming the missing tool.")
    add_config_args(p)
    p.add_argument("--rtl", action="store_true", help="package the Verilog twin instead of the HLS kernel")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = bitstream(config_from_args(args), rtl=args.rtl)
    print(f"overlay: {result.overlay_bit} + {result.overlay_hwh.name}")
    for name, path in result.reports.items():
        print(f"report {name}: {path}")
    return 0
