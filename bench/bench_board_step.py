"""Training on the board, measured: one real iteration through ``accel:emu`` per precision of the CPT schedule.

    .venv/bin/python bench/bench_board_step.py --model resnet74                     # batch 128 (~45 s, 0.9 GB per precision)
    .venv/bin/python bench/bench_board_step.py --model resnet20 --batch-size 8      # a minute
    .venv/bin/python bench/bench_board_step.py --model resnet20 --batch-size 2 --bits 3 8 --json
    .venv/bin/python bench/bench_board_step.py --model resnet74 --conv-engine       # interface 4, emulated

Per precision q (fw = q bits, bw = 8 bits: the CPT 3-8/8 schedule visits q = 3..8; static 8/8 is q = 8) one
training iteration (forward, cross-entropy, backward, SGD) of a CIFAR ResNet on a synthetic batch runs
with every quantized layer on ``accel:emu`` (driver + emulated device: golden results, cycles from
cpt_hw.hw.cycle_model, exact against the RTL).  Measured:

* accelerator cycles per GEMM class (forward, input gradient, weight gradient): every device call is
  charged to the class of the integer-layer region (cpt_hw.nn.profiling) that made it; their sum equals
  the driver's ``total_cycles`` and the sum over its call history (checked);
* AXI bytes per call from the cycle model's beat count (the same call, prefetch hit and hint as the
  device ran it): writes = M x ceil(N / cols) x cols x 4 bytes (C rows), reads = the rest; equal to the
  driver's ``stats()`` bytes and to the sum over its call history (checked);
* host CPU seconds (``time.process_time``, torch and BLAS on one thread: one x86 core) per category,
  charged to the innermost open region: the integer layers' own regions, ``packing`` (the driver's
  bit-plane packing, including the lowered convolution operands it packs from the unlowered codes,
  cpt_driver.sources), ``driver calls`` (the rest of the engine's GEMM calls), ``optimizer`` (zero_grad +
  SGD step) and ``float layers`` (everything else in forward/backward: BN, ReLU, pooling, the float
  classifier, the loss, autograd).  The emulated device's own time (``EmuDevice.execute``) is excluded:
  on the board the FPGA does that work;
* memory: peak RSS of the process (``ru_maxrss``), and the host-side peak = the largest RSS sampled every
  5 ms outside the emulated device's calls minus the device's persistent scratch (its unpacked operands);
  of it, the RSS before the first iteration (Python, torch, numpy, the model, the optimizer) and the
  iteration's own memory above that; the host peak split into anonymous, file-backed and shared-memory
  pages (/proc/self/status: file-backed pages, torch's libraries on x86, are reclaimable) and the largest
  anonymous RSS.  The malloc in use is recorded: glibc's heap fragments under this
  mix of activation-sized and small long-lived allocations (ResNet-74, fw 8: 1438 MB at the peak
  against 784 MB with jemalloc, docs/zc706-pynq.md "Memory"), so the reports are measured with
  ``LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2`` (Debian/Ubuntu package libjemalloc2; on the
  board /usr/lib/arm-linux-gnueabihf/libjemalloc.so.2), which the recorded command shows.

With ``--conv-engine`` the accelerator is the zc706 preset with ``conv_engine = true`` (interface 4, emulated):
the convolutions run as the device's conv calls (cpt_driver.conv_engine: row-plane tensors, no k^2 expansion on
the host), the numerics unchanged bit for bit.  **The cycles and AXI bytes of those calls are the design's
model** (cpt_hw.hw.conv_model.estimate of each call, the emulated device's cycles register through
emu_conv.call_cycles; the driver's byte counts agree with it, checked), not a measurement: the Verilog twin's
cycles on ResNet-74's layers are bench/bench_conv_twin.py's, combined with this report's figures in
bench/twin_iteration.py.  Packing there is the row-plane tensors and the engine's weight layouts
(cpt_driver.rowplanes).  ``--twin-limits`` adds the Verilog twin's refusals (the emulated device refuses the conv
calls the twin refuses, as a board with it would): the driver halves a weight gradient's chunks where the twin's
formers take fewer images than the design's rule; the rows count the refused calls.

The CPT figures average the per-precision ones with the schedule's weights: the share of the 64,000
iterations (32 cycles, cpt_hw.schedules) spent at each q.  Board hours for 64,000 iterations: accelerator
only, and accelerator + host at an A9 factor F (host x86 CPU-seconds x F, not overlapped with the
accelerator); F = 15 / 25 / 40 from ARCHITECTURE.md section 7 (a Cortex-A9 at 800 MHz runs streaming
numpy code ~15-40x slower than one x86 core: an estimate from published memcpy and scalar-loop figures).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import threading
import time
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm import tqdm  # noqa: E402

import cpt_driver.layout as driver_layout  # noqa: E402
import cpt_driver.rowplanes as driver_rowplanes  # noqa: E402
import cpt_driver.sources as driver_sources  # noqa: E402
from cpt_hw import nn as cnn  # noqa: E402
from cpt_hw.fileio import save_figure, write_atomic  # noqa: E402
from cpt_hw.hw import emu_conv  # noqa: E402
from cpt_hw.hw.conv_calls import ConvArgs, hint_key, hint_left  # noqa: E402
from cpt_hw.hw.conv_model import ConvDesign, estimate  # noqa: E402
from cpt_hw.hw.cycle_model import Prefetch, gemm_cycles  # noqa: E402
from cpt_hw.hw.emu_device import EmuDevice  # noqa: E402
from cpt_hw.models import build_model  # noqa: E402
from cpt_hw.models.resnet import DEPTHS  # noqa: E402
from cpt_hw.nn.profiling import GEMM_CLASSES, set_region_hook  # noqa: E402
from cpt_hw.nn.recompute import recompute_batchnorm_inputs, stage_selector  # noqa: E402
from cpt_hw.nn.saved import keep_batchnorm_inputs_half  # noqa: E402
from cpt_hw.train.config import BN_SAVED  # noqa: E402
from cpt_hw.schedules import DEFAULT_CYCLES, PrecisionSchedule  # noqa: E402
from cpt_hw.train.sgd import SGD  # noqa: E402

ITERS = 64_000
CPT_BITS, GRAD_BITS = (3, 8), 8
A9_FACTORS = (15, 25, 40)
#: The paper's ZC706 training hours, ResNet-74 on CIFAR-10 (64k iterations): the reference for every model.
PAPER_HOURS = {"static": 44.6, "cpt": 35.04}
#: Host categories in report order; the integer layers' regions map to themselves.
CATEGORIES = ("lowering", "packing", "corrections", "rounding", "float layers", "optimizer", "driver calls")
DEVICE = "emulated device"
PROBE = "benchmark probe"      # this script's own accounting: not host work of the training path
_RSS_PERIOD_S = 0.005


class UsageError(ValueError):
    """A command-line value breaks a rule (one line, exit 2)."""


# ------------------------------------------------------------------------------------------ host time
class HostClock:
    """Process CPU time charged to the innermost open region (exclusive times)."""

    def __init__(self, default: str = "float layers") -> None:
        self.stack = [default]
        self.totals: dict[str, float] = defaultdict(float)
        self._last = time.process_time()

    def _charge(self) -> None:
        now = time.process_time()
        self.totals[self.stack[-1]] += now - self._last
        self._last = now

    @contextlib.contextmanager
    def region(self, name: str) -> Iterator[None]:
        self._charge()
        self.stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self.stack.pop()

    def gemm_class(self) -> str:
        """The GEMM class of the innermost open ``gemm.*`` region ("other" outside any)."""
        return next((r[5:] for r in reversed(self.stack) if r.startswith("gemm.")), "other")

    def reset(self) -> None:
        """Start counting afresh (time so far is charged, then dropped)."""
        self._charge()
        self.totals.clear()

    def snapshot(self) -> dict[str, float]:
        """Seconds per region so far, the open region's time included."""
        self._charge()
        return dict(self.totals)


