"""CIFAR accuracy side by side, same recipe and seed: FP32, static 8/8, CPT 3-8/8 (paper numerics) and CPT
3-8/8 with the integer hardware's numerics emulated on the GPU; a table and an accuracy-vs-GBitOPs plot.

    python bench/bench_accuracy.py --data ../shared/data/cifar10-jpeg.tar.gz --models resnet38 \\
        --iters 64000 --device cuda --out docs/results

Each run is ``cpt-hw train`` (the paper's recipe: SGD 0.1, momentum 0.9, wd 1e-4, lr x0.1 at 50 % and 75 %,
32 cycles, batch 128); ``--iters`` shorter than the paper's 64,000 scales the whole recipe down.
Runs already finished in --runs are reused (summary.json) and interrupted ones continue from their last
checkpoint (a folder holding a run of another length or seed is refused), so the benchmark resumes after an
interruption or a ``--deadline``.  Training speed is measured by bench_gpu_step.py, not here (with
--parallel the runs share the GPU).
Writes accuracy.json, accuracy.md (with the issue's targets checked), accuracy_gbitops.png (the paper's Fig. 5)
and accuracy_curves.png (test accuracy over training) into --out.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpt_hw.fileio import save_figure, write_atomic  # noqa: E402

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


def run_dir(model: str, label: str, args: argparse.Namespace) -> Path:
    return Path(args.runs) / f"{model}_{slug(label)}"


def check_same_run(out: Path, recorded: dict, args: argparse.Namespace) -> None:
    """A folder's run (finished: its summary; interrupted: its checkpoint's config) is reused or continued
    only if it has the requested length and seed (summaries written before the seed was recorded have none
    to compare)."""
    if recorded.get("iters") != args.iters:
        raise SystemExit(f"bench_accuracy: error: {out} holds a run of another length ({recorded.get('iters')} "
                         f"iterations, not {args.iters}); use another --runs folder")
    if recorded.get("seed", args.seed) != args.seed:
        raise SystemExit(f"bench_accuracy: error: {out} holds a run of another seed ({recorded['seed']}, not "
                         f"{args.seed}); use another --runs folder")


def train_command(model: str, label: str, args: argparse.Namespace) -> list[str] | None:
    """The ``cpt-hw train`` call that starts or continues a run; None when it has finished."""
    out = run_dir(model, label, args)
    summary, ckpt = out / "summary.json", out / "checkpoint.pt"
    if summary.is_file():
        check_same_run(out, json.loads(summary.read_text()), args)
        return None
    report = ["--no-progress", "--log-every", "100"]
    if ckpt.is_file():  # an interrupted run (--deadline, a lost machine): continue it from there
        from cpt_hw.errors import CptHwError
        from cpt_hw.train import checkpoint

        try:
            check_same_run(out, checkpoint.load(ckpt)["config"], args)
        except CptHwError as e:
            raise SystemExit(f"bench_accuracy: error: {e}") from None
        return [sys.executable, "-m", "cpt_hw", "train", "--resume", str(ckpt), "--device", args.device, *report]
    data = ["--data", args.data] if args.data else []
    return [sys.executable, "-m", "cpt_hw", "train", "--model", model, "--dataset", args.dataset, *data,
            "--iters", str(args.iters), "--batch-size", "128", "--device", args.device,
            "--seed", str(args.seed), "--out", str(out), *report, *RECIPES[label]]


#: The deadline's stop signal.  The trainer treats SIGTERM as it treats Ctrl-C (the iteration in progress, a checkpoint,
#: exit), and before its loop SIGTERM's default ends it at once.  Not SIGINT: a shell without job control (nohup,
#: `&` in a script, CI) starts background commands with SIGINT ignored, the trainings inherit that, and one still
#: starting when the deadline came ignored it and ran on until killed (two minutes per CI run of the tests).
STOP_SIGNAL = signal.SIGTERM

#: Seconds a training gets to stop after STOP_SIGNAL before it is killed; its checkpoint is written atomically, so a
#: kill loses at most the epoch in progress.
STOP_GRACE_S = 60.0


def stop(proc: subprocess.Popen) -> None:
    """Wait for an interrupted training to exit; kill it once STOP_GRACE_S have passed."""
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        print(f"bench_accuracy: pid {proc.pid} did not stop {STOP_GRACE_S:.0f} s after {STOP_SIGNAL.name}; killed",
              flush=True)
        proc.kill()
        proc.wait()


def run_all(jobs: list[tuple[str, str]], args: argparse.Namespace) -> bool:
    """Run the unfinished jobs, ``--parallel`` at a time; True when all have finished.

    Small-batch trainings can share one large GPU (each alone leaves much of it idle; use MPS).  At
    ``--deadline`` seconds the running ones get STOP_SIGNAL: one in its training loop finishes the iteration in
    progress and writes a checkpoint there, where the next invocation continues (one still starting ends at once
    and starts again).
    """
    pending = [cmd for cmd in (train_command(m, label, args) for m, label in jobs) if cmd is not None]
    start, running, failed = time.monotonic(), [], []
    while pending or running:
        while pending and len(running) < args.parallel:
            cmd = pending.pop(0)
            print(" ".join(cmd), flush=True)
            running.append((cmd, subprocess.Popen(cmd)))
        time.sleep(2)
        for cmd, proc in list(running):
            if proc.poll() is not None:
                running.remove((cmd, proc))
                if proc.returncode != 0:
                    failed.append(cmd)
        if args.deadline and (pending or running) and time.monotonic() - start > args.deadline:
            for _, proc in running:
                proc.send_signal(STOP_SIGNAL)
            for _, proc in running:
                stop(proc)
            print(f"bench_accuracy: deadline of {args.deadline} s reached; rerun the same command to continue",
                  flush=True)
            return False
    if failed:
        raise SystemExit("bench_accuracy: error: failed: " + "; ".join(" ".join(c) for c in failed))
    return True


def result(model: str, label: str, args: argparse.Namespace) -> dict:
    out = run_dir(model, label, args)
    s = json.loads((out / "summary.json").read_text())
    return {"model": model, "run": label, "test_acc": s["test_acc"], "gbitops": s["gbitops"],
            "static_gbitops": s["static_gbitops"], "iters": s["iters"], "wall_s": s["wall_s"], "dir": str(out)}


#: The targets: CPT within this many points of static 8/8 (or better) at no more than MAX_COST_RATIO of its
#: GBitOPs, and the hardware numerics within this many points of the paper numerics.
MAX_DROP_POINTS = 0.3
MAX_COST_RATIO = 0.635


def targets(rows: list[dict]) -> list[str]:
    """One markdown bullet per comparison the targets name, with the measured gap and met / missed."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        by_run = {r["run"]: r for r in rows if r["model"] == model}
        static, cpt, hw = (by_run.get(k) for k in ("static 8/8", "CPT 3-8/8", "CPT 3-8/8 (hardware numerics)"))
        if static and cpt:
            gap = 100 * (cpt["test_acc"] - static["test_acc"])
            ratio = cpt["gbitops"] / static["gbitops"]
            met = gap >= -MAX_DROP_POINTS and ratio <= MAX_COST_RATIO
            lines.append(f"- {model}: CPT 3-8/8 vs static 8/8: {gap:+.2f} points at {100 * ratio:.1f} % of its "
                         f"GBitOPs (target >= -{MAX_DROP_POINTS} points at <= {100 * MAX_COST_RATIO:.1f} %): "
                         f"{'met' if met else 'missed'}")
        if cpt and hw:
            gap = 100 * (hw["test_acc"] - cpt["test_acc"])
            met = abs(gap) <= MAX_DROP_POINTS
            lines.append(f"- {model}: hardware vs paper numerics (CPT 3-8/8): {gap:+.2f} points (target within "
                         f"{MAX_DROP_POINTS}): {'met' if met else 'missed'}")
    return lines


