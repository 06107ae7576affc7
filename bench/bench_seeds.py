"""Paired seeds: CPT against static over several seeds of the same recipe, from bench_accuracy.py's results.

    python bench/bench_seeds.py --model resnet74 \\
        --seed 0=docs/results/cifar10-64k/accuracy.json \\
        --seed 1=docs/results/cifar10-64k-seeds/seed1/accuracy.json \\
        --seed 2=docs/results/cifar10-64k-seeds/seed2/accuracy.json \\
        --out docs/results/cifar10-64k-seeds/summary

Each seed's runs share the data order, initialisation and noise stream of that seed, so the difference
CPT - static is taken per seed (paired) and then summarised: mean and sample standard deviation (n - 1) of the
paired differences, and of each recipe's accuracy.  Reads only finished runs; trains nothing.
Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpt_hw.fileio import write_atomic  # noqa: E402

BASELINE, CANDIDATE = "static 8/8", "CPT 3-8/8"


def _seed_arg(text: str) -> tuple[int, Path]:
    seed, sep, path = text.partition("=")
    if not sep or not seed.isdigit() or not path:
        raise argparse.ArgumentTypeError(f"--seed {text!r}: expected SEED=PATH/accuracy.json")
    return int(seed), Path(path)


def _mean_sd(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}


def summarise(model: str, seeds: dict[int, dict]) -> dict:
    """``seeds``: seed -> bench_accuracy.py's accuracy.json; accuracy in points (percent)."""
    rows = []
    for seed, result in sorted(seeds.items()):
        acc = {r["run"]: 100.0 * r["test_acc"] for r in result["results"] if r["model"] == model}
        missing = [run for run in (BASELINE, CANDIDATE) if run not in acc]
        if missing:
            raise ValueError(f"seed {seed}: no {model} run {', '.join(missing)} in its accuracy.json")
        rows.append({"seed": seed, BASELINE: acc[BASELINE], CANDIDATE: acc[CANDIDATE],
                     "difference": acc[CANDIDATE] - acc[BASELINE], "command": result.get("command", "")})
    return {"model": model, "baseline": BASELINE, "candidate": CANDIDATE, "seeds": rows,
            "difference": _mean_sd([r["difference"] for r in rows]),
            BASELINE: _mean_sd([r[BASELINE] for r in rows]), CANDIDATE: _mean_sd([r[CANDIDATE] for r in rows])}


def _fmt(stat: dict) -> str:
    return f"{stat['mean']:+.2f} ± {stat['sd']:.2f}" if stat["sd"] is not None else f"{stat['mean']:+.2f}"


def markdown(res: dict, command: str) -> str:
    b, c = res["baseline"], res["candidate"]
    lines = [f"# {res['model']}: {c} against {b}, paired over seeds", "", f"`{command}`", "",
             f"| seed | {b} (%) | {c} (%) | {c} - {b} (points) |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['seed']} | {r[b]:.2f} | {r[c]:.2f} | {r['difference']:+.2f} |" for r in res["seeds"]]
    lines += [f"| mean ± sd | {res[b]['mean']:.2f} ± {res[b]['sd']:.2f} | {res[c]['mean']:.2f} ± "
              f"{res[c]['sd']:.2f} | {_fmt(res['difference'])} |", "",
              f"sd: sample standard deviation (n - 1 = {res['difference']['n'] - 1}) over the seeds; the difference "
              "is taken per seed (the two runs of a seed share its data order and initialisation).", "",
              "Per-seed commands:", ""]
    lines += [f"- seed {r['seed']}: `{r['command']}`" for r in res["seeds"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=_seed_arg, action="append", required=True, metavar="SEED=PATH")
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md are written")
    args = parser.parse_args(argv)
    seeds = {}
    for seed, path in args.seed:
        if seed in seeds:
            parser.error(f"--seed {seed} given twice")
        try:
            seeds[seed] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--seed {seed}={path}: {exc}")
    try:
        res = summarise(args.model, seeds)
    except ValueError as exc:
        parser.error(str(exc))
    command = "python bench/bench_seeds.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res["command"] = command
    text = markdown(res, command)
    write_atomic(args.out.with_suffix(".json"), json.dumps(res, indent=1) + "\n")
    write_atomic(args.out.with_suffix(".md"), text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
