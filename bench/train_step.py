"""How long one `cpt-hw train` iteration takes, per precision: the trainer's own step, timed.

Times :meth:`cpt_hw.train.trainer.Trainer._train_step` (schedule lookup, precision context, batch
assembly with crop + flip, forward, the loss all-reduce/NaN check, backward, SGD, BitOPs) at static
precisions, on synthetic CIFAR-shaped data (random pixels: timing does not depend on them), and writes
JSON + a markdown table to docs/results/train_step.{json,md}.

    python bench/train_step.py --model resnet74 --device cuda --bits 0 8 3      # GPU, the facts file's setting
    python bench/train_step.py --model digits_cnn --dataset digits --batch-size 64 --backend accel:emu --threads 1

bits 0 is the float network (no quantization).  Compare with cpt-reference-facts.md: the reference
implementation takes 26.1 ms (FP32), 147.3 ms (fw8/bw8) and 181.4 ms (fw3/bw8) for ResNet-74 at batch 128
on one H200.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cpt_hw.fileio import write_atomic  # noqa: E402
from cpt_hw.train.config import TrainConfig  # noqa: E402
from cpt_hw.train.data import Dataset, ImageSet, load_dataset  # noqa: E402
from cpt_hw.train.trainer import Trainer  # noqa: E402


def synthetic_cifar(n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    split = ImageSet(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64))
    return Dataset("cifar10-synthetic", split, split, tuple(str(i) for i in range(10)), 255.0,
                   (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), augment=True)


def time_steps(args: argparse.Namespace, bits: int) -> dict:
    data = (load_dataset("digits") if args.dataset == "digits"
            else synthetic_cifar(args.batch_size * (args.iters + args.warmup)))
    cfg = TrainConfig(model=args.model, dataset=args.dataset, schedule="static", bits=str(bits),
                      grad_bits=str(bits if bits == 0 else args.grad_bits), iters=args.iters + args.warmup,
                      batch_size=args.batch_size, backend=args.backend, device=args.device, threads=args.threads,
                      progress=False, out="/tmp/cpt-hw-bench")
    trainer = Trainer(cfg, data=data)
    trainer._setup()
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    times = []
    for t in range(args.warmup + args.iters):
        sync()
        start = time.perf_counter()
        trainer._train_step(t)
        sync()
        if t >= args.warmup:
            times.append(time.perf_counter() - start)
    return {"model": args.model, "backend": args.backend, "device": str(trainer.device), "bits": bits,
            "grad_bits": 0 if bits == 0 else args.grad_bits, "batch_size": args.batch_size, "iters": args.iters,
            "ms_per_step_median": 1e3 * statistics.median(times), "ms_per_step_mean": 1e3 * statistics.fmean(times),
            "ms_per_step_min": 1e3 * min(times)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet74")
    p.add_argument("--dataset", default="cifar10", choices=("cifar10", "digits"))
    p.add_argument("--bits", type=int, nargs="+", default=[0, 8, 3])
    p.add_argument("--grad-bits", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--backend", default="torch")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", help="output path without suffix (default: docs/results/train_step-<model>-<backend>)")
    args = p.parse_args()
    args.out = args.out or str(ROOT / "docs" / "results" / f"train_step-{args.model}-{args.backend.replace(':', '-')}")
    rows = [time_steps(args, b) for b in args.bits]
    fp = next((r["ms_per_step_median"] for r in rows if r["bits"] == 0), None)
    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    result = {"machine": machine, "torch": torch.__version__, "command": " ".join(sys.argv), "rows": rows}
    lines = [f"# Training step time ({machine}, torch {torch.__version__})", "",
             f"`{result['command']}`", "",
             "| model | backend | fw/bw bits | batch | median ms/step | min ms/step | vs float |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ms_per_step_median'] / fp:.2f}x" if fp else "-"
        label = "float" if r["bits"] == 0 else f"{r['bits']}/{r['grad_bits']}"
        lines.append(f"| {r['model']} | {r['backend']} | {label} | {r['batch_size']} | "
                     f"{r['ms_per_step_median']:.1f} | {r['ms_per_step_min']:.1f} | {ratio} |")
    out = Path(args.out)
    write_atomic(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    write_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