class RssSampler:
    """RSS every 5 ms on a thread; the largest sample taken outside the emulated device's calls, split into
    anonymous, file-backed and shared-memory pages at that moment, and the largest anonymous RSS.

    The split matters on the board: file-backed pages (on x86 mostly torch's shared libraries, mapped from disk)
    can be dropped and re-read under memory pressure, anonymous ones (tensors, the heap) cannot without swap;
    and a 32-bit ARM build of torch maps other libraries.  /proc/self/statm is read every period (resident and
    file+shmem pages: the anonymous RSS by difference), /proc/self/status (RssAnon, RssFile, RssShmem, twice
    the cost) only at a new peak."""

    KINDS = ("anon", "file", "shmem")

    def __init__(self) -> None:
        self.in_device = False
        self.host_peak = 0
        #: {"anon", "file", "shmem"}: bytes of each kind read right after the latest host peak sample.
        self.host_peak_kinds: dict[str, int] = dict.fromkeys(self.KINDS, 0)
        self.host_anon_peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self._statm()[0]

    def _statm(self) -> tuple[int, int]:
        """(resident bytes, anonymous resident bytes): statm's resident minus its file+shmem ("shared") pages."""
        with open("/proc/self/statm") as f:
            fields = f.read().split()
        resident, shared = int(fields[1]) * self._page, int(fields[2]) * self._page
        return resident, resident - shared

    @classmethod
    def kinds(cls) -> dict[str, int]:
        """Resident bytes by kind now, from /proc/self/status (kB there)."""
        out = dict.fromkeys(cls.KINDS, 0)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Rss"):
                    key, value, _unit = line.split()
                    out[key[3:-1].lower()] = int(value) * 1024
        return out

    def _run(self) -> None:
        while not self._stop.wait(_RSS_PERIOD_S):
            rss, anon = self._statm()
            if not self.in_device:
                if rss > self.host_peak:
                    self.host_peak, self.host_peak_kinds = rss, self.kinds()
                self.host_anon_peak = max(self.host_anon_peak, anon)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------------------------------ device side
@lru_cache(maxsize=None)
def _call_estimate(cfg: Any, m: int, n: int, k: int, a_bits: int, b_bits: int, hit: bool,
                   hint: Prefetch | None) -> tuple[int, int]:
    """(cycles, AXI beats) of one call as the emulated device ran it."""
    est = gemm_cycles(cfg, m, n, k, a_bits, b_bits, b_prefetched=hit, prefetch=hint)
    return est.total, est.memory


