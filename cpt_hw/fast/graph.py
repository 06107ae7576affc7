"""A whole training iteration (zero_grad, forward, backward, SGD step, metrics) as one CUDA graph.

ResNets on 32 x 32 inputs at batch 128 are launch-bound on an H200: replaying a captured graph removes
the per-kernel CPU cost.  The graph reads its inputs from static tensors (the batch, and the
:class:`~cpt_hw.fast.layers.DevicePrecision` tensors), so neither a new batch nor a new precision needs a
new capture.  The learning rate is a Python float inside ``optimizer.step``; a new rate means a new
capture (:meth:`GraphedTrainStep.recapture`), which happens twice in the paper's recipe.

Capturing requires a few eager warm-up iterations (cuDNN autotuning, lazy optimizer state); they run on
the example batch and every tensor they change (parameters, optimizer state, BN and activation-range
buffers) is restored afterwards, so the first replay is the real iteration 0.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn


class GraphedTrainStep:
    """``step(x, y)`` = one SGD iteration of ``model`` on (x, y), replayed from a CUDA graph
    (``graph=False``: the same iteration run eagerly, e.g. on the CPU or under DDP).

    x: float32 (B, C, H, W) on the model's device; y: int64 (B,).  Loss and correct-prediction sums
    accumulate on the device (:meth:`read_metrics` synchronises once).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 x_example: torch.Tensor, y_example: torch.Tensor, warmup: int = 3, graph: bool = True) -> None:
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.static_x = x_example.detach().clone()
        self.static_y = y_example.detach().clone()
        dev = self.static_x.device
        self.loss_sum = torch.zeros((), dtype=torch.float32, device=dev)
        self.correct_sum = torch.zeros((), dtype=torch.int64, device=dev)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.use_graph = graph
        if graph:
            self._warmup(warmup)
            self.recapture()

    # ------------------------------------------------------------------ capture
    def _iteration(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(self.static_x)
        loss = self.loss_fn(logits, self.static_y)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.loss_sum.add_(loss.detach())
            self.correct_sum.add_((logits.argmax(1) == self.static_y).sum())

    def _warmup(self, iters: int) -> None:
        """Run ``iters`` eager iterations on a side stream, then restore every tensor they changed.

        Optimizer state created by the warm-up (SGD momentum buffers of a fresh run) is zeroed: with
        dampening 0, a zero buffer makes the first real step identical to a fresh one (buf = grad).
        """
        model_state = [t.detach().clone() for t in list(self.model.parameters()) + list(self.model.buffers())]
        opt_before = {id(v): v.detach().clone() for st in self.optimizer.state.values()
                      for v in st.values() if torch.is_tensor(v)}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(iters):
                self._iteration()
        torch.cuda.current_stream().wait_stream(stream)
        with torch.no_grad():
            for t, saved in zip(list(self.model.parameters()) + list(self.model.buffers()), model_state):
                t.copy_(saved)
            for st in self.optimizer.state.values():
                for v in st.values():
                    if torch.is_tensor(v):
                        v.copy_(opt_before[id(v)]) if id(v) in opt_before else v.zero_()
            self.loss_sum.zero_()
            self.correct_sum.zero_()

    def recapture(self) -> None:
        """(Re)capture the iteration, e.g. after a learning-rate change (no-op when eager)."""
        if not self.use_graph:
            return
        self.graph = None
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self._iteration()
        self.graph = graph

    # ------------------------------------------------------------------ use
    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.static_x.copy_(x, non_blocking=True)
        self.static_y.copy_(y, non_blocking=True)
        if self.graph is None:
            self._iteration()
        else:
            self.graph.replay()

    def read_metrics(self, reset: bool = True) -> tuple[float, int]:
        """(sum of losses, number of correct predictions) since the last reset; synchronises."""
        loss, correct = float(self.loss_sum), int(self.correct_sum)
        if reset:
            self.loss_sum.zero_()
            self.correct_sum.zero_()
        return loss, correct
