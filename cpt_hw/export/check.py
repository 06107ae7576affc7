"""``--check N``: the compiled hls4ml C++ model against the quantized PyTorch model on N test images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .fold import ExportError
from .precision import ACT_FRAC_BITS, output_lsb


@dataclass
class CheckResult:
    """Top-1 agreement and accuracies (fractions) on ``n`` test images, and the largest logit difference in
    units of the logits' least significant bit (2^-ACT_FRAC_BITS)."""

    n: int
    bits: int
    agreement: float
    acc_hls: float
    acc_torch: float
    max_diff_lsb: float
    median_diff_lsb: float  # of each image's largest logit difference

    def line(self) -> str:
        return (f"check on {self.n} test images at {self.bits} bits: top-1 agreement {100 * self.agreement:.2f} %, "
                f"accuracy hls4ml {100 * self.acc_hls:.2f} % / PyTorch {100 * self.acc_torch:.2f} %, "
                f"output difference max {self.max_diff_lsb:,.0f} LSB, median {self.median_diff_lsb:,.1f} LSB "
                f"(LSB = 2^-{ACT_FRAC_BITS})")


@dataclass
class Images:
    x: torch.Tensor  # (N, C, H, W) float32, normalised as in training
    y: torch.Tensor  # (N,) int64 labels


def load_images(trained: Any, data_path: str | None, n: int) -> Images:
    """The first ``n`` test images of the checkpoint's dataset (``data_path`` overrides its path), normalised
    as the trainer does; refused when the test set is smaller than ``n``."""
    from ..train.batches import normalise
    from ..train.data import load_dataset

    cfg = trained.config
    data = load_dataset(cfg.dataset, data_path if data_path is not None else cfg.data, cfg.data_cache, progress=False)
    if n > len(data.test):
        raise ExportError(f"--check {n}: the {cfg.dataset} test set has {len(data.test)} images")
    pixels = torch.from_numpy(data.test.pixels[:n])
    return Images(normalise(pixels, data), torch.from_numpy(data.test.labels[:n]))


def torch_logits(model: torch.nn.Module, x: torch.Tensor, bits: int, batch: int = 500) -> np.ndarray:
    """The quantized PyTorch model (eval: running activation ranges) at ``bits``, float64 logits (N, classes)."""
    from ..nn import precision

    model.eval()
    with torch.no_grad(), precision(fw=bits, bw=0):
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]).double().numpy()


def compare(hls: np.ndarray, ref: np.ndarray, labels: np.ndarray, bits: int) -> CheckResult:
    """Agreement, both accuracies and the largest difference (in output LSBs) of two logit arrays (N, classes)."""
    top_hls, top_ref = hls.argmax(1), ref.argmax(1)
    diff = np.abs(hls - ref).max(1)
    return CheckResult(n=len(labels), bits=bits, agreement=float((top_hls == top_ref).mean()),
                       acc_hls=float((top_hls == labels).mean()), acc_torch=float((top_ref == labels).mean()),
                       max_diff_lsb=float(diff.max() / output_lsb()),
                       median_diff_lsb=float(np.median(diff) / output_lsb()))


def run_check(model: torch.nn.Module, hmodel: Any, images: Images, bits: int) -> CheckResult:
    from .project import predict

    return compare(predict(hmodel, images.x), torch_logits(model, images.x, bits), images.y.numpy(), bits)
