"""CIFAR accuracy side by side, same recipe and seed: FP32, static 8/8, CPT 3-8/8 (paper numerics) and CPT
3-8/8 with the integer hardware's numerics emulated on the GPU; a table and an accuracy-vs-GBitOPs plot.

    python bench/bench_accuracy.py --data ../shared/data/cifar10-jpeg.tar.gz --models resnet38 \\
        --iters 64000 --device cuda --out docs/results

Each run is ``cpt-hw train`` (the paper's recipe: SGD 0.1, momentum 0.9, wd 1e-4, lr x0.1 at 50 % and 75 %,
32 cycles, batch 128); ``--iters`` shorter than the paper's 64,000 scales the whole recipe down.
Runs already finished in --runs are reused (summary.json), so the benchmark resumes after an interruption.
Writes accuracy.json, accuracy.md and accuracy_gbitops.png into --out.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpt_hw.fileio import write_atomic  # noqa: E402

#: label -> cpt-hw train arguments
RECIPES = {
    "FP32": ["--schedule", "static", "--bits", "0", "--grad-bits", "0"],
    "static 8/8": ["--schedule", "static", "--bits", "8", "--grad-bits", "8"],
    "CPT 3-8/8": ["--schedule", "cpt", "--bits", "3-8", "--grad-bits", "8"],
    "CPT 3-8/8 (hardware numerics)": ["--schedule", "cpt", "--bits", "3-8", "--grad-bits", "8",
                                      "--backend", "torch:hardware"],
}


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def run_one(model: str, label: str, args: argparse.Namespace) -> dict:
    out = Path(args.runs) / f"{model}_{slug(label)}"
    summary = out / "summary.json"
    stale = summary.is_file() and json.loads(summary.read_text()).get("iters") != args.iters
    if stale:
        raise SystemExit(f"bench_accuracy: error: {out} holds a run of another length; use another --runs folder")
    if not summary.is_file():
        cmd = [sys.executable, "-m", "cpt_hw", "train", "--model", model, "--dataset", args.dataset,
               "--data", args.data, "--iters", str(args.iters), "--batch-size", "128", "--device", args.device,
               "--seed", str(args.seed), "--out", str(out), "--no-progress", "--log-every", "100",
               *RECIPES[label]]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    s = json.loads(summary.read_text())
    return {"model": model, "run": label, "test_acc": s["test_acc"], "gbitops": s["gbitops"],
            "static_gbitops": s["static_gbitops"], "iters": s["iters"], "wall_s": s["wall_s"], "dir": str(out)}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        if r["gbitops"] > 0:
            ax.scatter(r["gbitops"], 100 * r["test_acc"], s=40)
            ax.annotate(f"{r['model']} {r['run']}", (r["gbitops"], 100 * r["test_acc"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("training cost (GBitOPs, quantized GEMMs)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--models", nargs="+", default=["resnet38"])
    p.add_argument("--runs-only", nargs="+", choices=list(RECIPES), help="subset of the four recipes")
    p.add_argument("--iters", type=int, default=64000)
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default="runs/accuracy", help="where the runs' folders go")
    p.add_argument("--out", default="docs/results")
    args = p.parse_args(argv)
    rows = [run_one(m, label, args) for m in args.models for label in (args.runs_only or RECIPES)]
    out = Path(args.out)
    cmd = "python bench/bench_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_atomic(out / "accuracy.json", json.dumps({"command": cmd, "results": rows}, indent=2) + "\n")
    lines = [f"# CIFAR accuracy, {args.iters} iterations at batch 128", "", f"`{cmd}`", "",
             "| model | run | test accuracy (%) | GBitOPs | vs static 8/8 | wall (s) |", "|---|---|---|---|---|---|"]
    for r in rows:
        static = next((x for x in rows if x["model"] == r["model"] and x["run"] == "static 8/8"), None)
        rel = f"{100 * r['gbitops'] / static['gbitops']:.1f} %" if static and r["gbitops"] else "-"
        lines.append(f"| {r['model']} | {r['run']} | {100 * r['test_acc']:.2f} | {r['gbitops']:.4g} | {rel} | "
                     f"{r['wall_s']:.0f} |")
    write_atomic(out / "accuracy.md", "\n".join(lines) + "\n")
    plot(rows, out / "accuracy_gbitops.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
