"""The CPT training loop behind ``cpt-hw train``: plain PyTorch around the quantized front end.

Per iteration t: the schedule gives (fw, bw) bits, the trainer sets them as the precision context (with t,
so the stochastic-rounding noise is a function of (seed, t)), sets the learning rate (step decay), takes the
batch of step t (a pure function of (seed, t)), runs forward/backward/SGD and adds the step's BitOPs.  All
the state the next iteration depends on is either such a function of t or saved in the checkpoint, which is
why ``--resume`` continues bit for bit.  Under torchrun the model is wrapped in DistributedDataParallel and
each rank trains on its slice of every global batch (see :mod:`cpt_hw.train.distributed`).
"""

from __future__ import annotations

import gc
import json
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import CptHwError
from ..fileio import write_atomic
from ..schedules import PrecisionSchedule, parse_bits_range, parse_shape, short_cycle_warning
from . import bitops, checkpoint, distributed, frontend
from .batches import Batches, eval_batches
from .config import MAX_ITERS, TrainConfig, TrainConfigError
from .data import Dataset, load_dataset
from .fast_step import FastStepper, fast_mode
from .metrics import MetricsWriter, read_metrics
from .plots import plot_run
from .sgd import make_sgd
from .stopping import StopOnSignal

CHECKPOINT = "checkpoint.pt"
#: Iterations at which the run plot draws the precision schedule (all of them for runs up to this length):
#: enough for the paper's 32 cycles to show every step, bounded for runs of any length.
PLOT_POINTS = 100_000


