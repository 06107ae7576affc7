"""``cpt-hw resources``: LUT/FF/DSP/BRAM of the Verilog twin (Yosys synth_xilinx) against the part."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..fileio import write_atomic
from ..flows.resources import format_report, synthesize
from .common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resources", help="synthesise the RTL with Yosys and report LUT/FF/DSP/BRAM use",
                       description="Synthesise the Verilog twin of a config with Yosys synth_xilinx (hierarchy "
                                   "kept: each distinct module once, times its instances) and compare LUT, FF, "
                                   "DSP and BRAM use with the part's capacity (15 % headroom expected).")
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--markdown", metavar="FILE", help="also write the report as markdown to FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    res = synthesize(cfg)
    if args.json:
        print(json.dumps({"config": cfg.fields_dict(), "peak_binary_tops": cfg.peak_binary_tops, **res.to_dict()},
                         indent=2))
    else:
        print(format_report(res, cfg))
    if args.markdown:
        cmd = f"cpt-hw resources --preset {args.preset}" + "".join(f" --set {o}" for o in args.overrides)
        text = (f"# Resources of the `{cfg.name}` Verilog twin\n\nMeasured with `{cmd}` (Yosys 0.23 "
                "synth_xilinx, hierarchy kept; method in docs/rtl.md).\n\n```\n" + format_report(res, cfg) + "\n```\n")
        write_atomic(Path(args.markdown), text)
    return 0
