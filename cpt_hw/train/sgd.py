"""SGD with momentum and weight decay, without ``torch.optim``: the host side of training on the board.

``torch.optim.SGD``'s constructor (``torch.optim.Optimizer.__init__``) imports ``torch._dynamo`` and with it
sympy: 68 MB of RSS in torch 2.13 on x86 before the first iteration, a ninth of the 600 MB the board's host
side may use (docs/zc706-pynq.md, "Memory").  :class:`SGD` does the same arithmetic as ``torch.optim.SGD``'s
single-tensor path (``foreach=False``, the default for CPU tensors), op for op, so parameters agree bit for
bit (tests/test_sgd.py), and its :meth:`~SGD.state_dict` has ``torch.optim.SGD``'s layout, so checkpoints
load into either.

Per parameter p with gradient g, in float32 like p (torch.optim.SGD's formula, ``maximize`` False)::

    g = g + weight_decay * p                          (if weight_decay != 0)
    buf = g  (first step) | momentum * buf + (1 - dampening) * g
    g = g + momentum * buf  (nesterov) | buf          (if momentum != 0)
    p = p - lr * g
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch

#: Group keys torch.optim.SGD keeps and this class does not implement: saved with torch.optim.SGD's defaults
#: (foreach None: the single-tensor path for CPU tensors, which this class computes), so that a state dict
#: round-trips through torch.optim.SGD and a checkpoint resumed on CUDA gets torch's CUDA default there.
_TORCH_ONLY = {"maximize": False, "foreach": None, "differentiable": False, "fused": None}
#: Of those, the ones that change the update: a loaded state dict setting them is refused.
_REFUSED = ("maximize", "differentiable", "fused")


class SGD:
    """One parameter group of SGD, ``torch.optim.SGD``'s single-tensor arithmetic (see the module docstring).

    ``param_groups[0]["lr"]`` may be changed between steps, as with torch.optim (the trainer's schedule)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], *, lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        for name, value in (("lr", lr), ("momentum", momentum), ("dampening", dampening),
                            ("weight_decay", weight_decay)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"SGD {name} {value!r}: must be a finite number >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD nesterov with momentum {momentum} and dampening {dampening}: "
                             "needs momentum > 0 and dampening 0")
        plist = list(params)
        if not plist:
            raise ValueError("SGD params: got no parameters")
        self.param_groups: list[dict[str, Any]] = [{
            "params": plist, "lr": float(lr), "momentum": float(momentum), "dampening": float(dampening),
            "weight_decay": float(weight_decay), "nesterov": bool(nesterov), **_TORCH_ONLY}]
        #: parameter -> {"momentum_buffer": tensor}, as torch.optim.Optimizer.state (after the first step).
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
                continue
            if p.grad.grad_fn is not None:  # as torch.optim: a gradient kept from a graph is detached first
                p.grad.detach_()
            else:
                p.grad.requires_grad_(False)
            p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (others are skipped, as by torch.optim)."""
        group = self.param_groups[0]
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov = group["weight_decay"], group["nesterov"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            if weight_decay != 0:
                grad = grad.add(p, alpha=weight_decay)
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = grad.detach().clone()
                else:
                    buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                grad = grad.add(buf, alpha=momentum) if nesterov else buf
            p.add_(grad, alpha=-lr)

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.SGD.state_dict()``'s layout: parameters as indices, the buffers by reference."""
        group = self.param_groups[0]
        index = {id(p): i for i, p in enumerate(group["params"])}
        return {"state": {index[id(p)]: dict(s) for p, s in self.state.items()},
                "param_groups": [{**{k: v for k, v in group.items() if k != "params"},
                                  "params": list(range(len(group["params"])))}]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this class or of ``torch.optim.SGD`` (one group, the same parameters in the same
        order); the buffers are copied to each parameter's device and dtype.  ValueError names what does not fit."""
        groups = state_dict.get("param_groups")
        if not isinstance(groups, list) or len(groups) != 1:
            raise ValueError(f"SGD state dict: expected one parameter group, got "
                             f"{len(groups) if isinstance(groups, list) else type(groups).__name__}")
        saved, params = groups[0], self.param_groups[0]["params"]
        if len(saved.get("params", ())) != len(params):
            raise ValueError(f"SGD state dict: {len(saved.get('params', ()))} parameters, this optimizer has "
                             f"{len(params)}")
        for key in _REFUSED:
            if saved.get(key):
                raise ValueError(f"SGD state dict: {key}={saved[key]!r} is not supported")
        by_id = dict(zip(saved["params"], params))
        state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        for pid, entry in state_dict.get("state", {}).items():
            p = by_id.get(pid)
            if p is None:
                raise ValueError(f"SGD state dict: state for parameter id {pid!r}, which no group lists")
            buf = entry.get("momentum_buffer")
            if buf is None:
                continue
            if tuple(buf.shape) != tuple(p.shape):
                raise ValueError(f"SGD state dict: momentum buffer of parameter {pid} has shape "
                                 f"{tuple(buf.shape)}, the parameter {tuple(p.shape)}")
            state[p] = {"momentum_buffer": buf.detach().to(device=p.device, dtype=p.dtype, copy=True)}
        group = self.param_groups[0]
        for key in ("lr", "momentum", "dampening", "weight_decay", "nesterov"):
            if key in saved:
                group[key] = saved[key]
        self.state = state


def make_sgd(params: Iterable[torch.nn.Parameter], *, lr: float, momentum: float, weight_decay: float,
             device: torch.device, fast: bool) -> "SGD | torch.optim.SGD":
    """The trainer's optimizer: :class:`SGD` on the CPU (the board's host, ``accel:*`` and ``exact`` runs: the
    same arithmetic as ``torch.optim.SGD``'s CPU default, without its 68 MB import), ``torch.optim.SGD``
    on CUDA (its foreach kernels; the fast path's CUDA graphs capture its step)."""
    if device.type == "cpu" and not fast:
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
