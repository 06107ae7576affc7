"""C simulation of the HLS kernel with g++ and the ap_types headers hls4ml ships (no Xilinx tools).

:func:`build` renders the ``hls`` target into ``build/<cfg>/hls/`` and compiles kernel + testbench into
``build/<cfg>/csim/cpt_gemm_tb`` (cached: rebuilt only when a source, the compiler or its flags change).
:func:`run` executes a :class:`~cpt_hw.gen.hls_vectors.Workload` on it and :func:`compare` checks every call
against ``cpt_hw.hw.golden`` and ``cpt_hw.hw.calls`` bit for bit: status, id, the predicted ``cycles``
(:mod:`cpt_hw.hw.hls_cycles`), each result area, and every other byte of the simulated DDR (unchanged).
:func:`sweep` is what ``make csim`` / ``cpt-hw csim`` runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpt_driver import layout

from ..errors import CptHwError, ToolMissingError
from ..fileio import write_atomic
from ..gen.generator import generate
from ..gen.hls_conv_vectors import random_conv_workload, refused_conv_workload
from ..gen.hls_vectors import Results, Workload, decode_results
from ..hw.calls import REFUSED_CALLS, PrefetchState, prefetch_bytes, refused_call
from ..hw.config import HardwareConfig
from ..hw.conv_calls import ConvArgs
from ..hw.hls_cycles import busy_counts, conv_cycles
from ..paths import build_dir, source_root

CXXFLAGS = ("-O2", "-std=c++14", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-label")
BINARY = "cpt_gemm_tb"


def ap_types_dir() -> Path:
    """hls4ml's copy of Xilinx's open-source ap_types (ap_int.h, hls_stream.h), found without importing it."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise ToolMissingError("hls4ml is not installed: C simulation needs its ap_types headers (make setup)")
    path = Path(list(spec.submodule_search_locations)[0]) / "templates" / "vivado" / "ap_types"
    if not (path / "ap_int.h").is_file():
        raise ToolMissingError(f"hls4ml has no ap_types headers at {path}")
    return path


def compiler() -> str:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise ToolMissingError(f"C++ compiler {cxx!r} not found on PATH (set CXX or install g++)")
    return cxx


def _cache_key(cxx: str, flags: list[str], sources: list[Path]) -> str:
    h = hashlib.sha256()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    h.update(version.encode())
    h.update("\0".join(flags).encode())
    for path in sources:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:32]


#: AddressSanitizer build: any access outside the simulated DDR (or any other heap object) aborts.
ASAN_FLAGS = ("-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer")


def build(cfg: HardwareConfig, out_dir: str | Path | None = None, *, sanitize: bool = False) -> Path:
    """Generate the HLS sources of ``cfg`` and compile the C-simulation binary; returns its path.

    ``sanitize``: a separate AddressSanitizer binary (``cpt_gemm_tb_asan``).
    """
    out = Path(out_dir) if out_dir else build_dir(cfg.name)
    generate(cfg, out, ["hls"])
    gen, kernel, ap = out / "hls", source_root() / "hls", ap_types_dir()
    cxx = compiler()
    base = [f for f in CXXFLAGS if f != "-O2"] + list(ASAN_FLAGS) if sanitize else list(CXXFLAGS)
    flags = [*base, f"-I{gen}", f"-I{kernel}", "-isystem", str(ap)]
    units = [gen / "tb_cpt_gemm.cpp", gen / "cpt_gemm.cpp"]
    sources = sorted([*gen.glob("*.h"), *units, *kernel.glob("*.h"), *ap.rglob("*.h")])
    key = _cache_key(cxx, flags, sources)
    binary = out / "csim" / (BINARY + ("_asan" if sanitize else ""))
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.with_name(".lock"), "w") as lock:  # parallel test workers compile once
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _compile(cxx, flags, units, binary, key)


def _compile(cxx: str, flags: list[str], units: list[Path], binary: Path, key: str) -> Path:
    stamp = binary.with_suffix(".key")
    if binary.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        return binary
    tmp = binary.with_name(f".{binary.name}.{os.getpid()}.tmp")  # nobody ever runs half a binary
    proc = subprocess.run([cxx, *flags, *map(str, units), "-o", str(tmp)], capture_output=True, text=True)
    if proc.returncode != 0:
        log = binary.with_name("compile.log")
        write_atomic(log, proc.stdout + proc.stderr)
        first = next((line for line in proc.stderr.splitlines() if "error" in line), proc.stderr.strip()[:200])
        raise CptHwError(f"C simulation build failed (log: {log}): {first}")
    os.replace(tmp, binary)
    write_atomic(stamp, key + "\n")
    return binary