def eval_curve(run_folder: str) -> tuple[list[int], list[float]]:
    """(iteration, test accuracy %) of every evaluation in a run's metrics.jsonl."""
    iters, accs = [], []
    for line in (Path(run_folder) / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        if m.get("kind") == "eval":
            iters.append(m["iter"])
            accs.append(100 * m["test_acc"])
    return iters, accs


def plot_curves(rows: list[dict], path: Path) -> None:
    """Test accuracy over training, one panel per model (the CPT cycles show as ripples)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for r in (r for r in rows if r["model"] == model):
            ax.plot(*eval_curve(r["dir"]), label=r["run"], lw=1)
        ax.set_title(model)
        ax.set_xlabel("iteration")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path, dpi=130)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    markers = dict(zip(RECIPES, "osDx"))  # distinct shapes: CPT's two numerics often land on one point
    for r in rows:
        if r["gbitops"] > 0:
            ax.scatter(r["gbitops"], 100 * r["test_acc"], s=50, marker=markers.get(r["run"], "o"),
                       label=f"{r['model']} {r['run']}")
    ax.legend(fontsize=7)
    ax.set_xscale("log")  # FP32 (32 x 32-bit products) sits an order of magnitude right of the rest
    ax.set_xlabel("training cost (GBitOPs, quantized GEMMs)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=130)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="the data set's folder or archive (CIFAR: ../shared/data/cifar10-jpeg.tar.gz)")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--models", nargs="+", default=["resnet38"])
    p.add_argument("--runs-only", nargs="+", choices=list(RECIPES), help="subset of the four recipes")
    p.add_argument("--iters", type=int, default=64000)
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default="runs/accuracy", help="where the runs' folders go")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--parallel", type=int, default=1, help="trainings at once (default 1)")
    p.add_argument("--deadline", type=float, help="stop the running trainings after this many seconds (they "
                   "continue from their last checkpoint when the same command is run again)")
    args = p.parse_args(argv)
    if args.parallel < 1:
        p.error(f"--parallel {args.parallel}: must be at least 1")
    if args.deadline is not None and args.deadline <= 0:
        p.error(f"--deadline {args.deadline}: must be a positive number of seconds")
    jobs = [(m, label) for m in args.models for label in (args.runs_only or RECIPES)]
    if not run_all(jobs, args):
        return 3
    rows = [result(m, label, args) for m, label in jobs]
    out = Path(args.out)
    cmd = "python bench/bench_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_atomic(out / "accuracy.json", json.dumps({"command": cmd, "results": rows}, indent=2) + "\n")
    lines = [f"# CIFAR accuracy, {args.iters} iterations at batch 128", "", f"`{cmd}`", "",
             "| model | run | test accuracy (%) | GBitOPs | vs static 8/8 |", "|---|---|---|---|---|"]
    for r in rows:
        static = next((x for x in rows if x["model"] == r["model"] and x["run"] == "static 8/8"), None)
        rel = f"{100 * r['gbitops'] / static['gbitops']:.1f} %" if static and r["gbitops"] else "-"
        if r["run"] == "FP32":  # its BitOPs count 32 x 32-bit products: no fair ratio to integer training
            rel = "(32-bit float)"
        lines.append(f"| {r['model']} | {r['run']} | {100 * r['test_acc']:.2f} | {r['gbitops']:.4g} | {rel} |")
    lines += ["", "Targets:", "", *targets(rows)]
    write_atomic(out / "accuracy.md", "\n".join(lines) + "\n")
    plot(rows, out / "accuracy_gbitops.png")
    plot_curves(rows, out / "accuracy_curves.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
