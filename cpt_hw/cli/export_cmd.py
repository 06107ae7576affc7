"""``cpt-hw export``: a CPT training checkpoint -> an hls4ml inference project for the ZC706 (docs/inference.md)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a trained checkpoint as an hls4ml project for the xc7z045",
                       description="Fold a `cpt-hw train` checkpoint (digits_cnn, CIFAR ResNets) at its last "
                                   "precision into an hls4ml project (Vitis backend, xc7z045ffg900-2): activation "
                                   "and weight codes as ap_ufixed types, scales and zero points folded into the "
                                   "BN that follows.  --check N compiles the C++ with g++ and compares it with the "
                                   "quantized PyTorch model on N test images.  See docs/inference.md.")
    p.add_argument("checkpoint", help="checkpoint.pt written by cpt-hw train")
    p.add_argument("--out", required=True, help="project folder to write (its parent must exist; an earlier "
                                                "export there is replaced)")
    p.add_argument("--bits", type=int, help="weight and activation bits, 1..16 (default: the checkpoint's last)")
    p.add_argument("--io", choices=("stream", "parallel"), default="stream",
                   help="hls4ml io_stream (default; the CNN layout for FPGAs) or io_parallel")
    p.add_argument("--check", type=int, default=0, metavar="N",
                   help="compile with g++ and compare with the quantized PyTorch model on N test images")
    p.add_argument("--data", help="dataset path for --check (default: the one the checkpoint was trained on)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import check_args, export_checkpoint

    check_args(args.out, args.bits, args.io, args.check)  # before torch and hls4ml load: a bad flag fails fast
    result = export_checkpoint(args.checkpoint, args.out, bits=args.bits, io=args.io, check=args.check,
                               data=args.data)
    print(result.line())
    if result.check is not None:
        print(result.check.line())
    return 0
