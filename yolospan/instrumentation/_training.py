"""An upstream training as spans and metrics: the part that does not depend on the package.

A per-package adapter (`_ultralytics_training`, `_yolov5_training`) finds the boundaries in its
package (callbacks where upstream has them, wrappers where it does not) and calls
`TrainingTracer`, which opens the same spans for both:

- a run (`TrainingTracer.open_run`): its id on every span (``YOLOSPAN_RUN_ID`` when set, so DDP
  ranks can share one), `yolospan.train.metrics.TrainingMetrics` for every step, ``trace_every``;
- ``epoch``: its own trace, from the epoch's start to after its validation;
- ``train_step``: one trace per step with ``forward`` (the model's own hooks), ``loss``,
  ``backward`` and ``optimizer_step`` children. Neither package has a function of its own for the
  backward (``scaler.scale(loss).backward()`` is inline), so its span runs from the end of the
  loss to the start of the optimizer step, or to the step's end when the step only accumulates;
- ``val``: its own trace, with the validated model's forwards inside.

A step that ``trace_every`` leaves out starts no span: it runs under an unsampled parent and a
no-op provider, so the model's forwards inside are dropped too; its metrics are still recorded.
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
LOSS_KEYS = {"box": A.LOSS_BOX, "obj": A.LOSS_OBJ, "cls": A.LOSS_CLS, "dfl": A.LOSS_DFL}
"""Each loss component's attribute key."""

Wrapped = Callable[..., Any]


@dataclass(frozen=True)
class Losses:
    """A step's loss items by component name (gains applied, per image), as upstream returns them."""

    values: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, items: Any, names: tuple[str, ...]) -> Losses | None:
        """From upstream's detached ``loss_items`` tensor; None when it has other components."""
        try:
            values = [float(v) for v in items.detach().flatten().tolist()]
        except Exception:
            return None
        if len(values) != len(names):  # segmentation, pose, ...: their own components
            return None
        return cls(tuple(zip(names, values, strict=True)))

    def as_dict(self) -> dict[str, float]:
        result = dict(self.values)
        result["total"] = sum(result.values())
        return result

    def attributes(self) -> dict[str, AttributeValue]:
        result: dict[str, AttributeValue] = {LOSS_KEYS[name]: value for name, value in self.values}
        result[A.LOSS_TOTAL] = sum(value for _, value in self.values)
        return result


@dataclass
class Step:
    """One training step (one batch) while it runs."""

    index: int
    traced: bool
    scope: ExitStack
    root: trace.Span
    start: float
    images: int = 0
    loss_end_ns: int | None = None
    backward_done: bool = False
    losses: Losses | None = None
    loss_items: Any = None  # the untraced step's tensor, read once when the step ends
    optimizer: ExitStack | None = None  # an optimizer_step span opened and closed by two hooks


@dataclass
class Run:
    """One training (one process of it, under DDP) while it runs."""

    run_id: str
    trace_every: int
    metrics: TrainingMetrics
    scope: ExitStack = field(default_factory=ExitStack)
    next_step: int = 0
    step: Step | None = None
    epoch: trace.Span | None = None
    epoch_index: int = 0
    next_epoch: int = 0  # for a trainer that does not say which epoch starts
    epoch_steps: int = 0
    steps_since_optimizer: int = 0
    optimizer: Any = None  # where the adapter found it: the learning rate is read from it


_run: ContextVar[Run | None] = ContextVar("yolospan_upstream_run", default=None)


def optimizer_lr(optimizer: Any) -> float | None:
    """The learning rate of the optimizer's first parameter group, as yolospan's trainer reports it."""
    try:
        return float(optimizer.param_groups[0]["lr"])
    except Exception:
        return None


