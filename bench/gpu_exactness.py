"""The fast path's fused quantizers against cpt_hw.hw.golden, element by element, on a CUDA device.

    python bench/gpu_exactness.py --out docs/results [--step-models resnet74]

For every precision 1..8 and several inputs (normal, ReLU-like with a zero floor, values on a half-step
grid that put (x - min)/s next to rounding ties, tiny gradient-like errors), each implementation's outputs are
compared with golden (numpy float32 on the CPU, from the same input copied back):

* ``compiled``: the kernels the fast path runs (``cpt_hw.fast.quant.*_fused`` on CUDA tensors: torch.compile
  under ``exact_inductor_options``);
* ``eager_cuda``: the same functions uncompiled on CUDA;
* ``nn_eager_cuda``: the generic torch backend's quantizer (``cpt_hw.nn.quant``) on CUDA;
* ``default_compile``: torch.compile with inductor's default options (what the fast path ran before these
  options): reported for comparison, not required to be exact.

Quantities: weights (per output channel: codes, scale, zero point, dequantized), activations (batch range:
dequantized and the running range; a given range: dequantized), errors (stochastic rounding with the
fast path's noise seed words, hashed on the device by each implementation's ``noise_words``: dequantized;
with a per-channel factor as in the hardware numerics; and the hardware numerics' pair, e and e x factor
with two streams from one ``fq_error_pair`` call).
Golden defines no running range: that is compared with the same formula evaluated eagerly on the CPU.
Also times each fused quantizer, exact against default options, and with ``--step-models`` the CPT 3-8/8
training step (whole-iteration CUDA graph, channels_last) with each set of kernels beside FP32.
Writes gpu_exactness.json and gpu_exactness.md into --out; exits 1 if a ``compiled`` comparison mismatches.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_gpu_step

from cpt_hw.fast import quant as fq  # noqa: E402
from cpt_hw.fileio import write_atomic  # noqa: E402
from cpt_hw.hw import golden as g  # noqa: E402
from cpt_hw.nn import quant as nq  # noqa: E402

FUNCS = ("fq_tensor_train", "fq_tensor_range", "fq_channel", "fq_error", "fq_error_pair", "noise_words")
#: one layer's two error streams (plain, scaled) at iteration 17
KEYS, STEP = (fq.stream_key(5, 2, 0), fq.stream_key(5, 2, 1)), 17
DEVICE = "cuda"  # --device cpu: a dry run of the comparison itself (CPT_HW_NO_COMPILE=1 keeps it quick)


def inputs(bits: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Activation/error-shaped (128, 64, 16, 16) and weight-shaped (64, 64, 3, 3) float32 tensors."""
    act = (128, 64, 16, 16)
    levels = 2**bits - 1
    half_step = np.float32(3.7) / np.float32(2 * levels)  # x = k * half step: (x - min)/s sits at ties
    k = torch.randint(0, 2 * levels + 1, act, generator=gen).to(torch.float32)
    return {
        "normal": torch.randn(act, generator=gen) * 3,
        "relu": torch.relu(torch.randn(act, generator=gen)),
        "ties": k * float(half_step),
        "error": torch.randn(act, generator=gen) * 1e-4,
        "weight": torch.randn((64, 64, 3, 3), generator=gen) * 0.05,
        "weight_ties": torch.randint(0, 2 * levels + 1, (64, 64, 3, 3), generator=gen).to(torch.float32)
        * float(half_step),
    }


def golden_outputs(x: np.ndarray, bits: int, kind: str, ratio: np.ndarray | None) -> dict[str, np.ndarray]:
    """What golden says each quantity is."""
    if kind == "channel":
        flat = x.reshape(x.shape[0], -1)
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        lo, hi = flat.min(1).reshape(shape), flat.max(1).reshape(shape)
        q = g.quantize(x, bits, lo, hi)
        scale, _ = g.quant_params(lo, hi, bits)
        return {"codes": q, "scale": scale, "zero_point": lo, "dequantized": g.dequantize(q, lo, hi, bits)}
    if kind == "error":
        return {"dequantized": _golden_error(x if ratio is None else x * ratio, bits, KEYS[0])}
    if kind == "error_pair":  # the hardware numerics' e_hat and e_tilde, from one call
        return {"dequantized": _golden_error(x, bits, KEYS[0]), "dequantized_scaled": _golden_error(x * ratio, bits,
                                                                                                    KEYS[1])}
    lo, hi = x.min(), x.max()
    return {"dequantized": g.dequantize(g.quantize(x, bits, lo, hi), lo, hi, bits)}


