"""``cpt-hw landscape CKPT [CKPT ...]``: 2-D loss contours around trained models (the paper's Fig. 2)."""

from __future__ import annotations

import argparse
import json
import math
from itertools import islice
from pathlib import Path

from ..errors import CptHwError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("landscape", help="loss landscape around trained checkpoints (Li et al. 2018)",
                       description="Draw the 2-D loss contour around each checkpoint along two filter-normalised "
                                   "random directions; several checkpoints are drawn side by side on shared levels.")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoint.pt files written by cpt-hw train")
    p.add_argument("--labels", nargs="+", help="one title per checkpoint (default: model and schedule)")
    p.add_argument("--steps", type=int, default=21, help="grid points per axis (default 21)")
    p.add_argument("--span", type=float, default=1.0, help="grid half-width in units of the directions (default 1)")
    p.add_argument("--samples", type=int, default=2048, help="training images the loss averages over (default 2048)")
    p.add_argument("--bits", default="last",
                   help="forward/backward precision to evaluate at: 'last' (the run's last iteration), N, or 0 (float)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions (same for every checkpoint)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", default="runs/landscape", help="output directory (landscape.png, one JSON per checkpoint)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _label(cfg) -> str:
    """A title in the paper's terms: 'resnet74 FP32', 'resnet74 static 8/8', 'resnet74 cpt 3-8/8'."""
    from ..schedules import parse_bits_range

    if cfg.bits == "auto":
        return f"{cfg.model} {cfg.schedule} auto/{cfg.grad_bits}"
    lo, hi = parse_bits_range(cfg.bits)
    if hi == 0:
        return f"{cfg.model} FP32"
    bits = str(hi) if lo == hi or cfg.schedule == "static" else f"{lo}-{hi}"
    return f"{cfg.model} {cfg.schedule} {bits}/{cfg.grad_bits}"


def _check_args(args: argparse.Namespace) -> None:
    """Every flag, before any checkpoint is read."""
    import torch

    from ..nn.context import MAX_BITS
    from ..train.landscape import check_grid

    if args.labels and len(args.labels) != len(args.checkpoints):
        raise CptHwError(f"--labels: {len(args.labels)} given for {len(args.checkpoints)} checkpoints")
    check_grid(args.steps, args.span)
    if args.samples < 1:
        raise CptHwError(f"--samples {args.samples}: must be positive")
    if args.bits != "last" and not (args.bits.isdigit() and 0 <= int(args.bits) <= MAX_BITS):
        raise CptHwError(f"--bits {args.bits!r}: expected 'last', 0 (float) or a number of bits in 1..{MAX_BITS}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CptHwError(f"--device {args.device}: CUDA is not available on this machine")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CptHwError(f"--out {out}: exists and is not a folder")


def _load_checkpoint(path: str):
    """(checkpoint, its TrainConfig); a checkpoint whose weights hold NaN or inf is refused."""
    from ..train import checkpoint
    from ..train.config import TrainConfig

    ck = checkpoint.load(path)
    bad = checkpoint.non_finite(ck["model"])
    if bad is not None:
        raise CptHwError(f"checkpoint {path}: {bad!r} holds NaN or infinite values; a loss landscape needs a "
                         "finite model (use an earlier checkpoint of the run)")
    return ck, TrainConfig.from_dict(ck["config"])


def _precision(args: argparse.Namespace, ck: dict, cfg, total: int) -> tuple[int, int]:
    """(fw, bw) to evaluate at: the run's last iteration's, or --bits for both."""
    from ..schedules import PrecisionSchedule, parse_bits_range, parse_shape

    if args.bits != "last":
        return int(args.bits), int(args.bits)
    if cfg.bits == "auto":
        if "bounds" not in (ck.get("range_test") or {}):
            raise CptHwError(f"checkpoint {ck['source']}: trained with --bits auto but holds no range-test bounds; "
                             "give --bits N")
        bits = tuple(ck["range_test"]["bounds"])
    else:
        bits = parse_bits_range(cfg.bits, "--bits")
    sched = PrecisionSchedule.build(cfg.schedule, bits, parse_bits_range(cfg.grad_bits, "--grad-bits"), total,
                                    cfg.cycles, parse_shape(cfg.shape) if cfg.shape else None)
    return sched.at(max(int(ck["step"]) - 1, 0))


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import nn as qnn
    from ..train import checkpoint, frontend
    from ..train.batches import eval_batches
    from ..train.data import load_dataset
    from ..train.landscape import compute_landscape, plot_landscapes, save_landscape

    _check_args(args)
    loaded = [_load_checkpoint(path) for path in args.checkpoints]  # every checkpoint checked before any work
    out = Path(args.out)
    results = {}
    for i, (path, (ck, cfg)) in enumerate(zip(args.checkpoints, loaded)):
        data = load_dataset(cfg.dataset, cfg.data, cfg.data_cache)
        model = frontend.build_model(cfg.model, data.num_classes)
        checkpoint.check_model_state(path, ck["model"], model.state_dict())
        model.load_state_dict(ck["model"])
        model.to(args.device)
        qnn.set_default_backend("torch:hardware" if cfg.backend != "torch" else "torch")
        fw, bw = _precision(args, ck, cfg, cfg.total_iters(len(data.train) // cfg.batch_size))
        n_batches = -(-args.samples // 256)
        batches = [(x[: args.samples], y[: args.samples]) for x, y in
                   islice(eval_batches(data, data.train, 256, device=args.device), n_batches)]
        with frontend.precision(fw, bw):
            ls = compute_landscape(model, batches, steps=args.steps, span=args.span, seed=args.seed,
                                   progress=not args.no_progress)
        centre = ls.loss[args.steps // 2, args.steps // 2]
        if not math.isfinite(centre):
            raise CptHwError(f"checkpoint {path}: the loss at the trained weights is {centre} at {fw}/{bw} bits; "
                             "nothing to draw")
        label = args.labels[i] if args.labels else _label(cfg)
        ls.meta.update(checkpoint=str(path), label=label, fw_bits=fw, bw_bits=bw, samples=args.samples)
        save_landscape(ls, out / f"landscape_{i}.json")
        results[label] = ls
        print(json.dumps({"label": label, "fw_bits": fw, "centre_loss": round(float(centre), 4),
                          "min_loss": round(float(np.nanmin(ls.loss)), 4)}))
    png = plot_landscapes(results, out / "landscape.png")
    print(f"wrote {png}")
    return 0
