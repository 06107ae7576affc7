"""Loss landscapes around a trained model (Li et al., NeurIPS 2018), as the CPT paper's Fig. 2 draws them.

f(alpha, beta) = L(theta* + alpha delta + beta eta), with delta and eta random Gaussian directions that are
**filter-normalised**: for every filter (output channel) of every conv/linear weight, the direction's
filter is rescaled to the norm of the model's filter, so the plot is comparable across models whatever
their weight scale.  Biases and BatchNorm parameters are not perturbed (their direction is zero), as in
Li et al.  The loss is the mean cross-entropy over a fixed subset of the training set, in eval mode
(BatchNorm running statistics), at a fixed precision (default: the last one the run trained at).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import CptHwError
from ..fileio import save_figure, write_atomic


@dataclass(frozen=True)
class Landscape:
    """Losses and accuracies on a (steps x steps) grid of (alpha, beta) in [-span, span]^2."""

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray      # (len(betas), len(alphas))
    acc: np.ndarray
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"alphas": self.alphas.tolist(), "betas": self.betas.tolist(), "loss": self.loss.tolist(),
                "acc": self.acc.tolist(), **self.meta}


def filter_normalised_direction(params: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """A random direction shaped like ``params``; weights (dim > 1) filter-normalised, others zero."""
    direction = []
    for p in params:
        if p.dim() <= 1:
            direction.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
        d_norm = d.reshape(d.shape[0], -1).norm(dim=1).clamp_min(1e-12)
        p_norm = p.reshape(p.shape[0], -1).norm(dim=1)
        direction.append(d * (p_norm / d_norm).reshape((-1,) + (1,) * (p.dim() - 1)))
    return direction


@torch.no_grad()
def _loss_and_acc(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    total_loss, correct, count = 0.0, 0, 0
    for x, y in batches:
        logits = model(x)
        total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        count += len(y)
    return total_loss / count, correct / count


def check_grid(steps: int, span: float) -> None:
    """An odd number of points per axis, so the trained model itself is the grid's centre."""
    if steps < 3 or steps % 2 == 0:
        raise CptHwError(f"--steps {steps}: need an odd number >= 3 (the trained model is the grid's centre)")
    if not span > 0:
        raise CptHwError(f"--span {span}: must be positive")


@torch.no_grad()
def compute_landscape(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], *, steps: int = 21,
                      span: float = 1.0, seed: int = 0, progress: bool = True) -> Landscape:
    """Evaluate the loss on the grid; ``model`` is restored to theta* afterwards."""
    check_grid(steps, span)
    params = [p for p in model.parameters()]
    theta = [p.detach().clone() for p in params]
    g = torch.Generator().manual_seed(seed)
    delta = filter_normalised_direction(theta, g)
    eta = filter_normalised_direction(theta, g)
    alphas = np.linspace(-span, span, steps)
    betas = np.linspace(-span, span, steps)
    loss = np.zeros((steps, steps))
    acc = np.zeros((steps, steps))
    model.eval()
    bar = tqdm(total=steps * steps, desc="landscape", unit="pt", disable=not progress)
    try:
        for i, b in enumerate(betas):
            for j, a in enumerate(alphas):
                for p, t, d, e in zip(params, theta, delta, eta):
                    p.copy_(t + float(a) * d + float(b) * e)
                loss[i, j], acc[i, j] = _loss_and_acc(model, batches)
                bar.update(1)
    finally:
        bar.close()
        for p, t in zip(params, theta):
            p.copy_(t)
    return Landscape(alphas, betas, loss, acc, {"steps": steps, "span": span, "seed": seed})


def plot_landscapes(landscapes: dict[str, Landscape], path: str | Path, levels: int = 30) -> Path:
    """Side-by-side contour plots (one per run), on shared loss levels, written atomically as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Far from the trained weights the loss can overflow: such points are left blank, not drawn.
    losses = {name: np.where(np.isfinite(ls.loss), ls.loss, np.nan) for name, ls in landscapes.items()}
    finite = [loss[np.isfinite(loss)] for loss in losses.values()]
    if any(f.size == 0 for f in finite):
        raise CptHwError("loss landscape: no finite loss on the grid of one of the checkpoints; nothing to draw")
    lo = min(float(f.min()) for f in finite)
    hi = max(float(np.percentile(f, 90)) for f in finite)
    contour_levels = np.linspace(lo, max(hi, lo + 1e-6), levels)  # levels must increase, even on a flat grid
    fig, axes = plt.subplots(1, len(landscapes), figsize=(5 * len(landscapes), 4.4), squeeze=False)
    for ax, (name, ls) in zip(axes[0], landscapes.items()):
        cs = ax.contour(ls.alphas, ls.betas, losses[name], levels=contour_levels, cmap="viridis", linewidths=0.9)
        ax.clabel(cs, cs.levels[::5], fontsize=7, fmt="%.2f")
        ax.plot([0], [0], "r+", markersize=10)
        ax.set_title(f"{name}\nloss at centre {ls.loss[len(ls.betas) // 2, len(ls.alphas) // 2]:.3f}")
        ax.set_xlabel("alpha (filter-normalised direction 1)")
        ax.set_ylabel("beta (direction 2)")
        ax.set_aspect("equal")
    return save_figure(fig, path, dpi=120)


def save_landscape(ls: Landscape, path: str | Path) -> None:
    write_atomic(path, json.dumps(ls.to_dict()) + "\n")
