"""Does training with the accelerator's numerics match training with the paper's?

Trains the same model, data order and seeds with CPT under ``torch`` (paper numerics) and
``torch:hardware`` (the integer backends' numerics emulated in float: docs/numerics.md), optionally
also static precision and float, and writes JSON + a markdown table to docs/results/.

    python bench/numerics_training.py --dataset digits --seeds 0 1 2                  # CPU, ~1 min
    python bench/numerics_training.py --dataset cifar10 --model resnet20 --epochs 30 \\
        --data ../shared/data/cifar10-jpeg.tar.gz --device cuda                        # GPU

    python bench/numerics_training.py --merge a.json b.json --out docs/results/numerics-cifar10-subset

The CPT schedule is :class:`cpt_hw.schedules.CyclicPrecision` (the reference's: per iteration,
T = total // cycles, rint of a half-cosine ramp); data, normalisation and CIFAR crop + flip come from
:func:`cpt_hw.train.data.load_dataset` and :class:`cpt_hw.train.batches.Batches` (batch of step t: a pure function
of (seed, t)).  lr: SGD 0.1, momentum 0.9, weight decay 1e-4 (5e-4 on digits), cosine annealing over the run
(short runs).  Evaluation at the top precision with the running activation ranges.  Each (numerics, seed)
pair sees the same initial weights and the same batches.  ``--merge`` combines the JSON files of several
invocations (e.g. seeds run in parallel processes) into one report with the paired per-seed differences.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cpt_hw import nn as cnn  # noqa: E402
from cpt_hw.fileio import write_atomic  # noqa: E402
from cpt_hw.models import build_model  # noqa: E402
from cpt_hw.schedules import make_schedule  # noqa: E402
from cpt_hw.train.batches import Batches, eval_batches  # noqa: E402
from cpt_hw.train.data import Dataset, ImageSet, load_dataset  # noqa: E402

SUBSET_SEED = 4321


def train_subset(data: Dataset, n: int, seed: int = SUBSET_SEED) -> Dataset:
    """``data`` with a fixed random ``n`` of its training images (0: all); mean/std stay the full split's."""
    if not n:
        return data
    keep = np.sort(torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:n].numpy())
    return dataclasses.replace(data, train=ImageSet(data.train.pixels[keep], data.train.labels[keep]))


def run(args: argparse.Namespace, data: Dataset, numerics: str, seed: int) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(seed)
    model = build_model(args.model, data.num_classes).to(device)
    backend = {"paper": "torch", "hardware": "torch:hardware", "float": "torch", "static": "torch"}[numerics]
    cnn.set_backend(model, backend)
    batches = Batches(data, args.batch_size, seed, device=device)
    steps_per_epoch = batches.steps_per_epoch
    total = args.epochs * steps_per_epoch if not args.max_iters else min(args.max_iters, args.epochs * steps_per_epoch)
    hi = 0 if numerics == "float" else args.bits_hi
    kind = "cpt" if numerics in ("paper", "hardware") else "static"  # static: bits_hi; float: 0
    bits = make_schedule(kind, 0 if numerics == "float" else args.bits_lo, hi, total, args.cycles)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    t0, losses = time.time(), []
    model.train()
    for t in range(total):
        xb, yb = batches.get(t)
        cnn.set_precision(fw=bits(t), bw=0 if numerics == "float" else args.grad_bits, step=t, seed=seed)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach())
    model.eval()
    correct = 0
    with torch.no_grad(), cnn.precision(fw=hi, bw=0):
        for xb, yb in eval_batches(data, data.test, 1000, device=device):
            correct += int((model(xb).argmax(1) == yb).sum())
    final_loss = float(torch.stack(losses[-steps_per_epoch:]).mean())
    return {"numerics": numerics, "seed": seed, "test_acc": 100.0 * correct / len(data.test),
            "train_loss_last_epoch": final_loss, "iterations": total, "test_images": len(data.test),
            "seconds": round(time.time() - t0, 1)}


def summarise(results: list[dict]) -> list[dict]:
    rows = []
    for numerics in dict.fromkeys(r["numerics"] for r in results):
        accs = [r["test_acc"] for r in results if r["numerics"] == numerics]
        rows.append({"numerics": numerics, "runs": len(accs), "mean_acc": statistics.mean(accs),
                     "std_acc": statistics.stdev(accs) if len(accs) > 1 else 0.0, "accs": accs})
    return rows


def paired_difference(results: list[dict]) -> dict | None:
    """hardware - paper test accuracy per seed (seeds that ran both), with mean, std and standard error."""
    acc = {(r["numerics"], r["seed"]): r["test_acc"] for r in results}
    seeds = [s for s in dict.fromkeys(r["seed"] for r in results) if ("paper", s) in acc and ("hardware", s) in acc]
    if not seeds:
        return None
    diffs = [acc[("hardware", s)] - acc[("paper", s)] for s in seeds]
    std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    return {"seeds": seeds, "per_seed": diffs, "mean": statistics.mean(diffs), "std": std,
            "stderr": std / len(diffs) ** 0.5}


