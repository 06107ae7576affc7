"""Traffic and time of the convolution-native accelerator over a ResNet-74 training iteration: MODEL PREDICTIONS.

    .venv/bin/python bench/bench_conv_traffic.py          # writes docs/results/conv_traffic.{json,md} (about a CPU-second)

The engine is designed (docs/architecture.md, "Convolution-native accelerator (interface 4; design)"), not built:
every number this script writes for it comes from the pure-Python model cpt_hw.hw.conv_model, not from RTL,
HLS or a board.  What it evaluates:

1. Per ResNet-74 (CIFAR-10, batch 128) layer shape and GEMM class (forward, input gradient, weight gradient),
   at CPT's precisions (forward q = 3..8 bits, errors 8 bits; operand order as bench/bench_rtl.py): calls,
   bytes read per input element (the bytes the call reads -- tensor rows with their halo, weights -- over the
   elements of the tensor(s) it expands: X; E; X and E), AXI reads and writes, PE utilisation and time.  The
   GEMM path's bytes per input element beside it are today's formula (docs/ddr-layout.md: A once per B block,
   B once) on the im2col GEMMs of bench/resnet74_gemms.py.
2. The whole iteration: CPT 3-8/8 (schedule-weighted over q, cpt_hw.schedules) and static 8/8 against today's
   GEMM path as docs/results/board_step-resnet74.json measured it (the emulated device, cycles from the exact
   cycle model), and against the issue's targets.
3. The next step (outputs requantized on chip into the row-plane layout instead of int32): single pass with a
   lagged range, and the exact two-pass mode (a statistics pass, then the writing pass).
4. The layout choice: the traffic of two host-written layouts against the one row-plane layout with an
   on-chip corner turn.
5. On-chip memory: BRAM36 of today's plane banks and of the engine's tensor buffer on the zc706 preset.
6. How far to trust the method: the same per-tile estimate applied to today's driver calls (the plan the
   driver makes, prefetch hits included) against the exact cycle model's totals in board_step-resnet74.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from resnet74_gemms import conv_layers, training_gemms  # noqa: E402

from cpt_hw.hw import conv_model as cm  # noqa: E402
from cpt_hw.hw.config import HardwareConfig  # noqa: E402
from cpt_hw.hw.cycle_model import DDR_TIMING, MemoryTiming  # noqa: E402
from cpt_hw.fileio import write_atomic  # noqa: E402
from cpt_hw.schedules import DEFAULT_CYCLES, make_schedule  # noqa: E402

PRECISIONS = range(3, 9)
GRAD_BITS = 8
ITERS = 64_000
BATCH = 128
BOARD_STEP = ROOT / "docs" / "results" / "board_step-resnet74.json"
TARGETS = {"bytes_per_input_element_3x3_s1": 1.5, "reads_gb": 0.5, "accel_s": 1.0, "cpt_static_ratio": 0.70}
#: Design variants the report compares with the chosen design (cpt_hw.hw.conv_model.ConvDesign fields).
ABLATIONS = {"chosen design": {}, "int32 results always": {"narrow_results": False},
             "no polyphase input gradient": {"polyphase_dgrad": False}, "no code sums": {"sums": False}}
BANNER = ("**MODEL PREDICTIONS for a design that is not built yet** (cpt_hw.hw.conv_model; the engine is designed in "
          "docs/architecture.md, \"Convolution-native accelerator (interface 4; design)\").  Only the \"today\" "
          "figures are measured (the emulated device's exact cycle model, docs/results/board_step-resnet74.json).")


def gemm_bits(kind: str, fw: int) -> tuple[int, int]:
    """(a_bits, b_bits) at forward precision fw, in bench/bench_rtl.py's operand order."""
    return {"fwd": (fw, fw), "dgrad": (GRAD_BITS, fw), "wgrad": (fw, GRAD_BITS)}[kind]