class TrainingTracer:
    """Runs, epochs, steps and validations as spans and metrics; the adapters say when."""

    def __init__(
        self,
        tracer: ModelTracer,
        trace_every: int,
        meter_provider: metrics.MeterProvider | None,
        loss_names: tuple[str, ...],
    ) -> None:
        self.tracer = tracer
        self.trace_every = trace_every
        self.meter_provider = meter_provider
        self.loss_names = loss_names

    # --- the run ----------------------------------------------------------------------------------

    @staticmethod
    def current() -> Run | None:
        return _run.get()

    def open_run(self) -> Run:
        """A new run, current until `close_run`: its provider, run id and rank go on every span inside."""
        from yolospan.instrumentation._base import ENV_RUN_ID

        run_id = os.environ.get(ENV_RUN_ID) or new_run_id()
        metrics_ = TrainingMetrics(run_id=run_id, meter_provider=self.meter_provider)
        run = Run(run_id, self.trace_every, metrics_)
        try:
            run.scope.enter_context(self.tracer.scope())
            run.scope.enter_context(span_attributes({A.RUN_ID: run_id}))
            token = _run.set(run)
            run.scope.callback(_run.reset, token)
        except BaseException:
            run.scope.close()
            raise
        return run

    def close_run(self, run: Run, error: BaseException | None = None) -> None:
        """End what is still open (the step that raised, an epoch without its end) and leave the run."""
        try:
            self.end_step(run, error=error)
            self.end_epoch(run, error=error)
        except Exception:
            _log.warning("yolospan: could not finish the training's spans", exc_info=True)
        finally:
            try:
                run.scope.close()
            except Exception:  # a context reset from another thread or context (at exit)
                _log.debug("yolospan: could not leave the run's context", exc_info=True)

    # --- epochs -----------------------------------------------------------------------------------

    def start_epoch(self, run: Run, epoch: int) -> None:
        run.epoch_index = epoch
        run.next_epoch = epoch + 1
        run.epoch_steps = 0
        try:
            attrs: dict[str, AttributeValue] = {**current_span_attributes(), **rank_attributes()}
            attrs[A.EPOCH] = epoch
            with new_root():
                run.epoch = get_tracer().start_span(A.SPAN_EPOCH, attributes=attrs)
        except Exception:
            _log.warning("yolospan: could not start the epoch span", exc_info=True)

    def end_epoch(
        self,
        run: Run,
        describe: Callable[[], Mapping[str, AttributeValue]] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """End the epoch span, with ``describe()``'s attributes (called only when it is recording)."""
        epoch, run.epoch = run.epoch, None
        if epoch is None:
            return
        try:
            if epoch.is_recording():
                attrs: dict[str, AttributeValue] = {A.STEP: run.epoch_steps}
                if describe is not None:
                    attrs.update(describe())
                epoch.set_attributes(attrs)
        except Exception:
            _log.warning("yolospan: could not describe the epoch", exc_info=True)
        finally:
            _end(epoch, error)

    # --- steps ------------------------------------------------------------------------------------

    def start_step(self, run: Run, epoch: int, lr: float | None = None) -> Step:
        index = run.next_step
        run.next_step += 1
        run.epoch_steps += 1
        run.steps_since_optimizer += 1
        traced = index % run.trace_every == 0
        scope = ExitStack()
        root: trace.Span = trace.INVALID_SPAN
        try:
            if traced:
                scope.enter_context(new_root())
                scope.enter_context(span_attributes(rank_attributes()))
                attrs: dict[str, AttributeValue] = {A.EPOCH: epoch, A.STEP: index}
                if lr is not None:
                    attrs[A.LR] = lr
                root = scope.enter_context(span(A.SPAN_TRAIN_STEP, phase=A.PHASE_TRAIN, attributes=attrs))
            else:  # an unsampled parent: forwards inside are dropped by any parent-based sampler too
                scope.enter_context(use_tracer_provider(_NO_TRACING))
                scope.enter_context(_unsampled())
        except Exception:
            _log.warning("yolospan: could not start the step span", exc_info=True)
        run.step = Step(index, traced and root.is_recording(), scope, root, time.perf_counter())
        return run.step

    def end_step(
        self, run: Run, *, items: Any = None, lr: float | None = None, error: BaseException | None = None
    ) -> None:
        """Close the current step, if any, and record its metrics (``items``: its loss items if unseen)."""
        step, run.step = run.step, None
        if step is None:
            return
        try:
            if step.optimizer is not None:
                _close(step.optimizer, error)
                step.optimizer = None
            if error is None:
                self.backward(step)
            if step.losses is None:
                loss_items = items if items is not None else step.loss_items
                if loss_items is not None:
                    step.losses = Losses.of(loss_items, self.loss_names)
        finally:
            _close(step.scope, error)
        if error is not None:
            return
        try:
            run.metrics.record_step(
                duration_s=time.perf_counter() - step.start,
                images=step.images,
                losses=step.losses,
                lr=lr if lr is not None else optimizer_lr(run.optimizer),
            )
        except Exception:
            _log.warning("yolospan: could not record the step's metrics", exc_info=True)

    def describe_batch(self, step: Step, images: int, attrs: Mapping[str, AttributeValue]) -> None:
        step.images = images
        if step.traced:
            step.root.set_attributes(attrs)

    def loss(self, step: Step, call: Wrapped) -> Any:
        """Upstream's criterion, ``call()`` returning ``(loss, loss_items)``, as the step's ``loss`` span."""
        if not step.traced:
            result = call()
            try:
                step.loss_items = result[1]
            except Exception:
                _log.debug("yolospan: unexpected loss result", exc_info=True)
            return result
        with span(A.SPAN_LOSS) as current:
            result = call()
            try:
                step.losses = Losses.of(result[1], self.loss_names)
                if step.losses is not None and current.is_recording():
                    current.set_attributes(step.losses.attributes())
            except Exception:
                _log.debug("yolospan: unexpected loss result", exc_info=True)
        step.loss_end_ns = time.time_ns()  # the backward span starts where the loss span ended
        return result

    def backward(self, step: Step) -> None:
        """The backward span, from the loss's end to now (upstream's backward is an inline call)."""
        if step.backward_done or not step.traced or step.loss_end_ns is None:
            return
        step.backward_done = True
        try:
            attrs: dict[str, AttributeValue] = {**current_span_attributes(), A.PHASE: A.PHASE_TRAIN}
            get_tracer().start_span(A.SPAN_BACKWARD, attributes=attrs, start_time=step.loss_end_ns).end()
        except Exception:
            _log.warning("yolospan: could not record the backward span", exc_info=True)

    @contextmanager
    def optimizer_step(self, run: Run) -> Iterator[trace.Span]:
        """The ``optimizer_step`` span of the current step (a non-recording span outside a traced one)."""
        run.steps_since_optimizer = 0
        step = run.step
        if step is None or not step.traced:
            yield trace.INVALID_SPAN
            return
        self.backward(step)
        with span(A.SPAN_OPTIMIZER_STEP) as current:
            yield current

    # --- validation -------------------------------------------------------------------------------

    @contextmanager
    def validation(self, model: Any, attrs: Mapping[str, AttributeValue]) -> Iterator[trace.Span]:
        """One ``val`` trace; ``model`` (the EMA copy upstream validates) is traced meanwhile."""
        with (
            new_root(),
            span(
                A.PHASE_VAL,
                phase=A.PHASE_VAL,
                module=model,
                attributes={**attrs, **rank_attributes()},
            ) as current,
        ):
            yield current


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
