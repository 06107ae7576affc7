"""Read a ``cpt-hw train`` checkpoint into an eval-mode model and the precision it was trained at last."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..models import ModelError, build_model
from ..train import checkpoint
from ..train.config import TrainConfig
from .fold import ExportError


@dataclass
class Trained:
    """A checkpoint's model (eval mode, CPU) and what the export needs to know about its run."""

    model: torch.nn.Module
    config: TrainConfig
    last_bits: int | None  # forward bits of the last evaluation at the checkpoint's iteration (None: unknown)
    step: int
    source: str


def load_trained(path: str | Path) -> Trained:
    """Load and check a checkpoint (format, model state names/shapes/finiteness); any problem is one
    :class:`~cpt_hw.train.checkpoint.CheckpointError` or :class:`ExportError` line."""
    ck = checkpoint.load(path)
    source = ck["source"]
    try:
        cfg = TrainConfig.from_dict(ck["config"])
    except Exception as e:  # the config was validated when written: anything here means an edited file
        raise checkpoint.CheckpointError(f"checkpoint {source}: its run config is not valid ({e})") from None
    state = ck["model"]
    model = _build(cfg.model, _num_classes(source, state), source)
    checkpoint.check_model_state(source, state, model.state_dict())
    model.load_state_dict(state)
    model.eval()
    return Trained(model, cfg, _last_bits(ck), int(ck["step"]), source)


def _build(name: str, num_classes: int, source: str) -> torch.nn.Module:
    try:
        return build_model(name, num_classes)
    except ModelError as e:
        raise checkpoint.CheckpointError(f"checkpoint {source}: {e}") from None


def _num_classes(source: str, state: dict[str, Any]) -> int:
    """Classes = rows of the last 2-d weight (the float classifier of every model)."""
    weights = [v for k, v in state.items() if k.endswith("weight") and isinstance(v, torch.Tensor) and v.dim() == 2]
    if not weights:
        raise checkpoint.CheckpointError(f"checkpoint {source}: its model state has no classifier weight")
    return int(weights[-1].shape[0])


def _last_bits(ck: dict[str, Any]) -> int | None:
    """The forward precision of the evaluation made at the checkpoint's iteration (the run's last precision:
    the trainer evaluates at the precision of the last iteration); None when there is none at that iteration."""
    ev = ck.get("last_eval") or {}
    bits = ev.get("fw_bits")
    if ev.get("iter") != ck["step"] or isinstance(bits, bool) or not isinstance(bits, int):
        return None
    return bits


def resolve_bits(trained: Trained, bits: int | None) -> int:
    """``bits`` if given (already checked to be 1..16), else the checkpoint's last precision; refused when the
    checkpoint does not say it or trained at full precision."""
    if bits is not None:
        return bits
    if trained.last_bits is None:
        raise ExportError(f"checkpoint {trained.source}: holds no evaluation at its iteration {trained.step} to take "
                          "the last precision from; give --bits")
    if trained.last_bits == 0:
        raise ExportError(f"checkpoint {trained.source}: trained at full precision (0 bits); give --bits 1..16")
    return trained.last_bits
