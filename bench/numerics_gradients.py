"""How good is each way of computing the input gradient E_hat W_hat with integer hardware?

For every quantized layer of a model, with its real input X, weights W and the float error E that reaches
its output (one float backward pass), compare estimates of dX = E W_hat (W_hat: fw-bit per-channel
weights) against that target:

* ``paper``:   E_hat W_hat                       (float GEMM; what the authors' code computes)
* ``fold``:    r E_t (Q_w + z_w/s_w), E_t = Q_bw(E diag(s_w/r)), r = max s_w  (cpt-hw's hardware numerics)
* ``fold_split``: E_t Q_w + E_hat z_w             (rejected: the two terms carry independent noise)
* ``requant``: E_hat Q_fw,tensor(W_hat)          (rejected: re-quantize W per tensor)

E_hat is the per-tensor stochastic bw-bit error.  Reported per (fw, bw): the relative error
||est - dX|| / ||dX|| averaged over noise draws (noise + bias) and the relative bias
||mean(est) - dX|| / ||dX|| over the draws, each averaged over layers.

    python bench/numerics_gradients.py            # digits CNN, trained in float for a few epochs first
    python bench/numerics_gradients.py --dataset cifar10 --epochs 3 --batch 128 --draws 8   # ResNet-20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # numerics_training

from numerics_training import train_subset  # noqa: E402

from cpt_hw import nn as cnn  # noqa: E402
from cpt_hw.fileio import write_atomic  # noqa: E402
from cpt_hw.models import build_model  # noqa: E402
from cpt_hw.nn import quant  # noqa: E402
from cpt_hw.nn.ops import ConvOps, LinearOps  # noqa: E402
from cpt_hw.train.batches import Batches  # noqa: E402
from cpt_hw.train.data import load_dataset  # noqa: E402


def capture(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[tuple]:
    """(layer, input, output error) of every quantized layer, from one float forward/backward pass."""
    records: dict[str, list] = {}
    hooks = []
    for name, m in cnn.quantized_layers(model):
        def fwd(mod, inp, out, name=name):
            records[name] = [mod, inp[0].detach()]
            out.register_hook(lambda g, name=name: records[name].append(g.detach()))
        hooks.append(m.register_forward_hook(fwd))
    with cnn.precision(fw=0, bw=0):
        F.cross_entropy(model(x), y).backward()
    for h in hooks:
        h.remove()
    return [tuple(v) for v in records.values()]


def estimates(layer, x: torch.Tensor, e: torch.Tensor, fw: int, bw: int, seed: int) -> dict[str, torch.Tensor]:
    ops = ConvOps.of(layer) if isinstance(layer, torch.nn.Conv2d) else LinearOps()
    w = layer.weight.detach()
    qpw = quant.quant_params(*quant.channel_range(w), fw)
    qw = quant.quantize_codes(w, fw, qpw)
    w_hat = quant.dequantize(qw, qpw)
    e_hat = quant.dequantize(*quant.quantize_error(e, bw, seed))
    ratio, s_ref = quant.fold_factors(qpw.scale)
    e_til = quant.dequantize(*quant.quantize_error(e * ops.channel_view(ratio, e.dim()), bw, seed + 1)) * s_ref
    w_req = quant.fake_quant(w_hat, fw, *quant.tensor_range(w_hat))
    return {
        "target": ops.grad_input(e, w_hat, x.shape),
        "paper": ops.grad_input(e_hat, w_hat, x.shape),
        "fold": ops.grad_input(e_til, qw + (qpw.zero_point / qpw.scale).expand_as(w), x.shape),
        "fold_split": ops.grad_input(e_til, qw, x.shape) + ops.grad_input(e_hat, qpw.zero_point.expand_as(w), x.shape),
        "requant": ops.grad_input(e_hat, w_req, x.shape),
    }



def measure(records: list[tuple], fw: int, bw: int, draws: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, list[float]]] = {k: {"rel_error": [], "rel_bias": []} for k in ("paper", "fold", "fold_split", "requant")}
    for li, (layer, x, e) in enumerate(records):
        if li == 0:
            continue  # the stem's input gradient is never computed
        runs = [estimates(layer, x, e, fw, bw, seed=1000 * li + 2 * d) for d in range(draws)]
        target = runs[0]["target"]
        norm = float(target.norm())
        for k in out:
            out[k]["rel_error"].append(statistics.mean(float((r[k] - target).norm()) / norm for r in runs))
            mean = torch.stack([r[k] for r in runs]).mean(0)
            out[k]["rel_bias"].append(float((mean - target).norm()) / norm)
    return {k: {m: statistics.mean(v) for m, v in d.items()} for k, d in out.items()}


def whole_network(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, fw: int, bw: int,
                  draws: int) -> dict[str, float]:
    """Relative error of all quantized-layer weight gradients (one vector) against float errors (bw = 0),
    after the error has propagated through the whole network, for paper and hardware numerics."""
    import copy

    def grads(backend: str, bits: int, step: int) -> torch.Tensor:
        m = copy.deepcopy(model)
        cnn.set_backend(m, backend)
        m.zero_grad()
        with cnn.precision(fw=fw, bw=bits, step=step, seed=0):
            F.cross_entropy(m(x), y).backward()
        return torch.cat([layer.weight.grad.flatten() for _, layer in cnn.quantized_layers(m)])

    ref = grads("torch", 0, 0)
    out = {}
    for name, backend in (("paper", "torch"), ("hardware", "torch:hardware")):
        gs = [grads(backend, bw, s) for s in range(draws)]
        out[f"{name}_rel_error"] = statistics.mean(float((g - ref).norm() / ref.norm()) for g in gs)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=5, help="float pre-training epochs on digits")
    p.add_argument("--draws", type=int, default=16)
    p.add_argument("--fw", type=int, nargs="+", default=[3, 4, 6, 8])
    p.add_argument("--bw", type=int, nargs="+", default=[4, 6, 8])
    p.add_argument("--dataset", choices=("digits", "cifar10"), default="digits")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/cifar10-jpeg.tar.gz")
    p.add_argument("--subset", type=int, default=5000, help="CIFAR: train on a fixed random N images")
    p.add_argument("--batch", type=int, default=256, help="samples in the measured batch")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--network", action="store_true",
                   help="measure whole-network weight gradients (paper vs hardware) instead of per-layer estimators")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.dataset == "digits":
        data = load_dataset("digits")
        name, bs = "digits_cnn", 32
    else:
        if not args.data.exists():
            print(f"skipped: {args.data} not found", file=sys.stderr)
            return 0
        data = train_subset(load_dataset(args.dataset, args.data), args.subset)
        name, bs = "resnet20", 64
    data = dataclasses.replace(data, augment=False)  # float pre-training and measurement on plain images
    args.out = args.out or ROOT / f"docs/results/numerics-gradients-{args.dataset}"
    torch.manual_seed(0)
    model = build_model(name, data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4 if name == "digits_cnn" else 1e-4)
    batches = Batches(data, bs, seed=0)
    for step in range(args.epochs * batches.steps_per_epoch):
        xb, yb = batches.get(step)
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    model.zero_grad()
    x, y = Batches(data, args.batch, seed=1).get(0)  # the measured batch: a fixed random sample of the training split
    command = "python bench/numerics_gradients.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.network:
        return network_report(args, model, x, y, name, command)
    records = capture(model, x, y)
    rows = []
    for fw in args.fw:
        for bw in args.bw:
            r = measure(records, fw, bw, args.draws)
            rows.append({"fw": fw, "bw": bw, **{f"{k}_{m}": v for k, d in r.items() for m, v in d.items()}})
            print(json.dumps(rows[-1]), flush=True)
    write_atomic(args.out.with_suffix(".json"), json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    lines = [f"# Input-gradient estimators on integer hardware ({name} on {args.dataset}, all layers but the stem)", "",
             f"`{command}`", "",
             "Relative error ||est - E W_hat|| / ||E W_hat|| (noise + bias) and relative bias of the mean over "
             f"{args.draws} noise draws; batch of {args.batch}, after {args.epochs} float epochs.", "",
             "| fw | bw | error: paper | fold | fold_split | requant | bias: paper | fold | fold_split | requant |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    names = ("paper", "fold", "fold_split", "requant")
    lines += [f"| {r['fw']} | {r['bw']} | " + " | ".join(f"{r[k + '_rel_error']:.4f}" for k in names) + " | "
              + " | ".join(f"{r[k + '_rel_bias']:.4f}" for k in names) + " |" for r in rows]
    write_atomic(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def network_report(args: argparse.Namespace, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, name: str,
                   command: str) -> int:
    rows = []
    for fw in args.fw:
        for bw in args.bw:
            rows.append({"fw": fw, "bw": bw, **whole_network(model, x, y, fw, bw, args.draws)})
            print(json.dumps(rows[-1]), flush=True)
    out = args.out.with_name(args.out.name + "-network")
    write_atomic(out.with_suffix(".json"), json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    lines = [f"# Whole-network weight gradients, paper vs hardware numerics ({name} on {args.dataset})", "",
             f"`{command}`", "",
             "Relative error ||g - g_float|| / ||g_float|| of all quantized layers' weight gradients as one vector, "
             f"g_float with float errors (bw = 0) and the same quantized forward; mean over {args.draws} noise draws, "
             f"batch of {args.batch}, after {args.epochs} float epochs.", "",
             "| fw | bw | paper | hardware |", "|---|---|---|---|"]
    lines += [f"| {r['fw']} | {r['bw']} | {r['paper_rel_error']:.4f} | {r['hardware_rel_error']:.4f} |" for r in rows]
    write_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