def cpt_weights() -> dict[int, float]:
    hist = make_schedule("cpt", min(PRECISIONS), max(PRECISIONS), ITERS, DEFAULT_CYCLES).histogram(ITERS)
    return {int(b): n / ITERS for b, n in sorted(hist.items())}


def layer_shapes(batch: int = BATCH) -> list[tuple[str, cm.ConvShape, int]]:
    """(name, shape, how many) of every conv layer of ResNet-74 (bench/resnet74_gemms.py's list)."""
    out = []
    for name, cin, cout, ks, hw, count in conv_layers(74):
        stride = 2 if name.endswith((".first", ".down")) else 1
        out.append((name, cm.ConvShape(batch, cin, cout, hw * stride, hw * stride, ks, stride, ks // 2), count))
    return out


def ops_of(name: str) -> tuple[str, ...]:
    return ("fwd", "wgrad") if name == "stem" else cm.OPS   # the stem's input gradient is not needed


def today_bytes_per_element(cfg: HardwareConfig, name: str, op: str, shape: cm.ConvShape, fw: int) -> float:
    """Today's GEMM path: bytes read per input element, from the im2col GEMMs (wgrad in k_max chunks)."""
    a, b = gemm_bits(op, fw)
    reads = sum(cm.gemm_path_reads(cfg, g.m, g.n, g.k, a, b) * g.count
                for g in training_gemms(BATCH, cfg.k_max) if g.layer == name and g.kind == op)
    count = next(c for n, _, c in layer_shapes() if n == name)
    s = shape
    elems = {"fwd": s.batch * s.in_ch * s.height * s.width, "dgrad": s.batch * s.out_ch * s.out_h * s.out_w}
    elems["wgrad"] = elems["fwd"] + elems["dgrad"]
    return reads / count / elems[op]


def per_layer(cfg: HardwareConfig, weights: dict[int, float], timing: MemoryTiming) -> list[dict]:
    rows = []
    for name, shape, count in layer_shapes():
        for op in ops_of(name):
            by_fw = {fw: cm.estimate(cfg, op, shape, *gemm_bits(op, fw), timing=timing) for fw in PRECISIONS}
            cpt = {key: sum(w * getattr(by_fw[q], key) for q, w in weights.items())
                   for key in ("read_bytes", "write_bytes", "cycles", "useful_binary_ops")}
            e8 = by_fw[8]
            rows.append({
                "layer": name, "op": op, "count": count,
                "shape": {"C_in": shape.in_ch, "C_out": shape.out_ch, "kernel": shape.kernel, "stride": shape.stride,
                          "padding": shape.padding, "H": shape.height, "Ho": shape.out_h},
                "calls": e8.calls,
                "bytes_per_input_element": {str(fw): e.bytes_read_per_input_element for fw, e in by_fw.items()},
                "read_amplification_8bit": e8.bytes_read_per_input_element,
                "today_bytes_per_input_element_8bit": today_bytes_per_element(cfg, name, op, shape, 8),
                "reads_by_operand_8bit": e8.reads,
                "cpt": {"read_bytes": cpt["read_bytes"], "write_bytes": cpt["write_bytes"],
                        "ms": 1e3 * cpt["cycles"] / (cfg.clock_mhz * 1e6),
                        "utilisation": cpt["useful_binary_ops"] / (cfg.peak_binary_ops_per_cycle * cpt["cycles"])},
                "static": {"ms": e8.seconds(cfg) * 1e3, "utilisation": e8.utilisation(cfg)},
            })
    return rows


def iteration(cfg: HardwareConfig, fw: int, timing: MemoryTiming, design: cm.ConvDesign = cm.ConvDesign(),
              **kw) -> dict:
    """One training iteration at forward precision fw: totals and per class."""
    out = {"read_bytes": 0, "write_bytes": 0, "cycles": 0, "calls": 0, "useful_binary_ops": 0,
           "by_class": {op: {"read_bytes": 0, "write_bytes": 0, "cycles": 0} for op in cm.OPS}}
    for name, shape, count in layer_shapes():
        for op in ops_of(name):
            a, b = gemm_bits(op, fw)
            extra = {}
            if op != "wgrad" and kw.get("outputs") in ("codes", "spill"):
                # forward outputs become the next layer's fw-bit activations, input gradients 8-bit errors
                extra = {"outputs": kw["outputs"], "out_bits": fw if op == "fwd" else GRAD_BITS}
                if kw["outputs"] == "codes":
                    extra["passes"] = kw.get("passes", 1)
            e = cm.estimate(cfg, op, shape, a, b, timing=timing, design=design, **extra)
            for key in ("read_bytes", "write_bytes", "cycles"):
                out[key] += getattr(e, key) * count
                out["by_class"][op][key] += getattr(e, key) * count
            out["calls"] += e.calls * count
            out["useful_binary_ops"] += e.useful_binary_ops * count
    out["accel_s"] = out["cycles"] / (cfg.clock_mhz * 1e6)
    out["utilisation"] = out["useful_binary_ops"] / (cfg.peak_binary_ops_per_cycle * out["cycles"])
    return out


def schedule_mix(cfg: HardwareConfig, per_fw: dict[int, dict], weights: dict[int, float]) -> dict:
    """CPT (weighted over q) and static (q = 8) of the per-precision iterations."""
    def mix(key: str, cls: str | None = None) -> float:
        get = (lambda it: it[key]) if cls is None else (lambda it: it["by_class"][cls][key])
        return sum(w * get(per_fw[q]) for q, w in weights.items())

    hz = cfg.clock_mhz * 1e6
    cpt = {"accel_s": mix("accel_s"), "read_bytes": mix("read_bytes"), "write_bytes": mix("write_bytes"),
           "calls": mix("calls"),
           "accel_s_by_class": {op: mix("cycles", op) / hz for op in cm.OPS}}
    st = per_fw[8]
    static = {"accel_s": st["accel_s"], "read_bytes": st["read_bytes"], "write_bytes": st["write_bytes"],
              "calls": st["calls"], "accel_s_by_class": {op: st["by_class"][op]["cycles"] / hz for op in cm.OPS}}
    return {"cpt": cpt, "static": static, "cpt_static_ratio": cpt["accel_s"] / static["accel_s"]}


def layout_choices(cfg: HardwareConfig, weights: dict[int, float]) -> dict:
    """Bytes per iteration (CPT mix) of the tensor codes, for the two-layout alternative: the host (this
    step) or the device (next step) writes every X and E a second time; the device reads the same bytes."""
    def codes(fw: int) -> dict:
        x = e = 0
        for name, s, count in layer_shapes():
            x += cm.tensor_bytes(cfg, s.batch, s.in_ch, s.height, s.width, fw) * count
            e += cm.tensor_bytes(cfg, s.batch, s.out_ch, s.out_h, s.out_w, GRAD_BITS) * count
        return {"x": x, "e": e}

    mix = {k: sum(w * codes(q)[k] for q, w in weights.items()) for k in ("x", "e")}
    return {"x_code_bytes": mix["x"], "e_code_bytes": mix["e"],
            "two_layouts_extra_write_bytes": mix["x"] + mix["e"],
            "note": "two host-written layouts (pixel-major for fwd/dgrad, channel-major for wgrad): the device reads "
                    "the same bytes as with one layout and a corner turn, but every X and E is written twice -- by "
                    "the host in this step, by the device's requantizer in the next -- and the host packs twice"}


def calibration(cfg: HardwareConfig, weights: dict[int, float]) -> dict | None:
    """The per-tile method on today's driver calls vs the exact cycle model (board_step-resnet74.json)."""
    if not BOARD_STEP.is_file():
        return None
    from bench_rtl import driver_calls  # the driver's plan, as bench_rtl times it

    from cpt_driver import Accelerator

    board = json.loads(BOARD_STEP.read_text())
    exact = {p["fw"]: p for p in board["per_precision"]}
    out = {}
    with Accelerator("emu", config=cfg) as acc:
        for fw in PRECISIONS:
            cycles = {op: 0 for op in cm.OPS}
            for g in training_gemms(BATCH, cfg.k_max, split_k=False):
                a, b = gemm_bits(g.kind, fw)
                calls = driver_calls(acc, g, a, b)
                prev_hint = None
                for c in calls:
                    e = cm.gemm_path_estimate(cfg, c.m1 - c.m0, c.n1 - c.n0, c.k1 - c.k0, a, b,
                                              b_prefetched=prev_hint == c.b_tile)
                    cycles[g.kind] += e.cycles * g.count
                    prev_hint = c.hint_tile
            model = sum(cycles.values())
            out[str(fw)] = {"method_cycles": model, "exact_cycles": exact[fw]["cycles"] if fw in exact else None,
                            "method_by_class": cycles,
                            "exact_by_class": exact[fw]["cycles_by_class"] if fw in exact else None}
    ratios = [v["method_cycles"] / v["exact_cycles"] for v in out.values() if v["exact_cycles"]]
    return {"per_fw": out, "method_over_exact_min": min(ratios), "method_over_exact_max": max(ratios)}


def today_figures() -> dict | None:
    if not BOARD_STEP.is_file():
        return None
    b = json.loads(BOARD_STEP.read_text())
    return {"accel_s": b["accel_s_per_iter"], "read_bytes": b["read_bytes_per_iter"],
            "write_bytes": b["write_bytes_per_iter"], "cpt_static_ratio": b["cpt_static_ratio"],
            "accel_s_by_class": b["accel_s_per_iter_by_class"], "source": str(BOARD_STEP.relative_to(ROOT)),
            "command": b.get("command"),
            "calls": sum(w * p["device_calls"] for p in b["per_precision"]
                         for q, w in b["schedule"]["weights"].items() if int(q) == p["fw"])}


# ----------------------------------------------------------------------------- report


def _gb(x: float) -> str:
    return f"{x / 1e9:.3f} GB"


def markdown(r: dict) -> str:
    cfg_name, mix, today = r["config"], r["iteration"], r["today"]
    lines = [f"# Convolution-native accelerator: traffic and time over a ResNet-74 iteration ({cfg_name})", "",
             BANNER, "", f"Reproduce: `{r['command']}` ({r['cpu_s']:.1f} CPU-s; method in the script's docstring and "
             "cpt_hw/hw/conv_model.py).  Batch 128; CPT 3-8/8 = the average over fw with the schedule's weights "
             f"({', '.join(f'{q}: {100 * w:.1f} %' for q, w in r['weights'].items())}); errors 8 bits throughout; "
             "static 8/8 = fw 8.  Memory timing: the cycle model's default (the one the emulated device, hence "
             "\"today\", uses); with DDR latencies (cycle_model.DDR_TIMING) in the last table.", ""]
    lines += ["## Whole iteration against the targets", "",
              "| | today (GEMM path, measured model) | conv engine (predicted) | target |", "|---|---:|---:|---:|"]
    t_ok = r["targets_met"]
    if today:
        lines += [f"| accelerator s, CPT 3-8/8 | {today['accel_s']['cpt']:.3f} | {mix['cpt']['accel_s']:.3f} | "
                  f"<= {TARGETS['accel_s']} ({'met' if t_ok['accel_s'] else 'NOT met'}) |",
                  f"| accelerator s, static 8/8 | {today['accel_s']['static']:.3f} | "
                  f"{mix['static']['accel_s']:.3f} | |",
                  f"| CPT / static | {today['cpt_static_ratio']:.3f} | {mix['cpt_static_ratio']:.3f} | "
                  f"<= {TARGETS['cpt_static_ratio']} ({'met' if t_ok['cpt_static_ratio'] else 'NOT met'}) |",
                  f"| AXI reads, CPT | {_gb(today['read_bytes']['cpt'])} | {_gb(mix['cpt']['read_bytes'])} | "
                  f"<= {TARGETS['reads_gb']} GB ({'met' if t_ok['reads_gb'] else 'NOT met'}) |",
                  f"| AXI reads, static | {_gb(today['read_bytes']['static'])} | "
                  f"{_gb(mix['static']['read_bytes'])} | |",
                  f"| AXI writes, CPT | {_gb(today['write_bytes']['cpt'])} | {_gb(mix['cpt']['write_bytes'])} | |"]
        for op in cm.OPS:
            lines.append(f"| - {op} s, CPT | {today['accel_s_by_class']['cpt'][op]:.3f} | "
                         f"{mix['cpt']['accel_s_by_class'][op]:.3f} | |")
        lines.append(f"| device calls per iteration, CPT | {today['calls']:.0f} | {mix['cpt']['calls']:.0f} | |")
        lines.append("| hours for 64,000 iterations, accelerator only, CPT | "
                     f"{today['accel_s']['cpt'] * ITERS / 3600:.1f} | "
                     f"{mix['cpt']['accel_s'] * ITERS / 3600:.1f} | <= 18 |")
    worst = r["worst_bytes_per_input_element_3x3_s1"]
    lines += ["", f"Bytes read per input element, 3x3 stride-1 layers, worst over layers, classes and precisions: "
              f"**{worst['value']:.3f}** ({worst['layer']} {worst['op']} at fw {worst['fw']}; target <= "
              f"{TARGETS['bytes_per_input_element_3x3_s1']}, "
              f"{'met' if t_ok['bytes_per_input_element_3x3_s1'] else 'NOT met'}).  "
              "Halo included: every call covers whole images, so the rows above and below a tile are read once "
              "into the line buffer and shared by the tiles of both neighbouring output rows; padding is made on "
              "chip.  The stem's 1.34 is its channel padding (C = 3 stored as Cp = 4).", ""]
    lines += ["## Per layer shape (one layer; batch 128)", "",
              "Bytes/elem: bytes the call reads over the elements of the tensor(s) it expands (fwd X, dgrad E, "
              "wgrad X and E), at fw 8 (8-bit codes: the read amplification) and fw 3; today: the GEMM path's "
              "im2col operands at fw 8.  ms and PE utilisation: CPT mix and static 8/8.", "",
              "| layer | x | class | Cin->Cout k/s, H | calls | bytes/elem fw8 | fw3 | today fw8 | reads MB (CPT) | "
              "writes MB (CPT) | ms CPT | util CPT | ms 8/8 | util 8/8 |",
              "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in r["per_layer"]:
        s = row["shape"]
        lines.append(
            f"| {row['layer']} | {row['count']} | {row['op']} | {s['C_in']}->{s['C_out']} {s['kernel']}/{s['stride']}, "
            f"{s['H']} | {row['calls']} | {row['bytes_per_input_element']['8']:.3f} | "
            f"{row['bytes_per_input_element']['3']:.3f} | {row['today_bytes_per_input_element_8bit']:.2f} | "
            f"{row['cpt']['read_bytes'] / 1e6:.2f} | {row['cpt']['write_bytes'] / 1e6:.2f} | {row['cpt']['ms']:.2f} | "
            f"{100 * row['cpt']['utilisation']:.0f} % | {row['static']['ms']:.2f} | "
            f"{100 * row['static']['utilisation']:.0f} % |")
    nx = r["next_step"]
    lines += ["", "## Next step: outputs requantized on chip (designed, not built)", "",
              "Forward outputs written as fw-bit codes, input gradients as 8-bit codes, both in the row-plane "
              "layout; weight gradients stay int32 partial sums (until the SGD update moves to the fabric).", "",
              "| | this step (int16/int32 out) | next, lagged range (1 pass) | next, exact: recompute (2 passes) | "
              "next, exact: spill + epilogue call |",
              "|---|---:|---:|---:|---:|"]
    for key, label in (("accel_s", "accelerator s, CPT"), ("static_s", "accelerator s, static 8/8"),
                       ("read_bytes", "AXI reads, CPT"), ("write_bytes", "AXI writes, CPT")):
        vals = [nx[k][key] for k in ("int", "lagged", "exact", "spill")]
        fmt = (lambda v: f"{v:.3f}") if key.endswith("_s") else _gb
        lines.append(f"| {label} | " + " | ".join(fmt(v) for v in vals) + " |")
    lc = r["layout_choices"]
    lines += ["", "## Layout choice", "",
              f"Codes per iteration (CPT mix): X {_gb(lc['x_code_bytes'])}, E {_gb(lc['e_code_bytes'])}.  Two "
              f"host-written layouts would add {_gb(lc['two_layouts_extra_write_bytes'])} of writes per iteration "
              "(host packing in this step, device writes in the next) for the same device reads; one row-plane "
              "layout with an on-chip corner turn for the weight gradient adds none.", ""]
    bb = r["bram"]
    lines += ["## On-chip memory (zc706 preset, xc7z045: 545 BRAM36)", "",
              "| buffer | BRAM36 |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in bb["blocks"].items()]
    lines += [f"| headroom | {100 * bb['headroom']:.1f} % (needs >= 15 %) |", ""]
    cal = r["calibration"]
    if cal:
        lines += ["## How far to trust the method", "",
                  "The model's per-tile method (cpt_hw.hw.conv_model.gemm_path_estimate) applied to the calls today's "
                  "driver makes, against the exact cycle model's totals (board_step-resnet74.json):", "",
                  "| fw | method cycles | exact cycles | method / exact |", "|---:|---:|---:|---:|"]
        for fw, v in cal["per_fw"].items():
            lines.append(f"| {fw} | {v['method_cycles']:,} | {v['exact_cycles']:,} | "
                         f"{v['method_cycles'] / v['exact_cycles']:.3f} |")
        lo = cal["method_over_exact_min"]
        lines += ["", f"The method gives {lo:.3f}..{cal['method_over_exact_max']:.3f} of the exact model's cycles on "
                  "today's path (it leaves out details such as the reader's idle beat between commands, 4 KiB burst "
                  "splits and the timing of prefetch chunks).  Were it as optimistic for the conv engine, the CPT "
                  "iteration would take "
                  f"{mix['cpt']['accel_s'] / lo:.3f} s and static {mix['static']['accel_s'] / lo:.3f} s.", ""]
    lines += ["## Design choices, one at a time", "",
              "| variant | CPT s | static s | CPT/static | reads (CPT) | writes (CPT) |",
              "|---|---:|---:|---:|---:|---:|"]
    for key, a in r["ablations"].items():
        lines.append(f"| {key} | {a['accel_s']:.3f} | {a['static_s']:.3f} | {a['cpt_static_ratio']:.3f} | "
                     f"{_gb(a['read_bytes'])} | {_gb(a['write_bytes'])} |")
    ddr = r["ddr_timing"]
    lines += ["", "## Sensitivity: DDR latencies", "",
              f"With cycle_model.DDR_TIMING (read latency 40, write 30 cycles): CPT {ddr['cpt']['accel_s']:.4f} s, "
              f"static {ddr['static']['accel_s']:.4f} s per iteration (default timing: {mix['cpt']['accel_s']:.4f}, "
              f"{mix['static']['accel_s']:.4f}); one call per layer and class leaves latency little to add.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "conv_traffic"),
                    help="output path without extension (.json and .md are written)")
    ap.add_argument("--skip-calibration", action="store_true",
                    help="skip the method check against today's exact cycle model (the slow part)")
    args = ap.parse_args(argv)
    t0 = time.process_time()
    cfg = HardwareConfig.from_preset("zc706")
    weights = cpt_weights()
    timing = MemoryTiming()
    per_fw = {fw: iteration(cfg, fw, timing) for fw in PRECISIONS}
    mix = schedule_mix(cfg, per_fw, weights)
    layers = per_layer(cfg, weights, timing)
    worst = max(({"value": row["bytes_per_input_element"][str(fw)], "layer": row["layer"], "op": row["op"], "fw": fw}
                 for row in layers if row["shape"]["kernel"] == 3 and row["shape"]["stride"] == 1
                 for fw in PRECISIONS), key=lambda d: d["value"])
    nxt = {}
    for key, kw in (("int", {}), ("lagged", {"outputs": "codes"}), ("exact", {"outputs": "codes", "passes": 2}),
                    ("spill", {"outputs": "spill"})):
        m = schedule_mix(cfg, {fw: iteration(cfg, fw, timing, **kw) for fw in PRECISIONS}, weights)
        nxt[key] = {"accel_s": m["cpt"]["accel_s"], "static_s": m["static"]["accel_s"],
                    "read_bytes": m["cpt"]["read_bytes"], "write_bytes": m["cpt"]["write_bytes"]}
    ddr = schedule_mix(cfg, {fw: iteration(cfg, fw, DDR_TIMING) for fw in PRECISIONS}, weights)
    ablations = {}
    for key, change in ABLATIONS.items():
        design = cm.with_design(cm.ConvDesign(), **change)
        m = schedule_mix(cfg, {fw: iteration(cfg, fw, timing, design) for fw in PRECISIONS}, weights)
        ablations[key] = {"change": change, "accel_s": m["cpt"]["accel_s"], "static_s": m["static"]["accel_s"],
                          "cpt_static_ratio": m["cpt_static_ratio"], "read_bytes": m["cpt"]["read_bytes"],
                          "write_bytes": m["cpt"]["write_bytes"]}
    budget = cm.bram_budget(cfg)
    cap = cfg.part_info.bram36
    bram = {"blocks": {"A ping-pong banks (today)": budget["a_banks"], "B banks, two halves (today)": budget["b_banks"],
                       "tensor buffer (line buffer / wgrad X chunk halves, new)": budget["tensor_buffer"],
                       "row/column sums FIFO (new)": budget["sums_fifo"], "total": budget["total"]},
            "capacity": cap, "headroom": 1 - budget["total"] / cap}
    today = today_figures()
    targets_met = {"accel_s": mix["cpt"]["accel_s"] <= TARGETS["accel_s"],
                   "reads_gb": mix["cpt"]["read_bytes"] / 1e9 <= TARGETS["reads_gb"],
                   "cpt_static_ratio": mix["cpt_static_ratio"] <= TARGETS["cpt_static_ratio"],
                   "bytes_per_input_element_3x3_s1": worst["value"] <= TARGETS["bytes_per_input_element_3x3_s1"]}
    cal = None if args.skip_calibration else calibration(cfg, weights)
    result = {
        "kind": "model prediction (design not built)", "command": "python bench/bench_conv_traffic.py"
        + (" --skip-calibration" if args.skip_calibration else ""),
        "config": cfg.name, "batch": BATCH, "weights": {str(q): w for q, w in weights.items()},
        "design": {k: getattr(cm.ConvDesign(), k) for k in cm.ConvDesign.__dataclass_fields__},
        "targets": TARGETS, "targets_met": targets_met, "iteration": mix,
        "per_fw": {str(fw): {k: v for k, v in it.items()} for fw, it in per_fw.items()},
        "worst_bytes_per_input_element_3x3_s1": worst, "per_layer": layers, "next_step": nxt,
        "layout_choices": layout_choices(cfg, weights), "bram": bram, "today": today, "calibration": cal,
        "ddr_timing": {"cpt": ddr["cpt"], "static": ddr["static"]}, "ablations": ablations,
    }
    result["cpu_s"] = time.process_time() - t0
    out = Path(args.out)
    write_atomic(out.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    write_atomic(out.with_suffix(".md"), markdown(result) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