def _golden_error(x: np.ndarray, bits: int, key: int) -> np.ndarray:
    """Stochastic quantization of ``x`` (float32 products with the channel factor already taken: one
    rounding each, as on the GPU) with the noise seed of stream ``key`` at iteration STEP."""
    lo, hi = x.min(), x.max()
    seed = int(g.counter_hash(key, np.int64(STEP)))
    return g.dequantize(g.quantize(x, bits, lo, hi, stochastic=True, seed=seed), lo, hi, bits)


def run_impl(impl: str, fns: dict, x: torch.Tensor, bits: int, kind: str, ratio: torch.Tensor | None) -> dict:
    """One implementation's outputs on CUDA tensor ``x`` (numpy arrays)."""
    dev = x.device
    levels = torch.full((), float(2**bits - 1), device=dev)
    if impl == "nn_eager_cuda":
        return _run_nn(x, bits, kind, ratio)
    if kind == "channel":
        w_hat, q, scale, zp = fns["fq_channel"](x, levels)
        return {"codes": q, "scale": scale, "zero_point": zp, "dequantized": w_hat}
    # the seed words by the implementation's own noise_words (compiled: a kernel of its own)
    words = fns["noise_words"](torch.tensor(KEYS, device=dev), torch.tensor(STEP, device=dev))
    if kind == "error":
        return {"dequantized": fns["fq_error"](x, levels, words[0], *(() if ratio is None else (ratio,)))}
    if kind == "error_pair":
        e_hat, e_tilde = fns["fq_error_pair"](x, levels, words, ratio)
        return {"dequantized": e_hat, "dequantized_scaled": e_tilde}
    run_min, run_max = torch.full((), -0.25, device=dev), torch.full((), 0.75, device=dev)
    x_hat = fns["fq_tensor_train"](x, levels, run_min, run_max, 0.9)
    in_range = fns["fq_tensor_range"](x, x.amin(), x.amax(), levels)
    return {"dequantized": x_hat, "dequantized_given_range": in_range, "running_min": run_min, "running_max": run_max}


def _run_nn(x: torch.Tensor, bits: int, kind: str, ratio: torch.Tensor | None) -> dict:
    if kind == "channel":
        qp = nq.quant_params(*nq.channel_range(x), bits)
        q = nq.quantize_codes(x, bits, qp)
        return {"codes": q, "scale": qp.scale, "zero_point": qp.zero_point, "dequantized": nq.dequantize(q, qp)}
    if kind == "error":
        return {"dequantized": _nn_error(x if ratio is None else x * ratio, bits, KEYS[0])}
    if kind == "error_pair":
        return {"dequantized": _nn_error(x, bits, KEYS[0]), "dequantized_scaled": _nn_error(x * ratio, bits, KEYS[1])}
    qp = nq.quant_params(*nq.tensor_range(x), bits)
    x_hat = nq.dequantize(nq.quantize_codes(x, bits, qp), qp)
    return {"dequantized": x_hat, "dequantized_given_range": x_hat}


def _nn_error(e: torch.Tensor, bits: int, key: int) -> torch.Tensor:
    q, qp = nq.quantize_error(e, bits, int(g.counter_hash(key, np.int64(STEP))))
    return nq.dequantize(q, qp)


def expected(x: torch.Tensor, bits: int, kind: str, ratio: torch.Tensor | None) -> dict[str, np.ndarray]:
    xn = x.cpu().numpy()
    out = golden_outputs(xn, bits, kind, None if ratio is None else ratio.cpu().numpy())
    if kind == "tensor":
        out["dequantized_given_range"] = out["dequantized"]
        # golden defines no running range: the layers' formula, eagerly on the CPU in float32
        lo, hi = torch.from_numpy(xn).amin(), torch.from_numpy(xn).amax()
        out["running_min"] = (torch.tensor(-0.25) * 0.9 + lo * (1.0 - 0.9)).numpy()
        out["running_max"] = (torch.tensor(0.75) * 0.9 + hi * (1.0 - 0.9)).numpy()
    return out


def compare(got: dict, want: dict[str, np.ndarray], scale: np.ndarray | None) -> dict[str, dict]:
    """Per output: elements, mismatches (bitwise), and the largest difference in quantization steps."""
    res = {}
    for name, w in want.items():
        if name not in got:
            continue
        a = got[name].detach().cpu().numpy().astype(np.float32).reshape(np.shape(w))
        w = np.asarray(w, dtype=np.float32)
        bad = a.view(np.uint32) != w.view(np.uint32)
        steps = 0.0
        if bad.any():
            diff = np.abs(a.astype(np.float64) - w)
            if name in ("dequantized", "dequantized_given_range") and scale is not None:
                diff = diff / np.broadcast_to(scale, diff.shape)
            steps = float(diff[bad].max())
        res[name] = {"elements": int(w.size), "mismatches": int(bad.sum()), "max_diff": round(steps, 6)}
    return res


