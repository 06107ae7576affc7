"""Check the register map of an exported HLS IP against ``regmap.json``.

Vivado/Vitis HLS describe the ``s_axilite`` bundle of an exported IP in
``<ip>/drivers/<kernel>_v<major>_<minor>/src/x<kernel>_hw.h`` (the IP's version, ``IpInfo.version``): one ``#define X<KERNEL>_<BUNDLE>_ADDR_<REG>`` per
register (``AP_CTRL``, ``GIE``, ``IER``, ``ISR``, ``<ARG>_DATA``, ``<ARG>_CTRL`` for outputs) and
``..._BITS_<ARG>_DATA`` with each argument's width.  :func:`check_hw_header` compares every one of them
with the register map the driver, the Verilog twin and the testbenches use; any difference (an offset,
a width, a missing or an extra argument) is an error, so a bitstream whose registers would not be where
the driver writes them is never produced.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import CptHwError

_DEFINE = re.compile(r"^\s*#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\b", re.MULTILINE)
#: Block-level registers: hw.h name -> regmap name.
_BLOCK = {"AP_CTRL": "CTRL", "GIE": "GIE", "IER": "IER", "ISR": "ISR"}


class RegmapMismatch(CptHwError):
    """The exported IP's register map differs from regmap.json."""


def find_hw_header(ip_dir: str | Path, kernel: str) -> Path:
    """The ``x<kernel>_hw.h`` of an exported IP directory (``solution1/impl/ip``)."""
    hits = sorted(Path(ip_dir).glob(f"drivers/*/src/x{kernel}_hw.h"))
    if not hits:
        raise CptHwError(f"no drivers/*/src/x{kernel}_hw.h under {ip_dir}: was the HLS IP exported?")
    return hits[0]


def parse_hw_header(text: str, kernel: str, bundle: str) -> dict[str, int]:
    """{``ADDR_A_DATA``: 0x10, ``BITS_A_DATA``: 64, ...} for the bundle's defines in an HLS hw.h."""
    prefix = f"X{kernel.upper()}_{bundle.upper()}_"
    out = {name[len(prefix):]: int(value, 0) for name, value in _DEFINE.findall(text) if name.startswith(prefix)}
    if not out:
        raise CptHwError(f"no {prefix}* defines found: not the hw.h of kernel {kernel!r}, bundle {bundle!r}")
    return out


def expected_defines(regmap: dict[str, Any]) -> dict[str, int]:
    """What the hw.h of a kernel with this register map (regmap.json contents) must define."""
    regs = {r["name"]: r["offset"] for r in regmap["registers"]}
    want = {f"ADDR_{hw}": regs[name] for hw, name in _BLOCK.items()}
    for arg in regmap["arguments"]:
        name, up = arg["name"], arg["name"].upper()
        first = next(r["offset"] for r in regmap["registers"] if r["arg"] == name and r["word"] == 0)
        want[f"ADDR_{up}_DATA"] = first
        want[f"BITS_{up}_DATA"] = arg["bits"]
        if arg["direction"] == "out":
            want[f"ADDR_{up}_CTRL"] = regs[f"{name}_ctrl"]
    return want


def compare_defines(got: dict[str, int], want: dict[str, int]) -> list[str]:
    """Readable differences between the defines of a hw.h and the expected ones."""
    problems = []
    for key in sorted(set(got) | set(want)):
        if key not in got:
            problems.append(f"{key} missing (regmap.json: {want[key]:#x})")
        elif key not in want:
            problems.append(f"{key} = {got[key]:#x} is not in regmap.json")
        elif got[key] != want[key]:
            problems.append(f"{key} = {got[key]:#x}, regmap.json says {want[key]:#x}")
    return problems


def check_hw_header(hw_header: str | Path, regmap_json: str | Path) -> None:
    """Raise :class:`RegmapMismatch` (listing every difference) unless the two register maps agree."""
    regmap = json.loads(Path(regmap_json).read_text())
    got = parse_hw_header(Path(hw_header).read_text(), regmap["kernel"], regmap["bundle"])
    problems = compare_defines(got, expected_defines(regmap))
    if problems:
        raise RegmapMismatch(f"register map of the exported IP ({hw_header}) differs from {regmap_json}: "
                             + "; ".join(problems))
