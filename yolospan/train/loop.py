"""The trainer: upstream YOLOv5's training loop without augmentation, every step observable.

Per step, as upstream: warm-up/schedule, forward and loss (under autocast on CUDA when the AMP
check passed), scaled backward, and every ``accumulate`` batches unscale, clip to norm 10,
scaler step, zero the gradients and update the EMA. Per epoch: validation loss of the EMA
weights on the ``val`` split (when there is one) and ``weights/last.pt``.

Telemetry: `TrainingRun` gives the run id, the ``model.init`` trace, one trace per traced step and
one per validation pass, and the metrics of every step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from opentelemetry import metrics, trace
from torch.utils.data import DataLoader

from yolospan import attributes as A
from yolospan.data import Batch, DatasetError, YoloDataset, create_loader, read_dataset_info
from yolospan.data.dataset import Sample
from yolospan.errors import UserError
from yolospan.train.checkpoint import save_checkpoint
from yolospan.train.config import NOMINAL_BATCH_SIZE, Hyp
from yolospan.train.ema import ModelEMA
from yolospan.train.loss import YoloLoss
from yolospan.train.metrics import LossValues
from yolospan.train.optim import Schedule, build_optimizer
from yolospan.train.progress import ProgressBar
from yolospan.train.tracing import TrainingRun
from yolospan.yolo import create_model, resolve_device
from yolospan.yolo.limits import MAX_IMGSZ, MAX_NC
from yolospan.yolo.model import DetectionModel
from yolospan.yolo.spec import load_spec

__all__ = ["EpochSummary", "TrainConfig", "TrainResult", "Trainer"]

_log = logging.getLogger(__name__)

_MIN_STRIDE_MULTIPLE = 32


@dataclass(frozen=True)
class TrainConfig:
    """What to train on and how; the defaults are upstream's where upstream has one."""

    data: Path
    """Dataset root: ``images/`` and ``labels/``, with ``train``/``val`` subfolders when split."""
    cfg: str = "yolov5n"
    """A shipped model name or a model YAML path."""
    imgsz: int = 640
    epochs: int = 3
    batch: int = 16
    device: str = "cpu"
    workers: int = 0
    trace_every: int = 1
    nc: int | None = None
    """Classes; default: ``data.yaml``'s ``nc``, else 1 + the largest class id in the labels."""
    save_dir: Path | None = None
    """Where ``weights/last.pt`` goes each epoch; None saves nothing."""
    seed: int = 0
    hyp: Hyp = field(default_factory=Hyp)
    cosine: bool = False
    nbs: int = NOMINAL_BATCH_SIZE
    """Images per optimizer step the gradients are accumulated to (upstream: 64)."""
    validate: bool = True
    amp_check: str = "auto"
    layers: bool = False
    """Also trace each layer of the forward in traced steps."""
    multiprocessing_context: str | None = None
    """DataLoader workers' start method (``fork``, ``spawn``, ``forkserver``); None: the platform's."""
    run_id: str | None = None


@dataclass(frozen=True)
class EpochSummary:
    """One epoch as the console summary line and the callback see it."""

    epoch: int
    steps: int
    images: int
    losses: LossValues
    val_losses: LossValues | None
    lr: float
    duration_s: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.duration_s if self.duration_s > 0 else 0.0

    def line(self, epochs: int) -> str:
        """E.g. ``epoch 1/3  loss 0.1234 (box 0.05 obj 0.03 cls 0.03)  val 0.13  lr 0.00100  81.3 img/s``."""
        loss = self.losses
        text = (
            f"epoch {self.epoch + 1}/{epochs}  loss {loss.total:.4f} "
            f"(box {loss.box:.4f} obj {loss.obj:.4f} cls {loss.cls:.4f})"
        )
        if self.val_losses is not None:
            text += f"  val {self.val_losses.total:.4f}"
        return text + f"  lr {self.lr:.5f}  {self.images_per_s:.1f} img/s"


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    epochs: tuple[EpochSummary, ...]
    steps: int
    step_losses: tuple[LossValues, ...]
    """Every step's training loss, in order."""
    checkpoint: Path | None
    model: DetectionModel
    ema: ModelEMA