def cases(bits: int, gen: torch.Generator) -> list[tuple[str, str, torch.Tensor, torch.Tensor | None]]:
    """(name, kind, cuda tensor, per-channel factor) to quantize at ``bits``."""
    x = {k: v.to(DEVICE) for k, v in inputs(bits, gen).items()}
    ratio = (torch.rand((1, 64, 1, 1), generator=gen) * 0.99 + 0.01).to(DEVICE)  # s_w / max s_w in (0, 1]
    return [("activation normal", "tensor", x["normal"], None), ("activation relu", "tensor", x["relu"], None),
            ("activation ties", "tensor", x["ties"], None), ("weight", "channel", x["weight"], None),
            ("weight ties", "channel", x["weight_ties"], None), ("error", "error", x["error"], None),
            ("error ties", "error", x["ties"], None), ("error x channel factor", "error", x["error"], ratio),
            ("error pair (hardware numerics)", "error_pair", x["error"], ratio)]


def default_compile(fn):
    """torch.compile of ``fn`` with inductor's default options, on a copy of its code object (dynamo keeps
    its compiled entries on the code object: a copy keeps them apart from the exact kernels')."""
    clone = types.FunctionType(fn.__code__.replace(co_name=fn.__name__ + "_default"), fn.__globals__,
                               fn.__name__ + "_default", fn.__defaults__, fn.__closure__)
    return torch.compile(clone, fullgraph=True, dynamic=False)


def check_all(impls: dict[str, dict], bits_list: list[int]) -> list[dict]:
    """One row per (implementation, precision, input, output): elements compared and mismatches."""
    rows = []
    for bits in bits_list:
        gen = torch.Generator().manual_seed(1000 + bits)
        for name, kind, x, ratio in cases(bits, gen):
            want = expected(x, bits, kind, ratio)
            lvl = np.float32(2**bits - 1)
            xs = (x if ratio is None else x * ratio).cpu().numpy()
            if kind == "channel":
                scale = want["scale"]
            elif kind == "error_pair":
                scale = None  # two tensors, two scales: mismatch counts only
            else:
                scale = np.maximum((xs.max() - xs.min()) / lvl, g.SCALE_FLOOR)
            for impl, fns in impls.items():
                got = run_impl(impl, fns, x, bits, kind, ratio)
                for out, r in compare(got, want, scale).items():
                    rows.append({"impl": impl, "bits": bits, "input": name, "output": out, **r})
    return rows


def time_kernels(impls: dict[str, dict]) -> list[dict]:
    """Time per call of each fused quantizer on (128, 64, 16, 16) activations/errors and (64, 64, 3, 3)
    weights: 50 calls captured in a CUDA graph (as the training step runs them: no launch overhead),
    replayed 20 times after 3."""
    x = torch.randn(128, 64, 16, 16, device="cuda")
    w = torch.randn(64, 64, 3, 3, device="cuda")
    lv = torch.full((), 63.0, device="cuda")
    rmin, rmax = torch.zeros((), device="cuda"), torch.zeros((), device="cuda")
    words = fq.noise_words(torch.tensor(KEYS, device="cuda"), torch.tensor(STEP, device="cuda"))
    ratio = torch.rand((1, 64, 1, 1), device="cuda") * 0.99 + 0.01
    calls = {"fq_tensor_train": lambda f: f(x, lv, rmin, rmax, 0.9), "fq_channel": lambda f: f(w, lv),
             "fq_error": lambda f: f(x, lv, words[0]), "fq_error_pair": lambda f: f(x, lv, words, ratio)}
    rows = []
    for impl in impls:
        for name, call in calls.items():
            f = impls[impl][name]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    call(f)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(50):
                    call(f)
            for _ in range(3):
                graph.replay()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            for _ in range(20):
                graph.replay()
            end.record()
            torch.cuda.synchronize()
            rows.append({"impl": impl, "function": name,
                         "us_per_call": round(1000 * start.elapsed_time(end) / (20 * 50), 2)})
    return rows


def time_steps(models: list[str], default_fns: dict) -> list[dict]:
    """CPT 3-8/8 step (graph, channels_last) with the exact kernels, then with default-option kernels."""
    import bench_gpu_step as bgs

    from cpt_hw.fast import layers

    rows = []
    for name in models:
        rows.append({**bgs.time_mode("fp32_graph", name, 128, 120, 20, True), "kernels": "-"})
        rows.append({**bgs.time_mode("cpt_fast_graph", name, 128, 120, 20, True), "kernels": "exact"})
    saved = {f: getattr(layers, f + "_fused") for f in FUNCS}
    try:
        for f in FUNCS:
            setattr(layers, f + "_fused", default_fns[f])
        for name in models:
            rows.append({**bgs.time_mode("cpt_fast_graph", name, 128, 120, 20, True), "kernels": "default"})
    finally:
        for f, fn in saved.items():
            setattr(layers, f + "_fused", fn)
    return rows


