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

#: What a resumable checkpoint must hold (``range_test`` and ``last_eval`` are optional).
REQUIRED = ("config", "step", "model", "optimizer", "rng", "bitops", "cycles", "metrics_bytes", "window")


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
        raise CheckpointError(f"checkpoint {path}: {'a folder, not a file' if path.is_dir() else 'not found'}")
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
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path}: has no {', '.join(repr(k) for k in missing)} (not written by "
                              "cpt-hw train, or edited)")
    if not isinstance(data["config"], dict) or not isinstance(data["model"], dict):
        raise CheckpointError(f"checkpoint {path}: its 'config' and 'model' must be dicts (edited?)")
    data["source"] = str(path)  # for messages; not saved again (a new checkpoint is built from scratch)
    return data



def non_finite(tree: Any, prefix: str = "") -> str | None:
    """The name of the first floating-point tensor in ``tree`` (nested dicts/lists of a state dict) that holds
    a NaN or an infinity, else None."""
    if isinstance(tree, torch.Tensor):
        bad = tree.is_floating_point() and not bool(torch.isfinite(tree).all())
        return prefix or "tensor" if bad else None
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    for key, value in items:
        found = non_finite(value, f"{prefix}.{key}" if prefix else str(key))
        if found is not None:
            return found
    return None


def check_model_state(source: str, saved: dict[str, Any], expected: dict[str, torch.Tensor]) -> None:
    """One line when a saved model state does not fit the model (names, shapes) or is not finite."""
    missing = [k for k in expected if k not in saved]
    extra = [k for k in saved if k not in expected]
    if missing or extra:
        raise CheckpointError(f"checkpoint {source}: its model state does not fit this model "
                              f"({len(missing)} tensor(s) missing, e.g. {missing[:2]}; {len(extra)} unexpected, "
                              f"e.g. {extra[:2]}): a checkpoint of another model?")
    for name, want in expected.items():
        got = saved[name]
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            shape = list(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise CheckpointError(f"checkpoint {source}: {name!r} has shape {shape}, the model's is "
                                  f"{list(want.shape)}")
    bad = non_finite(saved)
    if bad is not None:
        raise CheckpointError(f"checkpoint {source}: {bad!r} holds NaN or infinite values; refusing to resume "
                              "from it (use an earlier checkpoint)")


def check_resumable(ck: dict[str, Any], model_state: dict[str, torch.Tensor], total: int) -> int:
    """The iteration a loaded checkpoint resumes at, after checking that its model state fits the model,
    that model and optimizer state are finite and that the run has not finished; else one CheckpointError."""
    source = ck.get("source", "(given)")
    check_model_state(source, ck["model"], model_state)
    bad = non_finite(ck["optimizer"])
    if bad is not None:
        raise CheckpointError(f"checkpoint {source}: optimizer state {bad!r} holds NaN or infinite values; "
                              "refusing to resume from it (use an earlier checkpoint)")
    step = ck["step"]
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= total:
        raise CheckpointError(f"checkpoint {source}: iteration {step!r} is outside the run's 0..{total}")
    if step == total:  # only the end of a run checkpoints at its last iteration (a stop before it, never at it)
        raise CheckpointError(f"checkpoint {source}: the run finished (iteration {step} of {total}); its results "
                              f"are in {Path(source).parent / 'summary.json'}, nothing to resume")
    return step
