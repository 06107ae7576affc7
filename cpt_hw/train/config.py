"""What one training run is: a frozen, validated :class:`TrainConfig` (what ``cpt-hw train`` builds).

Paper defaults (the CPT paper, arXiv 2101.09868, and its authors' code): SGD, lr 0.1, momentum 0.9, weight
decay 1e-4, lr x 0.1 at 50 % and 75 % of the iterations, CPT with 32 cycles.  The config is stored in every checkpoint; a resumed run takes
it from there, so its schedule, data order and learning rate continue where they stopped.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import CptHwError
from ..schedules import DEFAULT_CYCLES, SCHEDULE_KINDS, parse_bits_range, parse_shape

#: Longest run a config accepts: far beyond any real run (the paper's is 64,000), small enough that a typo
#: such as 99999999999999999999 is refused instead of training "forever".
MAX_ITERS = 10**9

#: More CPU threads than any machine has: torch would try to start them all.
MAX_THREADS = 1024

#: Fields a resumed run may change (where it runs and how it reports, never what it computes).
RESUME_OVERRIDABLE = ("device", "threads", "backend", "preset", "out", "stop_at", "log_every", "eval_every",
                      "checkpoint_every", "eval_batch", "data", "data_cache", "progress", "recompute_bn")


#: How BatchNorm layers keep their input for backward (``--bn-saved``; cpt_hw.nn.saved).
BN_SAVED = ("float32", "float16")


class TrainConfigError(CptHwError, ValueError):
    """A training option breaks a rule; the message names the option."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run.  ``bits``/``grad_bits`` are "N", "LO-HI" or (bits only) "auto"."""

    model: str
    dataset: str = "digits"
    data: str | None = None
    data_cache: str | None = None
    schedule: str = "cpt"
    bits: str = "3-8"
    grad_bits: str = "8"
    cycles: int = DEFAULT_CYCLES
    shape: str | None = None
    epochs: int | None = None
    iters: int | None = None
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_steps: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    backend: str = "torch"
    preset: str = "zc706"
    device: str = "cpu"
    fast: str = "auto"
    recompute_bn: str = "none"
    bn_saved: str = "float32"
    threads: int | None = None
    seed: int = 0
    out: str = "runs/latest"
    stop_at: int | None = None
    log_every: int = 10
    eval_every: int = 0
    checkpoint_every: int = 0
    eval_batch: int = 500
    range_threshold: float = 0.05
    range_steps: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.fast not in ("auto", "on", "off"):
            raise TrainConfigError(f"--fast {self.fast!r}: must be auto, on or off")
        if not re.fullmatch(r"none|all|[123](,[123])*", self.recompute_bn):
            raise TrainConfigError(f"--recompute-bn {self.recompute_bn!r}: expected none, all or ResNet stages "
                                   "from 1, 2, 3 (e.g. 1,2)")
        if self.recompute_bn != "none" and not self.backend.startswith(("exact", "accel")):
            raise TrainConfigError(f"--recompute-bn {self.recompute_bn}: only the integer backends (exact, accel:*) "
                                   f"recompute BatchNorm inputs; --backend {self.backend} keeps them")
        if self.bn_saved not in BN_SAVED:
            raise TrainConfigError(f"--bn-saved {self.bn_saved!r}: must be {' or '.join(BN_SAVED)}")
        if self.bn_saved != "float32" and self.fast == "on":
            raise TrainConfigError(f"--bn-saved {self.bn_saved}: not with --fast on (the CUDA fast path's graph "
                                   "keeps BatchNorm's saved tensors itself); use --fast off")
        if self.schedule not in SCHEDULE_KINDS:
            raise TrainConfigError(f"--schedule {self.schedule!r}: unknown (known: {', '.join(SCHEDULE_KINDS)})")
        self._check_bits()
        if self.shape is not None:
            parse_shape(self.shape)
            if self.schedule != "custom":
                raise TrainConfigError(f"--shape {self.shape!r} needs --schedule custom (got {self.schedule!r})")
        self._check_counts()
        self._check_optimiser()
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise TrainConfigError(f"--device {self.device!r}: must be cpu or cuda")
        if not 0 < self.range_threshold < 1:
            raise TrainConfigError(f"--range-threshold {self.range_threshold}: must be a fraction in (0, 1)")

    def _check_bits(self) -> None:
        """--bits and --grad-bits: well formed and within what every backend's quantizers run (0..MAX_BITS)."""
        for flag, text in (("--bits", self.bits), ("--grad-bits", self.grad_bits)):
            if flag == "--bits" and text == "auto":
                continue
            parse_bits_range(text, flag)

    def _check_counts(self) -> None:
        if (self.epochs is None) == (self.iters is None):
            raise TrainConfigError("give exactly one of --epochs and --iters")
        for name in ("epochs", "iters", "batch_size", "cycles", "eval_batch", "log_every", "threads", "stop_at",
                     "range_steps"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise TrainConfigError(f"--{name.replace('_', '-')} {v!r}: must be a positive integer")
        for name in ("iters", "epochs", "stop_at"):
            v = getattr(self, name)
            if v is not None and v > MAX_ITERS:
                raise TrainConfigError(f"--{name.replace('_', '-')} {v}: at most {MAX_ITERS:,}")
        if self.threads is not None and self.threads > MAX_THREADS:
            raise TrainConfigError(f"--threads {self.threads}: at most {MAX_THREADS}")
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise TrainConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not -(1 << 63) <= self.seed < 1 << 63:
            raise TrainConfigError(f"--seed {self.seed!r}: must be a 64-bit signed integer")

    def _check_optimiser(self) -> None:
        # NaN compares false with everything, so "lr > 0" alone let --lr nan through; require finite values.
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise TrainConfigError(f"--lr {self.lr}: must be a finite number > 0")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise TrainConfigError(f"--momentum {self.momentum}: must be in [0, 1)")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise TrainConfigError(f"--weight-decay {self.weight_decay}: must be a finite number >= 0")
        if any(not 0 < s < 1 for s in self.lr_steps) or list(self.lr_steps) != sorted(self.lr_steps):
            raise TrainConfigError(f"--lr-steps {self.lr_steps}: must be increasing fractions in (0, 1)")

    # ------------------------------------------------------------------ derived
    def total_iters(self, steps_per_epoch: int) -> int:
        return self.iters if self.iters is not None else self.epochs * steps_per_epoch  # type: ignore[operator]

    def lr_at(self, t: int, total_iters: int) -> float:
        """Step decay: lr x gamma^(number of milestones int(s x total_iters) <= t)."""
        drops = sum(1 for s in self.lr_steps if t >= int(s * total_iters))
        return self.lr * self.lr_gamma ** drops

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lr_steps"] = list(self.lr_steps)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        values["lr_steps"] = tuple(values.get("lr_steps", (0.5, 0.75)))
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)
