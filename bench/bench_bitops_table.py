"""The paper's Table 2 training costs (CIFAR, 64,000 iterations at batch 128) against ``cpt-hw bitops``.

    python bench/bench_bitops_table.py --out docs/results

Writes bitops_table.json and bitops_table.md: for each Table-2 row, the paper's GBitOPs, ours with the
paper's counting (``--count paper``: quantized GEMMs plus what a profiler counts for BN and the float FC)
and ours counting the quantized GEMMs alone (``--count gemm``: what the accelerator executes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpt_hw.fileio import write_atomic  # noqa: E402

#: (model, schedule, bits, grad bits, paper GBitOPs) -- Table 2 of Fu et al., ICLR 2021
TABLE2 = [
    ("resnet74", "static", "8", "8", 2.67e8), ("resnet74", "cpt", "3-8", "8", 1.68e8),
    ("resnet74", "static", "6", "6", 1.50e8), ("resnet74", "cpt", "3-6", "6", 1.05e8),
    ("resnet164", "static", "8", "8", 6.04e8), ("resnet164", "cpt", "3-8", "8", 3.80e8),
    ("resnet164", "static", "6", "6", 3.40e8), ("resnet164", "cpt", "3-6", "6", 2.37e8),
    ("mobilenetv2", "static", "8", "8", 1.49e8), ("mobilenetv2", "cpt", "4-8", "8", 1.04e8),
    ("mobilenetv2", "static", "6", "6", 8.39e7), ("mobilenetv2", "cpt", "4-6", "6", 6.63e7),
]


def bitops(model: str, schedule: str, bits: str, grad: str, count: str) -> float:
    cmd = [sys.executable, "-m", "cpt_hw", "bitops", "--model", model, "--dataset", "cifar10", "--iters", "64000",
           "--batch-size", "128", "--schedule", schedule, "--bits", bits, "--grad-bits", grad, "--count", count,
           "--json"]
    return float(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["gbitops"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/results")
    args = p.parse_args(argv)
    rows = []
    for model, schedule, bits, grad, paper in TABLE2:
        ours, gemm = bitops(model, schedule, bits, grad, "paper"), bitops(model, schedule, bits, grad, "gemm")
        rows.append({"model": model, "schedule": schedule, "bits": bits, "grad_bits": grad, "paper_gbitops": paper,
                     "gbitops": ours, "gemm_gbitops": gemm, "rel_error": ours / paper - 1})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    write_atomic(out / "bitops_table.json", json.dumps({"command": "python bench/bench_bitops_table.py",
                                                        "results": rows}, indent=2) + "\n")
    lines = ["# Training cost against the paper's Table 2 (CIFAR-10, 64,000 iterations, batch 128)", "",
             "`python bench/bench_bitops_table.py` (each row is `cpt-hw bitops ... --json`)", "",
             "| model | schedule | FW/BW | paper GBitOPs | ours (paper counting) | error | ours (GEMMs only) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['schedule']} | {r['bits']}/{r['grad_bits']} | {r['paper_gbitops']:.3g} | "
                     f"{r['gbitops']:.4g} | {100 * r['rel_error']:+.2f} % | {r['gemm_gbitops']:.4g} |")
    write_atomic(out / "bitops_table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
