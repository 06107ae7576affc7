"""Atomic training checkpoints that resume bit for bit.

A checkpoint is one ``torch.save`` file written through :func:`cpt_hw.fileio.write_atomic` (temporary file +
rename), so a crash or a NaN stop never leaves a half-written or a bad checkpoint behind: the last good one
stays.  It holds everything the next iteration depends on: model and optimizer state, the iteration index
(hence the schedule position, the learning rate and the data order, which are functions of it), the RNG
states of torch (CPU and CUDA), numpy and Python, the quantizers' stochastic-rounding state, the BitOPs and
accelerator-cycle totals, and the length of the metrics file at that point.  It is loaded with
``weights_only=True``: a checkpoint is data, never code.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CptHwError
from ..fileio import write_atomic

FORMAT = "cpt-hw-checkpoint"
VERSION = 1


class CheckpointError(CptHwError):
    """A checkpoint is missing, corrupt, or belongs to a different run."""


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU/CUDA, numpy, Python) as plain tensors, lists and tuples."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(_tuples(state["python"]))


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts) atomically."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buf)
    write_atomic(path, buf.getvalue())


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`; any damage is one :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for damaged files (zip, pickle, EOF, Runtime)
        first = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path}: corrupt or unreadable ({first[:160]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a cpt-hw training checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {data.get('version')}, this cpt-hw reads "
                              f"{VERSION}")
    return data
