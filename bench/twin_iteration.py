"""The Verilog twin's accelerator time per ResNet-74 training iteration, from the benchmarks that measured it.

    python bench/twin_iteration.py          # reads docs/results, writes docs/results/twin_iteration.{json,md}

No simulation here: it combines three benchmarks' JSON files.

* the board-budget benchmark with the engine on the twin's limits (``bench/bench_board_step.py --conv-engine
  --twin-limits``, board_step-resnet74-conv-twin.json): the design's model seconds per iteration and per GEMM class
  (forward, input gradient, weight gradient), CPT 3-8/8 and static 8/8, of the calls the driver makes on the twin:
  forward calls and weight gradients with their code sums (SUMS); and with
  ``--recompute-bn 1`` board_step-resnet74-conv-recompute1.json, measured before the driver asked for code sums
  (commit b416036), whose calls write none and whose forward class holds the recomputed convolutions besides;
* ``bench/bench_twin_cycles.py`` (twin_cycles.json): the forward calls (with code sums and without), the input
  gradients and the weight gradients with code sums of a batch-128 iteration, the driver's own calls (each weight
  gradient hinting the next), counted call by call with the twin's exact cycle model (cpt_hw.hw.twin_cycle_model);
* ``bench/bench_conv_twin.py --ops wgrad --wgrad-batch max`` (conv_twin_wgrad.json): the weight gradients without
  code sums, for the ``--recompute-bn 1`` run, summed as the twin ran them in simulation (calls of as many images as
  it takes, each hinting the next, measured as chains of three calls).

Per iteration and schedule, the twin's seconds are the model's with the three classes replaced by the twin's exact
counts (the ``--recompute-bn 1`` run: its weight gradients by the simulated sum of calls); what the model counts
outside the three classes stays as it is.  An exact count is taken only where its calls are the board run's: its
design-model seconds must equal the board run's class (0.5 %).  The ``--recompute-bn 1`` run's forward class holds
more calls than one forward pass (the recomputed ones): it is scaled by the exact count's twin/model ratio of the
forward calls without code sums instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cpt_hw.fileio import write_atomic  # noqa: E402

RESULTS = ROOT / "docs" / "results"
ITERATIONS = 64_000
TARGET_S, TARGET_RATIO = 1.0, 0.70          # issue 17: accelerator s per iteration (CPT), CPT / static


def _fail(message: str) -> None:
    """A missing or unusable input: one line, exit code 2."""
    print(f"twin_iteration: {message}", file=sys.stderr)
    raise SystemExit(2)


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        _fail(f"cannot read {path}: {e}")


def _exact(summary: dict, op: str, mode: str, model_s: float, what: str) -> float:
    """The twin's exact seconds of a class (bench_twin_cycles' summary), refused unless its design-model seconds are
    the board run's (the same calls)."""
    exact = summary[op]["cpt_s" if mode == "cpt" else "static_s"]
    if abs(exact["model_cycles"] - model_s) > 0.005 * model_s:
        _fail(f"twin_cycles.json's {what} ({exact['model_cycles']:.4f} s of design model, {mode}) are not the board "
              f"run's ({model_s:.4f} s): rerun bench_twin_cycles.py")
    return exact["twin_cycles"]


def twin_seconds(board: dict, exact: dict, wgrad: dict | None, sums: bool) -> dict[str, dict[str, float]]:
    """{'cpt'|'static': {'model': s, 'twin': s, 'fwd' | 'dgrad' | 'wgrad': the twin's s}} for one board-step run.
    ``exact``: bench_twin_cycles' summary; ``sums``: the run's forward calls and weight gradients write their code
    sums (the exact counts replace the classes), else its forward class is scaled by the exact count's ratio
    without sums (it holds recomputed calls besides) and its weight gradients are ``wgrad``, bench_conv_twin's sum
    of calls without sums."""
    out = {}
    for mode in ("cpt", "static"):
        model = board["accel_s_per_iter"][mode]
        by_class = board["accel_s_per_iter_by_class"][mode]
        if sums:
            fwd = _exact(exact, "fwd_sums", mode, by_class["fwd"], "forward calls with code sums")
        else:
            plain = exact["fwd"]["cpt_s" if mode == "cpt" else "static_s"]
            fwd = by_class["fwd"] * plain["twin_cycles"] / plain["model_cycles"]
        twin_class = {"fwd": fwd, "dgrad": _exact(exact, "dgrad", mode, by_class["dgrad"], "input gradients"),
                      "wgrad": (_exact(exact, "wgrad_sums", mode, by_class["wgrad"], "weight gradients with code sums")
                                if sums else wgrad["cpt_twin_calls_s" if mode == "cpt" else "static_twin_calls_s"])}
        rest = model - sum(by_class[op] for op in ("fwd", "dgrad", "wgrad"))
        out[mode] = {"model": model, "twin": rest + sum(twin_class.values()), **twin_class}
    return out


