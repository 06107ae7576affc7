"""The trainer's touch points with the quantized front end (:mod:`cpt_hw.nn`, :mod:`cpt_hw.models`).

Kept in one place so the training loop reads as plain PyTorch: build a model (and choose how its BatchNorms keep
their inputs), choose where its GEMMs run, set the precision once per iteration, read the accelerator's cycle
counters, check the precision range a backend can run.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import CptHwError
from ..hw.config import HardwareConfig


def build_model(name: str, num_classes: int) -> torch.nn.Module:
    """``cpt_hw.models.build_model``; unknown names are a one-line error there."""
    from ..models import build_model as _build
    return _build(name, num_classes)


def recompute_batchnorm_inputs(model: torch.nn.Module, stages: str) -> None:
    """``--recompute-bn``: the BatchNorm inputs of ``stages`` (none, all, or ResNet stages such as 1,2)
    recomputed in backward instead of kept (:mod:`cpt_hw.nn.recompute`; integer CPU backends only, bit-exact)."""
    if stages == "none":
        return
    from ..nn.recompute import recompute_batchnorm_inputs as _recompute, stage_selector
    from .config import TrainConfigError
    try:
        select = stage_selector(model, stages)
    except ValueError as e:
        raise TrainConfigError(str(e)) from None
    _recompute(model, select)


def keep_batchnorm_inputs(model: torch.nn.Module, dtype: str) -> None:
    """``--bn-saved``: float32 (as torch keeps them) or float16 (:func:`cpt_hw.nn.saved.keep_batchnorm_inputs_half`;
    half the bytes, lossy in backward only).  Call after :func:`recompute_batchnorm_inputs`: a recomputed input
    stays recomputed."""
    if dtype == "float32":
        return
    from ..nn.saved import keep_batchnorm_inputs_half
    keep_batchnorm_inputs_half(model)


def configure_backend(spec: str, preset: str) -> Any:
    """Make ``spec`` (torch, torch:hardware, exact, accel[:emu|rtl|pynq]) the process-wide backend."""
    from .. import nn as qnn
    return qnn.set_default_backend(spec, config=preset)


def set_precision(fw: int, bw: int, step: int, seed: int) -> None:
    """What the schedule says for iteration ``step``; the noise streams follow (seed, step)."""
    from .. import nn as qnn
    qnn.set_precision(fw, bw, step=step, seed=seed & 0xFFFFFFFFFFFFFFFF)


def precision(fw: int, bw: int) -> Any:
    """Context manager: a temporary precision (evaluation, MAC counting)."""
    from .. import nn as qnn
    return qnn.precision(fw, bw)


def accelerator_cycles() -> int:
    """Clock cycles the opened accelerators have reported so far (0 without an ``accel`` backend)."""
    from .. import nn as qnn
    total = 0
    for engine in qnn.opened_engines():
        acc = getattr(engine, "accelerator", None)
        if acc is not None:
            total += int(acc.total_cycles)
    return total


def accelerator_config(spec: str, preset: str) -> HardwareConfig | None:
    """The hardware config an ``accel`` backend runs on (None for torch/exact)."""
    from .. import nn as qnn
    parsed = qnn.parse_backend(spec, config=preset)
    return HardwareConfig.from_preset(parsed.config) if parsed.kind == "accel" else None


def check_accel_bits(cfg: HardwareConfig, fw: tuple[int, int], bw: tuple[int, int]) -> None:
    """An accelerator runs 1..max_bits forward and 1..max_grad_bits gradient precisions only."""
    for what, (lo, hi), top in (("--bits", fw, cfg.max_bits), ("--grad-bits", bw, cfg.max_grad_bits)):
        if lo < 1 or hi > top:
            raise CptHwError(f"{what} {lo}-{hi}: the {cfg.name} accelerator runs 1..{top} bits "
                             "(0 = full precision cannot be offloaded)")
