"""``cpt-hw sim``: run the cocotb suite on Icarus and Verilator and print a results table."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..fileio import write_atomic
from ..flows import rtl_sim
from ..hw.config import HardwareConfig
from .common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run the RTL testbenches on Icarus and Verilator, print a table",
                       description="Run the cocotb testbenches (sim/) of the Verilog twin on each simulator and "
                                   "print test, simulator, result, cycles and PE utilisation.  WAVES=1 in the "
                                   "environment (or --waves) dumps waveforms next to each run's log.")
    add_config_args(p)
    p.set_defaults(preset="sim")
    p.add_argument("--simulator", dest="simulators", action="append", choices=rtl_sim.SIMULATORS,
                   help="simulator to use (repeatable; default: both)")
    p.add_argument("--module", dest="modules", action="append", choices=rtl_sim.SUITE,
                   help="cocotb module to run (repeatable; default: all; test_cpt_gemm_conv runs the config "
                        "with conv_engine = true)")
    p.add_argument("--testcase", help="comma-separated cocotb tests to run, by name (every variant) or by a "
                                      "variant's full name, e.g. test_prefetch/backpressure=True (default: all)")
    p.add_argument("--seed", type=int, default=None, help="cocotb random seed (default: random)")
    p.add_argument("--waves", action="store_true", help="dump waveforms (same as WAVES=1)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    p.set_defaults(func=run)


def _run_one(cfg: HardwareConfig, simulator: str, module: str, testcase: str | None, seed: int | None,
             waves: bool) -> rtl_sim.SimResult:
    return rtl_sim.run(rtl_sim.module_config(cfg, module), simulator, module,
                       toplevel=rtl_sim.toplevel_of(module), testcase=testcase.split(",") if testcase else None,
                       seed=seed, waves=waves)


def rows_of(cfg: HardwareConfig, result: rtl_sim.SimResult) -> list[dict]:
    """One row per cocotb test (each variant of a parametrised one): result, cycles (sum over its calls, or
    simulated time for unit tests), PE utilisation (useful binary ops / (peak x cycles) over its successful
    calls) and whether any call ran under back-pressure."""
    rows = []
    for t in result.tests:
        recs = [r for r in result.records if r["name"] == t["name"]]
        cycles = sum(r["cycles"] for r in recs) if recs else round(t["sim_time_ns"] / 10)
        ok = [r for r in recs if r["status"] == 0]
        useful = sum(r["useful_ops"] for r in ok)
        busy = sum(r["cycles"] for r in ok)
        util = useful / (cfg.peak_binary_ops_per_cycle * busy) if ok and busy else None
        rows.append({"test": f"{result.test_module}.{t['name']}", "simulator": result.simulator,
                     "result": "PASS" if t["passed"] else "FAIL", "cycles": cycles, "calls": len(recs),
                     "pe_utilisation": util, "stalled": any(r["backpressure"] for r in recs),
                     "message": t["message"]})
    if not result.tests:
        rows.append({"test": result.test_module, "simulator": result.simulator, "result": "ERROR", "cycles": 0,
                     "calls": 0, "pe_utilisation": None, "stalled": False,
                     "message": f"no results, see {result.log}"})
    return rows


def format_table(rows: list[dict]) -> str:
    w = max([44, *(len(r["test"]) for r in rows)])
    head = f"{'test':{w}} {'simulator':10} {'result':6} {'cycles':>9} {'calls':>5} {'PE util':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        util = f"{100 * r['pe_utilisation']:7.1f}%" if r["pe_utilisation"] is not None else f"{'-':>8}"
        lines.append(f"{r['test']:{w}} {r['simulator']:10} {r['result']:6} {r['cycles']:9d} {r['calls']:5d} {util}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    waves = args.waves or os.environ.get("WAVES", "0") not in ("", "0")
    sims = args.simulators or list(rtl_sim.SIMULATORS)
    modules = args.modules or list(rtl_sim.SUITE)
    for s in sims:      # fail early, with one line, when a tool is missing
        rtl_sim.check_tools(s)
    jobs = [(s, m) for m in modules for s in sims]
    # One seed for every run: both simulators then see the same calls, and their cycle counts must agree.
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"cpt-hw sim: config {cfg.name!r}, {len(jobs)} runs on {', '.join(sims)}, seed {seed}", file=sys.stderr)
    # Two processes: one per simulator is what the 2-core CI box holds.
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_run_one, cfg, s, m, args.testcase, seed, waves) for s, m in jobs]
        results = [f.result() for f in futures]
    rows = [row for res in results for row in rows_of(cfg, res)]
    print(format_table(rows))
    failed = [r for r in rows if r["result"] != "PASS"]
    by_test: dict[str, set[int]] = {}
    for r in rows:
        if r["calls"] and not r["stalled"]:   # random stalls may fall differently on the two simulators
            by_test.setdefault(r["test"], set()).add(r["cycles"])
    for test, counts in by_test.items():   # same seed, same RTL: the simulators must count alike
        if len(counts) > 1:
            print(f"  note: {test}: cycle counts differ between simulators: {sorted(counts)}")
    for r in failed:
        print(f"  {r['test']} on {r['simulator']}: {r['message'].splitlines()[0] if r['message'] else ''}")
    for res in results:
        print(f"  log: {res.log}", file=sys.stderr)
    if args.json:
        write_atomic(Path(args.json), json.dumps(rows, indent=2) + "\n")
    return 1 if failed else 0
