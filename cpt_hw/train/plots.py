"""PNG plots of a run (matplotlib, Agg backend): where people would rather look than read.

* ``bits_accuracy.png``: the scheduled forward and gradient precision per iteration (top) and training and
  test accuracy against iteration (bottom);
* ``accuracy_gbitops.png``: accuracy against the cumulative training cost in GBitOPs, with the cost of
  static training at the top precision marked;
* ``range_test.png`` (range test): training accuracy per precision and the chosen bounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..fileio import save_figure


def _figure(rows: int = 1, height: float = 3.2):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(rows, 1, figsize=(7.5, height * rows), squeeze=False)
    return fig, axes[:, 0]


def _save(fig: Any, path: Path) -> Path:
    return save_figure(fig, path, dpi=110)


def plot_run(records: Sequence[dict[str, Any]], it: np.ndarray, fw_bits: np.ndarray, bw_bits: np.ndarray,
             out_dir: Path, static_gbitops: float | None = None, title: str = "") -> list[Path]:
    """Write the two run plots into ``out_dir``; ``fw_bits``/``bw_bits`` are the schedule's precisions at
    iterations ``it`` (``PrecisionSchedule.arrays``)."""
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig, (ax_bits, ax_acc) = _figure(2)
    ax_bits.step(it, fw_bits, where="post", label="weights/activations (FW)", lw=1.2)
    ax_bits.step(it, bw_bits, where="post", label="errors (BW)", lw=1.0, ls="--")
    ax_bits.set_ylabel("bits")
    ax_bits.set_title(title or "precision schedule")
    ax_bits.legend(loc="lower right", fontsize=8)
    if train:
        ax_acc.plot([r["iter"] for r in train], [100 * r["acc"] for r in train], label="train (batch)", lw=1)
    if evals:
        ax_acc.plot([r["iter"] for r in evals], [100 * r["test_acc"] for r in evals], "o-", label="test", ms=3)
    ax_acc.set_xlabel("iteration")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.legend(loc="lower right", fontsize=8)
    paths = [_save(fig, out_dir / "bits_accuracy.png")]

    fig, (ax,) = _figure(1, 3.6)
    if train:
        ax.plot([r["gbitops"] for r in train], [100 * r["acc"] for r in train], label="train (batch)", lw=1)
    if evals:
        ax.plot([r["gbitops"] for r in evals], [100 * r["test_acc"] for r in evals], "o-", label="test", ms=3)
    if static_gbitops:
        ax.axvline(static_gbitops, color="grey", ls=":", label="static top-precision cost")
    ax.set_xlabel("training cost (GBitOPs)")
    ax.set_ylabel("accuracy (%)")
    ax.legend(loc="lower right", fontsize=8)
    paths.append(_save(fig, out_dir / "accuracy_gbitops.png"))
    return paths


def plot_range_test(bits: Sequence[int], acc: Sequence[float], bounds: tuple[int, int], threshold: float,
                    path: Path) -> Path:
    fig, (ax,) = _figure(1, 3.4)
    ax.plot(list(bits), [100 * a for a in acc], "o-")
    for b, name in zip(bounds, ("bmin", "bmax")):
        ax.axvline(b, color="grey", ls=":")
        ax.annotate(f"{name} = {b}", (b, ax.get_ylim()[0]), xytext=(3, 5), textcoords="offset points", fontsize=8)
    ax.set_xlabel("precision (bits)")
    ax.set_ylabel("training accuracy (%)")
    ax.set_title(f"precision range test (threshold {100 * threshold:.1f} points)")
    return _save(fig, path)
