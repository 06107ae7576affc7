"""``cpt-hw lint``: Verilator -Wall lint of the Verilog twin for one config."""

from __future__ import annotations

import argparse

from ..errors import CptHwError
from ..flows import rtl_sim
from .common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lint", help="verilator --lint-only -Wall on the RTL of a config",
                       description="Lint the generated top level and rtl/*.v with verilator --lint-only -Wall "
                                   "(waivers are documented in the sources).")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    clean, out = rtl_sim.lint(cfg)
    if not clean:
        print(out)
        raise CptHwError(f"lint of config {cfg.name!r} found problems (above)")
    print(f"lint clean: config {cfg.name!r} (verilator --lint-only -Wall)")
    return 0