class Trainer:
    """Trains as `TrainConfig` says: ``Trainer(config).fit()``."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        progress: TextIO | None = None,
        on_epoch_end: Callable[[EpochSummary], None] | None = None,
    ) -> None:
        """``progress``: where the progress bar goes (None: no bar); ``on_epoch_end`` sees each summary.

        The dataset is scanned here, so bad data fails before any model is built.
        """
        _check_config(config)
        _check_trainable(config)
        self.config = config
        self.device = resolve_device(config.device)
        self.progress = progress
        self._on_epoch_end = on_epoch_end
        root = Path(config.data)
        info = read_dataset_info(root)
        splits = (root / "images" / "train").is_dir()
        nc_hint = config.nc or info.nc
        self.train_set = YoloDataset.from_root(
            root, "train" if splits else None, imgsz=config.imgsz, nc=nc_hint
        )
        self.nc = nc_hint or max(self.train_set.classes_seen(), 1)
        has_val = splits and (root / "images" / "val").is_dir()
        self.val_set = (
            YoloDataset.from_root(root, "val", imgsz=config.imgsz, nc=self.nc)
            if has_val and config.validate
            else None
        )

    def fit(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> TrainResult:
        """Train; spans and metrics go to the providers given, else yolospan's usual resolution."""
        config = self.config
        _seed(config.seed)
        with TrainingRun(
            run_id=config.run_id,
            trace_every=config.trace_every,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        ) as run:
            created = create_model(
                config.cfg, nc=self.nc, imgsz=config.imgsz, device=self.device, amp_check=config.amp_check
            )
            model = created.model
            stride = int(max(created.stride_probe.strides))
            if config.imgsz % stride:
                raise UserError(
                    f"--imgsz {config.imgsz} must be a multiple of the model's max stride {stride}"
                )
            amp = created.amp.passed and self.device.type == "cuda"
            ema = ModelEMA(model)  # before watch(): the copy carries no tracing hooks
            run.watch(model, layers=config.layers)
            loop = _Loop(self, run, model, ema, amp)
            summaries = []
            for epoch in range(config.epochs):
                summary = loop.epoch(epoch)
                summaries.append(summary)
                if self._on_epoch_end is not None:
                    self._on_epoch_end(summary)
            return TrainResult(
                run.run_id,
                tuple(summaries),
                run.next_step,
                tuple(loop.step_losses),
                loop.checkpoint,
                model,
                ema,
            )


