"""The training front end behind ``cpt-hw train`` (docs/training.md).

    from cpt_hw.train import TrainConfig, Trainer
    summary = Trainer(TrainConfig(model="digits_cnn", epochs=12, batch_size=64, backend="accel:emu")).run()

Modules: :mod:`.config` (the run, validated), :mod:`.trainer` (the loop), :mod:`.batches` (deterministic data
order and augmentation), :mod:`.checkpoint`, :mod:`.metrics`, :mod:`.plots`, :mod:`.distributed` (DDP under
torchrun), :mod:`.frontend` (the touch points with :mod:`cpt_hw.nn` and :mod:`cpt_hw.models`), :mod:`.sgd`
(the CPU optimizer).

The names below are imported on first use (PEP 562), so that ``cpt_hw.train.sgd`` alone stays light: the
trainer imports the CUDA fast path, whose ``torch.compile`` loads torch._dynamo and sympy (68 MB).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"TrainConfig": ".config", "TrainConfigError": ".config", "Trainer": ".trainer",
            "TrainingDiverged": ".trainer", "format_summary": ".trainer"}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