def merge(paths: list[Path], out: Path, command: str) -> int:
    """One report from the JSON files of several invocations with the same settings (other seeds)."""
    parts = [json.loads(p.read_text()) for p in paths]
    ignore = ("seeds", "out", "threads", "merge")
    a0 = {k: v for k, v in parts[0]["args"].items() if k not in ignore}
    for p, part in zip(paths[1:], parts[1:]):
        a = {k: v for k, v in part["args"].items() if k not in ignore}
        if a != a0:
            diff = sorted(k for k in set(a) | set(a0) if a.get(k) != a0.get(k))
            raise SystemExit(f"--merge: {p} ran with other settings ({', '.join(diff)})")
    commands = [part["command"] for part in parts]
    results = [r for part in parts for r in part["runs"]]
    rows = summarise(results)
    paired = paired_difference(results)
    doc = {"commands": commands, "merge_command": command, "runs": results, "summary": rows}
    if paired:
        doc["paired_difference_hardware_minus_paper"] = paired
    write_atomic(out.with_suffix(".json"), json.dumps(doc, indent=1) + "\n")
    args = parts[0]["args"]
    seeds = [f"{part['args']['seeds'][0]}-{part['args']['seeds'][-1]}" if len(part["args"]["seeds"]) > 1
             else str(part["args"]["seeds"][0]) for part in parts]
    label = {"cifar10": "CIFAR-10"}.get(args["dataset"], args["dataset"])
    what = f"a {label} subset" if args["subset"] else args["dataset"]
    data = f"{args['epochs']} epochs" if not args["max_iters"] else f"at most {args['max_iters']} iterations"
    data += f" of a fixed random {args['subset']:,}-image subset" if args["subset"] else ""
    threads = sorted({part["args"]["threads"] for part in parts})
    threads_txt = "one thread" if threads == [1] else f"{'/'.join(map(str, threads))} threads"
    test_images = results[0].get("test_images")
    lines = [f"# Paper vs hardware numerics: {args['model']} on {what}", "",
             f"Seeds {' and '.join(seeds)} ran as {len(parts)} invocations (results merged):", ""]
    lines += [f"    {c}" for c in commands]
    lines += ["", "merged with", "", f"    {command}"]
    lines += ["", f"CPT {args['bits_lo']}-{args['bits_hi']}/{args['grad_bits']}, {args['cycles']} cycles, "
              f"{results[0]['iterations']} iterations ({data}), batch {args['batch_size']}, "
              f"{args['device'].upper() if args['device'] == 'cpu' else args['device']}, {threads_txt}; test accuracy"
              + (f" on the {test_images:,} test images" if test_images else "") + f" at {args['bits_hi']} bits.", "",
              "| numerics | runs | test accuracy % (mean +- std) | per seed | train loss, last epoch (mean) |",
              "|---|---|---|---|---|"]
    for r in rows:
        loss = statistics.mean(x["train_loss_last_epoch"] for x in results if x["numerics"] == r["numerics"])
        lines.append(f"| {r['numerics']} | {r['runs']} | {r['mean_acc']:.2f} +- {r['std_acc']:.2f} | "
                     f"{', '.join(f'{a:.2f}' for a in r['accs'])} | {loss:.3f} |")
    if paired:
        lines += ["", "Paired difference hardware - paper per seed: "
                  + ", ".join(f"{d:+.2f}" for d in paired["per_seed"])
                  + f"; mean {paired['mean']:+.2f}, standard error {paired['stderr']:.2f} points."]
    write_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=("digits", "cifar10"), default="digits")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/cifar10-jpeg.tar.gz")
    p.add_argument("--subset", type=int, default=0, help="train on a fixed random N of the training images (0: all)")
    p.add_argument("--model", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--wd", type=float, default=None)
    p.add_argument("--bits-lo", type=int, default=3)
    p.add_argument("--bits-hi", type=int, default=8)
    p.add_argument("--grad-bits", type=int, default=8)
    p.add_argument("--cycles", type=int, default=8)
    p.add_argument("--numerics", nargs="+", default=["paper", "hardware"], choices=("paper", "hardware", "static", "float"))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-iters", type=int, default=0, help="stop after N iterations (timing probes)")
    p.add_argument("--out", type=Path, default=None, help="output stem (default docs/results/numerics-<dataset>)")
    p.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                   help="merge these result files of earlier invocations into --out (runs nothing)")
    args = p.parse_args(argv)
    if args.merge:
        if args.out is None:
            p.error("--merge needs --out")
        return merge(args.merge, args.out,
                     "python bench/numerics_training.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    digits = args.dataset == "digits"
    args.model = args.model or ("digits_cnn" if digits else "resnet20")
    args.epochs = args.epochs or (10 if digits else 30)
    args.batch_size = args.batch_size or (32 if digits else 128)
    args.wd = args.wd if args.wd is not None else (5e-4 if digits else 1e-4)
    torch.set_num_threads(args.threads)
    if digits:
        data = load_dataset("digits")
    else:
        if not args.data.exists():
            print(f"skipped: {args.data} not found", file=sys.stderr)
            return 0
        data = load_dataset(args.dataset, args.data)
    data = train_subset(data, args.subset)  # a fixed random subset: the image folders are ordered by class
    results = []
    for seed in args.seeds:
        for numerics in args.numerics:
            r = run(args, data, numerics, seed)
            print(json.dumps(r), flush=True)
            results.append(r)
    rows = summarise(results)
    out = args.out or ROOT / f"docs/results/numerics-{args.dataset}"
    command = "python bench/numerics_training.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_atomic(out.with_suffix(".json"), json.dumps({"command": command, "args": meta, "runs": results,
                                                       "summary": rows}, indent=1) + "\n")
    lines = [f"# Paper vs hardware numerics: {args.model} on {args.dataset}", "",
             f"`{command}`", "",
             f"CPT {args.bits_lo}-{args.bits_hi}/{args.grad_bits}, {args.cycles} cycles, {results[0]['iterations']} iterations, "
             f"batch {args.batch_size}, device {args.device}; test accuracy at {args.bits_hi} bits.", "",
             "| numerics | runs | test accuracy % (mean +- std) | per seed |", "|---|---|---|---|"]
    lines += [f"| {r['numerics']} | {r['runs']} | {r['mean_acc']:.2f} +- {r['std_acc']:.2f} | "
              f"{', '.join(f'{a:.2f}' for a in r['accs'])} |" for r in rows]
    write_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
