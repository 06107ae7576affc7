"""Does training with the accelerator's numerics match training with the paper's?

Trains the same model, data order and seeds with CPT under ``torch`` (paper numerics) and
``torch:hardware`` (the integer backends' numerics emulated in float: docs/numerics.md), optionally
also static precision and float, and writes JSON + a markdown table to docs/results/.

    python bench/numerics_training.py --dataset digits --seeds 0 1 2                  # CPU, ~1 min
    python bench/numerics_training.py --dataset cifar10 --model resnet20 --epochs 30 \\
        --data ../shared/data/cifar10-jpeg.tar.gz --device cuda                        # GPU

The CPT schedule is the reference's (per iteration, T = total // cycles, rint of a half-cosine ramp);
lr: SGD 0.1, momentum 0.9, weight decay 1e-4 (5e-4 on digits), cosine annealing over the run (short runs).
Evaluation at the top precision with the running activation ranges.  Each (numerics, seed) pair sees
the same initial weights and the same batches.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import sys
import tarfile
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

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def cpt_bits(t: int, lo: int, hi: int, total: int, cycles: int) -> int:
    """The reference's cyclic precision at iteration t (cpt-reference-facts.md)."""
    if lo == hi:
        return lo
    period = max(total // cycles, 1)
    return int(np.rint(lo + 0.5 * (hi - lo) * (1 - math.cos(math.pi * (t % period) / period))))


def load_digits_data() -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.3) / 0.4
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))
    tr, te = perm[:1437], perm[1437:]
    return x[tr], y[tr], x[te], y[te]


def load_cifar_archive(path: Path, cache: Path) -> tuple[torch.Tensor, ...]:
    """Image-folder tar.gz (train/<class>/*.jpg, test/<class>/*.jpg) -> uint8 tensors, cached as .npz."""
    if not cache.exists():
        from PIL import Image

        parts: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
        with tarfile.open(path) as tar:
            for member in tar:
                bits = member.name.split("/")
                if member.isfile() and len(bits) == 3 and bits[0] in parts and bits[1] in CIFAR_CLASSES:
                    img = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                    parts[bits[0]][0].append(np.asarray(img, dtype=np.uint8))
                    parts[bits[0]][1].append(CIFAR_CLASSES.index(bits[1]))
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **{f"{k}_{w}": np.stack(v[i]) if w == "x" else np.array(v[i])
                           for k, v in parts.items() for i, w in enumerate("xy")})
    z = np.load(cache)
    return tuple(torch.from_numpy(z[k]) for k in ("train_x", "train_y", "test_x", "test_y"))


def cifar_batch(x_u8: torch.Tensor, device: torch.device, train: bool, gen: torch.Generator) -> torch.Tensor:
    """uint8 (B, 32, 32, 3) -> normalised float (B, 3, 32, 32); training: random crop (pad 4) + flip."""
    x = x_u8.to(device).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(MEAN, device=device).view(1, 3, 1, 1)) / torch.tensor(STD, device=device).view(1, 3, 1, 1)
    if train:
        b = x.shape[0]
        padded = F.pad(x, (4, 4, 4, 4))
        off = torch.randint(0, 9, (2, b, 1), generator=gen).to(device)
        flip = (torch.rand(b, generator=gen) < 0.5).to(device)
        cols = torch.arange(32, device=device).view(1, 32)
        iy, ix = off[0] + cols, off[1] + torch.where(flip.view(b, 1), 31 - cols, cols)
        x = padded[torch.arange(b, device=device).view(b, 1, 1), :, iy.view(b, 32, 1), ix.view(b, 1, 32)]
        x = x.permute(0, 3, 1, 2)  # advanced indexing put the channel axis last
    return x


def run(args: argparse.Namespace, data: tuple, numerics: str, seed: int) -> dict:
    device = torch.device(args.device)
    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)
    model = build_model(args.model, 10).to(device)
    backend = {"paper": "torch", "hardware": "torch:hardware", "float": "torch", "static": "torch"}[numerics]
    cnn.set_backend(model, backend)
    lo, hi = (args.bits_hi, args.bits_hi) if numerics == "static" else (args.bits_lo, args.bits_hi)
    if numerics == "float":
        lo = hi = 0
    steps_per_epoch = len(ytr) // args.batch_size
    total = args.epochs * steps_per_epoch if not args.max_iters else min(args.max_iters, args.epochs * steps_per_epoch)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    gen = torch.Generator().manual_seed(seed)
    t, t0, losses = 0, time.time(), []
    while t < total:
        model.train()
        order = torch.randperm(len(ytr), generator=gen)
        for i in range(min(steps_per_epoch, total - t)):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            xb = cifar_batch(xtr[idx], device, True, gen) if args.dataset == "cifar10" else xtr[idx].to(device)
            cnn.set_precision(fw=cpt_bits(t, lo, hi, total, args.cycles), bw=0 if numerics == "float" else args.grad_bits,
                              step=t, seed=seed)
            loss = F.cross_entropy(model(xb), ytr[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.detach())
            t += 1
    model.eval()
    correct = 0
    with torch.no_grad(), cnn.precision(fw=hi, bw=0):
        for i in range(0, len(yte), 1000):
            xb = cifar_batch(xte[i:i + 1000], device, False, gen) if args.dataset == "cifar10" else xte[i:i + 1000].to(device)
            correct += int((model(xb).argmax(1).cpu() == yte[i:i + 1000]).sum())
    final_loss = float(torch.stack(losses[-steps_per_epoch:]).mean())
    return {"numerics": numerics, "seed": seed, "test_acc": 100.0 * correct / len(yte), "train_loss_last_epoch": final_loss,
            "iterations": total, "seconds": round(time.time() - t0, 1)}


def summarise(results: list[dict]) -> list[dict]:
    rows = []
    for numerics in dict.fromkeys(r["numerics"] for r in results):
        accs = [r["test_acc"] for r in results if r["numerics"] == numerics]
        rows.append({"numerics": numerics, "runs": len(accs), "mean_acc": statistics.mean(accs),
                     "std_acc": statistics.stdev(accs) if len(accs) > 1 else 0.0, "accs": accs})
    return rows


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
    args = p.parse_args(argv)
    digits = args.dataset == "digits"
    args.model = args.model or ("digits_cnn" if digits else "resnet20")
    args.epochs = args.epochs or (10 if digits else 30)
    args.batch_size = args.batch_size or (32 if digits else 128)
    args.wd = args.wd if args.wd is not None else (5e-4 if digits else 1e-4)
    torch.set_num_threads(args.threads)
    if digits:
        data = load_digits_data()
    else:
        if not args.data.exists():
            print(f"skipped: {args.data} not found", file=sys.stderr)
            return 0
        data = load_cifar_archive(args.data, ROOT / "build/cache/cifar10-jpeg.npz")
        if args.subset:  # a fixed random subset: the archive is ordered by class
            keep = torch.randperm(len(data[1]), generator=torch.Generator().manual_seed(4321))[:args.subset]
            data = (data[0][keep], data[1][keep], data[2], data[3])
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
