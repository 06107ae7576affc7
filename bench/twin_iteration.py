"""The Verilog twin's accelerator time per ResNet-74 training iteration, from the benchmarks that measured it.

    python bench/twin_iteration.py          # reads docs/results, writes docs/results/twin_iteration.{json,md}

No simulation here: it combines three benchmarks' JSON files.

* the board-budget benchmark with the engine on the twin's limits (``bench/bench_board_step.py --conv-engine
  --twin-limits``, board_step-resnet74-conv-twin.json): the design's model seconds per iteration and per GEMM class
  (forward, input gradient, weight gradient), CPT 3-8/8 and static 8/8, of the calls the driver makes on the twin:
  forward calls and weight gradients with their code sums (SUMS); and with
  ``--recompute-bn 1`` board_step-resnet74-conv-recompute1.json, measured before the driver asked for code sums
  (commit b416036), whose calls write none;
* ``bench/bench_conv_twin.py`` (conv_twin.json; with ``--ops fwd --sums``, conv_twin_fwd_sums.json): the twin's
  cycles over the model's on every ResNet-74 layer, per class (CPT: CPT-weighted over fw; static: fw 8) -- the
  forward's with the code sums where the board run's forward calls write them;
* ``bench/bench_conv_twin.py --ops wgrad --wgrad-batch max`` (conv_twin_wgrad.json; with ``--sums``,
  conv_twin_wgrad_sums.json, where the board run's weight gradients write their code sums): the weight gradients
  summed as the twin runs them (calls of as many images as it takes, each hinting the next);
* ``bench/bench_twin_cycles.py`` (twin_cycles.json): the input gradients of a batch-128 iteration counted call by
  call with the twin's exact cycle model (cpt_hw.hw.conv_cycle_model), the driver's own calls.

Per iteration and schedule, the twin's seconds are the model's with the forward class scaled by the twin's ratio,
the input-gradient class replaced by the twin's exact count and the weight-gradient class by the twin's own sum of
calls; what the model counts outside the three classes stays as it is.  The exact count is taken only where its
calls are the board run's: its design-model seconds must equal the board run's input-gradient class (0.5 %).
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


def twin_seconds(board: dict, twin: dict, wgrad: dict, fwd: dict | None = None,
                 dgrad: dict | None = None) -> dict[str, dict[str, float]]:
    """{'cpt'|'static': {'model': s, 'twin': s, 'fwd' | 'dgrad' | 'wgrad': the twin's s}} for one board-step run;
    ``fwd``: another bench_conv_twin run whose forward ratios replace ``twin``'s (forward calls with SUMS);
    ``dgrad``: bench_twin_cycles' input-gradient summary, whose exact count replaces the scaled class."""
    classes = {**twin["classes"], **({"fwd": fwd["classes"]["fwd"]} if fwd else {})}
    out = {}
    for mode in ("cpt", "static"):
        model = board["accel_s_per_iter"][mode]
        by_class = board["accel_s_per_iter_by_class"][mode]
        ratio = {op: (classes[op]["cpt_ratio"] if mode == "cpt"
                      else classes[op]["per_fw"]["8"]["twin_scaled_s"] / classes[op]["per_fw"]["8"]["model_s"])
                 for op in ("fwd", "dgrad")}
        twin_class = {op: by_class[op] * ratio[op] for op in ratio}
        if dgrad is not None:
            exact = dgrad["cpt_s" if mode == "cpt" else "static_s"]
            if abs(exact["model_cycles"] - by_class["dgrad"]) > 0.005 * by_class["dgrad"]:
                _fail(f"twin_cycles.json's input gradients ({exact['model_cycles']:.4f} s of design model, {mode}) "
                      f"are not the board run's ({by_class['dgrad']:.4f} s): rerun bench_twin_cycles.py")
            twin_class["dgrad"] = exact["twin_cycles"]
        twin_class["wgrad"] = wgrad["cpt_twin_calls_s" if mode == "cpt" else "static_twin_calls_s"]
        rest = model - sum(by_class[op] for op in ("fwd", "dgrad", "wgrad"))
        out[mode] = {"model": model, "twin": rest + sum(twin_class.values()), **twin_class}
    return out


def markdown(rows: list[tuple[str, str, dict]], command: str) -> str:
    L = ["# The Verilog twin's accelerator time per ResNet-74 iteration", "",
         f"Reproduce: `{command}` (method in the script's docstring; inputs: the board-budget benchmark's model "
         "figures, conv_twin.json's forward ratios (conv_twin_fwd_sums.json's where the forward calls write their "
         "code sums), twin_cycles.json's input gradients counted call by call with the twin's exact cycle model, "
         "conv_twin_wgrad.json's weight gradients as the twin runs them (conv_twin_wgrad_sums.json's where they "
         "write their code sums)).  Batch 128; seconds of accelerator "
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
    twin = _load(res / "conv_twin.json")
    wgrad = {}
    for name, sums in (("conv_twin_wgrad", False), ("conv_twin_wgrad_sums", True)):
        run = _load(res / f"{name}.json")
        if "cpt_twin_calls_s" not in run.get("classes", {}).get("wgrad", {}) or bool(run.get("sums")) != sums:
            _fail(f"{res / name}.json is not a weight-gradient sum of calls {'with' if sums else 'without'} SUMS "
                  f"(run bench_conv_twin.py --ops wgrad --wgrad-batch max{' --sums' if sums else ''} with fw 3..8)")
        wgrad[sums] = run["classes"]["wgrad"]
    exact = _load(res / "twin_cycles.json")
    if exact.get("batch") != 128 or not exact.get("summary", {}).get("dgrad", {}).get("cpt_complete"):
        _fail(f"{res / 'twin_cycles.json'} is not a batch-128 run over fw 3..8 (run bench_twin_cycles.py)")
    fwd_sums = _load(res / "conv_twin_fwd_sums.json")
    if not fwd_sums.get("sums") or "cpt_ratio" not in fwd_sums["classes"].get("fwd", {}):
        _fail(f"{res / 'conv_twin_fwd_sums.json'} is not a forward run with SUMS over fw 3..8 (run bench_conv_twin.py "
              "--ops fwd --sums)")
    rows = []
    for label, source, fwd, wg in (("its calls, with code sums; weight gradients as it runs them",
                                    "board_step-resnet74-conv-twin", fwd_sums, wgrad[True]),
                                   ("`--recompute-bn 1` (calls without code sums)",
                                    "board_step-resnet74-conv-recompute1", None, wgrad[False])):
        rows.append((label, source, twin_seconds(_load(res / f"{source}.json"), twin, wg, fwd,
                                                 exact["summary"]["dgrad"])))
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