class TrainingDiverged(CptHwError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


@dataclass
class RunState:
    """What evolves during a run besides model and optimizer (saved in every checkpoint)."""

    step: int = 0
    checkpoint_step: int | None = None
    bitops: int = 0
    cycles: int = 0
    metrics_bytes: int = 0
    window: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # loss sum, correct, samples since log
    range_test: dict[str, Any] | None = None
    last_eval: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """One run of :class:`TrainConfig`; ``run()`` returns the summary dict (rank 0's view)."""

    def __init__(self, cfg: TrainConfig, resume: dict[str, Any] | None = None, data: Dataset | None = None) -> None:
        """``data`` replaces loading ``cfg.dataset`` (an API user's own :class:`Dataset`, a benchmark's)."""
        self.cfg, self._resume, self._data = cfg, resume, data
        if cfg.threads is not None:
            # Small GEMMs (the digits CNN, im2col on the host) run far faster on one thread than on several
            # that spin against each other; float reduction order, hence bit-exactness, depends on it.
            torch.set_num_threads(cfg.threads)
        self.dist = distributed.init(cfg.device)
        self.device = distributed.device_for(cfg.device, self.dist)
        # Stochastic-rounding noise: rank 0 uses the run's seed (a single process is rank 0); other ranks get
        # their own streams, so the ranks' rounding errors do not repeat each other inside the all-reduce.
        self.noise_seed = (cfg.seed ^ (self.dist.rank * 0x9E3779B97F4A7C15)) & 0xFFFFFFFFFFFFFFFF
        self.out = Path(cfg.out)
        self.state = RunState()
        self._signal = StopOnSignal()  # replaced by an installed one while the loop runs
        self._synced = True  # whether the last step's metrics were read (the fast path reads them sometimes)

    # ------------------------------------------------------------------ setup
    def _load_data(self) -> Dataset:
        if self._data is not None:
            return self._data
        if self.dist.enabled and not self.dist.is_main:
            distributed.barrier(self.dist)  # rank 0 fills the decode cache first
        data = load_dataset(self.cfg.dataset, self.cfg.data, self.cfg.data_cache,
                            progress=self.cfg.progress and self.dist.is_main)
        if self.dist.enabled and self.dist.is_main:
            distributed.barrier(self.dist)
        return data

    def prepare(self) -> None:
        """Backend, data, model, batches and MAC count: what training and the range test share."""
        cfg = self.cfg
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise CptHwError(f"--device {cfg.device}: CUDA is not available on this machine")
        frontend.configure_backend(cfg.backend, cfg.preset)  # an unknown backend fails before any work
        self.accel_cfg = frontend.accelerator_config(cfg.backend, cfg.preset)
        self.data = self._load_data()
        torch.manual_seed(cfg.seed)
        self.model = frontend.build_model(cfg.model, self.data.num_classes).to(self.device)
        frontend.recompute_batchnorm_inputs(self.model, cfg.recompute_bn)
        frontend.keep_batchnorm_inputs(self.model, cfg.bn_saved)
        bits = (2, self.top_bits()) if cfg.bits == "auto" else parse_bits_range(cfg.bits, "--bits")
        self.fast = fast_mode(cfg.fast, self.device, cfg.backend, bits, parse_bits_range(cfg.grad_bits, "--grad-bits"))
        if self.fast and cfg.bn_saved != "float32":  # --fast auto chose it: the same rule as --fast on
            raise TrainConfigError(f"--bn-saved {cfg.bn_saved}: not on the CUDA fast path (its graph keeps "
                                   "BatchNorm's saved tensors itself); use --fast off")
        if self.fast and self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)  # NHWC convolutions: faster cuDNN kernels
        self.batches = Batches(self.data, cfg.batch_size, cfg.seed, rank=self.dist.rank, world=self.dist.world,
                               device=self.device, resident=self.fast)
        self.total = cfg.total_iters(self.batches.steps_per_epoch)
        if self.total > MAX_ITERS:
            raise TrainConfigError(f"--epochs {cfg.epochs}: {self.total:,} iterations, more than {MAX_ITERS:,}")
        sample = (self.data.in_channels, self.data.image_size, self.data.image_size)
        self.layers = bitops.count_macs(self.model, sample, run=self._full_precision_forward)
        if not self.layers:
            raise CptHwError(f"model {cfg.model!r} has no quantized layers to train at low precision")
        self.meter = bitops.BitopsMeter(sum(layer.macs for layer in self.layers))

    def top_bits(self) -> int:
        """The largest forward precision: the accelerator's max_bits, else 8 (the paper's static baseline)."""
        return self.accel_cfg.max_bits if self.accel_cfg is not None else 8

    def _setup(self) -> None:
        cfg = self.cfg
        self.prepare()
        grad_bits = parse_bits_range(cfg.grad_bits, "--grad-bits")
        if self._resume is None and cfg.bits == "auto":
            if self.accel_cfg is not None:
                frontend.check_accel_bits(self.accel_cfg, (2, self.top_bits()), grad_bits)
            self.bits = self._range_test(grad_bits)
        elif self._resume is not None and self._resume.get("range_test"):
            self.state.range_test = self._resume["range_test"]
            self.bits = tuple(self.state.range_test["bounds"])
        else:
            self.bits = parse_bits_range(cfg.bits, "--bits")
        if self.accel_cfg is not None:
            frontend.check_accel_bits(self.accel_cfg, self.bits, grad_bits)
        shape = parse_shape(cfg.shape) if cfg.shape else None
        self.warning = short_cycle_warning(cfg.schedule, self.bits, grad_bits, self.total, cfg.cycles)
        if self.warning and self.dist.is_main:
            tqdm.write(f"cpt-hw: warning: {self.warning}", file=sys.stderr)
        self.schedule = PrecisionSchedule.build(cfg.schedule, self.bits, grad_bits, self.total, cfg.cycles, shape)
        self.optimizer = make_sgd(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                  weight_decay=cfg.weight_decay, device=self.device, fast=self.fast)
        if self._resume is not None:
            self._restore(self._resume)
        self.net: torch.nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.stepper = None
        if self.fast:
            self.stepper = FastStepper(self.net, self.model, self.optimizer, self.batches,
                                       quantized=self.bits[1] > 0, hardware=cfg.backend == "torch:hardware",
                                       seed=self.noise_seed, graph=self.device.type == "cuda" and not self.dist.enabled)

    @staticmethod
    def _full_precision_forward(model: torch.nn.Module, x: torch.Tensor) -> None:
        with frontend.precision(0, 0):
            model(x)

    def _range_test(self, grad_bits: tuple[int, int]) -> tuple[int, int]:
        from .range_test import run_range_test

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed + 1)
            probe = frontend.build_model(self.cfg.model, self.data.num_classes).to(self.device)
        result = run_range_test(probe, self.batches, self.cfg, grad_bits=grad_bits[1], cap=self.top_bits(),
                                num_classes=self.data.num_classes, dist=self.dist, meter=self.meter)
        self.state.range_test = result.to_dict()
        if self.dist.is_main:  # on stderr with the progress bars: stdout stays the summary (or its JSON)
            tqdm.write(result.table(), file=sys.stderr)
        return result.bounds

    def _restore(self, ck: dict[str, Any]) -> None:
        """Load a checkpoint's state; anything that does not fit this run is one CheckpointError."""
        source = ck.get("source", "(given)")
        step = checkpoint.check_resumable(ck, self.model.state_dict(), self.total)
        try:
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
            checkpoint.set_rng_state(ck["rng"])
            self.meter.total = int(ck["bitops"])
            self.state.cycles = int(ck["cycles"])
            self.state.metrics_bytes = int(ck["metrics_bytes"])
            self.state.window = [float(v) for v in ck["window"]]
            self.state.last_eval = dict(ck.get("last_eval") or {})
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise checkpoint.CheckpointError(f"checkpoint {source}: cannot be restored ({first[:160]})") from None
        self.state.step = self.state.checkpoint_step = step

    # ------------------------------------------------------------------ steps
    def _sync_due(self, t1: int) -> bool:
        """Whether the fast path must read its metrics after iteration t1 - 1 (log, eval, checkpoint, end)."""
        cfg = self.cfg
        return (t1 % cfg.log_every == 0 or t1 >= self.total or (cfg.stop_at is not None and t1 >= cfg.stop_at)
                or (self._signal.signum is not None and not self.dist.enabled)  # DDP: see _interrupted
                or self._due(cfg.eval_every, t1) or self._due(cfg.checkpoint_every, t1))

    def _fast_train_step(self, t: int) -> torch.Tensor:
        fw, bw = self.schedule.at(t)
        sync = self._sync_due(t + 1)
        self._synced = sync
        stats = self.stepper.step(t, fw, bw, self.cfg.lr_at(t, self.total), sync)
        self.meter.add(self.cfg.batch_size, fw, bw)
        if sync:
            stats = distributed.all_sum(stats.to(self.device), self.dist).cpu()
            if not math.isfinite(float(stats[0])):
                raise TrainingDiverged(f"loss is {float(stats[0] / stats[2])} by iteration {t}; stopped. "
                                       f"{self._last_good()}")
        return stats

    def _train_step(self, t: int) -> torch.Tensor:
        if self.stepper is not None:
            return self._fast_train_step(t)
        fw, bw = self.schedule.at(t)
        frontend.set_precision(fw, bw, t, self.noise_seed)
        lr = self.cfg.lr_at(t, self.total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = self.batches.get(t)
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        stats = torch.stack([loss.detach().double() * len(y), (logits.argmax(1) == y).sum().double(),
                             torch.tensor(float(len(y)), dtype=torch.float64, device=loss.device)])
        stats = distributed.all_sum(stats, self.dist).cpu()
        if not math.isfinite(float(stats[0])):
            raise TrainingDiverged(f"loss is {float(stats[0] / stats[2])} at iteration {t}; stopped. "
                                   f"{self._last_good()}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.meter.add(self.cfg.batch_size, fw, bw)
        return stats

    def _last_good(self) -> str:
        if self.state.checkpoint_step is None:
            return "no checkpoint was written before"
        return f"last good checkpoint: {self.out / CHECKPOINT} (iteration {self.state.checkpoint_step})"

    @torch.no_grad()
    def evaluate(self, done: int) -> dict[str, Any]:
        """Test accuracy after ``done`` iterations, at the precision of the last one (as the paper evaluates)."""
        fw, bw = self.schedule.at(min(max(done - 1, 0), self.total - 1))
        if self.stepper is not None:
            self.stepper.set_precision(fw, bw, done)
        distributed.broadcast_buffers(self.model, self.dist)  # BN and activation ranges: rank 0's, as checkpointed
        self.model.eval()
        sums = torch.zeros(3, dtype=torch.float64)
        # The full CIFAR test set takes tens of seconds on the integer backends: show it (this rank's share).
        bar = tqdm(total=-(-len(self.data.test) // self.dist.world), desc=f"evaluate at {done}", unit="img",
                   disable=not (self.dist.is_main and self.cfg.progress), dynamic_ncols=True, leave=False)
        with frontend.precision(fw, bw), bar:
            for x, y in eval_batches(self.data, self.data.test, self.cfg.eval_batch, rank=self.dist.rank,
                                     world=self.dist.world, device=self.device):
                logits = self.model(x)
                sums += torch.tensor([F.cross_entropy(logits, y, reduction="sum").item(),
                                      (logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64)
                bar.update(len(y))
        self.model.train()
        sums = distributed.all_sum(sums.to(self.device), self.dist).cpu()
        return {"kind": "eval", "iter": done, "epoch": done / self.batches.steps_per_epoch,
                "test_loss": float(sums[0] / sums[2]), "test_acc": float(sums[1] / sums[2]),
                "fw_bits": fw, "bw_bits": bw, "gbitops": self.meter.gbitops}

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, writer: MetricsWriter) -> None:
        # Parameters, buffers (BatchNorm's running_var overflows first) and momentum: a "good" checkpoint is
        # finite throughout.  Every rank checks its own state; all stop if any is bad (they must agree).
        bad = checkpoint.non_finite(self.model.state_dict()) or checkpoint.non_finite(self.optimizer.state_dict())
        flag = torch.tensor([float(bad is not None)], dtype=torch.float64, device=self.device)
        if float(distributed.all_sum(flag, self.dist)) > 0:
            raise TrainingDiverged(f"{repr(bad) if bad else 'the state of another rank'} is not finite after iteration "
                                   f"{self.state.step}; stopped. {self._last_good()}")
        self.state.checkpoint_step = self.state.step
        cycles = self._total_cycles()  # a collective under DDP: every rank checkpoints at the same iterations
        if not self.dist.is_main:
            return
        checkpoint.save(self.out / CHECKPOINT, {
            "config": self.cfg.to_dict(), "step": self.state.step, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "rng": checkpoint.rng_state(), "bitops": self.meter.total,
            "cycles": cycles, "metrics_bytes": writer.tell(), "window": self.state.window,
            "range_test": self.state.range_test, "last_eval": self.state.last_eval})

    def _total_cycles(self) -> int:
        """Accelerator cycles of the whole run: those restored from the checkpoint plus every rank's since."""
        local = torch.tensor([float(frontend.accelerator_cycles())], dtype=torch.float64, device=self.device)
        return self.state.cycles + int(distributed.all_sum(local, self.dist).item())

    def _due(self, every: int, t1: int) -> bool:
        """After iteration t1 - 1: every N iterations, or at each epoch end when N = 0."""
        return t1 % every == 0 if every else t1 % self.batches.steps_per_epoch == 0

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        finished = False
        try:
            summary = self._run()
            finished = True
            return summary
        finally:
            self._leave_process_group(finished)

    def _leave_process_group(self, finished: bool) -> None:
        """Release DDP, then the process group, in that order (no-op for one process).

        DDP's reducer owns the gloo process group too.  Left to garbage collection at exit, it destroyed the
        group on the main thread while holding the GIL; the destructor joins gloo's worker threads, and one of
        them waited for the GIL to free the tensors of its last all-reduce: a deadlock (seen as a torchrun
        rank that never exits).  So: wait until every rank is done with collectives, drop the reducer while
        the group is still registered, collect, and only then destroy the group.
        """
        if not self.dist.enabled:
            return
        if finished:  # after a failure the other ranks may never reach the barrier
            distributed.barrier(self.dist)
        self.net = getattr(self, "model", None)
        self.stepper = None
        gc.collect()
        distributed.shutdown(self.dist)

    def _run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self._setup()
        cfg, main = self.cfg, self.dist.is_main
        stop = min(cfg.stop_at, self.total) if cfg.stop_at is not None else self.total
        if main and self._resume is None:  # a folder's summary.json always describes the run in it
            (self.out / "summary.json").unlink(missing_ok=True)
        writer = MetricsWriter(self.out / "metrics.jsonl", enabled=main,
                               truncate_to=self.state.metrics_bytes if self._resume is not None else None)
        if main and self._resume is None and self.state.range_test:
            writer.write({"kind": "range_test", **self.state.range_test})
        bar = tqdm(total=self.total, initial=self.state.step, desc=f"train {cfg.model}", unit="it",
                   disable=not (main and cfg.progress), dynamic_ncols=True, leave=True)
        try:
            with StopOnSignal() as self._signal:
                for t in range(self.state.step, stop):
                    self._iteration(t, stop, writer, bar)
                    if self._interrupted() and self.state.step < stop:
                        stop = self.state.step
                        break
        finally:
            bar.close()
        if stop < self.total:
            self._checkpoint(writer)
            writer.close()
            result = {"stopped_at": stop, "iters": self.total, "checkpoint": str(self.out / CHECKPOINT)}
            return {**result, "signal": self._signal.name} if self._signal.signum is not None else result
        self.state.last_eval = self.evaluate(self.total)
        writer.write(self.state.last_eval)
        summary = self._summary(time.perf_counter() - started)
        writer.write({"kind": "summary", **summary})
        self._checkpoint(writer)
        writer.close()
        if main:
            self._write_outputs(summary)
        return summary

    def _iteration(self, t: int, stop: int, writer: MetricsWriter, bar: tqdm) -> None:
        """Iteration t, then what is due after it: a log line, an evaluation, a checkpoint."""
        cfg = self.cfg
        stats = self._train_step(t)
        self.state.window = [w + float(v) for w, v in zip(self.state.window, stats)]
        self.state.step = t + 1
        bar.update(1)
        if self.state.step % cfg.log_every == 0 or self.state.step == self.total:
            self._log(writer, bar, t)
        if self._due(cfg.eval_every, self.state.step) and self.state.step < stop:
            self.state.last_eval = self.evaluate(self.state.step)
            writer.write(self.state.last_eval)
        if self._due(cfg.checkpoint_every, self.state.step) and self.state.step < stop:
            self._checkpoint(writer)

    def _interrupted(self) -> bool:
        """Whether a SIGINT/SIGTERM asks to stop now.  One process stops after the iteration in progress (on
        the fast path, after the next one that read its metrics); under DDP the ranks agree at log lines."""
        if not self.dist.enabled:
            return self._signal.signum is not None and self._synced
        if self.state.step % self.cfg.log_every:
            return False
        flag = torch.tensor([float(self._signal.signum is not None)], dtype=torch.float64, device=self.device)
        return float(distributed.all_sum(flag, self.dist)) > 0

    def _log(self, writer: MetricsWriter, bar: tqdm, t: int) -> None:
        fw, bw = self.schedule.at(t)
        window, self.state.window = self.state.window, [0.0, 0.0, 0.0]
        loss, acc = window[0] / window[2], window[1] / window[2]
        lr = self.optimizer.param_groups[0]["lr"]
        writer.write({"kind": "train", "iter": t + 1, "epoch": (t + 1) / self.batches.steps_per_epoch,
                      "loss": loss, "acc": acc, "fw_bits": fw, "bw_bits": bw, "lr": lr,
                      "gbitops": self.meter.gbitops})
        bar.set_postfix_str(f"loss {loss:.3f} acc {100 * acc:.1f}% bits {fw}/{bw} lr {lr:.3g}", refresh=False)

    def _summary(self, wall_s: float) -> dict[str, Any]:
        cfg = self.cfg
        cycles = self._total_cycles()
        static = bitops.report(self.layers, cfg.batch_size, self.schedule, self.total)
        summary: dict[str, Any] = {
            "model": cfg.model, "dataset": cfg.dataset, "backend": cfg.backend, "schedule": cfg.schedule,
            "bits": f"{self.bits[0]}-{self.bits[1]}", "grad_bits": cfg.grad_bits, "cycles": cfg.cycles,
            "iters": self.total, "epochs": self.total / self.batches.steps_per_epoch,
            "batch_size": cfg.batch_size, "seed": cfg.seed, "processes": self.dist.world,
            **({"bn_saved": cfg.bn_saved} if cfg.bn_saved != "float32" else {}),
            "test_acc": self.state.last_eval["test_acc"], "test_loss": self.state.last_eval["test_loss"],
            "macs_per_sample": self.meter.macs_per_sample, "gbitops": self.meter.gbitops,
            "static_gbitops": static.static_gbitops, "static_bits": list(static.static_bits),
            "gbitops_saving": 1.0 - self.meter.gbitops / static.static_gbitops,
            "wall_s": round(wall_s, 3)}
        if self.warning:
            summary["warning"] = self.warning
        if self.state.range_test:
            summary["range_test"] = {k: self.state.range_test[k] for k in ("bounds", "iters", "gbitops")}
        if self.accel_cfg is not None:
            summary.update(accel_config=self.accel_cfg.name, accel_clock_mhz=self.accel_cfg.clock_mhz,
                           accel_cycles=cycles, accel_time_s=cycles / (self.accel_cfg.clock_mhz * 1e6))
        return summary

    def _write_outputs(self, summary: dict[str, Any]) -> None:
        it, fw, bw = self.schedule.sampled(self.total, PLOT_POINTS)
        records = list(read_metrics(self.out / "metrics.jsonl"))
        summary["plots"] = [str(p) for p in plot_run(records, it, fw, bw, self.out, summary["static_gbitops"],
                                                      f"{self.cfg.model}: {self.schedule.describe()}")]
        write_atomic(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")


def format_summary(s: dict[str, Any]) -> str:
    """The end-of-run lines ``cpt-hw train`` prints."""
    if "stopped_at" in s:
        why = f" ({s['signal']})" if s.get("signal") else ""
        return (f"stopped after iteration {s['stopped_at']} of {s['iters']}{why}; checkpoint written; continue "
                f"with: cpt-hw train --resume {shlex.quote(s['checkpoint'])}")
    lines = [f"test accuracy {100 * s['test_acc']:.2f} % ({s['model']} on {s['dataset']}, {s['schedule']} "
             f"{s['bits']}/{s['grad_bits']} bits, {s['iters']} iterations)",
             f"training cost {s['gbitops']:.4g} GBitOPs; static {s['static_bits'][0]}/{s['static_bits'][1]}: "
             f"{s['static_gbitops']:.4g} GBitOPs; saving {100 * s['gbitops_saving']:.1f} %"]
    if "range_test" in s:
        rt = s["range_test"]
        lines.append(f"precision range test: bounds {rt['bounds'][0]}-{rt['bounds'][1]} bits from {rt['iters']} "
                     f"iterations ({rt['gbitops']:.3g} GBitOPs, included above)")
    if "warning" in s:
        lines.append(f"warning: {s['warning']}")
    if "accel_cycles" in s:
        lines.append(f"accelerator time (modelled, {s['accel_config']} at {s['accel_clock_mhz']:g} MHz): "
                     f"{s['accel_time_s']:.4g} s for {s['accel_cycles']:,} cycles")
    return "\n".join(lines)