def run(cfg: HardwareConfig, workload: Workload, binary: Path | None = None, timeout: float = 600) -> Results:
    """Run every call of ``workload`` through the compiled kernel; returns what the testbench wrote."""
    binary = binary or build(cfg)
    with tempfile.TemporaryDirectory(prefix="cpt-csim-") as tmp:
        vec, res = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        vec.write_bytes(workload.vectors())
        proc = subprocess.run([str(binary), str(vec), str(res)], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise CptHwError(f"C simulation of {binary} failed (exit {proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip()[:300]}")
        return decode_results(res.read_bytes())


def _owner(workload: Workload, byte: int) -> str:
    """Which call's result element (or which non-result byte) a DDR byte address belongs to."""
    cols = workload.cfg.cols
    for i, e in enumerate(workload.expected):
        c = e.call
        if e.status:  # a refused call owns no result area: it must not write at all
            continue
        if e.conv:
            g = ConvArgs.decode(c)
            size, stride = g.result_bytes_per(), layout.result_stride(g.n_cols, cols)
            if c.c <= byte < c.c + g.m * stride * size:
                row, col = divmod((byte - c.c) // size, stride)
                return f"call {i} ({e.note}) C[{row}, {col}]"
            continue
        stride = layout.result_stride(c.n, cols)
        if c.c <= byte < c.c + c.m * stride * 4:
            row, col = divmod((byte - c.c) // 4, stride)
            return f"call {i} ({e.note}) C[{row}, {col}]"
    return f"byte 0x{byte:x}, outside every result area"


def compare(workload: Workload, results: Results, max_report: int = 8) -> list[str]:
    """Every difference between what the kernel did and what it must do, as readable lines."""
    cfg = workload.cfg
    problems: list[str] = []
    if len(results.status) != len(workload.expected):
        return [f"testbench ran {len(results.status)} calls, expected {len(workload.expected)}"]
    prefetch = PrefetchState()
    for i, e in enumerate(workload.expected):
        got = (results.status[i], results.ids[i], results.cycles[i])
        c = e.call
        if getattr(c, "conv", 0) & 3:  # a conv call (it consumes a GEMM call's B prefetch hint)
            prefetch.reset()
            want = (e.status, cfg.id_word, conv_cycles(cfg, ConvArgs.decode(c)) if e.status == 0 else 0)
            if got != want:
                problems.append(f"call {i} ({e.note}): status/id/cycles = 0x{got[0]:x}/0x{got[1]:08x}/{got[2]}, "
                                f"expected 0x{want[0]:x}/0x{want[1]:08x}/{want[2]}")
            continue
        hit = prefetch.step(c, e.status)
        pf_words = prefetch_bytes(cfg, c.next_n, c.next_k, c.next_b_bits) // cfg.word_bytes if c.prefetch else 0
        cycles = busy_counts(cfg, c.m, c.n, c.k, c.a_bits, c.b_bits, b_prefetched=hit,
                             prefetch_words=pf_words).cycles if e.status == 0 else 0
        want = (e.status, cfg.id_word, cycles)
        if got != want:
            problems.append(f"call {i} ({e.note}): status/id/cycles = 0x{got[0]:x}/0x{got[1]:08x}/{got[2]}, "
                            f"expected 0x{want[0]:x}/0x{want[1]:08x}/{want[2]}")
    want_img = workload.expected_image()
    if results.image.size != want_img.size:
        return problems + [f"DDR image has {results.image.size} bytes, expected {want_img.size}"]
    diff = np.flatnonzero(results.image != want_img)
    words = sorted({int(d) // 4 * 4 for d in diff})
    for addr in words[:max_report]:
        got_w = int(results.image[addr:addr + 4].view("<i4")[0])
        want_w = int(want_img[addr:addr + 4].view("<i4")[0])
        problems.append(f"{_owner(workload, addr)}: got {got_w}, expected {want_w}")
    if len(words) > max_report:
        problems.append(f"... {len(words) - max_report} more differing 32-bit words")
    return problems


# ----------------------------------------------------------------------------- the sweep


def precision_workload(cfg: HardwareConfig, seed: int, max_bits: int = 8, size_scale: float = 1.0) -> Workload:
    """Every precision pair 1..max_bits x 1..max_bits, each signed/unsigned combination, random shapes
    with edge tiles (M, N not multiples of rows/cols, K not a multiple of D)."""
    w = Workload(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    top = min(max_bits, cfg.operand_bits)
    for ab in range(1, top + 1):
        for bb in range(1, top + 1):
            for a_signed in (False, True):
                for b_signed in (False, True):
                    m = int(rng.integers(1, max(2, int((2 * cfg.rows + 2) * size_scale))))
                    n = int(rng.integers(1, max(2, int((2 * cfg.b_block_cols + cfg.cols + 1) * size_scale))))
                    k = int(rng.integers(1, max(2, min(cfg.k_max, int(3 * cfg.dot_width * size_scale)))))
                    w.add_gemm(m, n, k, ab, bb, a_signed, b_signed, window=("tight", "loose")[int(rng.integers(2))])
    return w


def edge_workload(cfg: HardwareConfig, seed: int) -> Workload:
    """Tile and block boundaries, full K, dirty K padding, exact-fit windows."""
    w = Workload(cfg, seed=seed)
    r, c, d, bb, p = cfg.rows, cfg.cols, cfg.dot_width, cfg.b_block_cols, min(cfg.operand_bits, 8)
    shapes = [(1, 1, 1), (r, c, d), (r + 1, c + 1, d + 1), (max(1, r - 1), max(1, c - 1), max(1, d - 1)),
              (2 * r + 1, bb + 1, 2 * d + 1), (r, 2 * bb + c - 1, d // 2 + 1), (1, bb, cfg.k_max),
              (r + 1, 1, cfg.k_max - 1)]
    for i, (m, n, k) in enumerate(shapes):
        w.add_gemm(m, n, k, p, p, bool(i & 1), bool(i & 2), window="tight", note=f"edge {m}x{n}x{k}")
        w.add_gemm(m, n, k, 1 + i % p, 1 + (3 * i) % p, bool(i & 2), bool(i & 1), dirty_padding=True,
                   note=f"edge {m}x{n}x{k} dirty padding")
    return w


def refused_workload(cfg: HardwareConfig, seed: int) -> Workload:
    """Every case of cpt_hw.hw.calls.REFUSED_CALLS (each status bit alone and together), each on a fresh
    base call, then a legal call; each refused call must leave all memory unchanged."""
    w = Workload(cfg, seed=seed)
    for case in REFUSED_CALLS:
        w.add_refused_case(case)
    w.add_gemm(3, 5, 2 * cfg.dot_width, 3, 2, True, True, window="tight", note="legal call after refusals")
    return w


def prefetch_workload(cfg: HardwareConfig, seed: int) -> Workload:
    """B prefetch sequences as the driver issues them (K-split chains, each call prefetching the next
    one's B): hits, a chain with one mismatched hint (a miss), several B blocks, and a refused call
    between a prefetch and its target (which consumes the prefetch)."""
    w = Workload(cfg, seed=seed)
    r, d, bb = cfg.rows, cfg.dot_width, cfg.b_block_cols
    kmax = cfg.k_max
    w.add_prefetch_chain([(2 * r + 1, bb, kmax, 3, 8), (2 * r + 1, bb, kmax, 3, 8), (2 * r + 1, bb, kmax // 2 + 1, 3, 8)],
                         note="hits")
    w.add_prefetch_chain([(r + 2, bb - 1, 2 * d + 3, 8, 8), (r + 2, bb - 1, 2 * d + 3, 8, 8)], spoil=0, note="miss")
    w.add_prefetch_chain([(r, 2 * bb + 3, d + 1, 2, 5), (r - 1, 2 * bb + 3, 3 * d, 4, 3), (1, 1, 1, 1, 1)],
                         note="blocks")
    w.add_prefetch_chain([(r + 1, 3, d, 5, 5), (r + 1, 3, d, 5, 5)], note="refused between")
    target = w.expected.pop()                    # run it after a refused call: a miss
    w.add_refused_case(refused_call("M = 0"), note="refused between prefetch and target")
    w.expected.append(target)
    return w


def conv_suites(cfg: HardwareConfig, seed: int, quick: bool = False) -> list[tuple[str, Workload]]:
    """Interface 4 (conv_engine): random forward, input-gradient and weight-gradient calls
    (cpt_hw.gen.hls_conv_vectors), a mixed suite, and the refused conv calls."""
    n = 8 if quick else 24
    return [("conv fwd", random_conv_workload(cfg, seed, n, ("fwd",))),
            ("conv dgrad", random_conv_workload(cfg, seed + 1, n, ("dgrad",))),
            ("conv wgrad", random_conv_workload(cfg, seed + 2, n, ("wgrad",))),
            ("conv mixed", _with_gemm(cfg, random_conv_workload(cfg, seed + 3, n // 2))),
            ("conv refused", refused_conv_workload(cfg, seed + 4))]


def _with_gemm(cfg: HardwareConfig, w: Workload) -> Workload:
    """Interface-3 GEMM calls between the conv calls of ``w`` (op 0 runs the GEMM path unchanged)."""
    w.add_gemm(cfg.rows + 1, cfg.cols + 1, cfg.dot_width + 1, 3, 4, True, False, note="gemm among conv calls")
    return w


@dataclass
class SweepResult:
    name: str
    calls: int
    refused: int
    seconds: float
    problems: list[str]


def sweep(cfg: HardwareConfig, *, seed: int = 0, quick: bool = False, progress: bool = False) -> list[SweepResult]:
    """The C-simulation suite of one config: precisions, edges, refusals.  ``quick``: smaller shapes."""
    binary = build(cfg)
    big = cfg.pes > 64  # a software model of a large array is slow: keep its shapes small
    scale = 0.35 if big or quick else 1.0
    suites = [("precisions", precision_workload(cfg, seed, size_scale=scale)),
              ("edges", edge_workload(cfg, seed + 1)), ("refused", refused_workload(cfg, seed + 2)),
              ("prefetch", prefetch_workload(cfg, seed + 3))]
    if cfg.conv_engine:
        suites += conv_suites(cfg, seed + 4, quick=quick or big)
    out = []
    for name, wl in suites:
        if progress:
            print(f"  {cfg.name}: {name} ({len(wl.expected)} calls) ...", flush=True)
        t0 = time.perf_counter()
        res = run(cfg, wl, binary)
        problems = compare(wl, res)
        refused = sum(1 for e in wl.expected if e.status)
        out.append(SweepResult(name, len(wl.expected), refused, time.perf_counter() - t0, problems))
    return out
