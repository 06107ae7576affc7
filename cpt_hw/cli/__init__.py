"""The ``cpt-hw`` command line.

Each subcommand lives in its own module of this package with ``register(subparsers)``; errors a user
can cause (:class:`~cpt_hw.errors.CptHwError`, argument errors) end in one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .. import __version__
from ..errors import CptHwError

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("config", "generate", "sim", "lint", "resources", "csim", "bitstream", "train",
                             "range_test", "bitops", "demo", "landscape", "export")


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad arguments already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cpt-hw", description="Cyclic Precision Training on an FPGA: generate, verify, "
                     "train.  Every subcommand has --help.")
    parser.add_argument("--version", action="version", version=f"cpt-hw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}_cmd").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CptHwError as e:
        print(f"cpt-hw: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `cpt-hw config show | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("cpt-hw: interrupted", file=sys.stderr)
        return 130
