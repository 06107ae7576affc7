"""``cpt-hw demo`` (what ``make demo`` runs): the whole flow on a laptop, no download, a few minutes.

1. generate the ZC706 accelerator's sources (``cpt-hw generate --preset zc706``) into build/zc706/;
2. train the small digits CNN on scikit-learn's bundled digits with CPT 3-8 bits forward / 8 bits
   gradients, every quantized GEMM through the host driver on the emulated ZC706 accelerator (emu: the
   golden model computes, the cycle model counts cycles);
3. print test accuracy, GBitOPs saved against static 8/8 training and the modelled accelerator time, and
   write the plots into build/demo/.
"""

from __future__ import annotations

import argparse

#: The demo run; `cpt-hw train` with these options reproduces it.
DEMO_ARGS = {"model": "digits_cnn", "dataset": "digits", "schedule": "cpt", "bits": "3-8", "grad_bits": "8",
             "cycles": 8, "epochs": 12, "batch_size": 64, "lr": 0.05, "backend": "accel:emu", "threads": 1, "seed": 0,
             "eval_every": 0, "log_every": 5}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate the ZC706 accelerator and train CPT on it (emulated, no download)",
                       description="The whole flow on a laptop, no download, a few minutes: generate the "
                                   "ZC706 accelerator's sources, train the digits CNN with CPT 3-8/8 with every "
                                   "quantized GEMM on the emulated accelerator, print test accuracy, BitOPs saved "
                                   "and modelled accelerator time.  `make demo` runs it.")
    p.add_argument("--preset", default="zc706", help="hardware config (default: zc706)")
    p.add_argument("--out", default="build/demo", help="run directory (default: build/demo)")
    p.add_argument("--epochs", type=int, default=DEMO_ARGS["epochs"], help="training epochs (default: %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


def command_line(preset: str, out: str, epochs: int) -> str:
    """The equivalent `cpt-hw train` invocation (printed, so the demo is reproducible by hand)."""
    opts = {**DEMO_ARGS, "epochs": epochs, "preset": preset, "out": out}
    # --overwrite: the demo replaces its own previous run in --out, and so does the printed command.
    return "cpt-hw train " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in opts.items()) + " --overwrite"


def run(args: argparse.Namespace) -> int:
    from ..gen.generator import generate
    from ..hw.config import HardwareConfig
    from ..train.config import TrainConfig
    from ..train.trainer import Trainer, format_summary

    hw = HardwareConfig.from_preset(args.preset)
    out, changed = generate(hw)
    print(f"[1/3] generated {out} ({len(changed)} file(s) changed): {hw.rows}x{hw.cols} PEs, D = {hw.dot_width}, "
          f"{hw.clock_mhz:g} MHz, 1..{hw.max_bits} bits at runtime")
    print(f"[2/3] {command_line(args.preset, args.out, args.epochs)}")
    cfg = TrainConfig(**{**DEMO_ARGS, "epochs": args.epochs, "preset": args.preset, "out": args.out,
                         "progress": args.progress})
    summary = Trainer(cfg).run()
    print("[3/3] " + format_summary(summary).replace("\n", "\n      "))
    print(f"      plots: {', '.join(summary.get('plots', []))}")
    return 0
