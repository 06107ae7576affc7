"""The Verilog twin's convolution engine on ResNet-74's layer shapes: its cycles against the design's model.

    .venv/bin/python bench/bench_conv_twin.py                    # batch 1, fw 3..8 (about 15 min on 2 cores)
    .venv/bin/python bench/bench_conv_twin.py --batch 2 --fw 3 8 --out /tmp/conv_twin-b2
    .venv/bin/python bench/bench_conv_twin.py --ops wgrad --fw 3 8 --out /tmp/conv_twin-wgrad
    .venv/bin/python bench/bench_conv_twin.py --ops wgrad --wgrad-batch max --out docs/results/conv_twin_wgrad  # ~1 h
    # after an interrupted run (build/zc706_conv/sim_verilator/cpt_gemm/runs/<run>/records.jsonl): what its
    # records hold is not simulated again
    .venv/bin/python bench/bench_conv_twin.py ... --resume RECORDS.jsonl

The accelerator seconds of issue 17's targets (bench/bench_board_step.py --conv-engine) are the design's
model (``cpt_hw.hw.conv_model``, which the emulated device reports), not a measurement.  This benchmark
measures what the Verilog twin (zc706 with ``conv_engine = true``, Verilator) takes for the calls it runs:

1. For each distinct convolution of ResNet-74 (bench/resnet74_gemms.conv_layers) and each forward precision
   fw, the call of every GEMM class at CPT's precisions (forward (fw, fw), input gradient (8, fw) = 8-bit
   errors x fw-bit weights, weight gradient (fw, 8)) over ``--batch`` whole images, random codes, no
   back-pressure, int16 results (flags C16) where the call's worst case fits as the driver asks for them (the
   forward at fw 3 everywhere, at fw 4 on the stem, stage 1, stage 2's first convolution and the downsamples, at
   fw 5 on the stem and the downsamples) -- each call the twin takes (``conv_calls.conv_status(cfg, call,
   twin=True)``; the others are listed as not run).  Every result is compared byte for byte with the emulated device
   (sim/cpt_gemm/bench_cpt_gemm_conv.py, the system test's ``run_conv``).
2. Per call: the twin's cycles (ap_start to ap_done), the design's model of the same call
   (``emu_conv.call_cycles``), the HLS kernel's busy count (``hls_cycles.conv_cycles``), and PE utilisation
   (the lowered GEMM's binary products / (peak x twin cycles)).
3. Per GEMM class: the CPT 3-8/8 average (cpt_hw.schedules' weights over fw) of twin / model, weighted by
   each layer's model time in a batch-128 iteration (``conv_model.estimate`` of the whole layer times its
   count), and that iteration's model seconds of the class next to them scaled by the ratio.  The scaling
   is an extrapolation from --batch images to 128 (per-call overheads are amortised differently); its
   figures are marked as such.
4. With ``--wgrad-batch max`` each weight gradient runs as the driver runs a layer: calls of as many images as
   the twin takes, each hinting the next call's chunks (PREFETCH_B), measured as a chain of three calls (the
   first cold, then a hit with a hint, then a hit without); the layer's 128 images are the first call, the
   middle one's cycles for every call but the last, and the last's -- the twin's own sum of calls.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_rtl import cpt_weights, gemm_bits  # noqa: E402
from resnet74_gemms import conv_layers  # noqa: E402

from cpt_hw.fileio import write_atomic  # noqa: E402
from cpt_hw.hw.calls import ConvCall  # noqa: E402
from cpt_hw.hw.config import HardwareConfig  # noqa: E402
from cpt_hw.hw import emu_conv  # noqa: E402
from cpt_hw.hw.conv_calls import ConvArgs, c16_fits, conv_status, encode_conv  # noqa: E402
from cpt_hw.hw.regmap import CONV_FLAG_BITS  # noqa: E402
from cpt_hw.hw.conv_model import ConvDesign, ConvShape, estimate  # noqa: E402

OPS = ("fwd", "dgrad", "wgrad")
C16 = 1 << CONV_FLAG_BITS["C16"]
SUMS = 1 << CONV_FLAG_BITS["SUMS"]
ITER_BATCH = 128


def layer_calls(batch: int, fws: list[int]) -> list[dict]:
    """Every (layer, op, fw) call of the benchmark, in ``place``'s keywords (+ name, layer, count, fw)."""
    calls = []
    for name, cin, cout, kernel, hw_out, count in conv_layers(74):
        stride = 2 if name.endswith((".first", ".down")) else 1
        size = hw_out * stride
        for op in OPS:
            if op == "dgrad" and name == "stem":      # the stem's input needs no gradient
                continue
            for fw in fws:
                a_bits, b_bits = gemm_bits(op, fw)
                calls.append(dict(name=f"{name}/{op}/fw{fw}", layer=name, count=count, fw=fw, op=op, batch=batch,
                                  c=cin, k=cout, h=size, w=size, kh=kernel, kw=kernel, stride=stride,
                                  padding=1 if kernel == 3 else 0, a_bits=a_bits, b_bits=b_bits,
                                  a_signed=False, b_signed=False))
    return calls


