"""The Verilog twin's convolution time per ResNet-74 iteration (forward calls, input and weight gradients), from its
exact cycle model.

    .venv/bin/python bench/bench_twin_cycles.py                     # batch 128, fw 3..8: ~8 CPU-min
    .venv/bin/python bench/bench_twin_cycles.py --batch 8 --fw 3 8 --out /tmp/twin_cycles-b8

bench/bench_conv_twin.py measures the twin in simulation on one image per layer (the weight gradients in chains of
three calls), which bench/twin_iteration.py used to scale to a batch-128 iteration.  This benchmark counts every call
the driver makes at the iteration's batch instead:

1. For each distinct convolution of ResNet-74 (bench/resnet74_gemms.conv_layers) and each forward precision fw,
   the driver (``cpt_driver.Accelerator`` on the emulated device, zc706 with ``conv_engine = true``, the twin's
   limits) runs the layer's forward convolution (fw x fw bits) with the window sums of x (``x_sums``: the
   device's code sums, SUMS, as the board flow asks for them) and without, its input gradient (8-bit errors x
   fw-bit weights) and its weight gradient (fw-bit x, 8-bit errors) with the code sums of x and e (``x_sums``,
   ``e_sums``), over ``--batch`` images of random codes; every conv call it makes is recorded with its arguments
   and addresses (images per call, int16 results where the worst case fits, stride-2 phases, SUMS, a weight
   gradient's hint of the next call: the driver's choices), and whether it hit its predecessor's hint
   (``prefetch_hit``; a refused call in between ends the hint).
2. Each call's cycles: the twin's, from ``cpt_hw.hw.twin_cycle_model.twin_cycles`` (exact against the twin
   without back-pressure, AxiRam's timing: sim/cpt_gemm/test_cpt_gemm_conv.py asserts it on every such call),
   and the design's model (``emu_conv.call_cycles``, what the emulated device reports).
3. Per GEMM class, seconds at the config's clock for a batch-``--batch`` iteration: each layer's sum over its
   calls times its count, CPT 3-8/8 (cpt_hw.schedules' weights over fw) and static 8/8 (fw 8).

Not counted here: weight gradients without code sums (the ``--recompute-bn`` runs' calls: bench_conv_twin.py
measured them).  Memory timing is AxiRam's (two-cycle read latency), as in the twin's simulations, not a board's DDR.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "host"), str(ROOT)]

import numpy as np  # noqa: E402
from bench_rtl import cpt_weights, gemm_bits  # noqa: E402
from resnet74_gemms import conv_layers  # noqa: E402
from tqdm import tqdm  # noqa: E402

from cpt_driver import Accelerator  # noqa: E402
from cpt_hw.fileio import write_atomic  # noqa: E402
from cpt_hw.hw import emu_conv, emu_device  # noqa: E402
from cpt_hw.hw.config import HardwareConfig  # noqa: E402
from cpt_hw.hw.conv_calls import ConvArgs, prefetch_hit  # noqa: E402
from cpt_hw.hw.twin_cycle_model import twin_cycles  # noqa: E402

#: The classes counted: forward calls with the code sums (the board flow's), without (``--recompute-bn``'s
#: recomputed forward calls write none), input gradients.
OPS = ("fwd_sums", "fwd", "dgrad", "wgrad_sums")
LABELS = {"fwd_sums": "forward, with code sums (SUMS)", "fwd": "forward, without code sums",
          "dgrad": "input gradient", "wgrad_sums": "weight gradient, with code sums (SUMS)"}
FWS = (3, 4, 5, 6, 7, 8)


def _fail(message: str) -> None:
    print(f"bench_twin_cycles: {message}", file=sys.stderr)
    raise SystemExit(2)


class CallLog:
    """Records every conv call the emulated device runs (status 0), as the ConvCall it decoded, with its cycles and
    whether it hit the previous call's hint (prefetch_hit of the call before it, refused calls included: a refused call
    ends the hint)."""

    def __init__(self) -> None:
        self.calls: list = []

    def __enter__(self) -> "CallLog":
        self._orig = original = emu_device.EmuDevice._execute_conv
        log, previous = self.calls, [None]

        def execute(dev: emu_device.EmuDevice, call):
            status, cycles = original(dev, call)
            if status == 0:
                log.append((call, cycles, prefetch_hit(previous[0], call)))
            previous[0] = None if status else call
            return status, cycles
        emu_device.EmuDevice._execute_conv = execute
        return self

    def __exit__(self, *exc) -> None:
        emu_device.EmuDevice._execute_conv = self._orig


def layer_cycles(acc: Accelerator, cfg: HardwareConfig, rng: np.random.Generator, op: str, layer: tuple,
                 fw: int, batch: int) -> dict:
    """Run one layer's op through the driver; the twin's and the model's cycles summed over its calls."""
    name, cin, cout, kernel, hw_out, _ = layer
    stride = 2 if name.endswith((".first", ".down")) else 1
    size, padding = hw_out * stride, 1 if kernel == 3 else 0
    gemm_op = op.removesuffix("_sums")
    a_bits, b_bits = gemm_bits(gemm_op, fw)
    w = rng.integers(-(1 << (b_bits - 1)), 1 << (b_bits - 1), size=(cout, cin, kernel, kernel))
    with CallLog() as log:
        if gemm_op == "wgrad":
            x = rng.integers(0, 1 << a_bits, size=(batch, cin, size, size))
            e = rng.integers(-(1 << (b_bits - 1)), 1 << (b_bits - 1), size=(batch, cout, hw_out, hw_out))
            acc.conv2d_weight(x, (cout, cin, kernel, kernel), e, x_bits=a_bits, e_bits=b_bits, stride=stride,
                              padding=padding, e_signed=True, x_sums=np.empty((cin, kernel, kernel)),
                              e_sums=np.empty((cout, kernel, kernel)))
        elif gemm_op == "fwd":
            x = rng.integers(0, 1 << a_bits, size=(batch, cin, size, size))
            sums = np.empty((batch, hw_out, hw_out)) if op == "fwd_sums" else None
            acc.conv2d(x, w, x_bits=a_bits, w_bits=b_bits, stride=stride, padding=padding, w_signed=True,
                       x_sums=sums)
        else:
            e = rng.integers(-(1 << (a_bits - 1)), 1 << (a_bits - 1), size=(batch, cout, hw_out, hw_out))
            acc.conv2d_input((batch, cin, size, size), w, e, w_bits=b_bits, e_bits=a_bits, stride=stride,
                             padding=padding, w_signed=True, e_signed=True)
    twin = model = 0
    for call, cycles, hit in log.calls:
        g = ConvArgs.decode(call)
        if g.op != gemm_op or g.flag("SUMS") != op.endswith("_sums"):
            raise AssertionError(f"{name}/{op}: the driver made a {g.op} call with flags {g.flags:#x}")
        twin += twin_cycles(cfg, call, hit=hit)
        model += cycles
        if cycles != emu_conv.call_cycles(cfg, g, prefetched=hit):
            raise AssertionError(f"{name}/{op}: the device reported {cycles}, the model says otherwise")
    return {"layer": name, "op": op, "fw": fw, "calls": len(log.calls), "twin_cycles": twin, "model_cycles": model,
            "hits": sum(hit for *_, hit in log.calls),
            "images_per_call": sorted({ConvArgs.decode(c).batch for c, *_ in log.calls})}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=128, help="images of the iteration (default 128)")
    p.add_argument("--fw", type=int, nargs="+", default=list(FWS), help="forward precisions (default 3..8)")
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "twin_cycles"),
                   help="output path without suffix (.json and .md are written)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.batch < 1:
        _fail(f"--batch {args.batch}: must be >= 1")
    bad = [f for f in args.fw if f not in FWS]
    if bad:
        _fail(f"--fw {bad[0]}: precisions are 3..8")
    cfg = HardwareConfig.from_preset("zc706", {"conv_engine": True, "name": "zc706_conv"})
    rng = np.random.default_rng(20261204)
    jobs = [(op, layer, fw) for layer in conv_layers(74) for op in OPS for fw in args.fw
            if not (op == "dgrad" and layer[0] == "stem")]
    rows = []
    t0 = time.process_time()
    with Accelerator("emu", config=cfg, twin_limits=True) as acc:
        for op, layer, fw in tqdm(jobs, disable=args.no_progress, desc="layers"):
            row = layer_cycles(acc, cfg, rng, op, layer, fw, args.batch)
            row["count"] = layer[5]
            rows.append(row)
    cpu_s = time.process_time() - t0
    weights = cpt_weights()
    hz = cfg.clock_mhz * 1e6
    summary = {}
    for op in OPS:
        per_fw = {fw: {k: sum(r[k] * r["count"] for r in rows if r["op"] == op and r["fw"] == fw) / hz
                       for k in ("twin_cycles", "model_cycles")} for fw in args.fw}
        full = set(args.fw) == set(FWS)
        cpt = {k: sum(weights[fw] * per_fw[fw][k] for fw in args.fw) / sum(weights[fw] for fw in args.fw)
               for k in ("twin_cycles", "model_cycles")}
        summary[op] = {"per_fw_s": per_fw, "cpt_s": cpt, "cpt_complete": full,
                       "static_s": per_fw.get(8)}
    command = " ".join(["python bench/bench_twin_cycles.py", *(argv if argv is not None else sys.argv[1:])])
    result = {"batch": args.batch, "fws": args.fw, "config": cfg.name, "clock_mhz": cfg.clock_mhz,
              "command": command, "cpu_s": round(cpu_s, 1), "rows": rows, "summary": summary}
    out = Path(args.out)
    write_atomic(out.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    write_atomic(out.with_suffix(".md"), report(result))
    print(report(result))
    return 0


def report(res: dict) -> str:
    L = [f"# The twin's convolution seconds per ResNet-74 iteration (batch {res['batch']}), exact",
         "", f"Reproduce: `{res['command']}` ({res['cpu_s']} CPU-s; method in the script's docstring).  Every call "
         "the driver makes on the emulated device with the twin's limits, timed by cpt_hw.hw.twin_cycle_model "
         "(exact against the twin, AxiRam's timing) and by the design's model the emulated device reports.  "
         "Weight gradients: in the driver's calls, each hinting the next (hits counted as hits).", "",
         "| class | twin s, CPT 3-8/8 | model s, CPT | twin / model | twin s, static 8/8 | model s, static |",
         "|---|---:|---:|---:|---:|---:|"]
    for op, s in res["summary"].items():
        cpt, st = s["cpt_s"], s["static_s"]
        label = LABELS[op]
        cpt_note = "" if s["cpt_complete"] else " (fw measured only)"
        st_cells = f"{st['twin_cycles']:.3f} | {st['model_cycles']:.3f}" if st else "- | -"
        L.append(f"| {label}{cpt_note} | {cpt['twin_cycles']:.3f} | {cpt['model_cycles']:.3f} | "
                 f"{cpt['twin_cycles'] / cpt['model_cycles']:.3f} | {st_cells} |")
    L += ["", "## Per layer (cycles summed over the layer's calls, one layer)", "",
          "| layer | op | fw | calls | images a call | twin cycles | model cycles | twin / model |",
          "|---|---|---:|---:|---|---:|---:|---:|"]
    for r in res["rows"]:
        L.append(f"| {r['layer']} | {r['op']} | {r['fw']} | {r['calls']} | {r['images_per_call']} | "
                 f"{r['twin_cycles']:,} | {r['model_cycles']:,} | {r['twin_cycles'] / r['model_cycles']:.3f} |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
