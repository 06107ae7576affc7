"""``cpt-hw range-test``: the paper's precision range test; prints the curve, saves a plot and JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import CptHwError
from ..fileio import write_atomic
from ..schedules import MAX_BITS  # the quantizers' ceiling
from .train_cmd import _given, add_training_args

#: The test's first precision (``cpt_hw.train.range_test.START_BITS``), repeated so that ``--help`` needs no torch
#: import (a test keeps them equal).
START_BITS = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("range-test", help="precision range test: find the CPT bounds (bmin, bmax)",
                       description="Train from 2 bits upward during the first epoch until the training "
                                   "accuracy rises by more than a threshold (paper section 3.2).")
    add_training_args(p)
    p.add_argument("--grad-bits", default="8", help="gradient bits during the test (default: 8)")
    p.add_argument("--max-bits", type=int, help=f"upper bound bmax, {START_BITS}..{MAX_BITS} (default: the "
                   "accelerator's max_bits, else 8)")
    p.add_argument("--threshold", type=float, default=0.05, help="accuracy change (fraction) that marks bmin "
                   "(default: 0.05)")
    p.add_argument("--steps-per-bit", type=int, help="iterations per precision (default: one epoch spread over "
                   "the precisions, at least 8)")
    p.add_argument("--out", metavar="DIR", help="where range_test.png/.json go (default: runs/range-test-<model>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _check_test_args(args: argparse.Namespace) -> None:
    """The range test's own flags, checked before any data is read or model built."""
    if args.max_bits is not None and not START_BITS <= args.max_bits <= MAX_BITS:
        raise CptHwError(f"--max-bits {args.max_bits}: must be in {START_BITS}..{MAX_BITS} (the test starts at "
                         f"{START_BITS} bits; the quantizers run at most {MAX_BITS})")
    if not 0.0 <= args.threshold < 1.0:  # also refuses nan
        raise CptHwError(f"--threshold {args.threshold}: must be an accuracy change in [0, 1)")
    if args.steps_per_bit is not None and args.steps_per_bit < 1:
        raise CptHwError(f"--steps-per-bit {args.steps_per_bit}: must be a positive integer")


def run(args: argparse.Namespace) -> int:
    from ..schedules import parse_bits_range
    from ..train import distributed
    from ..train.config import TrainConfig
    from ..train.plots import plot_range_test
    from ..train.range_test import run_range_test
    from ..train.trainer import Trainer

    given = {k: v for k, v in _given(args).items() if k not in ("out", "grad_bits")}
    if "model" not in given:
        raise CptHwError("--model is required")
    _check_test_args(args)
    out = Path(args.out or f"runs/range-test-{given['model']}")
    cfg = TrainConfig(**given, epochs=1, bits="auto", grad_bits=args.grad_bits, range_threshold=args.threshold,
                      out=str(out))
    trainer = Trainer(cfg)
    try:
        trainer.prepare()
        cap = args.max_bits if args.max_bits is not None else trainer.top_bits()
        grad = parse_bits_range(cfg.grad_bits, "--grad-bits")[1]
        if trainer.accel_cfg is not None:
            from ..train.frontend import check_accel_bits
            check_accel_bits(trainer.accel_cfg, (2, cap), (grad, grad))
        result = run_range_test(trainer.model, trainer.batches, cfg, grad_bits=grad, cap=cap,
                                num_classes=trainer.data.num_classes, dist=trainer.dist, meter=trainer.meter,
                                steps_per_bit=args.steps_per_bit)
    finally:
        distributed.shutdown(trainer.dist)
    if not trainer.dist.is_main:
        return 0
    payload = {"model": cfg.model, "dataset": cfg.dataset, "backend": cfg.backend, **result.to_dict()}
    write_atomic(out / "range_test.json", json.dumps(payload, indent=2) + "\n")
    plot = plot_range_test(result.bits, result.acc, result.bounds, result.threshold, out / "range_test.png")
    print(json.dumps(payload, indent=2) if args.json else f"{result.table()}\nwrote {out / 'range_test.json'}, {plot}")
    return 0
