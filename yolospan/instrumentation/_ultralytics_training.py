"""Where an ultralytics training's spans begin and end: its trainer's callbacks, and four wrappers.

Each ``BaseTrainer._do_train`` call (one per process, so one per DDP rank) is one run of
`_training.TrainingTracer`; ``BaseTrainer.train`` sets ``YOLOSPAN_RUN_ID`` for the DDP processes
it may start, so every rank shares the run id.

Boundaries from callbacks added to the trainer for the run (removed after it):
``on_train_batch_start`` / ``on_train_batch_end`` open and close the ``train_step`` root,
``on_train_epoch_start`` / ``on_fit_epoch_end`` the ``epoch`` root. Wrapped where no callback
marks the boundary: ``BaseModel.loss`` (the ``loss`` span: upstream computes the loss inside the
model's forward call, so it is a child of that ``forward``), ``BaseTrainer.optimizer_step``
(``optimizer_step``) and ``BaseTrainer.validate`` (``val``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A
from yolospan.instrumentation._training import (
    LOSS_KEYS,
    Losses,
    Run,
    TrainingTracer,
    Wrapped,
    optimizer_lr,
)
from yolospan.train.tracing import new_run_id

_log = logging.getLogger(__name__)

LOSS_NAMES = ("box", "cls", "dfl")
"""ultralytics' detection loss items, in its order."""


def _lr(trainer: Any) -> float | None:
    return optimizer_lr(getattr(trainer, "optimizer", None))