def spec_call(spec: dict) -> ConvCall:
    """The call's registers (addresses 0, a wide window: the geometry is what matters here), with flags C16 where
    its worst case fits int16, as the driver sets it, and SUMS in a forward call or weight gradient of a spec with
    ``sums`` (the input gradient has none)."""
    call = ConvCall(0, 0, 0, 0, 0, 0, spec["a_bits"], spec["b_bits"], 0, 0, 1 << 30,
                    conv=encode_conv(spec["op"], spec["kh"], spec["kw"], spec["stride"], spec["padding"]),
                    batch=spec["batch"], channels=spec["c"] | spec["k"] << 16, size=spec["h"] | spec["w"] << 16)
    sums = SUMS if spec.get("sums") and spec["op"] != "dgrad" else 0
    return replace(call, flags=(C16 if c16_fits(ConvArgs.decode(call)) else 0) | sums)


def twin_runs(cfg: HardwareConfig, spec: dict) -> bool:
    """Whether the twin takes the call (its status rule on the call's geometry; ranges are the testbench's)."""
    return conv_status(cfg, spec_call(spec), twin=True) == 0


def chained(spec: dict) -> bool:
    """A weight gradient measured as a chain of hinted calls (--wgrad-batch max, three calls or more a layer)."""
    return spec.get("chain", False)


def twin_images_max(cfg: HardwareConfig, spec: dict) -> int:
    """The most whole images (up to the iteration's batch) one call of the twin takes for this layer and op."""
    best = 0
    for b in range(1, ITER_BATCH + 1):
        if not twin_runs(cfg, {**spec, "batch": b}):
            break
        best = b
    return best


def iteration_cycles(cfg: HardwareConfig, spec: dict) -> int:
    """The design's model of the whole layer at batch 128, times how often the iteration runs it."""
    shape = ConvShape(ITER_BATCH, spec["c"], spec["k"], spec["h"], spec["w"], spec["kh"], spec["stride"],
                      spec["padding"])
    # the design writes int16 results wherever the worst case fits (narrow_results), as the driver asks for C16
    return estimate(cfg, spec["op"], shape, spec["a_bits"], spec["b_bits"],
                    design=ConvDesign.for_config(cfg)).cycles * spec["count"]


def run_twin(cfg: HardwareConfig, specs: list[dict], simulator: str) -> tuple[list[dict], float]:
    from cpt_hw.flows import rtl_sim

    keys = ("name", "op", "batch", "c", "k", "h", "w", "kh", "kw", "stride", "padding", "a_bits", "b_bits",
            "a_signed", "b_signed", "chain")
    rtl_sim.build(cfg, simulator)
    t0 = time.time()
    res = rtl_sim.run(cfg, simulator, "bench_cpt_gemm_conv", toplevel="cpt_gemm", seed=1,
                      extra_env={"CPT_HW_BENCH_CONV": json.dumps([{**{k: s[k] for k in keys if k in s},
                                                                   "flags": spec_call(s).flags} for s in specs])})
    if not res.ok:
        raise SystemExit(res.summary())
    return res.records, time.time() - t0


#: A record's fields that must equal the spec's for --resume to reuse it (the call it measured).
RECORD_KEYS = ("op", "batch", "c", "k", "h", "w", "kh", "kw", "stride", "padding", "a_bits", "b_bits")


