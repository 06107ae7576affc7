"""Precision schedules: which bit-width training uses at iteration t.

Every schedule is a callable ``sched(t) -> int`` over iterations ``t = 0, 1, ..., total_iters - 1`` and also
evaluates whole arrays of iterations at once (:meth:`Schedule.bits_array`), which BitOPs accounting uses.
The trainer asks the schedule for the forward (weight/activation) precision and a second schedule of the
same kind for the gradient (error) precision every iteration (:class:`PrecisionSchedule`).

CPT, as the reference implementation (the authors' code, GATECH-EIC/CPT) computes it: cycle length
T = total_iters // num_cycles and

    bits(t) = rint(bmin + 0.5 (bmax - bmin) (1 + cos(pi ((t mod T) / T) + pi)))

with rint = round half to even; 1 + cos(x + pi) = 1 - cos(x), so each cycle is a half-cosine ramp from bmin
up to bmax followed by a jump back to bmin.  The expression is evaluated in float64 exactly in the
reference's order of operations, so ties fall the same way (3-8 bits over 64,000 iterations spends
13120/10528/8352/8384/10528/13088 iterations at 3/4/5/6/7/8 bits).

Other schedules: static, progressive (bmin -> bmax in equal stages over the first half, then bmax) and cyclic
with a triangular or a user-supplied shape (a function of the phase in [0, 1) returning a fraction in
[0, 1], or a list of points interpolated linearly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import CptHwError

#: The paper's number of precision cycles (the reference code's default of 1 is not what the paper ran).
DEFAULT_CYCLES = 32

#: Schedule kinds the CLI accepts for ``--schedule``.
SCHEDULE_KINDS = ("cpt", "static", "progressive", "triangular", "custom")

#: Largest precision a schedule may ask for: the quantizers' limit (``cpt_hw.nn.context`` checks every
#: precision against it).  Defined here, with no torch import, so that the CLIs check flags before any work.
MAX_BITS = 16


class ScheduleError(CptHwError, ValueError):
    """A schedule parameter breaks a rule; the message names it."""


def _check_bits(bmin: int, bmax: int) -> None:
    for name, v in (("bmin", bmin), ("bmax", bmax)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ScheduleError(f"{name} = {v!r}: must be a non-negative integer (0 = full precision)")
    if bmin > bmax:
        raise ScheduleError(f"bmin = {bmin} > bmax = {bmax}: the lower bound must not exceed the upper bound")
    if bmin == 0 and bmax != 0:
        raise ScheduleError("bmin = 0 (full precision) can only be combined with bmax = 0")


def _check_iters(total_iters: int) -> None:
    if not isinstance(total_iters, (int, np.integer)) or isinstance(total_iters, bool) or total_iters < 1:
        raise ScheduleError(f"total_iters = {total_iters!r}: must be a positive integer")


def _check_cycles(num_cycles: int, total_iters: int) -> None:
    _check_iters(total_iters)
    if not isinstance(num_cycles, (int, np.integer)) or isinstance(num_cycles, bool) \
            or not 1 <= num_cycles <= total_iters:
        raise ScheduleError(f"num_cycles (--cycles) = {num_cycles!r}: must be an integer in 1..total_iters "
                            f"({total_iters}): a cycle needs at least one iteration")


#: Schedules that repeat a cycle of ``total_iters // num_cycles`` iterations.
CYCLIC_KINDS = ("cpt", "triangular", "custom")


def short_cycle_warning(kind: str, bits: tuple[int, int], grad_bits: tuple[int, int], total_iters: int,
                        num_cycles: int) -> str | None:
    """A warning when a cyclic schedule's cycle is shorter than the number of precisions it should step
    through, else None.

    Such a cycle hardly leaves the low end (``--iters 60`` with 32 cycles of 3-8 bits: every cycle is one
    iteration, all at 3 bits) while the run is still labelled "cpt 3-8".  A warning rather than an error:
    short smoke runs (tests, benchmarks' quick modes) use such schedules on purpose.
    """
    if kind not in CYCLIC_KINDS or total_iters < 1 or num_cycles < 1:
        return None
    levels = max(hi - lo + 1 for lo, hi in (bits, grad_bits))
    period = total_iters // num_cycles
    if levels <= 1 or period >= levels:
        return None
    most = total_iters // levels
    fix = f"--cycles {most} or fewer" if most else f"at least {levels} iterations"
    return (f"--cycles {num_cycles} over {total_iters} iterations: cycles of {period} iteration(s) cannot step "
            f"through the {levels} precisions of --bits {bits[0]}-{bits[1]} / --grad-bits "
            f"{grad_bits[0]}-{grad_bits[1]}, so most steps run at the low end; use {fix}")


class Schedule:
    """Base class: subclasses implement :meth:`bits_array`; ``sched(t)`` evaluates one iteration."""

    bmin: int
    bmax: int

    def bits_array(self, t: np.ndarray) -> np.ndarray:
        """Bits (int64 array) at iterations ``t`` (non-negative int64 array of any shape)."""
        raise NotImplementedError

    def __call__(self, t: int) -> int:
        if t < 0:
            raise ScheduleError(f"iteration t = {t}: must be >= 0")
        return int(self.bits_array(np.asarray([t], dtype=np.int64))[0])

    def histogram(self, total_iters: int) -> dict[int, int]:
        """{bits: number of iterations at that precision} over iterations 0..total_iters-1."""
        values, counts = np.unique(self.bits_array(np.arange(total_iters, dtype=np.int64)), return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class StaticPrecision(Schedule):
    """The same precision at every iteration (the paper's SBM baseline); 0 means full precision."""

    bits: int

    def __post_init__(self) -> None:
        _check_bits(self.bits, self.bits)

    @property
    def bmin(self) -> int:  # type: ignore[override]
        return self.bits

    @property
    def bmax(self) -> int:  # type: ignore[override]
        return self.bits

    def bits_array(self, t: np.ndarray) -> np.ndarray:
        return np.full(np.shape(t), self.bits, dtype=np.int64)

    def describe(self) -> str:
        return f"static {self.bits}"


class _Cyclic(Schedule):
    """What the cyclic schedules share: their checks and the period T."""

    num_cycles: int
    total_iters: int

    def __post_init__(self) -> None:
        _check_bits(self.bmin, self.bmax)
        _check_cycles(self.num_cycles, self.total_iters)

    @property
    def period(self) -> int:
        """T = total_iters // num_cycles iterations per cycle."""
        return self.total_iters // self.num_cycles


@dataclass(frozen=True)
class CyclicPrecision(_Cyclic):
    """The paper's cosine cyclic precision: ``num_cycles`` ramps bmin -> bmax over ``total_iters`` iterations.

    Iterations beyond ``num_cycles * T`` (when total_iters is not a multiple of num_cycles) start another,
    partial cycle, as in the reference.
    """

    bmin: int
    bmax: int
    num_cycles: int = DEFAULT_CYCLES
    total_iters: int = 64000

    def bits_array(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.int64)
        if self.bmin == self.bmax:
            return np.full(t.shape, self.bmin, dtype=np.int64)
        period = self.period
        phase = (t % period) / period  # float64, as the reference's Python/numpy arithmetic
        value = self.bmin + 0.5 * (self.bmax - self.bmin) * (1 + np.cos(np.pi * phase + np.pi))
        return np.rint(value).astype(np.int64)

    def describe(self) -> str:
        return f"cpt {self.bmin}-{self.bmax}, {self.num_cycles} cycles of {self.period} iterations"


@dataclass(frozen=True)
class ProgressivePrecision(Schedule):
    """bmin -> bmax in equal-length stages over the first half of training, then bmax for the second half.

    Stage k (k = 0 .. bmax - bmin) covers iterations [k H / L, (k+1) H / L) with H = total_iters // 2 and
    L = bmax - bmin + 1 levels.
    """

    bmin: int
    bmax: int
    total_iters: int

    def __post_init__(self) -> None:
        _check_bits(self.bmin, self.bmax)
        _check_iters(self.total_iters)

    def bits_array(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.int64)
        half = max(self.total_iters // 2, 1)
        levels = self.bmax - self.bmin + 1
        stage = np.minimum(t * levels // half, levels - 1)
        return (self.bmin + stage).astype(np.int64)

    def describe(self) -> str:
        return f"progressive {self.bmin}-{self.bmax} over the first {self.total_iters // 2} iterations"


def triangular_shape(phase: np.ndarray) -> np.ndarray:
    """Up then down: 0 at phase 0, 1 at phase 0.5, back towards 0 at phase 1."""
    return 1.0 - np.abs(2.0 * phase - 1.0)


def piecewise_linear_shape(points: Sequence[float]) -> Callable[[np.ndarray], np.ndarray]:
    """Shape through ``points`` (fractions in [0, 1]) placed evenly over one cycle, interpolated linearly.

    ``[0, 1]`` is a linear ramp; ``[0, 1, 0]`` is the triangle; the last point is reached at the cycle's end.
    """
    pts = np.asarray([float(p) for p in points], dtype=np.float64)
    if pts.size < 2:
        raise ScheduleError(f"shape points {list(points)!r}: need at least two values")
    if not np.all(np.isfinite(pts)) or pts.min() < 0.0 or pts.max() > 1.0:
        raise ScheduleError(f"shape points {list(points)!r}: every value must be a fraction in [0, 1]")
    xs = np.linspace(0.0, 1.0, pts.size)
    return lambda phase: np.interp(phase, xs, pts)


@dataclass(frozen=True)
class ShapedCyclicPrecision(_Cyclic):
    """Cyclic precision with any shape: bits(t) = rint(bmin + (bmax - bmin) shape((t mod T) / T))."""

    bmin: int
    bmax: int
    num_cycles: int
    total_iters: int
    shape: Callable[[np.ndarray], np.ndarray] = triangular_shape
    name: str = "triangular"

    def bits_array(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.int64)
        phase = (t % self.period) / self.period
        frac = np.asarray(self.shape(phase), dtype=np.float64)
        if frac.shape != phase.shape or not np.all(np.isfinite(frac)) or frac.min(initial=0) < 0 \
                or frac.max(initial=0) > 1:
            raise ScheduleError(f"{self.name} shape: must map phases in [0, 1) to fractions in [0, 1]")
        return np.rint(self.bmin + (self.bmax - self.bmin) * frac).astype(np.int64)

    def describe(self) -> str:
        return f"{self.name} cyclic {self.bmin}-{self.bmax}, {self.num_cycles} cycles of {self.period} iterations"


def make_schedule(kind: str, bmin: int, bmax: int, total_iters: int, num_cycles: int = DEFAULT_CYCLES,
                  shape: Sequence[float] | Callable[[np.ndarray], np.ndarray] | None = None) -> Schedule:
    """Build a schedule by name (one of :data:`SCHEDULE_KINDS`).

    ``static`` uses ``bmax`` (static training "at the top precision"); ``custom`` needs ``shape``.
    """
    if kind == "cpt":
        return CyclicPrecision(bmin, bmax, num_cycles, total_iters)
    if kind == "static":
        _check_bits(bmin, bmax)
        return StaticPrecision(bmax)
    if kind == "progressive":
        return ProgressivePrecision(bmin, bmax, total_iters)
    if kind == "triangular":
        return ShapedCyclicPrecision(bmin, bmax, num_cycles, total_iters)
    if kind == "custom":
        if shape is None:
            raise ScheduleError("schedule 'custom' needs a shape (e.g. --shape 0,1,0.5)")
        fn = shape if callable(shape) else piecewise_linear_shape(shape)
        return ShapedCyclicPrecision(bmin, bmax, num_cycles, total_iters, fn, "custom")
    raise ScheduleError(f"unknown schedule {kind!r} (known: {', '.join(SCHEDULE_KINDS)})")


def parse_bits_range(text: str, what: str = "--bits") -> tuple[int, int]:
    """``"3-8"`` -> (3, 8); ``"8"`` -> (8, 8); refused unless 0 (full precision) or 1..MAX_BITS.

    The quantizers' ceiling (:data:`MAX_BITS`) is checked here, where every ``--bits``-style flag is parsed,
    so that a run is refused before it starts and the error names the flag (``what``).
    """
    lo, sep, hi = str(text).partition("-")
    try:
        bmin, bmax = (int(lo), int(hi)) if sep else (int(lo), int(lo))
    except ValueError:
        raise ScheduleError(f"{what} {text!r}: expected N or LO-HI, e.g. 8 or 3-8") from None
    try:
        _check_bits(bmin, bmax)
    except ScheduleError as e:
        raise ScheduleError(f"{what} {text!r}: {e}") from None
    if bmax > MAX_BITS:
        raise ScheduleError(f"{what} {text!r}: at most {MAX_BITS} bits, the quantizers' limit (0 = full precision)")
    return bmin, bmax


def parse_shape(text: str) -> list[float]:
    """``"0,1,0.5"`` -> [0.0, 1.0, 0.5]."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ScheduleError(f"--shape {text!r}: expected comma-separated fractions, e.g. 0,1,0") from None


@dataclass(frozen=True)
class PrecisionSchedule:
    """Forward (weights/activations) and gradient (errors) precision, scheduled the same way.

    ``at(t) -> (fw_bits, bw_bits)``.  With equal bounds the gradient schedule is a constant.
    """

    fw: Schedule
    bw: Schedule

    @classmethod
    def build(cls, kind: str, bits: tuple[int, int], grad_bits: tuple[int, int], total_iters: int,
              num_cycles: int = DEFAULT_CYCLES,
              shape: Sequence[float] | Callable[[np.ndarray], np.ndarray] | None = None) -> "PrecisionSchedule":
        return cls(make_schedule(kind, *bits, total_iters, num_cycles, shape),
                   make_schedule(kind, *grad_bits, total_iters, num_cycles, shape))

    def at(self, t: int) -> tuple[int, int]:
        return self.fw(t), self.bw(t)

    def arrays(self, total_iters: int) -> tuple[np.ndarray, np.ndarray]:
        """(fw, bw) int64 arrays over iterations 0..total_iters-1."""
        t = np.arange(total_iters, dtype=np.int64)
        return self.fw.bits_array(t), self.bw.bits_array(t)

    def sampled(self, total_iters: int, max_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t, fw, bw): at most ``max_points`` evenly spaced iterations t of 0..total_iters-1 (every one when
        the run is that short; the first and the last always) and their precisions, so that a plot of a run of
        any length allocates a few MiB at most."""
        if total_iters <= max_points:
            t = np.arange(total_iters, dtype=np.int64)
        else:
            t = np.unique(np.linspace(0, total_iters - 1, max_points).astype(np.int64))
        return t, self.fw.bits_array(t), self.bw.bits_array(t)

    def describe(self) -> str:
        return f"fw {self.fw.describe()}; bw {self.bw.describe()}"
