"""Parsers of the Xilinx tool reports the bitstream flow keeps, into plain dicts (written as JSON).

* :func:`parse_utilization`: ``report_utilization`` text (Vivado) -> used/available/percent of LUT, FF,
  BRAM36 tiles, DSP, with the tool version, part and design state;
* :func:`parse_timing_summary`: ``report_timing_summary`` text -> WNS/TNS/WHS/THS, failing endpoints,
  whether all constraints are met, and the clocks with their periods;
* :func:`parse_csynth_xml`: Vivado/Vitis HLS ``csynth.xml`` -> estimated clock, latency, resources.

Table columns are located by their header names, so report versions that add columns (Vivado 2020+
added "Prohibited") parse alike.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..errors import CptHwError

#: Resource rows of report_utilization and the keys they are stored under.
UTIL_ROWS = {"Slice LUTs": "lut", "CLB LUTs": "lut", "Slice Registers": "ff", "CLB Registers": "ff",
             "Block RAM Tile": "bram36", "DSPs": "dsp"}


def _header(text: str, key: str) -> str | None:
    m = re.search(rf"^\|\s*{re.escape(key)}\s*:\s*(.+?)\s*$", text, re.MULTILINE)
    return m.group(1) if m else None


def _number(cell: str) -> float:
    cell = cell.strip().lstrip("<")
    return float(cell) if "." in cell else int(cell)


def parse_utilization(text: str) -> dict[str, Any]:
    """Resources of a ``report_utilization`` report: {"lut": {"used", "available", "percent"}, ...}."""
    columns: list[str] | None = None
    resources: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "Site Type":
            columns = cells
            continue
        key = UTIL_ROWS.get(cells[0]) if cells else None
        if columns and key and key not in resources and len(cells) == len(columns):
            row = dict(zip(columns, cells))
            resources[key] = {"used": _number(row["Used"]), "available": _number(row["Available"]),
                              "percent": _number(row["Util%"])}
    missing = sorted(set(UTIL_ROWS.values()) - set(resources))
    if missing:
        raise CptHwError(f"utilisation report: no rows for {', '.join(missing)} (not a report_utilization file?)")
    return {"tool": _header(text, "Tool Version"), "design": _header(text, "Design"),
            "device": _header(text, "Device"), "state": _header(text, "Design State"), "resources": resources}


def parse_timing_summary(text: str) -> dict[str, Any]:
    """Worst slacks and clocks of a ``report_timing_summary`` report (ns, MHz)."""
    m = re.search(r"Design Timing Summary.*?\n\s*WNS\(ns\)(.*?)\n\s*-+.*?\n(.*?)\n", text, re.DOTALL)
    if not m:
        raise CptHwError("timing report: no Design Timing Summary table (not a report_timing_summary file?)")
    header_line = "WNS(ns)" + m.group(1)
    names = re.split(r"\s{2,}", header_line.strip())
    values = m.group(2).split()
    if len(values) != len(names):
        raise CptHwError(f"timing report: {len(names)} summary columns but {len(values)} values")
    summary = {name: _number(v) if v != "NA" else None for name, v in zip(names, values)}
    clocks = []
    cm = re.search(r"\| Clock Summary\n.*?\n-+\n\s*\nClock\s+Waveform\(ns\)\s+Period\(ns\)\s+Frequency\(MHz\)\n"
                   r"[-\s]+\n(.*?)\n\s*\n", text, re.DOTALL)
    if cm:
        for line in cm.group(1).splitlines():
            cl = re.match(r"^\s*(\S+)\s+\{([^}]*)\}\s+([\d.]+)\s+([\d.]+)", line)
            if cl:
                clocks.append({"name": cl.group(1), "period_ns": float(cl.group(3)), "mhz": float(cl.group(4))})
    return {
        "tool": _header(text, "Tool Version"), "design": _header(text, "Design"),
        "wns_ns": summary.get("WNS(ns)"), "tns_ns": summary.get("TNS(ns)"),
        "tns_failing_endpoints": summary.get("TNS Failing Endpoints"),
        "whs_ns": summary.get("WHS(ns)"), "ths_ns": summary.get("THS(ns)"),
        "ths_failing_endpoints": summary.get("THS Failing Endpoints"),
        "wpws_ns": summary.get("WPWS(ns)"),
        "met": "All user specified timing constraints are met." in text,
        "clocks": clocks,
    }


def _text(root: ET.Element, path: str) -> str | None:
    node = root.find(path)
    return node.text.strip() if node is not None and node.text else None


def parse_csynth_xml(text: str) -> dict[str, Any]:
    """Estimates of an HLS ``csynth.xml``: clock target/estimate (ns), latency (cycles), resources."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise CptHwError(f"HLS synthesis report: malformed XML: {e}") from None
    if root.find("PerformanceEstimates") is None or root.find("AreaEstimates") is None:
        raise CptHwError("HLS synthesis report: no PerformanceEstimates/AreaEstimates (not a csynth.xml?)")

    def num(path: str) -> float | int | None:
        v = _text(root, path)
        try:
            return _number(v) if v is not None else None
        except ValueError:
            return None  # "undef" for data-dependent latencies

    resources = {child.tag.lower(): num(f"AreaEstimates/Resources/{child.tag}")
                 for child in root.findall("AreaEstimates/Resources/*")}
    available = {child.tag.lower(): num(f"AreaEstimates/AvailableResources/{child.tag}")
                 for child in root.findall("AreaEstimates/AvailableResources/*")}
    return {
        "tool_version": _text(root, "ReportVersion/Version"),
        "top": _text(root, "RTLDesignHierarchy/TopModule/ModuleName"),
        "part": _text(root, "UserAssignments/Part"),
        "target_clock_ns": num("UserAssignments/TargetClockPeriod"),
        "estimated_clock_ns": num("PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod"),
        "latency_best_cycles": num("PerformanceEstimates/SummaryOfOverallLatency/Best-caseLatency"),
        "latency_worst_cycles": num("PerformanceEstimates/SummaryOfOverallLatency/Worst-caseLatency"),
        "resources": resources,
        "available": available,
    }


def read_report(path: str | Path, parser) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CptHwError(f"report {path} not found: did the tool step finish?")
    return parser(path.read_text(errors="replace"))
