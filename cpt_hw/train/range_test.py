"""The precision range test (CPT paper, section 3.2): find the bounds of the cyclic schedule.

Training starts from scratch at the lowest precision (2 bits) and raises the forward precision by one bit
every ``steps_per_bit`` iterations during the first epoch.  For each precision the training accuracy is
averaged over the second half of its window (the first half lets the model adapt to the new precision).
The lower bound bmin is the first precision at which that accuracy rises over the previous precision's
(for 2 bits: over chance level, 1 / classes) by more than ``threshold``: the point where training starts
to converge at least partially.  The test stops there, as the paper's does, so it costs a fraction of an
epoch.

The upper bound: the paper pairs every CPT range with a static baseline at the range's top (3-8 with 8/8,
3-6 with 6/6, 4-8 with 8/8: Table 2), i.e. bmax is the precision one would otherwise train at statically.
The test therefore takes bmax = ``cap`` (the hardware's largest precision for ``accel``, else 8) and only
searches bmin; ``cpt-hw range-test --max-bits`` sets another cap.

The gradient precision stays at its top value throughout (the paper cycles the forward precision only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import CptHwError
from . import bitops as _bitops
from . import distributed, frontend
from .batches import Batches
from .config import TrainConfig
from .sgd import make_sgd

START_BITS = 2
MIN_STEPS_PER_BIT = 8


@dataclass(frozen=True)
class RangeTestResult:
    bits: list[int]
    acc: list[float]
    gains: list[float]
    bounds: tuple[int, int]
    threshold: float
    chance: float
    steps_per_bit: int
    iters: int
    gbitops: float
    converged: bool

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bounds"] = list(self.bounds)
        return d

    def table(self) -> str:
        rows = [f"precision range test ({self.steps_per_bit} iterations per precision, threshold "
                f"{100 * self.threshold:.1f} points over the previous precision; chance {100 * self.chance:.1f} %)",
                "  bits  train acc  change"]
        for b, a, g in zip(self.bits, self.acc, self.gains):
            mark = "  <- bmin" if b == self.bounds[0] and self.converged else ""
            rows.append(f"  {b:4d}  {100 * a:8.2f}%  {100 * g:+6.2f}{mark}")
        if not self.converged:
            rows.append(f"  the change never exceeded the threshold up to {self.bounds[1]} bits: bmin = bmax")
        rows.append(f"bounds: bmin = {self.bounds[0]}, bmax = {self.bounds[1]}")
        return "\n".join(rows)


def run_range_test(model: torch.nn.Module, batches: Batches, cfg: TrainConfig, *, grad_bits: int, cap: int,
                   num_classes: int, dist: distributed.DistInfo = distributed.DistInfo(),
                   meter: _bitops.BitopsMeter | None = None, steps_per_bit: int | None = None
                   ) -> RangeTestResult:
    """Train ``model`` (fresh; changed in place) from 2 bits upward; see the module docstring."""
    if cap < START_BITS:
        raise CptHwError(f"range test: the largest precision {cap} is below the start of {START_BITS} bits")
    levels = cap - START_BITS + 1
    steps = steps_per_bit or cfg.range_steps or max(batches.steps_per_epoch // levels, MIN_STEPS_PER_BIT)
    optimizer = make_sgd(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                         device=batches.device, fast=False)
    net: torch.nn.Module = model
    if dist.enabled:
        ids = [batches.device.index] if batches.device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    start_total = meter.total if meter is not None else 0
    chance = 1.0 / num_classes
    bits, accs, gains = [], [], []
    previous, bmin, converged, t = chance, cap, False, 0
    bar = tqdm(total=levels * steps, desc="range test", unit="it", disable=not (dist.is_main and cfg.progress),
               dynamic_ncols=True, leave=False)
    model.train()
    for b in range(START_BITS, cap + 1):
        correct = torch.zeros(2, dtype=torch.float64)
        for i in range(steps):
            frontend.set_precision(b, grad_bits, t, cfg.seed ^ (dist.rank * 0x9E3779B97F4A7C15))
            x, y = batches.get(t)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if meter is not None:
                meter.add(cfg.batch_size, b, grad_bits)
            if i >= steps // 2:
                correct += torch.tensor([(logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64)
            t += 1
            bar.update(1)
        correct = distributed.all_sum(correct.to(batches.device), dist).cpu()
        acc = float(correct[0] / correct[1])
        bits.append(b)
        accs.append(acc)
        gains.append(acc - previous)
        bar.set_postfix_str(f"{b} bits: acc {100 * acc:.1f}%", refresh=False)
        if acc - previous > cfg.range_threshold:
            bmin, converged = b, True
            break
        previous = acc
    bar.close()
    spent = (meter.total - start_total) / 1e9 if meter is not None else 0.0
    return RangeTestResult(bits, accs, gains, (bmin, cap), cfg.range_threshold, chance, steps, t, spent, converged)
