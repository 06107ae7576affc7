"""Benchmark of the Verilog twin: PE utilisation on ResNet-74 training GEMMs, and simulator speed.

    .venv/bin/python bench/bench_rtl.py                 # everything (about 15 minutes on 2 cores)
    .venv/bin/python bench/bench_rtl.py --skip-rtl      # cycle model only (about 10 CPU-minutes)

How the numbers are obtained (also written into the markdown):

1. Utilisation.  Every GEMM of one ResNet-74 CIFAR training step (bench/resnet74_gemms.py: forward,
   input gradient, weight gradient; batch 128) at forward precision q = 3..8 with 8-bit errors (what CPT
   3-8/8 runs: forward (q, q), input gradient (8, q) = 8-bit errors x q-bit weights, weight gradient
   (q, 8) = q-bit activations x 8-bit errors; static 8/8 is q = 8) is split into device calls exactly as the driver does it (cpt_driver.Accelerator.tile_shape, cpt_driver.plan: K
   chunks, each call prefetching the next call's B) and every call is timed by cpt_hw.hw.cycle_model for
   the zc706 preset (a call whose B was prefetched as a hit).  The same without prefetching (the driver
   with prefetch=False: k_max chunks, no hints) is the "before" column.  PE utilisation = useful binary
   ops M N K a b / (peak binary ops per cycle x cycles).  Full shapes run for millions of cycles, too
   long to simulate, so:
2. Validation.  Truncated versions of the same GEMMs (M cut to a few A tiles, K to a few hundred) run on
   the zc706 RTL in Verilator, bit-exact against cpt_hw.hw.golden; the model must match their cycles.  The
   model is the same code path for truncated and full shapes (its periodic fast-forward is exercised by
   the longer truncated shapes).  Truncated weight-gradient chains (full M, the first K chunks of the
   driver's plan, each call prefetching the next) check the model on prefetch misses and hits.
3. Roofline.  A GEMM is compute-bound when its array steps (a b Kw per tile) exceed both its read and
   its write beats on the one 64-bit AXI port; the >= 90 % target applies to those.
4. Simulator speed: the same GEMM list on the sim preset under Icarus and Verilator, simulated cycles
   per second of wall time of the cocotb test (build excluded), plus zc706 on Verilator.
5. CPT.  The step time averaged over q with the schedule's weights (the share of 64,000 iterations in
   32 cycles spent at each q, cpt_hw.schedules), and 64,000 steps of it: the accelerator-only hours of a
   CPT 3-8/8 and a static 8/8 training (host time excluded: bench/bench_board_step.py adds it).

With --skip-rtl the RTL sections (2, 4) are carried over from the existing rtl_bench.json, marked as such.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from resnet74_gemms import Gemm, training_gemms  # noqa: E402

from cpt_driver import Accelerator  # noqa: E402
from cpt_driver.plan import PlannedCall, plan_calls  # noqa: E402
from cpt_hw.fileio import save_figure, write_atomic  # noqa: E402
from cpt_hw.hw.config import RESULT_BITS, HardwareConfig  # noqa: E402
from cpt_hw.hw.cycle_model import DDR_TIMING, MemoryTiming, Prefetch, gemm_cycles  # noqa: E402
from cpt_hw.schedules import DEFAULT_CYCLES, make_schedule  # noqa: E402

#: Forward precisions of CPT 3-8/8 (q = 8: static 8/8); the errors are GRAD_BITS throughout.
PRECISIONS = range(3, 9)
GRAD_BITS = 8
#: Validation pairs of the truncated RTL shapes (a_bits, b_bits).
PAIRS = [(3, 3), (3, 8), (8, 8)]
ITERS = 64_000


def gemm_bits(kind: str, fw: int) -> tuple[int, int]:
    """(a_bits, b_bits) of a GEMM class at forward precision fw (operand order of resnet74_gemms)."""
    return {"fwd": (fw, fw), "dgrad": (GRAD_BITS, fw), "wgrad": (fw, GRAD_BITS)}[kind]


def cpt_weights() -> dict[int, float]:
    """{q: share of the 64,000 iterations of CPT 3-8/8 (32 cycles) at forward precision q}."""
    hist = make_schedule("cpt", min(PRECISIONS), max(PRECISIONS), ITERS, DEFAULT_CYCLES).histogram(ITERS)
    return {int(b): n / ITERS for b, n in sorted(hist.items())}


def roofline(cfg: HardwareConfig, calls: list[PlannedCall], a_bits: int, b_bits: int) -> dict:
    """Array steps vs read and write beats of the dataflow, summed over a GEMM's calls (per call: A
    re-read per B block, B once, C once)."""
    bpw = cfg.dot_width // cfg.axi_data_width
    steps = reads = writes = 0
    for c in calls:
        m, n, k = c.m1 - c.m0, c.n1 - c.n0, c.k1 - c.k0
        kw = -(-k // cfg.dot_width)
        row_tiles, col_tiles = -(-m // cfg.rows), -(-n // cfg.cols)
        blocks = -(-n // cfg.b_block_cols)
        steps += row_tiles * col_tiles * a_bits * b_bits * kw
        reads += (m * a_bits * blocks + n * b_bits) * kw * bpw
        writes += m * col_tiles * cfg.cols * RESULT_BITS // cfg.axi_data_width
    return {"steps": steps, "read_beats": reads, "write_beats": writes,
            "bound": "compute" if steps >= max(reads, writes) else ("read" if reads >= writes else "write")}


def driver_calls(acc: Accelerator, g: Gemm, a_bits: int, b_bits: int) -> list[PlannedCall]:
    """The device calls the driver makes for one GEMM (its tiling and call plan)."""
    mt, nt, kt = acc.tile_shape(g.m, g.n, g.k, a_bits, b_bits)
    return plan_calls(g.m, g.n, g.k, mt, nt, kt, acc.spec.dot_width, acc.prefetch)


def chain_cycles(cfg: HardwareConfig, calls: list[PlannedCall], a_bits: int, b_bits: int,
                 timing: MemoryTiming = MemoryTiming()) -> int:
    """Cycles of a sequence of calls: a call whose B the previous call prefetched is a hit."""
    total, prev_hint = 0, None
    for c, nxt in zip(calls, calls[1:] + [None]):
        hint = None
        if c.hint_tile is not None and nxt is not None:
            hint = Prefetch(0, nxt.n1 - nxt.n0, nxt.k1 - nxt.k0, b_bits)
        total += gemm_cycles(cfg, c.m1 - c.m0, c.n1 - c.n0, c.k1 - c.k0, a_bits, b_bits, timing,
                             b_prefetched=prev_hint == c.b_tile, prefetch=hint).total
        prev_hint = c.hint_tile
    return total


def model_table(cfg: HardwareConfig) -> list[dict]:
    rows = []
    with Accelerator("emu", config=cfg) as acc, Accelerator("emu", config=cfg, prefetch=False) as plain:
        for g in training_gemms(k_max=cfg.k_max, split_k=False):
            for fw in PRECISIONS:
                a_bits, b_bits = gemm_bits(g.kind, fw)
                useful = g.m * g.n * g.k * a_bits * b_bits
                calls = driver_calls(acc, g, a_bits, b_bits)
                cycles = chain_cycles(cfg, calls, a_bits, b_bits)
                ddr = chain_cycles(cfg, calls, a_bits, b_bits, DDR_TIMING)
                before = chain_cycles(cfg, driver_calls(plain, g, a_bits, b_bits), a_bits, b_bits)
                peak = cfg.peak_binary_ops_per_cycle
                rows.append({**asdict(g), "fw": fw, "a_bits": a_bits, "b_bits": b_bits, "calls": len(calls),
                             "k_chunks": sorted({c.k1 - c.k0 for c in calls}, reverse=True),
                             "cycles": cycles, "utilisation": useful / (peak * cycles), "cycles_ddr": ddr,
                             "utilisation_ddr": useful / (peak * ddr), "cycles_no_prefetch": before,
                             "utilisation_no_prefetch": useful / (peak * before),
                             **roofline(cfg, calls, a_bits, b_bits)})
    return rows


def totals(cfg: HardwareConfig, rows: list[dict]) -> list[dict]:
    out = []
    for fw in PRECISIONS:
        sel = [r for r in rows if r["fw"] == fw]
        cyc = sum(r["cycles"] * r["count"] for r in sel)
        useful = sum(r["m"] * r["n"] * r["k"] * r["a_bits"] * r["b_bits"] * r["count"] for r in sel)
        before = sum(r["cycles_no_prefetch"] * r["count"] for r in sel)
        cb = [r for r in sel if r["bound"] == "compute"]
        out.append({"fw": fw, "bw": GRAD_BITS, "step_ms": 1e3 * cyc / (cfg.clock_mhz * 1e6),
                    "step_ms_by_class": {kind: 1e3 * sum(r["cycles"] * r["count"] for r in sel if r["kind"] == kind)
                                         / (cfg.clock_mhz * 1e6) for kind in ("fwd", "dgrad", "wgrad")},
                    "utilisation": useful / (cfg.peak_binary_ops_per_cycle * cyc),
                    "step_ms_no_prefetch": 1e3 * before / (cfg.clock_mhz * 1e6),
                    "compute_bound_gemms": len(cb),
                    "compute_bound_min_util": min((r["utilisation"] for r in cb), default=None),
                    "compute_bound_min_util_no_prefetch": min((r["utilisation_no_prefetch"] for r in cb),
                                                              default=None)})
    return out


def cpt_summary(tot: list[dict]) -> dict:
    """Step time of CPT 3-8/8 (schedule-weighted over q) and static 8/8, and 64,000 steps of each in hours
    (accelerator only)."""
    weights = cpt_weights()
    by_fw = {t["fw"]: t for t in tot}
    ms = {"cpt": sum(w * by_fw[q]["step_ms"] for q, w in weights.items()), "static": by_fw[8]["step_ms"]}
    ms_np = {"cpt": sum(w * by_fw[q]["step_ms_no_prefetch"] for q, w in weights.items()),
             "static": by_fw[8]["step_ms_no_prefetch"]}
    return {"weights": {str(q): w for q, w in weights.items()}, "iters": ITERS, "cycles": DEFAULT_CYCLES,
            "step_ms": ms, "step_ms_no_prefetch": ms_np, "cpt_static_ratio": ms["cpt"] / ms["static"],
            "hours_64k": {k: ITERS * v / 1e3 / 3600 for k, v in ms.items()}}


def truncated_shapes(cfg: HardwareConfig) -> list[list[int]]:
    """The GEMM shapes of the step, cut to a few tiles (M <= 3 rows + 3, K <= 8 D) for RTL simulation."""
    shapes = []
    seen = set()
    for g in training_gemms(k_max=cfg.k_max):
        m = min(g.m, 3 * cfg.rows + 3)
        k = min(g.k, 8 * cfg.dot_width)
        for a_bits, b_bits in sorted({gemm_bits(g.kind, fw) for fw in (3, 8)}):
            key = (m, g.n, k, a_bits, b_bits)
            if key not in seen:
                seen.add(key)
                shapes.append(list(key))
    # a few longer ones: many A tiles (the model's periodic fast-forward) and a single-block weight
    # gradient with its serialised B load
    shapes += [[12 * cfg.rows, 64, 576, 3, 8], [12 * cfg.rows + 5, 16, 144, 8, 8], [576, 64, 512, 3, 8]]
    return shapes


def truncated_chains(cfg: HardwareConfig) -> list[list[list[int]]]:
    """The first two calls of the driver's plan for the compute-bound weight gradients (full M and N,
    the lead K chunks), each prefetching the next: a miss with a hint, then a hit, on the RTL."""
    from cpt_driver.plan import k_chunks

    chains = []
    for g in training_gemms(k_max=cfg.k_max, split_k=False):
        if g.kind != "wgrad" or g.m < 288:
            continue
        ks = [k1 - k0 for k0, k1 in k_chunks(g.k, cfg.k_max, cfg.dot_width, prefetch=True)][:2]
        pairs = [(3, 8), (8, 8)] if g.m == 288 else [(3, 8)]
        chains += [[[g.m, g.n, k, a_bits, b_bits] for k in ks] for a_bits, b_bits in pairs]
    return chains


def run_rtl(cfg: HardwareConfig, simulator: str, shapes: list[list[int]],
            chains: list[list[list[int]]] = ()) -> dict:
    from cpt_hw.flows import rtl_sim

    rtl_sim.build(cfg, simulator)
    t0 = time.time()
    res = rtl_sim.run(cfg, simulator, "bench_cpt_gemm", seed=1,
                    extra_env={"CPT_HW_BENCH_SHAPES": json.dumps(shapes), "CPT_HW_BENCH_CHAINS": json.dumps(chains)})
    wall = time.time() - t0
    if not res.ok:
        raise SystemExit(res.summary())
    checks = []
    for rec in res.records:
        hint = Prefetch(*rec["prefetch"]) if rec.get("prefetch") else None
        est = gemm_cycles(cfg, rec["m"], rec["n"], rec["k"], rec["a_bits"], rec["b_bits"], a_addr=rec["a_addr"],
                          b_addr=rec["b_addr"], c_addr=rec["c_addr"], b_prefetched=rec.get("b_hit", False),
                          prefetch=hint).total
        checks.append({k: rec[k] for k in ("m", "n", "k", "a_bits", "b_bits")} |
                      {"b_hit": rec.get("b_hit", False), "prefetch": hint is not None,
                       "rtl_cycles": rec["cycles"], "model_cycles": est,
                       "error": (est - rec["cycles"]) / rec["cycles"]})
    sim_cycles = sum(t["sim_time_ns"] for t in res.tests) / 10     # 10 ns testbench clock
    test_wall = sum(t.get("wall_s", 0.0) for t in res.tests) or wall
    return {"simulator": simulator, "config": cfg.name, "gemms": len(checks), "checks": checks,
            "simulated_cycles": sim_cycles, "wall_s": round(test_wall, 2),
            "cycles_per_s": sim_cycles / test_wall if test_wall else None,
            "max_abs_error": max((abs(c["error"]) for c in checks), default=0.0)}


def sizing(base: HardwareConfig) -> list[dict]:
    """Cycle-model time of the training step for other array shapes (same part, port and buffers)."""
    out = []
    for rows, cols in [(16, 16), (24, 16), (32, 16), (16, 32), (32, 32)]:
        cfg = base.replace(rows=rows, cols=cols, name=f"r{rows}c{cols}")
        t = totals(cfg, model_table(cfg))
        out.append({"rows": rows, "cols": cols, "pes": rows * cols, "peak_binary_tops": cfg.peak_binary_tops,
                    "step_ms_fw3": t[0]["step_ms"], "step_ms_static": t[-1]["step_ms"],
                    "step_ms_cpt": cpt_summary(t)["step_ms"]["cpt"]})
    return out


def markdown(cfg: HardwareConfig, rows: list[dict], tot: list[dict], rtl: list[dict], size: list[dict],
             cpt: dict, rtl_note: str = "") -> str:
    L = [f"# RTL benchmark: ResNet-74 GEMMs on the `{cfg.name}` Verilog twin",
         "",
         "Reproduce: `.venv/bin/python bench/bench_rtl.py` (method in its docstring and docs/rtl.md).",
         f"Config: {cfg.rows} x {cfg.cols} PEs, D = {cfg.dot_width}, {cfg.axi_data_width}-bit AXI, "
         f"{cfg.clock_mhz:g} MHz: peak {cfg.peak_binary_tops:.2f} binary TOPS.  Cycles from cpt_hw.hw.cycle_model "
         "(validated against the RTL below); utilisation = useful binary ops / (peak x cycles).  Each GEMM "
         "runs as the driver's calls (cpt_driver.plan): K split into chunks, each call prefetching the next "
         "call's B; \"no prefetch\" is the same driver with prefetch=False (k_max chunks, no hints).",
         "",
         "## One training step (batch 128), per forward precision",
         "",
         f"At forward precision q the step runs its GEMMs as CPT does: forward (q, q), input gradient ({GRAD_BITS}, q) "
         f"({GRAD_BITS}-bit errors x q-bit weights), weight gradient (q, {GRAD_BITS}) (q-bit activations x "
         f"{GRAD_BITS}-bit errors).  q = 8 is static 8/8.",
         "",
         "| fw/bw | step time | fwd | dgrad | wgrad | (no prefetch) | PE utilisation | compute-bound GEMMs | "
         "worst of those | (no prefetch) |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def pct(x: float | None) -> str:
        return f"{100 * x:.1f} %" if x is not None else "-"

    for t in tot:
        c = t["step_ms_by_class"]
        L.append(f"| {t['fw']}/{t['bw']} | {t['step_ms']:.1f} ms | {c['fwd']:.1f} ms | {c['dgrad']:.1f} ms | "
                 f"{c['wgrad']:.1f} ms | {t['step_ms_no_prefetch']:.1f} ms | "
                 f"{100 * t['utilisation']:.1f} % | {t['compute_bound_gemms']} | {pct(t['compute_bound_min_util'])} | "
                 f"{pct(t['compute_bound_min_util_no_prefetch'])} |")
    weights = ", ".join(f"{q}: {100 * w:.1f} %" for q, w in cpt["weights"].items())
    L += ["", "## CPT 3-8/8 and static 8/8: 64,000 iterations on the accelerator", "",
          f"CPT's step time is the average over q with the schedule's weights ({cpt['iters']:,} iterations, "
          f"{cpt['cycles']} cycles: {weights}).  Accelerator only: the host's work (lowering, packing, "
          "corrections, BN/ReLU/SGD) is not in these hours (docs/results/board_step-resnet74.md adds it).", "",
          "| | static 8/8 | CPT 3-8/8 | CPT / static |", "|---|---:|---:|---:|",
          f"| step time | {cpt['step_ms']['static']:.1f} ms | {cpt['step_ms']['cpt']:.1f} ms | "
          f"{cpt['cpt_static_ratio']:.3f} |",
          f"| step time, no prefetch | {cpt['step_ms_no_prefetch']['static']:.1f} ms | "
          f"{cpt['step_ms_no_prefetch']['cpt']:.1f} ms | "
          f"{cpt['step_ms_no_prefetch']['cpt'] / cpt['step_ms_no_prefetch']['static']:.3f} |",
          f"| 64,000 iterations (accelerator only) | {cpt['hours_64k']['static']:.1f} h | "
          f"{cpt['hours_64k']['cpt']:.1f} h | {cpt['cpt_static_ratio']:.3f} |",
          "| the paper's ZC706 (whole training) | 44.6 h | 35.04 h | 0.786 |",
          "", "The input gradients are transposed convolutions (M = B H' W', K = C_out k^2) and the weight "
          "gradients X_col^T . dY (bench/resnet74_gemms.py), as the training path's integer layers run them "
          "(cpt_hw/nn/integer.py); docs/results/board_step-resnet74.md measures a real iteration's device calls.",
          "", "## Every GEMM", "",
          "bound: which of array steps, read beats, write beats dominates (the roofline of the dataflow, summed "
          "over the calls).  `x n`: how often a step runs the GEMM.  calls: device calls (K chunks x tiles).  "
          "DDR: the same with 40/30-cycle read/write latency.  Forward precisions 3 and 8 shown "
          "(rtl_bench.json has 3..8).", "",
          "| layer | GEMM | M x N x K | x n | (a, b) | calls | cycles | util | util (DDR) | util (no prefetch) | bound |",
          "|---|---|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in (r for r in rows if r["fw"] in (3, 8)):
        L.append(f"| {r['layer']} | {r['kind']} | {r['m']} x {r['n']} x {r['k']} | {r['count']} | "
                 f"({r['a_bits']}, {r['b_bits']}) | {r['calls']} | {r['cycles']} | {100 * r['utilisation']:.1f} % | "
                 f"{100 * r['utilisation_ddr']:.1f} % | {100 * r['utilisation_no_prefetch']:.1f} % | {r['bound']} |")
    if rtl:
        L += ["", "## Cycle model vs RTL (truncated shapes, zc706 RTL on Verilator, bit-exact results)", ""]
        if rtl_note:
            L += [rtl_note, ""]
        for run in rtl:
            if run["config"] != cfg.name or run["simulator"] != "verilator":
                continue
            L.append(f"{run['gemms']} GEMMs, largest |model - RTL| / RTL = {100 * run['max_abs_error']:.2f} %.")
            L += ["", "B: `hit` the previous call prefetched this call's B; `+pf` this call prefetches the next's "
                  "(the chains of the driver's plan).", "",
                  "| M x N x K | (a, b) | B | RTL cycles | model | error |", "|---|---|---|---:|---:|---:|"]
            for c in run["checks"]:
                b = ("hit" if c.get("b_hit") else "load") + (" +pf" if c.get("prefetch") else "")
                L.append(f"| {c['m']} x {c['n']} x {c['k']} | ({c['a_bits']}, {c['b_bits']}) | {b} | "
                         f"{c['rtl_cycles']} | {c['model_cycles']} | {100 * c['error']:+.2f} % |")
        L += ["", "## Simulator speed", "", "| simulator | config | GEMMs | simulated cycles | wall (s) | cycles/s |",
              "|---|---|---:|---:|---:|---:|"]
        for run in rtl:
            L.append(f"| {run['simulator']} | {run['config']} | {run['gemms']} | {run['simulated_cycles']:.0f} | "
                     f"{run['wall_s']:.1f} | {run['cycles_per_s']:.0f} |")
    if size:
        L += ["", "## Array size vs training-step time (cycle model, same port and buffers)", "",
              "| rows x cols | PEs | peak TOPS | step 3/8 | step 8/8 (static) | step CPT 3-8/8 |",
              "|---|---:|---:|---:|---:|---:|"]
        for s in size:
            L.append(f"| {s['rows']} x {s['cols']} | {s['pes']} | {s['peak_binary_tops']:.2f} | {s['step_ms_fw3']:.0f} ms | "
                     f"{s['step_ms_static']:.0f} ms | {s['step_ms_cpt']:.0f} ms |")
    return "\n".join(L) + "\n"


def plot(cfg: HardwareConfig, rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({(r["layer"], r["kind"]) for r in rows}, key=lambda x: (x[1], x[0]))
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.27
    for i, fw in enumerate((3, 5, 8)):
        vals = []
        for lab in labels:
            sel = [r for r in rows if (r["layer"], r["kind"]) == lab and r["fw"] == fw]
            cyc = sum(r["cycles"] * r["count"] for r in sel)
            useful = sum(r["m"] * r["n"] * r["k"] * r["a_bits"] * r["b_bits"] * r["count"] for r in sel)
            vals.append(100 * useful / (cfg.peak_binary_ops_per_cycle * cyc))
        ax.bar([j + (i - 1) * width for j in range(len(labels))], vals, width, label=f"fw/bw {fw}/{GRAD_BITS}")
    ax.axhline(90, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([f"{k}\n{l}" for l, k in labels], fontsize=7, rotation=60)
    ax.set_ylabel("PE utilisation (%)")
    ax.set_title(f"ResNet-74 training GEMMs on {cfg.name} ({cfg.rows}x{cfg.cols} PEs, D={cfg.dot_width})")
    ax.legend()
    save_figure(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="zc706")
    ap.add_argument("--skip-rtl", action="store_true", help="cycle model only: no simulation")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    args = ap.parse_args(argv)
    cfg = HardwareConfig.from_preset(args.preset)
    rows = model_table(cfg)
    tot = totals(cfg, rows)
    size = sizing(cfg)
    rtl: list[dict] = []
    rtl_note = ""
    out = Path(args.out)
    if args.skip_rtl and (out / "rtl_bench.json").is_file():
        # keep the last full run's RTL measurements instead of dropping them from the report
        rtl = json.loads((out / "rtl_bench.json").read_text()).get("rtl", [])
        pairs = sorted({(c["a_bits"], c["b_bits"]) for run in rtl for c in run["checks"]})
        rtl_note = ("Carried over from the last full run (`bench/bench_rtl.py` without --skip-rtl; this report's "
                    f"other sections come from `--skip-rtl`); its (a, b) pairs: {', '.join(map(str, pairs))}.")
    if not args.skip_rtl:
        rtl.append(run_rtl(cfg, "verilator", truncated_shapes(cfg), truncated_chains(cfg)))
        small = HardwareConfig.from_preset("sim")
        speed_shapes = [[3 * small.rows + 1, small.b_block_cols + 1, small.k_max - i, a, b]
                        for i, (a, b) in enumerate(PAIRS * 3)]
        for sim in ("icarus", "verilator"):
            rtl.append(run_rtl(small, sim, speed_shapes))
        # Icarus on the zc706 array: one small call is enough to measure it
        rtl.append(run_rtl(cfg, "icarus", [[20, 20, 64, 1, 1]]))
    cpt = cpt_summary(tot)
    text = markdown(cfg, rows, tot, rtl, size, cpt, rtl_note)
    write_atomic(out / "rtl_bench.json", json.dumps({"config": cfg.fields_dict(), "totals": tot, "cpt": cpt,
                                                     "gemms": rows, "rtl": rtl, "sizing": size}, indent=2) + "\n")
    write_atomic(out / "rtl_bench.md", text)
    plot(cfg, rows, out / "rtl_bench_utilisation.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