class DeviceProbe:
    """Wraps ``EmuDevice.execute`` (timed as the device, cycles and AXI bytes per GEMM class) and the
    driver's bit-plane packing (timed as ``packing``), for the duration of a ``with`` block."""

    def __init__(self, clock: HostClock, sampler: RssSampler) -> None:
        self.clock, self.sampler = clock, sampler
        self.cycles: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self.read_bytes = self.write_bytes = 0
        self.conv_calls = 0
        self.scratch_bytes = 0
        #: The X and E chunk (and geometry) the last conv call asked the device to prefetch, from its registers
        #: (docs/registers.md, "Interface 4"): the next conv call with those hits it.
        self._conv_hint: tuple[int, ...] | None = None
        self._saved: list[tuple[Any, str, Any]] = []

    def reset(self) -> None:
        self.cycles.clear()
        self.calls.clear()
        self.read_bytes = self.write_bytes = 0
        self.conv_calls = 0

    def _execute(self, inner: Any) -> Any:
        probe = self

        def execute(dev: EmuDevice) -> tuple[int, int]:
            hits = dev.hits
            probe.sampler.in_device = True
            try:
                with probe.clock.region(DEVICE):
                    status, cycles = inner(dev)
            finally:
                probe.sampler.in_device = False
            with probe.clock.region(PROBE):
                probe._account(dev, status, cycles, dev.hits > hits)
            return status, cycles
        return execute

    def _account(self, dev: EmuDevice, status: int, cycles: int, hit: bool) -> None:
        kind = self.clock.gemm_class()
        self.cycles[kind] += cycles
        self.calls[kind] += 1
        self.scratch_bytes = max(self.scratch_bytes, sum(a.nbytes for a in dev._scratch.values())
                                 + dev._prefetch_buf.nbytes)
        if "conv" in dev.spec.arg_words and dev._arg("conv") & 3:
            self._account_conv(dev, status, cycles)
            return
        self._conv_hint = None  # a GEMM call consumes any conv hint
        if status:
            return  # a refused call moves no data
        cfg, arg = dev.cfg, dev._arg
        m, n, k, ab, bb, flags = (arg(x) for x in ("m", "n", "k", "a_bits", "b_bits", "flags"))
        hint = None
        if "PREFETCH_B" in dev.spec.flag_bits and flags & dev.spec.flag("PREFETCH_B"):
            hint = Prefetch(0, arg("next_n"), arg("next_k"), arg("next_b_bits"))
        total, beats = _call_estimate(cfg, m, n, k, ab, bb, hit, hint)
        if total != cycles:
            raise AssertionError(f"cycle model {total} != device {cycles} for call {m}x{n}x{k} ({ab}, {bb})")
        written = m * -(-n // cfg.cols) * cfg.cols * 4
        self.write_bytes += written
        self.read_bytes += beats * cfg.axi_data_width // 8 - written

    def _account_conv(self, dev: EmuDevice, status: int, cycles: int) -> None:
        """An interface-4 convolution call: cycles and AXI bytes from the design's model (conv_model.estimate
        of the call's shape; emu_conv.call_cycles for the hinted load it hides), not from a measurement."""
        call = dev._call_type(**{a: dev._arg(a) for a in dev.spec.inputs})
        g = ConvArgs.decode(call)
        hit = not status and self._conv_hint == hint_key(call)
        self._conv_hint = hint_left(call, status)
        if status:
            return
        if g.rows != g.rows_per_image:
            raise AssertionError(f"a band call ({g.op}, rows {g.band0}+{g.rows}): the probe counts whole images")
        cfg = dev.cfg
        design = ConvDesign.for_config(cfg, sums=g.flag("SUMS"), narrow_results=g.flag("C16"))
        est = estimate(cfg, g.op, g.model_shape(), g.a_bits, g.b_bits, design=design)
        model = emu_conv.call_cycles(cfg, g, prefetched=hit)
        if est.calls != 1 or model != cycles or (not hit and est.cycles != cycles):
            raise AssertionError(f"conv model {est.cycles} ({est.calls} calls, hit {hit}: {model}) != device "
                                 f"{cycles} for the {g.op} call {g}")
        self.conv_calls += 1
        self.read_bytes += est.read_bytes
        self.write_bytes += est.write_bytes

    def _patch(self, owner: Any, name: str, new: Any) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)

    def __enter__(self) -> "DeviceProbe":
        self._patch(EmuDevice, "execute", self._execute(EmuDevice.execute))
        self._patch(driver_layout, "pack_rows_into", self._timed("packing", driver_layout.pack_rows_into))
        # a lowered operand packed from its unlowered codes
        self._patch(driver_sources, "pack_tile", self._timed("packing", driver_sources.pack_tile))
        # interface 4: the row-plane tensors and the engine's weight layouts (cpt_driver.rowplanes)
        for name in ("pack_tensor_into", "pack_weights_into", "fwd_weight_rows", "dgrad_weight_rows"):
            self._patch(driver_rowplanes, name, self._timed("packing", getattr(driver_rowplanes, name)))
        return self

    def _timed(self, region: str, fn: Any) -> Any:
        clock = self.clock

        def timed(*a: Any, **kw: Any) -> Any:
            with clock.region(region):
                return fn(*a, **kw)
        return timed

    def __exit__(self, *exc: Any) -> None:
        for owner, name, old in reversed(self._saved):
            setattr(owner, name, old)
        self._saved.clear()


# ------------------------------------------------------------------------------------------ measurement
def cpt_weights(iters: int = ITERS, cycles: int = DEFAULT_CYCLES) -> dict[int, float]:
    """{fw bits: share of the iterations} of CPT 3-8/8 over ``iters`` iterations in ``cycles`` cycles."""
    fw, _ = PrecisionSchedule.build("cpt", CPT_BITS, (GRAD_BITS, GRAD_BITS), iters, cycles).arrays(iters)
    values, counts = np.unique(fw, return_counts=True)
    return {int(v): int(c) / iters for v, c in zip(values, counts)}


def synthetic_batch(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised CIFAR-shaped batch of random pixels (timing does not depend on the values)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randint(0, 256, (batch, 3, 32, 32), generator=g).float() / 255 - 0.47) / 0.25
    return x, torch.randint(0, 10, (batch,), generator=g)