def markdown(rows: list[tuple[str, str, dict]], command: str) -> str:
    L = ["# The Verilog twin's accelerator time per ResNet-74 iteration", "",
         f"Reproduce: `{command}` (method in the script's docstring; inputs: the board-budget benchmark's model "
         "figures, twin_cycles.json's forward calls, input gradients and weight gradients counted call by call "
         "with the twin's exact cycle model (the `--recompute-bn 1` run's forward class, which holds recomputed "
         "calls besides, scaled by their twin/model ratio; its weight gradients, without code sums, "
         "conv_twin_wgrad.json's as the twin ran them in simulation)).  Batch 128; seconds of accelerator "
         "time at the config's clock; not a board measurement.", "",
         "| accelerator s per iteration | static 8/8 | CPT 3-8/8 | CPT / static | 64k iterations, CPT | "
         "fwd / dgrad / wgrad, CPT |", "|---|---:|---:|---:|---:|---:|"]
    for label, source, s in rows:
        for what, name in (("model", f"design model, [{source}]({source}.md)"), ("twin", f"the twin, {label}")):
            c, st = s["cpt"][what], s["static"][what]
            split = (f"{s['cpt']['fwd']:.3f} / {s['cpt']['dgrad']:.3f} / {s['cpt']['wgrad']:.3f}"
                     if what == "twin" else "")
            L.append(f"| {name} | {st:.3f} | {c:.3f} | {c / st:.3f} | {c * ITERATIONS / 3600:.1f} h | {split} |")
    L += ["", f"Issue 17's targets: accelerator <= {TARGET_S} s per iteration (CPT), CPT / static <= {TARGET_RATIO}."]
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(RESULTS), help="folder of the input JSON files (default docs/results)")
    p.add_argument("--out", default=str(RESULTS / "twin_iteration"), help="output stem (.json, .md)")
    args = p.parse_args(argv)
    res = Path(args.results)
    run = _load(res / "conv_twin_wgrad.json")
    if "cpt_twin_calls_s" not in run.get("classes", {}).get("wgrad", {}) or run.get("sums"):
        _fail(f"{res / 'conv_twin_wgrad.json'} is not a weight-gradient sum of calls without SUMS (run "
              "bench_conv_twin.py --ops wgrad --wgrad-batch max with fw 3..8)")
    wgrad = {False: run["classes"]["wgrad"], True: None}
    exact = _load(res / "twin_cycles.json")
    summary = exact.get("summary", {})
    classes = ("fwd_sums", "fwd", "dgrad", "wgrad_sums")
    if exact.get("batch") != 128 or not all(summary.get(op, {}).get("cpt_complete") for op in classes):
        _fail(f"{res / 'twin_cycles.json'} is not a batch-128 run over fw 3..8 of {', '.join(classes)} (run "
              "bench_twin_cycles.py)")
    rows = []
    for label, source, sums in (("its calls, with code sums, each counted exactly",
                                 "board_step-resnet74-conv-twin", True),
                                ("`--recompute-bn 1` (calls without code sums)",
                                 "board_step-resnet74-conv-recompute1", False)):
        rows.append((label, source, twin_seconds(_load(res / f"{source}.json"), summary, wgrad[sums], sums)))
    command = "python bench/twin_iteration.py " + " ".join(argv if argv is not None else sys.argv[1:])
    payload = {"command": command.strip(), "iterations": ITERATIONS,
               "runs": {source: s for _, source, s in rows}}
    out = Path(args.out)
    write_atomic(out.with_suffix(".json"), json.dumps(payload, indent=2) + "\n")
    text = markdown(rows, command.strip())
    write_atomic(out.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
