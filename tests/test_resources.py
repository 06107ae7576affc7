"""cpt-hw resources: parsing of Yosys reports (quick) and a real synthesis of the sim preset (slow)."""

from __future__ import annotations

import json

import pytest

from cpt_hw.flows.resources import _ffs, _luts, _parse_stat

STAT = """
=== $paramod$abc\\pe ===

   Number of cells:                 10
     FDRE                           20
     LUT3                            4
     LUT6                            6

=== design hierarchy ===

   cpt_gemm                          1
     $paramod$abc\\pe                 4

   Number of cells:                 99
     CARRY4                          3
     FDRE                           80
     FDSE                            2
     LUT6                           24
     RAM32M                          2
     RAMB18E1                        3
     RAMB36E1                        1
     SRL16E                          5
"""


def test_parse_stat_counts_luts_ffs_and_memory():
    total, modules = _parse_stat(STAT)
    assert _luts(total) == 24 + 2 * 4 + 5
    assert _ffs(total) == 82
    assert total["RAMB36E1"] + total["RAMB18E1"] / 2 == 2.5
    assert _luts(modules["$paramod$abc\\pe"]) == 10


def test_cli_refuses_unknown_preset(cli):
    proc = cli("resources", "--preset", "nope")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "unknown preset" in proc.stderr


@pytest.mark.slow
def test_resources_sim_preset(cli):
    proc = cli("resources", "--preset", "sim", "--json", timeout=1800)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["lut"] > 0 and data["ff"] > 0 and data["bram36"] > 0
    assert data["pe_lut"] > data["popcount_lut"] > 0
    assert data["fits_with_headroom"]
