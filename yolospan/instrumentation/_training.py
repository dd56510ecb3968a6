"""An ultralytics training as spans and metrics, from the trainer's public callbacks.

One `TrainingTracer` per instrumentor; each ``BaseTrainer._do_train`` call (one per process, so
one per DDP rank) gets a `_Run`: its id on every span (``YOLOSPAN_RUN_ID`` when set, so all ranks
share one), `yolospan.train.metrics.TrainingMetrics` for every step, and ``trace_every``.

Boundaries from callbacks: ``on_train_batch_start`` / ``on_train_batch_end`` open and close the
``train_step`` root, ``on_train_epoch_start`` / ``on_fit_epoch_end`` the ``epoch`` root.
Wrapped where no callback marks the boundary: ``BaseModel.loss`` (the ``loss`` span: upstream
computes the loss inside the model's forward call, so it is a child of that ``forward``),
``BaseTrainer.optimizer_step`` (``optimizer_step``) and ``BaseTrainer.validate`` (``val``).
``backward`` has no function of its own upstream (``scaler.scale(loss).backward()`` inline), so
its span runs from the end of the loss to the start of the optimizer step (or of the batch's end).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from yolospan import attributes as A
from yolospan.instrumentation._model import ModelTracer, rank_attributes
from yolospan.tracing import current_span_attributes, get_tracer, span, span_attributes, use_tracer_provider
from yolospan.train.metrics import TrainingMetrics
from yolospan.train.tracing import new_root, new_run_id

_log = logging.getLogger(__name__)
_NO_TRACING = trace.NoOpTracerProvider()
_LOSS_NAMES = ("box", "cls", "dfl")
_LOSS_KEYS = {"box": A.LOSS_BOX, "cls": A.LOSS_CLS, "dfl": A.LOSS_DFL}

Wrapped = Callable[..., Any]


@dataclass(frozen=True)
class Losses:
    """ultralytics' detection loss items: box, cls, dfl (gains applied, per image)."""

    values: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, items: Any) -> Losses | None:
        try:
            values = [float(v) for v in items.detach().flatten().tolist()]
        except Exception:
            return None
        if len(values) != len(_LOSS_NAMES):  # segmentation, pose, ...: their own components
            return None
        return cls(tuple(zip(_LOSS_NAMES, values, strict=True)))

    def as_dict(self) -> dict[str, float]:
        result = dict(self.values)
        result["total"] = sum(result.values())
        return result

    def attributes(self) -> dict[str, AttributeValue]:
        result: dict[str, AttributeValue] = {_LOSS_KEYS[name]: value for name, value in self.values}
        result[A.LOSS_TOTAL] = sum(value for _, value in self.values)
        return result


@dataclass
class _Step:
    index: int
    traced: bool
    scope: ExitStack
    root: trace.Span
    start: float
    images: int = 0
    loss_end_ns: int | None = None
    backward_done: bool = False
    losses: Losses | None = None


@dataclass
class _Run:
    run_id: str
    trace_every: int
    metrics: TrainingMetrics
    scope: ExitStack = field(default_factory=ExitStack)
    next_step: int = 0
    step: _Step | None = None
    epoch: trace.Span | None = None
    epoch_steps: int = 0


_run: ContextVar[_Run | None] = ContextVar("yolospan_upstream_run", default=None)


def _lr(trainer: Any) -> float | None:
    try:
        return float(trainer.optimizer.param_groups[0]["lr"])
    except Exception:
        return None


