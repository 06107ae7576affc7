"""``cpt-hw bitops``: the training cost of a schedule in GBitOPs, counted on the real model (paper Table 2)."""

from __future__ import annotations

import argparse
import json

from ..errors import CptHwError
from ..schedules import DEFAULT_CYCLES, SCHEDULE_KINDS, PrecisionSchedule, parse_bits_range, parse_shape

#: Longest run counted: 156 x the paper's 64,000-iteration CIFAR runs, 22 x a 90-epoch ImageNet run at batch
#: 256; evaluating the schedule over it takes about a second.
MAX_ITERS = 10**7

#: (training images, one sample's shape, classes) of the data sets whose sizes are standard facts.
_STANDARD = {"cifar10": (50000, (3, 32, 32), 10), "cifar100": (50000, (3, 32, 32), 100)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bitops", help="training cost of a precision schedule in GBitOPs",
                       description="Count the MACs of the model's quantized layers with hooks and sum "
                                   "MACs x (b_fw^2 + 2 b_fw b_bw) x batch over the schedule's iterations.")
    p.add_argument("--model", required=True, help="model name, e.g. resnet74, resnet164, mobilenetv2")
    p.add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100", "digits"),
                   help="data set: fixes the input shape and, with --epochs, the epoch length (default: cifar10)")
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--epochs", type=int, help="run length in epochs (len(train) // batch iterations each)")
    length.add_argument("--iters", type=int, help="run length in iterations (the paper's CIFAR runs: 64000)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    p.add_argument("--schedule", default="cpt", choices=SCHEDULE_KINDS, help="precision schedule (default: cpt)")
    p.add_argument("--bits", default="3-8", help="forward bits N or LO-HI, 1..16 or 0 for full precision "
                   "(counted as 32-bit) (default: 3-8)")
    p.add_argument("--grad-bits", default="8", help="gradient bits N or LO-HI, as --bits (default: 8)")
    p.add_argument("--cycles", type=int, default=DEFAULT_CYCLES, help=f"precision cycles (default: {DEFAULT_CYCLES})")
    p.add_argument("--shape", help="custom schedule shape, e.g. 0,1,0.5")
    p.add_argument("--count", choices=("paper", "gemm"), default="paper",
                   help="paper: as the paper's Table 2 counted (a profiler's count of the whole model: GEMM MACs, "
                        "2 ops per BN element, the float FC); gemm: the quantized GEMMs only, what the "
                        "accelerator executes (default: paper; both are printed)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _dataset_facts(name: str) -> tuple[int, tuple[int, ...], int]:
    if name in _STANDARD:
        return _STANDARD[name]
    from ..train.data import load_dataset
    ds = load_dataset(name)
    return len(ds.train), (ds.in_channels, ds.image_size, ds.image_size), ds.num_classes


def run(args: argparse.Namespace) -> int:
    from ..train import bitops, frontend

    for name in ("epochs", "iters", "batch_size"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise CptHwError(f"--{name.replace('_', '-')} {v}: must be a positive integer")
    bits, grad_bits = parse_bits_range(args.bits, "--bits"), parse_bits_range(args.grad_bits, "--grad-bits")
    train_size, sample, classes = _dataset_facts(args.dataset)
    iters = args.iters if args.iters is not None else args.epochs * (train_size // args.batch_size)
    if iters < 1:
        raise CptHwError(f"--batch-size {args.batch_size}: larger than the {train_size} training images")
    if iters > MAX_ITERS:
        flag = f"--iters {iters}" if args.iters is not None else f"--epochs {args.epochs} ({iters} iterations)"
        raise CptHwError(f"{flag}: more than the {MAX_ITERS:,} iterations bitops counts")
    schedule = PrecisionSchedule.build(args.schedule, bits, grad_bits, iters, args.cycles,
                                       parse_shape(args.shape) if args.shape else None)
    model = frontend.build_model(args.model, classes)
    reports = {}
    for convention in bitops.CONVENTIONS:
        layers = bitops.count_macs(model, sample, run=lambda m, x: _full_precision(m, x, frontend),
                                   convention=convention)
        reports[convention] = bitops.report(layers, args.batch_size, schedule, iters)
    rep, gemm = reports[args.count], reports["gemm"]
    out = {"gbitops": rep.gbitops, "static_gbitops": rep.static_gbitops, "saving": rep.saving,
           "count": args.count, "macs_per_sample": rep.macs_per_sample,
           "gemm_gbitops": gemm.gbitops, "gemm_static_gbitops": gemm.static_gbitops,
           "gemm_macs_per_sample": gemm.macs_per_sample, "quantized_layers": gemm.layers,
           "model": args.model, "dataset": args.dataset, "iters": iters, "batch_size": args.batch_size,
           "schedule": rep.schedule, "bits": args.bits, "grad_bits": args.grad_bits}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.model} on {args.dataset}: {gemm.layers} quantized layers, {gemm.macs_per_sample / 1e6:.2f} M "
          f"GEMM MACs per sample ({reports['paper'].macs_per_sample / 1e6:.2f} M as the paper's profiler counts)")
    print(f"{rep.schedule}; {iters} iterations at batch {args.batch_size}")
    for name, r in reports.items():
        print(f"{name:5} count: {r.gbitops:.4g} GBitOPs; static {r.static_bits[0]}/{r.static_bits[1]}: "
              f"{r.static_gbitops:.4g} GBitOPs; saving {100 * r.saving:.1f} %")
    return 0


def _full_precision(model, x, frontend) -> None:
    with frontend.precision(0, 0):
        model(x)
