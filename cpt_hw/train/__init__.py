"""The training front end behind ``cpt-hw train`` (docs/training.md).

    from cpt_hw.train import TrainConfig, Trainer
    summary = Trainer(TrainConfig(model="digits_cnn", epochs=12, batch_size=64, backend="accel:emu")).run()

Modules: :mod:`.config` (the run, validated), :mod:`.trainer` (the loop), :mod:`.batches` (deterministic data
order and augmentation), :mod:`.checkpoint`, :mod:`.metrics`, :mod:`.plots`, :mod:`.distributed` (DDP under
torchrun), :mod:`.frontend` (the touch points with :mod:`cpt_hw.nn` and :mod:`cpt_hw.models`).
"""

from .config import TrainConfig, TrainConfigError
from .trainer import Trainer, TrainingDiverged, format_summary

__all__ = ["TrainConfig", "TrainConfigError", "Trainer", "TrainingDiverged", "format_summary"]
