"""What BatchNorm inputs kept as float16 (``--bn-saved float16``) do to the gradients, next to the noise CPT has anyway.

One batch of a CIFAR ResNet, first trained a little in float, through the ``exact`` integer backend at each forward
precision.  For the whole network's gradient g (every parameter, one vector), g32 with float32 BatchNorm inputs and
g16 with float16 ones:

* ``bias``: ||g16 - g32|| / ||g32|| with float errors (bw = 0): what the rounding changes in the gradient itself;
* ``same draw``: the same at bw = 8 with the same draw of the errors' stochastic rounding: the rounding's change
  also moves some of the 8-bit codes' rounding decisions (a value near a code boundary crosses it);
* ``noise``: ||g32' - g32|| / ||g32|| at bw = 8, g32' another draw of the stochastic rounding (``--draws`` of
  them, averaged): the gradient noise CPT's integer backward has anyway.

The forward pass (loss, BatchNorm statistics) is the same with both; only backward normalises the rounded copy.

    python bench/bench_bn_half.py          # ResNet-20, batch 128, fw 3 and 8: ~10 minutes on one core
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # numerics_training

from numerics_training import train_subset  # noqa: E402

from cpt_hw import nn as cnn  # noqa: E402
from cpt_hw.fileio import write_atomic  # noqa: E402
from cpt_hw.models import build_model  # noqa: E402
from cpt_hw.nn.saved import keep_batchnorm_inputs_half  # noqa: E402
from cpt_hw.train.batches import Batches  # noqa: E402
from cpt_hw.train.data import load_dataset  # noqa: E402


class UsageError(Exception):
    """A bad argument: one line, exit code 2."""


def gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, fw: int, seed: int, half: bool,
              bw: int = 8) -> tuple[float, dict[str, torch.Tensor]]:
    """(loss, every parameter's gradient) of one step of a copy of ``model`` on the exact backend."""
    m = copy.deepcopy(model)
    handles = keep_batchnorm_inputs_half(m) if half else []
    with cnn.precision(fw=fw, bw=bw, step=1, seed=seed):
        loss = F.cross_entropy(m(x), y)
    loss.backward()
    for h in handles:
        h.remove()
    return float(loss.detach()), {n: p.grad.detach().clone() for n, p in m.named_parameters()}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm()) if b.norm() > 0 else 0.0


def measure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, fw: int, draws: int) -> dict:
    """The row of one forward precision: whole-network and per-layer ``bias``, ``same_draw`` and ``noise``."""
    loss32, g32 = gradients(model, x, y, fw, 0, False)
    loss16, g16 = gradients(model, x, y, fw, 0, True)
    f32, f16 = (gradients(model, x, y, fw, 0, half, bw=0)[1] for half in (False, True))
    others = [gradients(model, x, y, fw, s, False)[1] for s in range(1, draws + 1)]
    flat = lambda g: torch.cat([t.reshape(-1) for t in g.values()])  # noqa: E731
    weights = [n for n, t in g32.items() if t.dim() > 1]
    layers = {n: {"bias": _rel(f16[n], f32[n]), "same_draw": _rel(g16[n], g32[n]),
                  "noise": statistics.mean(_rel(o[n], g32[n]) for o in others)} for n in weights}
    return {"fw": fw, "loss_float32": loss32, "loss_float16": loss16, "bias": _rel(flat(f16), flat(f32)),
            "same_draw": _rel(flat(g16), flat(g32)), "noise": statistics.mean(_rel(flat(o), flat(g32)) for o in others),
            "layers": layers, "worst_layer_bias_ratio": max(v["bias"] / v["noise"] for v in layers.values()
                                                            if v["noise"] > 0)}


def report(rows: list[dict], args: argparse.Namespace, command: str) -> str:
    lines = [f"# BatchNorm inputs as float16 in backward: the gradient's change next to CPT's own noise "
             f"({args.model}, CIFAR-10)", "", f"`{command}`", "",
             f"One batch of {args.batch} after {args.pretrain} float iterations; exact integer backend.  g32 / g16: "
             "the gradient with float32 / float16 BatchNorm inputs.  bias: ||g16 - g32|| / ||g32|| with float "
             "errors (bw = 0), what the rounding changes in the gradient; same draw: the same at bw = 8 and one "
             "draw of the errors' stochastic rounding (some codes near a boundary round the other way); noise: "
             f"||g32' - g32|| / ||g32|| at bw = 8 over {args.draws} other draws, CPT's own gradient noise.  Whole "
             "network: all parameters as one vector; worst layer: the largest bias / noise of a weight gradient.", "",
             "| fw | loss (float32 / float16 BN inputs) | bias | same draw | noise | bias / noise | "
             "worst layer: bias / noise |", "|---:|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['fw']} | {r['loss_float32']:.6f} / {r['loss_float16']:.6f} | {r['bias']:.1e} | "
              f"{r['same_draw']:.1e} | {r['noise']:.1e} | {r['bias'] / r['noise']:.4f} | "
              f"{r['worst_layer_bias_ratio']:.4f} |" for r in rows]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet20", help="a CIFAR ResNet (default resnet20)")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/cifar10-jpeg.tar.gz")
    p.add_argument("--batch", type=int, default=128, help="samples in the measured batch (default 128)")
    p.add_argument("--pretrain", type=int, default=300, help="float SGD iterations first (default 300)")
    p.add_argument("--subset", type=int, default=10000, help="train on a fixed random N images (default 10000)")
    p.add_argument("--fw", type=int, nargs="+", default=[3, 8], help="forward precisions (default 3 8)")
    p.add_argument("--draws", type=int, default=3, help="other noise draws averaged (default 3)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "bn_half",
                   help="output path without suffix (default docs/results/bn_half)")
    args = p.parse_args(argv)
    if not args.model.startswith("resnet"):
        raise UsageError(f"--model {args.model!r}: must be a CIFAR ResNet (resnet20, resnet74, ...)")
    if args.batch < 2 or args.pretrain < 0 or args.draws < 1:
        raise UsageError("--batch must be >= 2, --pretrain >= 0 and --draws >= 1")
    if any(not 1 <= b <= 8 for b in args.fw):
        raise UsageError(f"--fw {' '.join(map(str, args.fw))}: precisions are 1..8")
    if not args.data.is_file():
        raise UsageError(f"--data {args.data}: no such file")
    if not args.out.parent.is_dir():
        raise UsageError(f"--out {args.out}: directory {args.out.parent} does not exist")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        torch.manual_seed(0)
        data = train_subset(load_dataset("cifar10", args.data, progress=False), args.subset)
        model = build_model(args.model, data.num_classes)
    except (UsageError, ValueError) as e:
        print(f"bench_bn_half: error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    cnn.set_backend(model, "torch")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    batches = Batches(data, 128, seed=0)
    with cnn.precision(fw=0, bw=0):   # float pre-training: the gradients of a network that has learnt something
        for step in tqdm(range(args.pretrain), desc="float pre-training", disable=args.no_progress):
            xb, yb = batches.get(step)
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    model.zero_grad()
    cnn.set_backend(model, "exact")
    x, y = Batches(data, args.batch, seed=1).get(0)
    rows = []
    for fw in tqdm(args.fw, desc="precisions (4 + draws gradients each)", disable=args.no_progress):
        rows.append(measure(model, x, y, fw, args.draws))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "layers"}), flush=True)
    command = "python bench/bench_bn_half.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_atomic(args.out.with_suffix(".json"), json.dumps({"command": command.strip(), "rows": rows}, indent=1)
                 + "\n")
    text = report(rows, args, command.strip())
    write_atomic(args.out.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