def load_resumed(path: Path, specs: list[dict]) -> dict[str, dict]:
    """Records of an earlier run (its records.jsonl, one JSON object a line) for the specs they measured, a chain's
    three calls together or not at all; exits with one line (code 2) if the file cannot be read."""
    try:
        lines = path.read_text().splitlines()
        old = {r["name"]: r for r in (json.loads(line) for line in lines if line.strip()) if r.get("status") == 0}
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"bench_conv_twin: --resume {path}: not a records file of this bench ({e})", file=sys.stderr)
        raise SystemExit(2) from None
    kept = {}
    for s in specs:
        names = [s["name"]] + ([s["name"] + "/hit", s["name"] + "/last"] if chained(s) else [])
        if all(n in old and all(old[n][k] == s[k] for k in RECORD_KEYS) for n in names):
            kept.update((n, old[n]) for n in names)
    return kept


def summarise(cfg: HardwareConfig, specs: list[dict], records: dict[str, dict]) -> dict:
    weights = cpt_weights()
    rows, classes = [], {}
    for s in specs:
        r = records.get(s["name"])
        row = {k: s[k] for k in ("name", "layer", "op", "fw", "batch", "a_bits", "b_bits")}
        row["iteration_model_cycles"] = iteration_cycles(cfg, s)
        if r is not None:
            row.update(twin_cycles=r["cycles"], model_cycles=r["model_cycles"], hls_cycles=r["hls_cycles"],
                       ratio=r["cycles"] / r["model_cycles"],
                       pe_utilisation=r["useful_ops"] / (cfg.peak_binary_ops_per_cycle * r["cycles"]))
            if s["op"] == "wgrad":
                # a weight gradient runs as calls of whole images: the iteration's batch in calls of this size
                row["twin_images_max"] = twin_images_max(cfg, s)
                calls = -(-ITER_BATCH // s["batch"])
                if chained(s):      # the first call cold, the others hitting the previous call's prefetch
                    hit, last = records[s["name"] + "/hit"]["cycles"], records[s["name"] + "/last"]["cycles"]
                    row.update(twin_hit_cycles=hit, twin_last_cycles=last,
                               model_hit_cycles=emu_conv.call_cycles(cfg, ConvArgs.decode(spec_call(s)),
                                                                     prefetched=True))
                    row["iteration_twin_cycles"] = (r["cycles"] + (calls - 2) * hit + last) * s["count"]
                else:
                    row["iteration_twin_cycles"] = r["cycles"] * s["count"] * calls
        rows.append(row)
    fws = sorted({s["fw"] for s in specs})
    cpt_fws = [q for q in fws if q in weights]
    for op in sorted({s["op"] for s in specs}, key=OPS.index):
        ran = [r for r in rows if r["op"] == op and "ratio" in r]
        if not ran:
            classes[op] = {"ran": 0, "of": sum(r["op"] == op for r in rows)}
            continue
        per_fw = {}
        for q in fws:
            sel = [r for r in ran if r["fw"] == q]
            model = sum(r["iteration_model_cycles"] for r in sel)
            per_fw[q] = {"model_s": model / (cfg.clock_mhz * 1e6),
                         "twin_scaled_s": sum(r["iteration_model_cycles"] * r["ratio"] for r in sel)
                         / (cfg.clock_mhz * 1e6)}
            if op == "wgrad":
                per_fw[q]["twin_calls_s"] = sum(r["iteration_twin_cycles"] for r in sel) / (cfg.clock_mhz * 1e6)
        entry = {"ran": len(ran), "of": sum(r["op"] == op for r in rows),
                 "layers_run": sorted({r["layer"] for r in ran}),
                 "ratio_min": min(r["ratio"] for r in ran), "ratio_max": max(r["ratio"] for r in ran),
                 "per_fw": {str(q): v for q, v in per_fw.items()}}
        if cpt_fws == sorted(weights):
            wsum = sum(weights[q] * per_fw[q]["model_s"] for q in cpt_fws)
            tsum = sum(weights[q] * per_fw[q]["twin_scaled_s"] for q in cpt_fws)
            entry.update(cpt_model_s=wsum, cpt_twin_scaled_s=tsum, cpt_ratio=tsum / wsum if wsum else None)
            if op == "wgrad":
                entry.update(cpt_twin_calls_s=sum(weights[q] * per_fw[q]["twin_calls_s"] for q in cpt_fws),
                             images_max=[min(r["twin_images_max"] for r in ran),
                                         max(r["twin_images_max"] for r in ran)])
        if op == "wgrad" and "8" in {str(q) for q in fws}:
            entry["static_twin_calls_s"] = per_fw[8]["twin_calls_s"]
            entry["static_model_s"] = per_fw[8]["model_s"]
        classes[op] = entry
    return {"rows": rows, "classes": classes}


def markdown(cfg: HardwareConfig, args: argparse.Namespace, summary: dict, wall: float, command: str,
             resumed: int = 0) -> str:
    L = [f"# The Verilog twin's convolution engine on ResNet-74 layer shapes (`{cfg.name}`, {args.simulator})", "",
         f"Reproduce: `{command}` (method in the script's docstring).  Batch {args.batch} per call"
         + (" (weight gradients: as many images as the twin takes)" if getattr(args, "wgrad_batch", "same") == "max"
            else "") + ", "
         + ("forward calls and weight gradients with their code sums (SUMS), " if getattr(args, "sums", False)
            else "")
         + "random unsigned codes, no back-pressure, every result byte-identical to the emulated device.  "
         f"Simulation: {wall:.0f} s of wall time"
         + (f" (this run; {resumed} calls' records taken from --resume's earlier run of the same RTL)" if resumed
            else "") + ".", "",
         "## Per GEMM class (CPT 3-8/8 weights over fw; layers weighted by their model time in a batch-128 "
         "iteration)", "",
         "| class | calls run | twin / model, min..max | model s, CPT | twin-scaled s, CPT (extrapolated) | ratio |",
         "|---|---:|---:|---:|---:|---:|"]
    for op, c in summary["classes"].items():
        if not c["ran"]:
            L.append(f"| {op} | 0 of {c['of']} (the twin refuses them) | | | | |")
            continue
        cpt = (f"{c['cpt_model_s']:.3f} | {c['cpt_twin_scaled_s']:.3f} | {c['cpt_ratio']:.2f}"
               if "cpt_model_s" in c else "| | ")
        L.append(f"| {op} | {c['ran']} of {c['of']} ({', '.join(c['layers_run'])}) | "
                 f"{c['ratio_min']:.2f}..{c['ratio_max']:.2f} | {cpt} |")
    L += ["", "Model s: the design's model of the layers the twin ran (the batch-128 iteration's share); the "
          "classes' other layers (those the twin refuses) are not in either column."]
    wg = summary["classes"].get("wgrad", {})
    if "cpt_twin_calls_s" in wg:
        lo, hi = wg["images_max"]
        rows = [r for r in summary["rows"] if r["op"] == "wgrad" and "twin_images_max" in r]
        as_run = all(r["batch"] == r["twin_images_max"] for r in rows)
        sizes = sorted({r["batch"] for r in rows})
        size = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}..{sizes[-1]}"
        plural = "" if size == "1" else "s"
        chain = all("twin_hit_cycles" in r for r in rows)
        how = (", each hinting the next call's chunks (PREFETCH_B: the first call cold, the others load nothing of "
               "their own), summed as measured in chains of three calls" if chain
               else ", summed without overlap between calls")
        L += ["", f"Weight gradients as the twin would run them: {ITER_BATCH} images per layer in calls of the "
              f"measured {size} image{plural}{how}: "
              f"**{wg['cpt_twin_calls_s']:.3f} s CPT** "
              f"and {wg['static_twin_calls_s']:.3f} s static 8/8 (the model: {wg['cpt_model_s']:.3f} and "
              f"{wg['static_model_s']:.3f} s).  The twin's limits take {lo}..{hi} images a call on these layers"
              + (" and each call ran that many, so this is the twin's own sum of calls, not an extrapolation."
                 if as_run else ", so where it takes more than a call ran this is an upper bound.")]
    L += ["",
          "## Per call", "",
          "| call | twin cycles | model | twin / model | HLS busy | PE util (twin) | hit: twin (last), model |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for r in summary["rows"]:
        images = f", {r['batch']} images" if r["batch"] != args.batch else ""
        hit = (f"{r['twin_hit_cycles']} ({r['twin_last_cycles']}), {r['model_hit_cycles']}"
               if "twin_hit_cycles" in r else "")
        if "ratio" in r:
            L.append(f"| {r['name']} ({r['a_bits']},{r['b_bits']}{images}) | {r['twin_cycles']} | "
                     f"{r['model_cycles']} | {r['ratio']:.2f} | {r['hls_cycles']} | "
                     f"{100 * r['pe_utilisation']:.1f} % | {hit} |")
        else:
            L.append(f"| {r['name']} ({r['a_bits']},{r['b_bits']}) | not run (twin: ERR_CONV) | | | | | |")
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    p.add_argument("--fw", type=int, nargs="+", default=list(range(3, 9)), help="forward precisions (3..8)")
    p.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS, help="GEMM classes (default all three)")
    p.add_argument("--wgrad-batch", choices=("same", "max"), default="same",
                   help="weight-gradient calls of --batch images (same) or of as many as the twin takes (max: the "
                        "calls it would run in a batch-128 iteration)")
    p.add_argument("--sums", action="store_true",
                   help="forward calls and weight gradients with their code sums (flags SUMS), as the driver asks "
                        "for them")
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--out", default=str(ROOT / "docs/results/conv_twin"), help="output stem (.json, .md)")
    p.add_argument("--dry-run", action="store_true", help="list the calls and the model's cycles, simulate nothing")
    p.add_argument("--resume", type=Path, metavar="RECORDS",
                   help="an earlier run's records.jsonl (build/<config>/sim_<simulator>/cpt_gemm/runs/...): the calls "
                        "it measured are not simulated again")
    args = p.parse_args(argv)
    if args.batch < 1 or any(not 1 <= q <= 8 for q in args.fw):
        p.error("--batch must be >= 1 and every --fw in 1..8")
    cfg = HardwareConfig.from_preset("zc706", {"conv_engine": True, "name": "zc706_conv"})
    specs = [{**s, "sums": args.sums} for s in layer_calls(args.batch, sorted(set(args.fw))) if s["op"] in args.ops]
    if args.wgrad_batch == "max":
        specs = [{**s, "batch": b, "chain": -(-ITER_BATCH // b) >= 3} if s["op"] == "wgrad"
                 and (b := twin_images_max(cfg, s)) else s for s in specs]
    run = [s for s in specs if twin_runs(cfg, s)]
    print(f"bench_conv_twin: {len(run)} of {len(specs)} calls run on the twin ({args.simulator}, {cfg.name})",
          file=sys.stderr)
    if args.dry_run:
        for s in specs:
            print(s["name"], "twin" if s in run else "refused", iteration_cycles(cfg, s))
        return 0
    resumed = load_resumed(args.resume, run) if args.resume else {}
    todo = [s for s in run if s["name"] not in resumed]
    records, wall = run_twin(cfg, todo, args.simulator) if todo else ([], 0.0)
    by_name = {**resumed, **{r["name"]: r for r in records if r.get("status") == 0}}
    missing = [n for s in run for n in [s["name"]] + ([s["name"] + "/hit", s["name"] + "/last"] if chained(s) else [])
               if n not in by_name]
    if missing:
        raise SystemExit(f"bench_conv_twin: no record for {len(missing)} calls, first {missing[0]}")
    summary = summarise(cfg, specs, by_name)
    command = "python bench/bench_conv_twin.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    payload = {"config": cfg.name, "simulator": args.simulator, "batch": args.batch, "fw": sorted(set(args.fw)),
               "sums": args.sums,
               "wall_s": round(wall, 1), "resumed_calls": len(resumed), "command": command.strip(), **summary}
    text = markdown(cfg, args, summary, wall, command.strip(), len(resumed))
    write_atomic(out.with_suffix(".json"), json.dumps(payload, indent=2) + "\n")
    write_atomic(out.with_suffix(".md"), text)
    print(text.split("## Per call")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
