"""``cpt-hw generate``: render the hardware sources of one config into build/<name>/."""

from __future__ import annotations

import argparse

from ..gen.generator import TARGETS, generate
from .common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="render HLS C++, Verilog top, Vivado TCL and register map",
                       description="Render the hardware sources of one config into build/<name>/.  A config "
                                   "changed by --set is named <preset>-<hash of the changes>, so it does not "
                                   "overwrite the preset's folder.")
    add_config_args(p)
    p.add_argument("--out", help="output directory (default: build/<config name>)")
    p.add_argument("--target", dest="targets", action="append", choices=TARGETS,
                   help="render only this target (repeatable; default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out, changed = generate(cfg, args.out, args.targets)
    print(f"generated {out} (config '{cfg.name}', id 0x{cfg.id_word:08x}; {len(changed)} file(s) changed)")
    return 0
