"""Training YOLOv5, traced step by step: the loss, the optimizer, the trainer and the step API.

For your own loop, `TrainingRun` and `train_step` make the same spans and metrics as yolospan's
trainer (`Trainer`); see ``docs/training.md``.
"""

from __future__ import annotations

from yolospan.train.checkpoint import CHECKPOINT_KEYS, CheckpointError, load_checkpoint, save_checkpoint
from yolospan.train.config import NOMINAL_BATCH_SIZE, Hyp, LossGains, scaled_gains
from yolospan.train.ema import ModelEMA
from yolospan.train.loop import EpochSummary, TrainConfig, Trainer, TrainResult
from yolospan.train.loss import LevelTargets, YoloLoss, bbox_ciou
from yolospan.train.metrics import LossValues, TrainingMetrics, resolve_meter_provider, use_meter_provider
from yolospan.train.optim import Schedule, accumulation, build_optimizer, lr_factor
from yolospan.train.progress import ProgressBar
from yolospan.train.tracing import (
    LossScope,
    OptimizerScope,
    StepScope,
    TrainingRun,
    TrainStep,
    new_root,
    new_run_id,
    train_step,
)

__all__ = [
    "CHECKPOINT_KEYS",
    "NOMINAL_BATCH_SIZE",
    "CheckpointError",
    "EpochSummary",
    "Hyp",
    "LevelTargets",
    "LossGains",
    "LossScope",
    "LossValues",
    "ModelEMA",
    "OptimizerScope",
    "ProgressBar",
    "Schedule",
    "StepScope",
    "TrainConfig",
    "TrainResult",
    "TrainStep",
    "Trainer",
    "TrainingMetrics",
    "TrainingRun",
    "YoloLoss",
    "accumulation",
    "bbox_ciou",
    "build_optimizer",
    "load_checkpoint",
    "lr_factor",
    "new_root",
    "new_run_id",
    "resolve_meter_provider",
    "save_checkpoint",
    "scaled_gains",
    "train_step",
    "use_meter_provider",
]
