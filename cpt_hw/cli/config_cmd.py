"""``cpt-hw config show``: the resolved config, its derived figures and the register map."""

from __future__ import annotations

import argparse
import json

from ..hw.config import HardwareConfig
from ..hw.regmap import register_map
from .common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="inspect hardware configs", description="Inspect hardware configs.")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", parser_class=type(p))
    csub.required = True
    show = csub.add_parser("show", help="print the resolved config, derived figures and register map",
                           description="Print the resolved config, its derived figures and register map.")
    add_config_args(show)
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    rm = register_map(cfg)
    if args.json:
        print(json.dumps({"config": cfg.fields_dict(), "derived": cfg.derived(), "regmap": rm.to_dict()},
                         indent=2))
        return 0
    docs = HardwareConfig.field_docs()
    print(f"config '{cfg.name}'")
    for key, value in cfg.fields_dict().items():
        print(f"  {key:16} {value!s:28} {docs[key]}")
    print("derived")
    for key, value in cfg.derived().items():
        print(f"  {key:26} {value}")
    print(f"register map (s_axi_control, {rm.addr_width}-bit addresses)")
    for r in rm.registers:
        print(f"  0x{r.offset:02x}  {r.name:14} {r.access:6} {r.doc}")
    return 0