class Bench:
    """One model on ``accel:emu`` (its accelerator opened), SGD as the trainer's, a synthetic batch and the
    host clock; :func:`measure` runs its iterations."""

    def __init__(self, model: str, batch: int, seed: int = 0, recompute_bn: str = "none",
                 conv_engine: bool = False, twin_limits: bool = False, bn_saved: str = "float32") -> None:
        torch.manual_seed(seed)
        self.model_name, self.batch, self.conv_engine = model, batch, conv_engine
        self.model = build_model(model)
        try:  # checked before the backend opens: a bad --recompute-bn is a usage error, nothing measured
            select_bn = stage_selector(self.model, recompute_bn)
        except ValueError as e:
            raise UsageError(str(e)) from None
        # conv_engine: the zc706 preset with the convolution engine (interface 4), as `--set conv_engine=true`
        # twin_limits: the emulated device refuses what the Verilog twin refuses (the driver adapts its calls)
        self.spec = cnn.parse_backend("accel:emu", driver_options={"history": 1 << 22,
                                                                   **({"twin_limits": True} if twin_limits else {})},
                                      config_overrides={"conv_engine": True} if conv_engine else {})
        cnn.set_backend(self.model, self.spec)
        if recompute_bn != "none":  # BatchNorm inputs recomputed in backward (cpt_hw.nn.recompute)
            recompute_batchnorm_inputs(self.model, select_bn)
        if bn_saved == "float16":  # the other BatchNorm inputs kept as float16 for backward (cpt_hw.nn.saved)
            keep_batchnorm_inputs_half(self.model)
        self.engine = cnn.get_impl(self.spec).engine     # opened now: its attach call is not an iteration's
        # The trainer's CPU optimizer: torch.optim.SGD's arithmetic without importing torch._dynamo (68 MB).
        self.optimizer = SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        self.x, self.y = synthetic_batch(batch, seed)
        self.clock = HostClock()
        self.baseline_rss = RssSampler().rss()
        self.baseline_kinds = RssSampler.kinds()

def _host_split(totals: dict[str, float]) -> dict[str, float]:
    """Region totals -> the report's host categories (gemm.* -> driver calls) and the device's time."""
    out = {c: 0.0 for c in (*CATEGORIES, DEVICE, PROBE)}
    for name, s in totals.items():
        out["driver calls" if name.startswith("gemm.") else name] += s
    return out


def measure(bench: Bench, bits: list[int], probe: DeviceProbe, progress: bool) -> list[dict]:
    """One training iteration per forward precision in ``bits`` (8-bit errors): a row of measurements each.
    Raises AssertionError if the probe's, the driver's and its call history's cycle counts disagree."""
    rows = []
    for t, fw in enumerate(tqdm(bits, desc=f"{bench.model_name} b{bench.batch} precisions", file=sys.stderr,
                                disable=not progress)):
        acc = bench.engine.accelerator
        acc.history.clear()
        stats0 = acc.stats()
        probe.reset()
        bench.clock.reset()
        wall0 = time.perf_counter()
        cnn.set_precision(fw, GRAD_BITS, step=t, seed=0)
        bench.model.train()
        loss = F.cross_entropy(bench.model(bench.x), bench.y)
        with bench.clock.region("optimizer"):
            bench.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with bench.clock.region("optimizer"):
            bench.optimizer.step()
        split = _host_split(bench.clock.snapshot())
        wall = time.perf_counter() - wall0
        stats = {k: v - stats0[k] for k, v in acc.stats().items()}
        cycles = stats["cycles"]
        history = sum(r.cycles for r in acc.history)
        if not (cycles == history == sum(probe.cycles.values())) or len(acc.history) != stats["calls"] \
                or set(probe.cycles) - set(GEMM_CLASSES):
            raise AssertionError(f"cycles disagree: driver {cycles}, history {history} ({len(acc.history)} of "
                                 f"{stats['calls']} calls), probe {dict(probe.cycles)}")
        # AXI bytes: the probe's (cycle model's beats for GEMM calls, conv_model.estimate for conv calls) are
        # the driver's (layout.call_traffic; the engine's row-plane ranges), call by call in its history
        # conv calls that ran (a refused one, --twin-limits, moves no bytes and is not the probe's)
        refused = sum(r.op != "gemm" and r.status != 0 for r in acc.history)
        conv_calls = sum(r.op != "gemm" for r in acc.history) - refused
        if (probe.read_bytes, probe.write_bytes) != (stats["read_bytes"], stats["write_bytes"]) \
                or (sum(r.read_bytes for r in acc.history), sum(r.write_bytes for r in acc.history)) \
                != (stats["read_bytes"], stats["write_bytes"]) or probe.conv_calls != conv_calls \
                or (conv_calls and not bench.conv_engine):
            raise AssertionError(f"bytes disagree: driver read {stats['read_bytes']} write {stats['write_bytes']}, "
                                 f"probe read {probe.read_bytes} write {probe.write_bytes}; conv calls: driver "
                                 f"{conv_calls}, probe {probe.conv_calls}")
        clock_hz = bench.engine.config.clock_mhz * 1e6
        rows.append({
            "fw": fw, "bw": GRAD_BITS, "device_calls": stats["calls"], "conv_calls": conv_calls, "cycles": cycles,
            "accel_s": cycles / clock_hz,
            "cycles_by_class": {c: probe.cycles.get(c, 0) for c in GEMM_CLASSES},
            "accel_s_by_class": {c: probe.cycles.get(c, 0) / clock_hz for c in GEMM_CLASSES},
            "calls_by_class": {c: probe.calls.get(c, 0) for c in GEMM_CLASSES},
            "read_bytes": probe.read_bytes, "write_bytes": probe.write_bytes,
            "host_cpu_s": sum(split[c] for c in CATEGORIES),
            "host_cpu_s_by_category": {c: split[c] for c in CATEGORIES},
            "device_cpu_s": split[DEVICE], "probe_cpu_s": split[PROBE], "wall_s": wall,
            "refused_calls": refused,
            "loss": loss.item()})
    return rows


def _weighted(rows: dict[int, dict], weights: dict[int, float], get: Any) -> float:
    """sum_q w_q get(row_q): the schedule's average of a per-precision figure."""
    return sum(w * get(rows[b]) for b, w in weights.items())


def _cpt_static(rows: dict[int, dict], weights: dict[int, float], get: Any) -> dict[str, float]:
    return {"cpt": _weighted(rows, weights, get), "static": get(rows[8])}