def summarize(rows: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in rows:
        s = out.setdefault(r["impl"], {"elements": 0, "mismatches": 0, "max_diff": 0.0})
        s["elements"] += r["elements"]
        s["mismatches"] += r["mismatches"]
        s["max_diff"] = max(s["max_diff"], r["max_diff"])
    return out


def markdown(meta: dict, rows: list[dict], summary: dict, kernels: list[dict], steps: list[dict]) -> str:
    lines = [f"# Fused quantizers against cpt_hw.hw.golden on {meta['gpu']} (torch {meta['torch']})", "",
             f"`{meta['command']}`", "", f"Inductor options of the fast path: `{meta['exact_options']}` (numerics), "
             f"`{meta['fast_options']}` (kernel grouping)", "",
             "| implementation | elements compared | mismatches | largest difference |", "|---|---|---|---|"]
    for impl, s in summary.items():
        lines.append(f"| {impl} | {s['elements']:,} | {s['mismatches']:,} | {s['max_diff']:g} |")
    lines += ["", "Largest difference: in quantization steps for dequantized values, in codes for codes, "
              "absolute for scale, zero point and running range.", "",
              "Mismatches by output (all precisions 1..8 and inputs together):", "",
              "| implementation | input | output | elements | mismatches |", "|---|---|---|---|---|"]
    agg: dict[tuple, list[int]] = {}
    for r in rows:
        a = agg.setdefault((r["impl"], r["input"], r["output"]), [0, 0])
        a[0] += r["elements"]
        a[1] += r["mismatches"]
    for (impl, inp, out), (n, bad) in agg.items():
        if bad or impl == "compiled":
            lines.append(f"| {impl} | {inp} | {out} | {n:,} | {bad:,} |")
    if kernels:
        lines += ["", "Kernel time (microseconds per call, (128, 64, 16, 16) activations/errors, (64, 64, 3, 3) "
                  "weights, 6 bits):", "", "| function | exact options | default options |", "|---|---|---|"]
        by = {(k["impl"], k["function"]): k["us_per_call"] for k in kernels}
        for f in dict.fromkeys(k["function"] for k in kernels):
            lines.append(f"| {f} | {by[('compiled', f)]} | {by[('default_compile', f)]} |")
    if steps:
        lines += ["", "Training step (batch 128, whole-iteration CUDA graph, channels_last, CPT over a 3-8 bit "
                  "cycle):", "", "| model | mode | kernels | ms / iteration |", "|---|---|---|---|"]
        for s in steps:
            lines.append(f"| {s['model']} | {s['mode']} | {s['kernels']} | {s['ms_per_iter']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/results")
    p.add_argument("--bits", type=int, nargs="+", default=list(range(1, 9)))
    p.add_argument("--step-models", nargs="*", default=[], help="also time the CPT step of these models")
    p.add_argument("--device", default="cuda", help="cpu: dry run of this script (no timings)")
    p.add_argument("--no-default", action="store_true", help="skip the default-option comparison and timings")
    args = p.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    if args.device == "cpu":
        args.no_default, args.step_models = True, []
    elif not torch.cuda.is_available():
        print("gpu_exactness: error: no CUDA device", file=sys.stderr)
        return 2
    if any(not 1 <= b <= 16 for b in args.bits):
        p.error(f"--bits {args.bits}: each must be in 1..16")
    impls = {"compiled": {f: getattr(fq, f + "_fused").compiled for f in FUNCS},
             "eager_cuda": {f: getattr(fq, f) for f in FUNCS}, "nn_eager_cuda": {}}
    default = {} if args.no_default else {f: default_compile(getattr(fq, f)) for f in FUNCS}
    if default:
        impls["default_compile"] = default
    rows = check_all(impls, args.bits)
    kernels = [] if args.no_default else time_kernels({k: impls[k] for k in ("compiled", "default_compile")})
    summary = summarize(rows)
    meta = {"gpu": torch.cuda.get_device_name() if DEVICE != "cpu" else "CPU (dry run)", "torch": torch.__version__,
            "python": platform.python_version(), "exact_options": fq.exact_inductor_options(),
            "fast_options": fq.fast_inductor_options(),
            "command": "python bench/gpu_exactness.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out = Path(args.out)
    steps: list[dict] = []
    for final in (False, True):  # write the comparison before the (long) step timings, then again with them
        if final:
            if not (args.step_models and default):
                break
            steps = time_steps(args.step_models, default)
        write_atomic(out / "gpu_exactness.json", json.dumps({"meta": meta, "summary": summary, "kernels": kernels,
                                                              "steps": steps, "results": rows}, indent=2) + "\n")
        text = markdown(meta, rows, summary, kernels, steps)
        write_atomic(out / "gpu_exactness.md", text)
        print(text, flush=True)
    return 0 if summary["compiled"]["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
