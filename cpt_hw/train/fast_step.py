"""The trainer's CUDA fast path (``cpt-hw train --fast``; on by default for CUDA with a torch backend).

Per iteration: three tensor writes and one small kernel (every layer's noise seeds) set the precision
(:class:`cpt_hw.fast.DevicePrecision`), the batch
comes from the device-resident pipeline, and the whole iteration replays from a CUDA graph
(:class:`cpt_hw.fast.graph.GraphedTrainStep`); nothing waits for the GPU except at the log, evaluation
and checkpoint boundaries, where the accumulated loss/accuracy sums are read once.  The graph is
captured again when the learning rate changes (twice in the paper's recipe).  Under DDP, or on the CPU,
the same iteration runs eagerly.  Precision 0 (a float baseline) trains the plain layers, graph and all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..errors import CptHwError

if TYPE_CHECKING:
    from ..fast.graph import GraphedTrainStep

FAST_MODES = ("auto", "on", "off")


def fast_mode(setting: str, device: torch.device, backend: str, bits: tuple[int, int], grad_bits: tuple[int, int]) -> bool:
    """Whether a run uses the fast path: ``auto`` = CUDA with a torch backend; ``on`` insists."""
    if setting not in FAST_MODES:
        raise CptHwError(f"--fast {setting!r}: must be one of {', '.join(FAST_MODES)}")
    supported = backend.split(":")[0] == "torch" and not (bits[1] > 0 and grad_bits[0] == 0)
    if setting == "on" and not supported:
        raise CptHwError(f"--fast on: needs a torch backend (not {backend!r}) and quantized errors whenever the "
                         "forward pass is quantized (--grad-bits >= 1)")
    return setting == "on" or (setting == "auto" and supported and device.type == "cuda")


class FastStepper:
    """Runs training iterations on the fast path; ``step`` returns (loss sum, correct, samples) float64
    on the CPU at sync points and zeros elsewhere (no synchronisation)."""

    def __init__(self, net: torch.nn.Module, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches,
                 *, quantized: bool, hardware: bool, seed: int, graph: bool) -> None:
        # Imported here, not with the module: cpt_hw.fast compiles its quantizers with torch.compile, which
        # loads torch._dynamo and sympy (68 MB), and the trainer's CPU runs (the board's host) never use it.
        from ..fast import DevicePrecision, enable_fast

        self.net, self.model, self.optimizer, self.batches = net, model, optimizer, batches
        self.dp = DevicePrecision(batches.device, seed=seed, hardware=hardware) if quantized else None
        if self.dp is not None:
            enable_fast(model, self.dp)
        self.use_graph = graph
        self.runner: GraphedTrainStep | None = None
        self.lr: float | None = None
        self.pending = 0

    def set_precision(self, fw: int, bw: int, step: int) -> None:
        if self.dp is not None:
            self.dp.set(fw, max(bw, 1), step)

    def step(self, t: int, fw: int, bw: int, lr: float, sync: bool) -> torch.Tensor:
        self.set_precision(fw, bw, t)
        x, y = self.batches.get(t)
        if lr != self.lr:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if self.runner is None:
                from ..fast.graph import GraphedTrainStep

                self.runner = GraphedTrainStep(self.net, self.optimizer, F.cross_entropy, x, y, graph=self.use_graph)
            else:
                self.runner.recapture()
            self.lr = lr
        self.runner.step(x, y)
        self.pending += 1
        if not sync:
            return torch.zeros(3, dtype=torch.float64)
        loss, correct = self.runner.read_metrics()
        samples = self.pending * len(y)
        self.pending = 0
        return torch.tensor([loss * len(y), float(correct), float(samples)], dtype=torch.float64)
