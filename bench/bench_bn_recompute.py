"""What an exact recompute of the BatchNorm inputs would cost: per stage of a CIFAR ResNet, the accelerator and
host time of the convolutions' forward GEMMs against the memory their saved outputs hold.

    .venv/bin/python bench/bench_bn_recompute.py --model resnet74        # batch 128, fw 3..8 (~2 min)

Every convolution of the CIFAR ResNets feeds a BatchNorm, whose backward needs that input exactly; the
iteration keeps it as float32 (the largest part of the host's memory, docs/zc706-pynq.md "Memory").
Recomputing it during backward from what the iteration keeps anyway (the layer's uint8 input codes and its
weights) repeats the layer's forward GEMM on the accelerator and the host work around it (packing,
corrections), and gives the same float32 tensor bit for bit (integer GEMM, deterministic corrections).
This script measures, per convolution, with the forward passes of ``bench/bench_board_step.py``'s setup
(``accel:emu``, one thread, the same synthetic batch) at each forward precision fw = 3..8: the device
cycles of its forward GEMMs (exact against the RTL), the host CPU seconds of its forward (the emulated
device's own time excluded) and the bytes of its output.  Per stage: the sums, CPT 3-8/8 (the schedule's
weights) and static 8/8 (fw 8).  The host seconds exclude ``rounding`` (the input's quantization, whose
codes a recompute reuses) and are an estimate of the recompute's host cost, not a measurement of one.
Nothing is implemented here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

import bench_board_step as bbs  # noqa: E402
from cpt_hw import nn as cnn  # noqa: E402
from cpt_hw.fileio import write_atomic  # noqa: E402
from cpt_hw.nn.layers import QConv2d  # noqa: E402


def stage_of(name: str, depth_blocks: int) -> str:
    """'stem' for conv1, else 'stage 1..3' from the block index (depth_blocks blocks per stage)."""
    if not name.startswith("blocks."):
        return "stage 1"  # the stem conv's output (16 x 32 x 32) is stage 1's shape
    return f"stage {int(name.split('.')[1]) // depth_blocks + 1}"


def measure_forward(bench: bbs.Bench, fw: int, probe: bbs.DeviceProbe) -> dict[str, dict]:
    """{conv name: cycles, host CPU s by category, output bytes} of one training-mode forward at fw."""
    acc, clock = bench.engine.accelerator, bench.clock
    out: dict[str, dict] = {}
    starts: dict[str, tuple[int, dict]] = {}

    def pre(name):
        def hook(_m, _x):
            starts[name] = (acc.total_cycles, clock.snapshot())
        return hook

    def post(name):
        def hook(_m, _x, y):
            cycles0, t0 = starts.pop(name)
            t1 = clock.snapshot()
            out[name] = {"cycles": acc.total_cycles - cycles0, "out_bytes": y.numel() * y.element_size(),
                         "host_s": {k: t1.get(k, 0.0) - t0.get(k, 0.0) for k in t1}}
        return hook

    handles = []
    for name, mod in bench.model.named_modules():
        if isinstance(mod, QConv2d):
            handles += [mod.register_forward_pre_hook(pre(name)), mod.register_forward_hook(post(name))]
    try:
        cnn.set_precision(fw, bbs.GRAD_BITS, step=0, seed=0)
        bench.model.train()
        bench.model(bench.x)  # with autograd, as in training (the saved tensors are freed on return)
    finally:
        for h in handles:
            h.remove()
    return out


def host_recompute_s(host: dict[str, float]) -> float:
    """Host CPU of a forward minus what a recompute skips (the quantization) and what is not host work."""
    split = bbs._host_split(host)
    return sum(split[c] for c in bbs.CATEGORIES if c != "rounding")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet74")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", type=Path, default=None, help="output path without suffix")
    args = p.parse_args(argv)
    out_path = args.out or ROOT / "docs" / "results" / f"bn_recompute-{args.model}"
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    blocks = bbs.DEPTHS[int(args.model.removeprefix("resnet"))]
    bits = list(range(bbs.CPT_BITS[0], bbs.CPT_BITS[1] + 1))
    weights = bbs.cpt_weights()
    per_fw: dict[int, dict[str, dict]] = {}
    with threadpool_limits(limits=1):
        bench = bbs.Bench(args.model, args.batch_size)
        clock_hz = bench.engine.config.clock_mhz * 1e6
        with bbs.RssSampler() as sampler, bbs.DeviceProbe(bench.clock, sampler) as probe, bbs.set_hook(bench.clock):
            for fw in bits:
                per_fw[fw] = measure_forward(bench, fw, probe)
    stages: dict[str, dict] = defaultdict(lambda: {"convs": 0, "mb": 0.0, "accel_s": {}, "host_s": {}})
    for name in per_fw[8]:
        st = stages[stage_of(name, blocks)]
        st["convs"] += 1
        st["mb"] += per_fw[8][name]["out_bytes"] / (1 << 20)
        for fw in bits:
            rec = per_fw[fw][name]
            st["accel_s"][fw] = st["accel_s"].get(fw, 0.0) + rec["cycles"] / clock_hz
            st["host_s"][fw] = st["host_s"].get(fw, 0.0) + host_recompute_s(rec["host_s"])
    rows = []
    for name in sorted(stages):
        st = stages[name]
        rows.append({"stage": name, "convs": st["convs"], "bn_input_mb": st["mb"],
                     "accel_s": {"cpt": sum(w * st["accel_s"][b] for b, w in weights.items()),
                                 "static": st["accel_s"][8], "by_fw": st["accel_s"]},
                     "host_cpu_s": {"cpt": sum(w * st["host_s"][b] for b, w in weights.items()),
                                    "static": st["host_s"][8], "by_fw": st["host_s"]}})
    command = "python bench/bench_bn_recompute.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res = {"model": args.model, "batch_size": args.batch_size, "command": command.strip(),
           "machine": bbs.machine_info(), "stages": rows}
    L = [f"# BatchNorm-input recompute: {args.model}, batch {args.batch_size}, `accel:emu` (zc706)", "",
         f"Reproduce: `{res['command']}` (method in the script's docstring).  Host CPU: one x86 core, 1-minute "
         f"load average {res['machine']['load_average_1min_at_end']} at the end.", "",
         "| stage | convs | BN inputs saved (MB) | accelerator s, CPT / static | ms per MB (CPT) | "
         "host CPU s (x86), CPT / static |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        a, h = r["accel_s"], r["host_cpu_s"]
        L.append(f"| {r['stage']} | {r['convs']} | {r['bn_input_mb']:.0f} | {a['cpt']:.3f} / {a['static']:.3f} | "
                 f"{1e3 * a['cpt'] / r['bn_input_mb']:.2f} | {h['cpt']:.2f} / {h['static']:.2f} |")
    write_atomic(out_path.with_suffix(".json"), json.dumps(res, indent=2) + "\n")
    write_atomic(out_path.with_suffix(".md"), "\n".join(L) + "\n")
    print("\n".join(L))
    return 0


if __name__ == "__main__":
    sys.exit(main())