class UltralyticsTraining:
    """The wrappers and callbacks for ultralytics' trainer."""

    def __init__(self, engine: TrainingTracer) -> None:
        self.engine = engine
        self.callbacks: dict[str, Callable[[Any], None]] = {
            "on_train_start": self.on_train_start,
            "on_train_epoch_start": self.on_train_epoch_start,
            "on_train_batch_start": self.on_train_batch_start,
            "on_train_batch_end": self.on_train_batch_end,
            "on_fit_epoch_end": self.on_fit_epoch_end,
        }

    # --- the run ----------------------------------------------------------------------------------

    def train(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``BaseTrainer.train``: one run id for the DDP processes it may start (they inherit it)."""
        from yolospan.instrumentation._base import ENV_RUN_ID

        if os.environ.get(ENV_RUN_ID):
            return wrapped(*args, **kwargs)
        os.environ[ENV_RUN_ID] = new_run_id()
        try:
            return wrapped(*args, **kwargs)
        finally:
            os.environ.pop(ENV_RUN_ID, None)

    def do_train(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``BaseTrainer._do_train``: the run's scope and callbacks, removed again when it ends."""
        added: list[tuple[str, Callable[[Any], None]]] = []
        run: Run | None = None
        try:
            run = self.engine.open_run()
            for event, callback in self.callbacks.items():
                instance.add_callback(event, callback)
                added.append((event, callback))
        except Exception:
            _log.warning("yolospan: could not trace this training", exc_info=True)
            self._remove(instance, added)
            if run is not None:
                self.engine.close_run(run)
            return wrapped(*args, **kwargs)
        error: BaseException | None = None
        try:
            return wrapped(*args, **kwargs)
        except BaseException as raised:
            error = raised
            raise
        finally:
            self._remove(instance, added)
            self.engine.close_run(run, error)

    @staticmethod
    def _remove(trainer: Any, added: list[tuple[str, Callable[[Any], None]]]) -> None:
        try:
            for event, callback in added:
                hooks = trainer.callbacks.get(event, [])
                if callback in hooks:
                    hooks.remove(callback)
        except Exception:
            _log.warning("yolospan: could not remove the training's callbacks", exc_info=True)

    # --- callbacks --------------------------------------------------------------------------------

    def on_train_start(self, trainer: Any) -> None:
        """A model built before instrumenting, or loaded from a checkpoint: trace its forwards too."""
        try:
            model = getattr(trainer.model, "module", trainer.model)  # DDP wraps the model
            self.engine.tracer.watch(model)
        except Exception:
            _log.warning("yolospan: could not instrument the trainer's model", exc_info=True)

    def on_train_epoch_start(self, trainer: Any) -> None:
        run = self.engine.current()
        if run is not None:
            self.engine.start_epoch(run, int(trainer.epoch))

    def on_fit_epoch_end(self, trainer: Any) -> None:
        """After the epoch's validation and checkpoint: its mean losses, lr and fitness."""
        run = self.engine.current()
        if run is None:
            return

        def describe() -> dict[str, AttributeValue]:
            attrs: dict[str, AttributeValue] = {}
            losses = Losses.of(trainer.tloss, LOSS_NAMES) if trainer.tloss is not None else None
            if losses is not None:
                attrs.update(losses.attributes())
            lr = _lr(trainer)
            if lr is not None:
                attrs[A.LR] = lr
            if trainer.fitness is not None:
                attrs[A.FITNESS] = float(trainer.fitness)
            return attrs

        self.engine.end_epoch(run, describe)

    def on_train_batch_start(self, trainer: Any) -> None:
        run = self.engine.current()
        if run is not None:
            self.engine.start_step(run, int(trainer.epoch), _lr(trainer))

    def on_train_batch_end(self, trainer: Any) -> None:
        run = self.engine.current()
        if run is not None:
            self.engine.end_step(run, items=trainer.loss_items, lr=_lr(trainer))

    # --- wrappers ---------------------------------------------------------------------------------

    def loss(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``BaseModel.loss(batch, preds=None)`` in a step: the network's forward, then ``loss`` alone."""
        run = self.engine.current()
        step = run.step if run is not None else None
        if step is None:
            return wrapped(*args, **kwargs)
        batch: Any = args[0] if args else kwargs.get("batch")
        preds = args[1] if len(args) > 1 else kwargs.get("preds")
        try:
            images = batch["img"]
            self.engine.describe_batch(
                step,
                int(images.shape[0]),
                {A.BATCH_SHAPE: list(images.shape), A.BATCH_TARGETS: int(batch["cls"].shape[0])},
            )
        except Exception:
            _log.debug("yolospan: unexpected batch", exc_info=True)
        if not step.traced:  # the step's losses come from trainer.loss_items at its end
            return wrapped(*args, **kwargs)
        if preds is None:  # what upstream's loss does first, outside the loss span
            preds = instance.forward(batch["img"])
        return self.engine.loss(step, lambda: wrapped(batch, preds))

    def optimizer_step(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        run = self.engine.current()
        if run is None or run.step is None or not run.step.traced:
            return wrapped(*args, **kwargs)
        scaler = getattr(instance, "scaler", None)
        enabled = scaler is not None and scaler.is_enabled()
        with self.engine.optimizer_step(run) as current:
            before = float(scaler.get_scale()) if enabled and scaler is not None else None
            result = wrapped(*args, **kwargs)
            if current.is_recording():
                attrs: dict[str, AttributeValue] = {}
                accumulate = getattr(instance, "accumulate", None)
                if isinstance(accumulate, int):
                    attrs[A.ACCUMULATE] = accumulate
                if before is not None and scaler is not None:
                    after = float(scaler.get_scale())
                    attrs[A.SCALER_SCALE] = after
                    attrs[A.SCALER_SKIPPED] = after < before
                current.set_attributes(attrs)
        return result

    def validate(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``BaseTrainer.validate``: one ``val`` trace; the EMA model it runs is traced meanwhile."""
        run = self.engine.current()
        if run is None:
            return wrapped(*args, **kwargs)
        ema = getattr(getattr(instance, "ema", None), "ema", None)
        model = ema if ema is not None else getattr(instance, "model", None)
        with self.engine.validation(model, {A.EPOCH: int(getattr(instance, "epoch", 0))}) as current:
            result = wrapped(*args, **kwargs)
            if current.is_recording():
                try:
                    current.set_attributes(_val_attributes(instance, result))
                except Exception:
                    _log.warning("yolospan: could not describe the validation", exc_info=True)
        return result


def _val_attributes(trainer: Any, result: Any) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    metrics_, fitness = result if isinstance(result, tuple) and len(result) == 2 else (None, None)
    if isinstance(metrics_, Mapping):
        for name in LOSS_NAMES:
            value = metrics_.get(f"val/{name}_loss")
            if value is not None:
                attrs[LOSS_KEYS[name]] = float(value)
    if fitness is not None:
        attrs[A.FITNESS] = float(fitness)
    seen = getattr(getattr(trainer, "validator", None), "seen", None)
    if isinstance(seen, int):
        attrs[A.VAL_IMAGES] = seen
    return attrs