class _Loop:
    """The state of one fit: optimizer, schedule, scaler, loaders; one method per epoch."""

    def __init__(self, trainer: Trainer, run: TrainingRun, model: DetectionModel, ema: ModelEMA, amp: bool):
        config = trainer.config
        self.config = config
        self.trainer = trainer
        self.run = run
        self.model = model
        self.ema = ema
        self.amp = amp
        self.device = trainer.device
        self.loader: DataLoader[Sample] = create_loader(
            trainer.train_set,
            batch_size=config.batch,
            workers=config.workers,
            seed=config.seed,
            pin_memory=self.device.type == "cuda",
            multiprocessing_context=config.multiprocessing_context,
        )
        self.val_loader: DataLoader[Sample] | None = (
            create_loader(
                trainer.val_set,
                batch_size=config.batch,
                shuffle=False,
                workers=0,
                pin_memory=self.device.type == "cuda",
            )
            if trainer.val_set is not None
            else None
        )
        self.criterion = YoloLoss(model, hyp=config.hyp, imgsz=config.imgsz)
        self.optimizer = build_optimizer(model, config.hyp, batch_size=config.batch, nbs=config.nbs)
        self.schedule = Schedule(
            config.hyp,
            epochs=config.epochs,
            steps_per_epoch=len(self.loader),
            batch_size=config.batch,
            nbs=config.nbs,
            cosine=config.cosine,
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp)
        self.last_optimizer_step = -1
        self.step_losses: list[LossValues] = []
        self.checkpoint: Path | None = None

    def epoch(self, epoch: int) -> EpochSummary:
        self.model.train()
        stream = self.trainer.progress
        bar = (
            ProgressBar(
                len(self.loader), description=f"epoch {epoch + 1}/{self.config.epochs}", stream=stream
            )
            if stream is not None
            else None
        )
        start = time.perf_counter()
        totals = np.zeros(3)
        images = 0
        steps = 0
        for batch in self.loader:
            values = self.step(epoch, batch)
            totals += (values.box, values.obj, values.cls)
            images += len(batch.images)
            steps += 1
            if bar is not None:
                mean = totals / steps
                bar.update(postfix=f"box {mean[0]:.4f} obj {mean[1]:.4f} cls {mean[2]:.4f}")
        if bar is not None:
            bar.close()
        duration = time.perf_counter() - start
        val_losses = self.validate(epoch) if self.val_loader is not None else None
        if self.config.save_dir is not None:
            self.checkpoint = self.save(epoch)
        mean = totals / max(steps, 1)
        return EpochSummary(
            epoch,
            steps,
            images,
            LossValues(*map(float, mean)),
            val_losses,
            float(self.optimizer.param_groups[0]["lr"]),
            duration,
        )

    def step(self, epoch: int, batch: Batch) -> LossValues:
        step = self.run.next_step
        self.schedule.apply(self.optimizer, step, epoch)
        accumulate = self.schedule.accumulate(step)
        images = batch.images.to(self.device, non_blocking=True).float() / 255
        targets = batch.targets.to(self.device)
        lr = float(self.optimizer.param_groups[0]["lr"])
        with self.run.step(epoch=epoch, images=images, targets=targets, lr=lr) as traced:
            with torch.autocast(self.device.type, enabled=self.amp):
                maps = self.model(images)
                with traced.loss() as loss_scope:
                    loss, items = self.criterion(maps, targets)
                    values = loss_scope.record(items)
            with traced.backward():
                torch.autograd.backward(self.scaler.scale(loss))
            if step - self.last_optimizer_step >= accumulate:
                with traced.optimizer_step(
                    scaler=self.scaler, accumulate=step - self.last_optimizer_step
                ) as opt:
                    self.scaler.unscale_(self.optimizer)
                    norm = torch.nn.utils.clip_grad_norm_(
                        self.model.parameters(), self.config.hyp.max_grad_norm
                    )
                    opt.record_grad_norm(norm)
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    self.optimizer.zero_grad()
                    self.ema.update(self.model)
                self.last_optimizer_step = step
        self.step_losses.append(values)
        return values

    @torch.no_grad()
    def validate(self, epoch: int) -> LossValues:
        assert self.val_loader is not None
        model = self.ema.ema
        totals = torch.zeros(3, device=self.device)
        batches = 0
        images = 0
        with self.run.validation(model, epoch=epoch) as root:
            for batch in self.val_loader:
                inputs = batch.images.to(self.device, non_blocking=True).float() / 255
                with torch.autocast(self.device.type, enabled=self.amp):
                    _, maps = model(inputs)
                    _, items = self.criterion(maps, batch.targets.to(self.device))
                totals += items.float()
                batches += 1
                images += len(batch.images)
            values = LossValues.of(totals / max(batches, 1))
            if root.is_recording():
                root.set_attributes(
                    {
                        A.VAL_IMAGES: images,
                        A.LOSS_BOX: values.box,
                        A.LOSS_OBJ: values.obj,
                        A.LOSS_CLS: values.cls,
                        A.LOSS_TOTAL: values.total,
                    }
                )
        self.run.metrics.record_validation(values)
        return values

    def save(self, epoch: int) -> Path:
        config = self.config
        assert config.save_dir is not None
        return save_checkpoint(
            Path(config.save_dir) / "weights" / "last.pt",
            epoch=epoch,
            run_id=self.run.run_id,
            model=self.model.state_dict(),
            ema=self.ema.ema.state_dict(),
            ema_updates=self.ema.updates,
            optimizer=self.optimizer.state_dict(),
            config={
                "cfg": str(config.cfg),
                "nc": self.trainer.nc,
                "imgsz": config.imgsz,
                "epochs": config.epochs,
            },
        )


def _check_config(config: TrainConfig) -> None:
    for name in ("imgsz", "epochs", "batch", "trace_every", "nbs"):
        value = getattr(config, name)
        if value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if config.workers < 0:
        raise UserError(f"--workers must not be negative, got {config.workers}")
    if config.nc is not None and not 1 <= config.nc <= MAX_NC:
        raise UserError(f"--nc must be between 1 and {MAX_NC}, got {config.nc}")
    if config.imgsz > MAX_IMGSZ:
        raise UserError(f"--imgsz {config.imgsz} is above the limit of {MAX_IMGSZ}")
    if not 0 <= config.seed < 2**63:
        raise UserError(f"--seed must be between 0 and {2**63 - 1}, got {config.seed}")
    if config.imgsz % _MIN_STRIDE_MULTIPLE:
        raise UserError(f"--imgsz must be a multiple of {_MIN_STRIDE_MULTIPLE}, got {config.imgsz}")
    if not Path(config.data).is_dir():
        raise DatasetError(f"{config.data}: no such dataset folder")


def _check_trainable(config: TrainConfig) -> None:
    """The loss is YOLOv5's detection loss: a config whose head is not Detect is refused up front."""
    head = load_spec(config.cfg).head  # a bad config fails here too, before the dataset is read
    if head.module != "Detect":
        raise UserError(
            f"--cfg {config.cfg}: cannot train a model with a {head.module} head; training supports "
            "detection models (a Detect head) only, 'yolospan trace' shows any model"
        )


def _seed(seed: int) -> None:
    """Seed torch (weights, shuffling) only: Python's ``random`` also makes OpenTelemetry's trace and
    span ids, and seeding it would give every run with the same seed the same ids."""
    torch.manual_seed(seed)
