"""``cpt-hw csim``: C-simulate the HLS kernel with g++ and compare it bit-exactly with the golden model."""

from __future__ import annotations

import argparse
import time

from ..errors import CptHwError
from ..flows.csim import sweep
from .common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("csim", help="C-simulate the HLS kernel (g++, hls4ml's ap_types) against the golden model",
                       description="Compile the generated HLS kernel with g++ and run every precision pair, edge "
                                   "tiles and refused calls; compare bit-exactly with cpt_hw.hw.golden.")
    add_config_args(p)
    p.add_argument("--seed", type=int, default=0, help="random seed of the workloads (default 0)")
    p.add_argument("--quick", action="store_true", help="smaller GEMM shapes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    t0 = time.perf_counter()
    print(f"C simulation of config '{cfg.name}' ({cfg.rows}x{cfg.cols} PEs, D = {cfg.dot_width})")
    results = sweep(cfg, seed=args.seed, quick=args.quick, progress=True)
    print(f"{'suite':12} {'calls':>6} {'refused':>8} {'seconds':>8}  result")
    for r in results:
        print(f"{r.name:12} {r.calls:6d} {r.refused:8d} {r.seconds:8.2f}  {'bit-exact' if not r.problems else 'MISMATCH'}")
        for line in r.problems:
            print(f"    {line}")
    bad = sum(len(r.problems) for r in results)
    print(f"total {time.perf_counter() - t0:.1f} s")
    if bad:
        raise CptHwError(f"C simulation of '{cfg.name}' differs from the golden model ({bad} problem(s) above)")
    return 0
