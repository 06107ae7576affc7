"""Training-step time on a CUDA GPU: CPT (fast path) vs FP32, per model, averaged over a precision cycle.

    python bench/bench_gpu_step.py --models resnet38 resnet74 --batch 128 --out docs/results

Modes, all with SGD (lr 0.1, momentum 0.9, wd 1e-4) on random CIFAR-shaped batches (as the reference
implementation's speed was measured, cpt-reference-facts.md):

* ``fp32_eager`` / ``fp32_graph``: plain float training (quantized layers at precision 0), eager and
  with the whole iteration captured in a CUDA graph;
* ``cpt_generic_eager``: CPT 3-8/8 through the generic ``torch`` backend (Python-int precision, eager);
* ``cpt_fast_eager``: CPT 3-8/8 through the fused fast path, eager;
* ``cpt_fast_graph`` / ``cpt_fast_graph_hw``: the fast path in one CUDA graph, paper / hardware numerics.

CPT modes step through one whole precision cycle (CyclicPrecision(3, 8, 1, iters)), so every bit-width
3..8 is timed in its share.  Writes gpu_step.json and gpu_step.md into --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpt_hw import nn as cnn  # noqa: E402
from cpt_hw.fast import DevicePrecision, enable_fast  # noqa: E402
from cpt_hw.fast.graph import GraphedTrainStep  # noqa: E402
from cpt_hw.models import build_model  # noqa: E402
from cpt_hw.schedules import CyclicPrecision  # noqa: E402

MODES = ("fp32_eager", "fp32_graph", "cpt_generic_eager", "cpt_fast_eager", "cpt_fast_graph", "cpt_fast_graph_hw")


def _setup(name: str, batch: int, channels_last: bool):
    torch.manual_seed(0)
    model = build_model(name, 10).cuda()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    xs = [torch.randn(batch, 3, 32, 32, device="cuda").contiguous(memory_format=mf) for _ in range(8)]
    ys = torch.randint(0, 10, (8, batch), device="cuda")
    return model, opt, xs, ys


def time_mode(mode: str, name: str, batch: int, iters: int, warmup: int, channels_last: bool) -> dict:
    model, opt, xs, ys = _setup(name, batch, channels_last)
    sched = CyclicPrecision(3, 8, 1, iters)
    bits = [sched(t) for t in range(iters)]
    quantized = mode.startswith("cpt")
    dp = None
    if mode.startswith("cpt_fast"):
        dp = DevicePrecision("cuda", seed=0, hardware=mode.endswith("_hw"))
        enable_fast(model, dp)
    cnn.set_default_backend("torch")

    def set_bits(t: int) -> None:
        if dp is not None:
            dp.set(bits[t % iters], 8, t)
        cnn.set_precision(fw=bits[t % iters] if quantized else 0, bw=8 if quantized else 0, step=t)

    def eager_step(t: int) -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xs[t % 8]), ys[t % 8])
        loss.backward()
        opt.step()

    compile_s = 0.0
    graphed = None
    set_bits(0)
    if mode.endswith("graph") or mode.endswith("graph_hw"):
        t0 = time.perf_counter()
        graphed = GraphedTrainStep(model, opt, F.cross_entropy, xs[0], ys[0], warmup=3)
        torch.cuda.synchronize()
        compile_s = time.perf_counter() - t0

        def run(t: int) -> None:
            set_bits(t)
            graphed.step(xs[t % 8], ys[t % 8])
    else:
        t0 = time.perf_counter()
        for t in range(2):
            set_bits(t)
            eager_step(t)
        torch.cuda.synchronize()
        compile_s = time.perf_counter() - t0

        def run(t: int) -> None:
            set_bits(t)
            eager_step(t)

    for t in range(warmup):
        run(t)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for t in range(iters):
        run(t)
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end) / iters
    finite = all(torch.isfinite(p).all() for p in model.parameters())
    return {"mode": mode, "model": name, "batch": batch, "channels_last": channels_last, "ms_per_iter": round(ms, 3),
            "iters": iters, "bits_cycle": f"{min(bits)}-{max(bits)}", "setup_s": round(compile_s, 1),
            "params_finite": bool(finite)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet38", "resnet74"])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=120, help="timed iterations (one precision cycle)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--out", default="docs/results")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu_step: error: no CUDA device", file=sys.stderr)
        return 2
    rows = []
    for name in args.models:
        for mode in args.modes:
            r = time_mode(mode, name, args.batch, args.iters, args.warmup, args.channels_last)
            print(json.dumps(r), flush=True)
            rows.append(r)
    meta = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "python": platform.python_version(),
            "command": "python bench/bench_gpu_step.py " + " ".join(argv or sys.argv[1:])}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "_cl" if args.channels_last else ""
    (out / f"gpu_step{tag}.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = [f"# Training-step time on {meta['gpu']} (torch {meta['torch']})", "",
             f"`{meta['command']}`", "", "| model | mode | channels_last | ms / iteration | vs fp32_eager |", "|---|---|---|---|---|"]
    for name in args.models:
        base = next((r["ms_per_iter"] for r in rows if r["model"] == name and r["mode"] == "fp32_eager"), None)
        for r in rows:
            if r["model"] == name:
                rel = f"{r['ms_per_iter'] / base:.2f}x" if base else "-"
                lines.append(f"| {name} | {r['mode']} | {r['channels_last']} | {r['ms_per_iter']:.2f} | {rel} |")
    (out / f"gpu_step{tag}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