class TrainingTracer:
    """The wrappers and callbacks for ultralytics' trainer."""

    def __init__(
        self, tracer: ModelTracer, trace_every: int, meter_provider: metrics.MeterProvider | None
    ) -> None:
        self.tracer = tracer
        self.trace_every = trace_every
        self.meter_provider = meter_provider
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
        from yolospan.instrumentation._base import ENV_RUN_ID

        added: list[tuple[str, Callable[[Any], None]]] = []
        try:
            run_id = os.environ.get(ENV_RUN_ID) or new_run_id()
            run = _Run(
                run_id, self.trace_every, TrainingMetrics(run_id=run_id, meter_provider=self.meter_provider)
            )
            run.scope.enter_context(self.tracer.scope())
            run.scope.enter_context(span_attributes({A.RUN_ID: run_id}))
            token = _run.set(run)
            run.scope.callback(_run.reset, token)
            for event, callback in self.callbacks.items():
                instance.add_callback(event, callback)
                added.append((event, callback))
        except Exception:
            _log.warning("yolospan: could not trace this training", exc_info=True)
            return wrapped(*args, **kwargs)
        error: BaseException | None = None
        try:
            return wrapped(*args, **kwargs)
        except BaseException as raised:
            error = raised
            raise
        finally:
            self._finish(run, instance, added, error)

    def _finish(
        self,
        run: _Run,
        trainer: Any,
        added: list[tuple[str, Callable[[Any], None]]],
        error: BaseException | None,
    ) -> None:
        try:
            if run.step is not None:  # the step that raised
                _close(run.step.scope, error)
                run.step = None
            if run.epoch is not None:
                _end(run.epoch, error)
                run.epoch = None
            for event, callback in added:
                hooks = trainer.callbacks.get(event, [])
                if callback in hooks:
                    hooks.remove(callback)
        except Exception:
            _log.warning("yolospan: could not finish the training's spans", exc_info=True)
        finally:
            run.scope.close()

    # --- callbacks --------------------------------------------------------------------------------

    def on_train_start(self, trainer: Any) -> None:
        """A model built before instrumenting, or loaded from a checkpoint: trace its forwards too."""
        try:
            model = getattr(trainer.model, "module", trainer.model)  # DDP wraps the model
            self.tracer.watch(model)
        except Exception:
            _log.warning("yolospan: could not instrument the trainer's model", exc_info=True)

    def on_train_epoch_start(self, trainer: Any) -> None:
        run = _run.get()
        if run is None:
            return
        try:
            attrs: dict[str, AttributeValue] = {**current_span_attributes(), **rank_attributes()}
            attrs[A.EPOCH] = int(trainer.epoch)
            with new_root():
                run.epoch = get_tracer().start_span(A.SPAN_EPOCH, attributes=attrs)
            run.epoch_steps = 0
        except Exception:
            _log.warning("yolospan: could not start the epoch span", exc_info=True)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        """After the epoch's validation and checkpoint: its mean losses, lr and fitness."""
        run = _run.get()
        if run is None or run.epoch is None:
            return
        epoch, run.epoch = run.epoch, None
        try:
            if epoch.is_recording():
                attrs: dict[str, AttributeValue] = {A.STEP: run.epoch_steps}
                losses = Losses.of(trainer.tloss) if trainer.tloss is not None else None
                if losses is not None:
                    attrs.update(losses.attributes())
                lr = _lr(trainer)
                if lr is not None:
                    attrs[A.LR] = lr
                if trainer.fitness is not None:
                    attrs[A.FITNESS] = float(trainer.fitness)
                epoch.set_attributes(attrs)
        except Exception:
            _log.warning("yolospan: could not describe the epoch", exc_info=True)
        finally:
            epoch.end()

    def on_train_batch_start(self, trainer: Any) -> None:
        run = _run.get()
        if run is None:
            return
        index = run.next_step
        run.next_step += 1
        run.epoch_steps += 1
        traced = index % run.trace_every == 0
        scope = ExitStack()
        root: trace.Span = trace.INVALID_SPAN
        try:
            if traced:
                scope.enter_context(new_root())
                scope.enter_context(span_attributes(rank_attributes()))
                attrs: dict[str, AttributeValue] = {A.EPOCH: int(trainer.epoch), A.STEP: index}
                lr = _lr(trainer)
                if lr is not None:
                    attrs[A.LR] = lr
                root = scope.enter_context(span(A.SPAN_TRAIN_STEP, phase=A.PHASE_TRAIN, attributes=attrs))
            else:  # an unsampled parent: forwards inside are dropped by any parent-based sampler too
                scope.enter_context(use_tracer_provider(_NO_TRACING))
                scope.enter_context(_unsampled())
        except Exception:
            _log.warning("yolospan: could not start the step span", exc_info=True)
        run.step = _Step(index, traced and root.is_recording(), scope, root, time.perf_counter())

    def on_train_batch_end(self, trainer: Any) -> None:
        run = _run.get()
        if run is None or run.step is None:
            return
        step, run.step = run.step, None
        try:
            self._backward(step)
            if step.losses is None:
                step.losses = Losses.of(trainer.loss_items)
        finally:
            _close(step.scope, None)
        try:
            run.metrics.record_step(
                duration_s=time.perf_counter() - step.start,
                images=step.images,
                losses=step.losses,
                lr=_lr(trainer),
            )
        except Exception:
            _log.warning("yolospan: could not record the step's metrics", exc_info=True)

    # --- wrappers ---------------------------------------------------------------------------------

    def loss(self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``BaseModel.loss(batch, preds=None)`` in a step: the network's forward, then ``loss`` alone."""
        run = _run.get()
        step = run.step if run is not None else None
        if step is None:
            return wrapped(*args, **kwargs)
        batch: Any = args[0] if args else kwargs.get("batch")
        preds = args[1] if len(args) > 1 else kwargs.get("preds")
        self._describe_batch(step, batch)
        if not step.traced:
            return wrapped(*args, **kwargs)
        if preds is None:  # what upstream's loss does first, outside the loss span
            preds = instance.forward(batch["img"])
        with span(A.SPAN_LOSS) as current:
            result = wrapped(batch, preds)
            step.loss_end_ns = time.time_ns()
            try:
                step.losses = Losses.of(result[1])
                if step.losses is not None and current.is_recording():
                    current.set_attributes(step.losses.attributes())
            except Exception:
                _log.debug("yolospan: unexpected loss result", exc_info=True)
        return result

    def _describe_batch(self, step: _Step, batch: Any) -> None:
        try:
            images = batch["img"]
            step.images = int(images.shape[0])
            if step.traced:
                step.root.set_attributes(
                    {A.BATCH_SHAPE: list(images.shape), A.BATCH_TARGETS: int(batch["cls"].shape[0])}
                )
        except Exception:
            _log.debug("yolospan: unexpected batch", exc_info=True)

    def _backward(self, step: _Step) -> None:
        """The backward span, from the loss's end to now (upstream's backward is an inline call)."""
        if step.backward_done or not step.traced or step.loss_end_ns is None:
            return
        step.backward_done = True
        try:
            attrs: dict[str, AttributeValue] = {**current_span_attributes(), A.PHASE: A.PHASE_TRAIN}
            get_tracer().start_span(A.SPAN_BACKWARD, attributes=attrs, start_time=step.loss_end_ns).end()
        except Exception:
            _log.warning("yolospan: could not record the backward span", exc_info=True)

    def optimizer_step(
        self, wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        run = _run.get()
        step = run.step if run is not None else None
        if step is None or not step.traced:
            return wrapped(*args, **kwargs)
        self._backward(step)
        scaler = getattr(instance, "scaler", None)
        enabled = scaler is not None and scaler.is_enabled()
        with span(A.SPAN_OPTIMIZER_STEP) as current:
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
        run = _run.get()
        if run is None:
            return wrapped(*args, **kwargs)
        ema = getattr(getattr(instance, "ema", None), "ema", None)
        model = ema if ema is not None else getattr(instance, "model", None)
        attrs: Mapping[str, AttributeValue] = {
            A.EPOCH: int(getattr(instance, "epoch", 0)),
            **rank_attributes(),
        }
        with new_root(), span(A.PHASE_VAL, phase=A.PHASE_VAL, module=model, attributes=attrs) as current:
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
        for name in _LOSS_NAMES:
            value = metrics_.get(f"val/{name}_loss")
            if value is not None:
                attrs[_LOSS_KEYS[name]] = float(value)
    if fitness is not None:
        attrs[A.FITNESS] = float(fitness)
    seen = getattr(getattr(trainer, "validator", None), "seen", None)
    if isinstance(seen, int):
        attrs[A.VAL_IMAGES] = seen
    return attrs


@contextmanager
def _unsampled() -> Iterator[None]:
    """A context whose current span is not sampled (a step that ``trace_every`` leaves out).

    The model's forwards go to the instrumentor's provider when one was given; with the default
    parent-based sampler their spans then follow this parent and are not recorded.
    """
    parent = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=random.getrandbits(128) or 1,
            span_id=random.getrandbits(64) or 1,
            is_remote=False,
            trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT),
        )
    )
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        yield
    finally:
        otel_context.detach(token)


def _close(scope: ExitStack, error: BaseException | None) -> None:
    try:
        if error is None:
            scope.close()
        else:
            scope.__exit__(type(error), error, error.__traceback__)
    except BaseException:
        # span() re-raises the error it recorded; the trainer is raising it already.
        if error is None:
            _log.warning("yolospan: could not close a step", exc_info=True)


def _end(current: trace.Span, error: BaseException | None) -> None:
    if error is not None and current.is_recording():
        current.record_exception(error)
        current.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    current.end()