def allocator() -> str:
    """The malloc this process runs on: a preloaded jemalloc or tcmalloc, else the C library's."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    for name in ("jemalloc", "tcmalloc", "mimalloc"):
        if f"lib{name}" in maps:
            conf = os.environ.get("MALLOC_CONF") if name == "jemalloc" else None
            return f"{name} (LD_PRELOAD" + (f", MALLOC_CONF={conf})" if conf else ")")
    return f"glibc {platform.libc_ver()[1]} malloc" if platform.libc_ver()[0] == "glibc" else "C library malloc"


def machine_info() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "allocator": allocator(),
            "load_average_1min_at_end": round(os.getloadavg()[0], 2)}


def summarise(model: str, batch: int, rows: list[dict], memory: dict[str, int], command: str,
              machine: dict | None = None, memory_scope: str = "largest over the run", recompute_bn: str = "none",
              conv_engine: bool = False, twin_limits: bool = False, bn_saved: str = "float32") -> dict:
    """The report: per-precision rows, their CPT average (schedule weights) and static 8/8, board hours."""
    by_bits = {r["fw"]: r for r in rows}
    full = cpt_weights()
    measured = {b: w for b, w in full.items() if b in by_bits}
    weights = {b: w / sum(measured.values()) for b, w in measured.items()}  # all of them but in the test
    accel = _cpt_static(by_bits, weights, lambda r: r["accel_s"])
    host = _cpt_static(by_bits, weights, lambda r: r["host_cpu_s"])
    hours = {"accel_only": {k: ITERS * accel[k] / 3600 for k in accel}}
    for f in A9_FACTORS:
        hours[f"a9_{f}x"] = {k: ITERS * (accel[k] + f * host[k]) / 3600 for k in accel}
    by_class = {c: _cpt_static(by_bits, weights, lambda r, c=c: r["accel_s_by_class"][c]) for c in GEMM_CLASSES}
    by_cat = {c: _cpt_static(by_bits, weights, lambda r, c=c: r["host_cpu_s_by_category"][c]) for c in CATEGORIES}
    mb = 1 / (1 << 20)
    return {
        "model": model, "batch_size": batch, "command": command, "backend": "accel:emu", "config": "zc706",
        "conv_engine": conv_engine, "twin_limits": twin_limits, "machine": machine or machine_info(),
        "recompute_bn": recompute_bn, "bn_saved": bn_saved,
        "schedule": {"kind": "cpt", "bits": list(CPT_BITS), "grad_bits": GRAD_BITS, "iters": ITERS,
                     "cycles": DEFAULT_CYCLES, "weights": {str(b): w for b, w in full.items()},
                     "measured_bits": sorted(by_bits), "partial": len(measured) != len(full)},
        "accel_s_per_iter": accel,
        "cpt_static_ratio": accel["cpt"] / accel["static"],
        "accel_s_per_iter_by_class": {k: {c: by_class[c][k] for c in GEMM_CLASSES} for k in accel},
        "host_cpu_s_per_iter": host,
        "host_cpu_s_by_category": {k: {c: by_cat[c][k] for c in CATEGORIES} for k in accel},
        "read_bytes_per_iter": _cpt_static(by_bits, weights, lambda r: r["read_bytes"]),
        "write_bytes_per_iter": _cpt_static(by_bits, weights, lambda r: r["write_bytes"]),
        "peak_rss_mb": memory["peak"] * mb,
        "host_rss_mb": (memory["host_peak"] - memory["scratch"]) * mb,
        "device_scratch_mb": memory["scratch"] * mb,
        "baseline_rss_mb": memory["baseline"] * mb,
        "host_rss_above_baseline_mb": memory.get("above_baseline", memory["host_peak"] - memory["scratch"]
                                                 - memory["baseline"]) * mb,
        **_memory_kinds(memory, mb),
        "memory_scope": memory_scope,
        "a9_factors": {"values": list(A9_FACTORS), "source": A9_SOURCE},
        "board_hours_64k": hours, "paper_hours_64k": PAPER_HOURS,
        "per_precision": rows,
    }


def _memory_kinds(memory: dict, mb: float) -> dict:
    """The host peak by page kind (the device's scratch taken off the anonymous part), the largest anonymous
    RSS and the pre-iteration split, in MB; nothing for reports measured before the split was sampled."""
    if "host_peak_kinds" not in memory:
        return {}
    kinds = dict(memory["host_peak_kinds"])
    kinds["anon"] -= memory["scratch"]
    return {"host_rss_by_kind_mb": {k: v * mb for k, v in kinds.items()},
            "host_anon_peak_mb": (memory["host_anon_peak"] - memory["scratch"]) * mb,
            "baseline_rss_by_kind_mb": {k: v * mb for k, v in memory["baseline_kinds"].items()}}


A9_SOURCE = ("ARCHITECTURE.md section 7: a Cortex-A9 at 800 MHz runs streaming numpy code ~15-40x slower than "
             "one x86 core (an estimate from published memcpy and scalar-loop figures, not a measurement)")


def _gib(x: float) -> str:
    """Bytes as GiB, or MiB below 1 GiB."""
    return f"{x / (1 << 30):.2f} GiB" if x >= 1 << 30 else f"{x / (1 << 20):.1f} MiB"


def markdown(res: dict) -> str:
    a, h, hours = res["accel_s_per_iter"], res["host_cpu_s_per_iter"], res["board_hours_64k"]
    sched = res["schedule"]
    conv = res.get("conv_engine", False)
    config = "zc706 + conv_engine = true: interface 4" if conv else "zc706"
    L = [f"# One training iteration on the board: {res['model']}, batch {res['batch_size']}, `accel:emu` ({config})",
         "", f"Reproduce: `{res['command']}` (method in the script's docstring).  Host: "
         f"{res['machine']['cpu']}, torch {res['machine']['torch']} on {res['machine']['torch_threads']} thread, "
         f"1-minute load average {res['machine']['load_average_1min_at_end']} at the end (shared machine: CPU "
         "seconds, not wall time, are reported).", ""]
    if conv:
        calls = sum(r["conv_calls"] for r in res["per_precision"])
        total = sum(r["device_calls"] for r in res["per_precision"])
        L += ["**The convolution engine is emulated, and its accelerator seconds and AXI bytes are the design's "
              "model**: every convolution call (" + f"{calls} of {total} device calls over the measured precisions"
              ") is charged the cycles and bytes of cpt_hw.hw.conv_model.estimate (the emulated device's "
              "cycles register, emu_conv.call_cycles), not a measured figure: the Verilog twin's cycles on these "
              "layers are bench/bench_conv_twin.py's, combined with this report in bench/twin_iteration.py; no "
              "board has run the engine.  Only the GEMM calls left (geometries the engine does not take) have "
              "cycle_model figures, exact against the RTL.  The numerics do not change: bit-identical to "
              "interface 3 (tests/test_bench_board_step.py: the same code's losses and gradients with and without "
              "--conv-engine).", ""]
    if res.get("twin_limits"):
        refused = sum(r.get("refused_calls", 0) for r in res["per_precision"])
        L += ["**The Verilog twin's limits** (`--twin-limits`): the emulated device refuses the conv calls the "
              "twin refuses (conv_calls.conv_status twin=True), as a board with the twin would, and the driver "
              f"adapts: {refused} calls refused over the measured precisions (weight gradients of more images "
              "than the twin's formers take: the driver's halving, then its bisection towards the limit, once per "
              "layer geometry and precisions), every other call taken; the results are those of the design's "
              "calls, bit for bit.", ""]
    if res.get("recompute_bn", "none") != "none":
        L += [f"**BatchNorm inputs recomputed in backward** (`--recompute-bn {res['recompute_bn']}`, "
              "cpt_hw.nn.recompute): those layers' forward GEMMs run twice per iteration (the accelerator's fwd "
              "column counts both), and their outputs are not kept for backward.", ""]
    if res.get("bn_saved", "float32") != "float32":
        L += [f"**BatchNorm inputs kept as {res['bn_saved']} for backward** (`--bn-saved {res['bn_saved']}`, "
              "cpt_hw.nn.saved.keep_batchnorm_inputs_half): half the bytes of float32; the forward pass is "
              "unchanged, backward normalises the rounded copy (bench/bench_bn_half.py measures the rounding "
              "against the 8-bit errors' noise).", ""]
    if sched["partial"]:
        L += [f"**Partial run**: only fw = {sched['measured_bits']} measured; the CPT column averages those "
              "with renormalised schedule weights, so it is not CPT's figure.", ""]
    weights = ", ".join(f"{b}: {100 * w:.1f} %" for b, w in sched["weights"].items())
    L += [f"CPT 3-8/8 = the average over fw with the schedule's weights ({sched['iters']:,} iterations, "
          f"{sched['cycles']} cycles; {weights}); bw = {sched['grad_bits']} throughout.  Static 8/8 = fw 8.", "",
          "## 64,000 iterations on the board (hours)", "",
          "| | static 8/8 | CPT 3-8/8 | CPT / static |", "|---|---:|---:|---:|",
          f"| paper, ResNet-74 (ZC706) | {PAPER_HOURS['static']} | {PAPER_HOURS['cpt']} | "
          f"{PAPER_HOURS['cpt'] / PAPER_HOURS['static']:.3f} |"]
    for key, label in [("accel_only", "accelerator only"), *[(f"a9_{f}x", f"accelerator + host at A9 = {f}x x86")
                                                             for f in A9_FACTORS]]:
        L.append(f"| {label} | {hours[key]['static']:.1f} | {hours[key]['cpt']:.1f} | "
                 f"{hours[key]['cpt'] / hours[key]['static']:.3f} |")
    L += ["", f"A9 factor: {res['a9_factors']['source']}.  Host and accelerator time are added (no overlap).", "",
          "## Per iteration", "",
          "| | static 8/8 | CPT 3-8/8 |", "|---|---:|---:|",
          f"| accelerator s{' (conv calls: model)' if conv else ''} | {a['static']:.3f} | {a['cpt']:.3f} |",
          f"| CPT / static | | {res['cpt_static_ratio']:.3f} |"]
    for c in GEMM_CLASSES:
        L.append(f"| - {c} s | {res['accel_s_per_iter_by_class']['static'][c]:.3f} | "
                 f"{res['accel_s_per_iter_by_class']['cpt'][c]:.3f} |")
    L += [f"| AXI read | {_gib(res['read_bytes_per_iter']['static'])} | {_gib(res['read_bytes_per_iter']['cpt'])} |",
          f"| AXI write | {_gib(res['write_bytes_per_iter']['static'])} | {_gib(res['write_bytes_per_iter']['cpt'])} |",
          f"| host CPU s (one x86 core) | {h['static']:.2f} | {h['cpt']:.2f} |"]
    for c in CATEGORIES:
        st, cp = res["host_cpu_s_by_category"]["static"][c], res["host_cpu_s_by_category"]["cpt"][c]
        L.append(f"| - {c} | {st:.2f} ({100 * st / h['static']:.1f} %) | {cp:.2f} ({100 * cp / h['cpt']:.1f} %) |")
    L += ["", f"Memory: peak RSS {res['peak_rss_mb']:.0f} MB (whole process, emulated device included); host side "
          f"{res['host_rss_mb']:.0f} MB = the largest RSS sampled every 5 ms outside the emulated device's calls "
          f"minus its persistent scratch ({res['device_scratch_mb']:.0f} MB).  Of the host side, "
          f"{res['baseline_rss_mb']:.0f} MB is there before the first iteration (the Python/torch/numpy runtime, "
          f"the model and its optimizer) and {res['host_rss_above_baseline_mb']:.0f} MB is the iteration's own "
          f"({res.get('memory_scope', 'largest over the run')}: saved activations, the driver's DMA pool, which "
          "is CMA memory on the board, buffers and temporaries).  "
          f"malloc: {res['machine'].get('allocator', 'not recorded')}.", *_kinds_line(res), "",
          "## Per precision", "",
          "| fw/bw | device calls (conv) | accel s | fwd s | dgrad s | wgrad s | AXI read | AXI write | host CPU s | "
          "emulated device CPU s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["per_precision"]:
        c = r["accel_s_by_class"]
        L.append(f"| {r['fw']}/{r['bw']} | {r['device_calls']} ({r.get('conv_calls', 0)}) | {r['accel_s']:.3f} | "
                 f"{c['fwd']:.3f} | {c['dgrad']:.3f} | {c['wgrad']:.3f} | {_gib(r['read_bytes'])} | {_gib(r['write_bytes'])} | "
                 f"{r['host_cpu_s']:.2f} | {r['device_cpu_s']:.2f} |")
    L += ["", f"![hours]({res['plot']})", ""] if res.get("plot") else [""]
    return "\n".join(L)


def _kinds_line(res: dict) -> list[str]:
    """The memory paragraph's anonymous / file-backed split, when the report has it."""
    if "host_rss_by_kind_mb" not in res:
        return []
    k, b = res["host_rss_by_kind_mb"], res["baseline_rss_by_kind_mb"]
    return ["", f"By page kind (/proc/self/status at the host peak): {k['anon']:.0f} MB anonymous (heap, tensors, "
            f"the emulated DMA pool; the device's scratch taken off), {k['file']:.0f} MB file-backed (shared "
            f"libraries and other mapped files, which the kernel can drop and re-read under pressure), "
            f"{k['shmem']:.0f} MB shared memory (the driver's off-heap index tables, cpt_driver.layout); before "
            f"the first iteration {b['anon']:.0f} MB anonymous + {b['file']:.0f} MB file-backed.  The largest anonymous RSS sampled outside the device: {res['host_anon_peak_mb']:.0f} MB."]


def plot(res: dict, path: Path) -> None:
    """Grouped bars: 64k-iteration hours, static vs CPT, with the paper's figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["accel_only", *(f"a9_{f}x" for f in A9_FACTORS)]
    labels = ["paper, ResNet-74", "accelerator", *(f"+ host {f}x" for f in A9_FACTORS)]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, (kind, name) in enumerate((("static", "static 8/8"), ("cpt", "CPT 3-8/8"))):
        vals = [PAPER_HOURS[kind], *(res["board_hours_64k"][k][kind] for k in keys)]
        ax.bar([j + (i - 0.5) * 0.4 for j in range(len(vals))], vals, 0.4, label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yscale("log")
    ax.set_ylabel("hours for 64,000 iterations")
    engine = ", conv engine (design model)" if res.get("conv_engine") else ""
    ax.set_title(f"{res['model']}, batch {res['batch_size']}: training on the ZC706 (modelled{engine})")
    ax.legend()
    save_figure(fig, path, dpi=110)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (the project's CLI rule)
        raise UsageError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20", help=f"a CIFAR ResNet: {', '.join(f'resnet{d}' for d in DEPTHS)}")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--bits", type=int, nargs="+", default=list(range(CPT_BITS[0], CPT_BITS[1] + 1)),
                   help="forward precisions to measure (default 3..8, what CPT 3-8/8 visits; must include 8)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the markdown")
    p.add_argument("--rows-only", action="store_true",
                   help="measure --bits (8 not required) and write only their rows and memory, for --combine")
    p.add_argument("--combine", nargs="+", type=Path, metavar="JSON",
                   help="no measurement: merge --rows-only files of separate processes (one model and batch, "
                        "distinct precisions including 8) into the report")
    p.add_argument("--recompute-bn", default="none", metavar="STAGES",
                   help="BatchNorm inputs recomputed in backward instead of kept (cpt_hw.nn.recompute): none "
                        "(default), all, or stages of the ResNet, e.g. 1 or 2,3")
    p.add_argument("--bn-saved", default="float32", choices=BN_SAVED,
                   help="how the BatchNorm layers keep their inputs for backward (the trainer's --bn-saved): "
                        "float32 (default) or float16 (cpt_hw.nn.saved.keep_batchnorm_inputs_half)")
    p.add_argument("--conv-engine", action="store_true",
                   help="the zc706 preset with conv_engine = true (interface 4, emulated): convolutions as the "
                        "device's conv calls, their cycles and bytes the design's model (cpt_hw.hw.conv_model)")
    p.add_argument("--twin-limits", action="store_true",
                   help="with --conv-engine: the emulated device refuses the conv calls the Verilog twin refuses, "
                        "as a board with the twin would (the driver halves its weight-gradient chunks)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", help="output path without suffix (default docs/results/board_step-<model>[-b<batch>])")
    args = p.parse_args(argv)
    if args.model not in {f"resnet{d}" for d in DEPTHS}:
        raise UsageError(f"--model {args.model!r}: must be a CIFAR ResNet "
                         f"({', '.join(f'resnet{d}' for d in DEPTHS)})")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: must be >= 1")
    bad = [b for b in args.bits if not CPT_BITS[0] <= b <= CPT_BITS[1]]
    if bad or len(set(args.bits)) != len(args.bits) or (8 not in args.bits and not args.rows_only):
        raise UsageError(f"--bits {' '.join(map(str, args.bits))}: must be distinct values in "
                         f"{CPT_BITS[0]}..{CPT_BITS[1]} including 8 (static 8/8)")
    if args.twin_limits and not args.conv_engine:
        raise UsageError("--twin-limits: needs --conv-engine (the twin's limits are its convolution engine's)")
    suffix = ("" if args.batch_size == 128 else f"-b{args.batch_size}") + ("-conv" if args.conv_engine else "") \
        + ("-twin" if args.twin_limits else "") + ("-bn16" if args.bn_saved == "float16" else "")
    args.out = Path(args.out or ROOT / "docs" / "results" / f"board_step-{args.model}{suffix}")
    if not args.out.parent.is_dir():
        raise UsageError(f"--out {args.out}: directory {args.out.parent} does not exist")
    return args


def run(args: argparse.Namespace, command: str) -> dict:
    """Measure args.bits: the report, or with --rows-only the rows and memory figures alone."""
    torch.set_num_threads(1)  # "one x86 core": BLAS too (threadpoolctl, installed with the driver's emu)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        bench = Bench(args.model, args.batch_size, recompute_bn=args.recompute_bn, conv_engine=args.conv_engine,
                      twin_limits=args.twin_limits, bn_saved=args.bn_saved)
        with RssSampler() as sampler, DeviceProbe(bench.clock, sampler) as probe, set_hook(bench.clock):
            rows = measure(bench, sorted(args.bits), probe, not args.no_progress)
    memory = {"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host_peak": sampler.host_peak,
              "scratch": probe.scratch_bytes, "baseline": bench.baseline_rss,
              "host_peak_kinds": sampler.host_peak_kinds, "host_anon_peak": sampler.host_anon_peak,
              "baseline_kinds": bench.baseline_kinds}
    memory["above_baseline"] = memory["host_peak"] - memory["scratch"] - memory["baseline"]
    if args.rows_only:
        return {"model": args.model, "batch_size": args.batch_size, "command": command, "machine": machine_info(),
                "recompute_bn": args.recompute_bn, "conv_engine": args.conv_engine,
                "twin_limits": args.twin_limits, "bn_saved": args.bn_saved, "memory": memory,
                "per_precision": rows}
    scope = f"over the {len(rows)} iterations of one process" if len(rows) > 1 else "one iteration"
    return summarise(args.model, args.batch_size, rows, memory, command, memory_scope=scope,
                     recompute_bn=args.recompute_bn, conv_engine=args.conv_engine, twin_limits=args.twin_limits,
                     bn_saved=args.bn_saved)


def combine(paths: list[Path], command: str) -> dict:
    """One report from the --rows-only files of separate processes (each precision's iteration is
    independent); memory figures are the largest of the processes'."""
    parts = []
    for path in paths:
        try:
            parts.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            raise UsageError(f"--combine {path}: cannot read a JSON report ({e})") from None
        if not {"model", "batch_size", "memory", "per_precision"} <= set(parts[-1]):
            raise UsageError(f"--combine {path}: not a --rows-only report")
    keys = {(p["model"], p["batch_size"], p.get("recompute_bn", "none"), p.get("conv_engine", False),
             p.get("twin_limits", False), p.get("bn_saved", "float32")) for p in parts}
    rows = sorted((r for p in parts for r in p["per_precision"]), key=lambda r: r["fw"])
    bits = [r["fw"] for r in rows]
    if len(keys) != 1 or len(set(bits)) != len(bits) or 8 not in bits:
        raise UsageError(f"--combine: the files must share one model, batch, --recompute-bn, --conv-engine, "
                         f"--twin-limits and --bn-saved "
                         f"({sorted(keys)}) and hold "
                         f"distinct precisions including 8 (got {bits})")
    memory = {k: max(p["memory"][k] for p in parts) for k in ("peak", "host_peak", "scratch", "baseline")}
    if all("above_baseline" in p["memory"] for p in parts):  # per process, then the largest
        memory["above_baseline"] = max(p["memory"]["above_baseline"] for p in parts)
    if all("host_peak_kinds" in p["memory"] for p in parts):  # the split of the process with the largest peak
        top = max(parts, key=lambda p: p["memory"]["host_peak"])["memory"]
        memory.update(host_peak_kinds=top["host_peak_kinds"], baseline_kinds=top["baseline_kinds"],
                      host_anon_peak=max(p["memory"]["host_anon_peak"] for p in parts))
    (model, batch, recompute_bn, conv_engine, twin_limits, bn_saved), = keys
    full = command + "  (parts: " + "; ".join(f"`{p['command']}`" for p in parts) + ")"
    return summarise(model, batch, rows, memory, full, machine=parts[0]["machine"],
                     memory_scope=f"the largest of {len(parts)} processes, one iteration each",
                     recompute_bn=recompute_bn, conv_engine=conv_engine, twin_limits=twin_limits,
                     bn_saved=bn_saved)


@contextlib.contextmanager
def set_hook(clock: HostClock) -> Iterator[None]:
    previous = set_region_hook(clock.region)
    try:
        yield
    finally:
        set_region_hook(previous)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as e:
        print(f"bench_board_step.py: error: {e}", file=sys.stderr)
        return 2
    command = ("python bench/bench_board_step.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    for var in ("MALLOC_CONF", "LD_PRELOAD"):  # the allocator and its options are part of what was measured
        if os.environ.get(var) and not args.combine:
            command = f"{var}={os.environ[var]} {command}"
    try:
        res = combine(args.combine, command) if args.combine else run(args, command)
    except UsageError as e:
        print(f"bench_board_step.py: error: {e}", file=sys.stderr)
        return 2
    if args.rows_only:
        write_atomic(args.out.with_suffix(".json"), json.dumps(res, indent=2) + "\n")
        return 0
    res["plot"] = args.out.with_suffix(".png").name
    text = markdown(res)
    write_atomic(args.out.with_suffix(".json"), json.dumps(res, indent=2) + "\n")
    write_atomic(args.out.with_suffix(".md"), text)
    plot(res, args.out.with_suffix(".png"))
    print(json.dumps(res, indent=2) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
