"""Arguments shared by subcommands."""

from __future__ import annotations

import argparse

from ..hw.config import HardwareConfig, available_presets


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="zc706",
                   help=f"config preset name ({', '.join(available_presets())}) or path to a .toml file "
                        "(default: zc706)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field (repeatable), e.g. --set rows=8; the config is then "
                        "named <preset>-<hash of the changes> unless --set name=... names it")


def config_from_args(args: argparse.Namespace) -> HardwareConfig:
    return HardwareConfig.from_preset(args.preset, args.overrides)

