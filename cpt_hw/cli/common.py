"""Arguments shared by subcommands."""

from __future__ import annotations

import argparse

from ..config import HardwareConfig, available_presets


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="zc706",
                   help=f"config preset name ({', '.join(available_presets())}) or path to a .toml file "
                        "(default: zc706)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field (repeatable), e.g. --set rows=8; the config is then "
                        "named <preset>-<hash of the changes> unless --set name=... names it")


def config_from_args(args: argparse.Namespace) -> HardwareConfig:
    return HardwareConfig.from_preset(args.preset, args.overrides)


def parse_bits_flag(text: str, flag: str) -> tuple[int, int]:
    """``--bits``-style ``N`` or ``LO-HI`` -> (lo, hi), refused unless 0 (full precision) or 1..MAX_BITS.

    The quantizers' ceiling (:data:`cpt_hw.nn.context.MAX_BITS`) is checked here, before any work starts,
    so the error names the flag rather than a precision field deep inside a run.
    """
    from ..nn.context import MAX_BITS
    from ..schedules import ScheduleError, parse_bits_range

    lo, hi = parse_bits_range(text, flag)
    if hi > MAX_BITS:
        raise ScheduleError(f"{flag} {text!r}: {hi} bits is above the largest precision the quantizers run, "
                            f"{MAX_BITS} (0 = full precision)")
    return lo, hi
