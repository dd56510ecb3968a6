"""Training steps as traces, for yolospan's trainer and for your own loop.

`train_step` opens one step as a new trace: a root ``train_step`` span (epoch, step, batch shape,
lr) in phase ``train``, so the model's forward inside becomes its ``forward`` child, and the
step's handle opens the ``loss``, ``backward`` and ``optimizer_step`` children. `TrainingRun`
adds what a run needs around it: one run id on every span (init, steps, validation, forwards),
the model instrumented once (so FLOPs are counted once), ``trace_every`` sampling, and metrics
for every step, traced or not. An untraced step starts no span at all: the model's forwards go
to a no-op provider for its duration.

    with TrainingRun(trace_every=10) as run:
        model = run.watch(yolospan.build_model("yolov5n", nc=3))
        ...
        for epoch in range(epochs):
            for images, targets in loader:
                with run.step(epoch=epoch, images=images, lr=lr) as step:
                    maps = model(images)
                    with step.loss() as loss:
                        total, items = criterion(maps, targets)
                        loss.record(items)
                    with step.backward():
                        total.backward()
                    with step.optimizer_step():
                        optimizer.step()
                        optimizer.zero_grad()
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from types import TracebackType
from typing import Any, TypeVar

import torch
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from torch import nn

from yolospan import attributes as A
from yolospan.tracing import (
    instrument,
    instrumentation_of,
    resolve_provider,
    span,
    span_attributes,
    use_tracer_provider,
)
from yolospan.train.metrics import LossValues, TrainingMetrics

__all__ = [
    "LossScope",
    "OptimizerScope",
    "StepScope",
    "TrainStep",
    "TrainingRun",
    "new_root",
    "new_run_id",
    "train_step",
]

_M = TypeVar("_M", bound=nn.Module)
_NO_TRACING = trace.NoOpTracerProvider()


def new_run_id() -> str:
    """A sortable, unique run id: UTC start time and 6 random hex digits (``20260131-142502-a3f9c1``)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@contextmanager
def new_root() -> Iterator[None]:
    """Spans started inside begin a new trace, whatever span is current outside (baggage is kept)."""
    token = otel_context.attach(trace.set_span_in_context(trace.INVALID_SPAN))
    try:
        yield
    finally:
        otel_context.detach(token)


class StepScope:
    """A child span of the step when it is traced (``span``); nothing at all when it is not."""

    __slots__ = ("_name", "_provider", "_scope", "span")

    def __init__(self, name: str, provider: trace.TracerProvider | None, traced: bool) -> None:
        self._name = name
        self._provider = provider
        self._scope: ExitStack | None = ExitStack() if traced else None
        self.span: trace.Span = trace.INVALID_SPAN

    def __enter__(self) -> StepScope:
        if self._scope is not None:
            self.span = self._scope.enter_context(span(self._name, tracer_provider=self._provider))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self._scope is not None:
            return bool(self._scope.__exit__(exc_type, exc, tb))
        return False


class LossScope(StepScope):
    """``with step.loss() as loss:`` compute the loss, then ``loss.record(items)``."""

    __slots__ = ("_step",)

    def __init__(self, step: TrainStep) -> None:
        super().__init__(A.SPAN_LOSS, step.tracer_provider, step.recording)
        self._step = step

    def __enter__(self) -> LossScope:
        super().__enter__()
        return self

    def record(self, items: Sequence[float] | torch.Tensor) -> LossValues:
        """The step's ``[box, obj, cls]`` losses: on the span when traced, in the metrics always."""
        values = LossValues.of(items)
        self._step.losses = values
        if self.span.is_recording():
            self.span.set_attributes(
                {
                    A.LOSS_BOX: values.box,
                    A.LOSS_OBJ: values.obj,
                    A.LOSS_CLS: values.cls,
                    A.LOSS_TOTAL: values.total,
                }
            )
        return values


class OptimizerScope(StepScope):
    """``with step.optimizer_step(scaler=scaler) as opt:`` step (and update the scaler) inside.

    With an enabled ``torch.amp.GradScaler`` the span records the scale after the step and
    whether the scaler skipped it (inf/NaN gradients lower the scale).
    """

    __slots__ = ("_accumulate", "_scale_before", "_scaler")

    def __init__(self, step: TrainStep, scaler: Any | None, accumulate: int | None) -> None:
        super().__init__(A.SPAN_OPTIMIZER_STEP, step.tracer_provider, step.recording)
        self._scaler = scaler if scaler is not None and scaler.is_enabled() else None
        self._accumulate = accumulate
        self._scale_before: float | None = None

    def __enter__(self) -> OptimizerScope:
        super().__enter__()
        if self._scaler is not None and self.span.is_recording():
            self._scale_before = float(self._scaler.get_scale())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None and self.span.is_recording():
            attrs: dict[str, Any] = {}
            if self._accumulate is not None:
                attrs[A.ACCUMULATE] = self._accumulate
            if self._scaler is not None and self._scale_before is not None:
                scale = float(self._scaler.get_scale())
                attrs[A.SCALER_SCALE] = scale
                attrs[A.SCALER_SKIPPED] = scale < self._scale_before
            if attrs:
                self.span.set_attributes(attrs)
        return super().__exit__(exc_type, exc, tb)

    def record_grad_norm(self, norm: torch.Tensor | float) -> None:
        """The total gradient norm before clipping (read from the device only when traced)."""
        if self.span.is_recording():
            value = float(norm)
            if math.isfinite(value):
                self.span.set_attribute(A.GRAD_NORM, value)


class TrainStep:
    """The handle of one step: its root span (``INVALID_SPAN`` when untraced) and child scopes."""

    __slots__ = ("losses", "recording", "span", "tracer_provider")

    def __init__(self, root: trace.Span, tracer_provider: trace.TracerProvider | None) -> None:
        self.span = root
        self.recording = root.is_recording()
        self.tracer_provider = tracer_provider
        self.losses: LossValues | None = None

    def loss(self) -> LossScope:
        return LossScope(self)

    def backward(self) -> StepScope:
        return StepScope(A.SPAN_BACKWARD, self.tracer_provider, self.recording)

    def optimizer_step(self, *, scaler: Any | None = None, accumulate: int | None = None) -> OptimizerScope:
        """``accumulate``: batches whose gradients this step applies (set on the span)."""
        return OptimizerScope(self, scaler, accumulate)


_UNTRACED_ROOT = trace.INVALID_SPAN


def _step_attributes(
    epoch: int, step: int, images: torch.Tensor | None, targets: torch.Tensor | None, lr: float | None
) -> dict[str, Any]:
    attrs: dict[str, Any] = {A.EPOCH: epoch, A.STEP: step}
    if images is not None:
        attrs[A.BATCH_SHAPE] = list(images.shape)
    if targets is not None:
        attrs[A.BATCH_TARGETS] = int(targets.shape[0])
    if lr is not None:
        attrs[A.LR] = float(lr)
    return attrs


@contextmanager
def train_step(
    model: nn.Module,
    *,
    epoch: int,
    step: int,
    images: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    lr: float | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[TrainStep]:
    """One training step as its own trace; ``model``'s forwards inside are its ``forward`` children.

    Instrument ``model`` once beforehand (`yolospan.instrument` or `TrainingRun.watch`):
    otherwise it is instrumented for each step and its FLOPs are counted again every time.
    """
    with (
        new_root(),
        span(
            A.SPAN_TRAIN_STEP,
            phase=A.PHASE_TRAIN,
            module=model,
            attributes=_step_attributes(epoch, step, images, targets, lr),
            tracer_provider=tracer_provider,
        ) as root,
    ):
        yield TrainStep(root, tracer_provider)


class TrainingRun:
    """A training run: its id on every span, ``trace_every`` sampling, metrics for every step.

    Enter it before creating the model, so the ``model.init`` trace carries the run id too; the
    tracer and meter providers are resolved when it is entered (`tracer_provider` and `metrics`
    exist from then on). Steps
    are numbered from 0 across epochs; step ``k`` is traced when ``k % trace_every == 0`` (and the
    tracer provider's sampler keeps it: ``OTEL_TRACES_SAMPLER`` applies on top).
    """

    def __init__(
        self,
        *,
        run_id: str | None = None,
        trace_every: int = 1,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        if trace_every < 1:
            raise ValueError(f"trace_every must be at least 1, got {trace_every}")
        self.run_id = run_id or new_run_id()
        self.trace_every = trace_every
        self.next_step = 0
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._model: nn.Module | None = None
        self._scope = ExitStack()

    def __enter__(self) -> TrainingRun:
        """Providers are resolved here, so a run made before ``with telemetry:`` still uses it."""
        self.tracer_provider = resolve_provider(self._tracer_provider)
        self.metrics = TrainingMetrics(run_id=self.run_id, meter_provider=self._meter_provider)
        self._scope.enter_context(span_attributes({A.RUN_ID: self.run_id}))
        self._scope.enter_context(use_tracer_provider(self.tracer_provider))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._scope.close()
        self._model = None

    def watch(self, model: _M, *, layers: bool = False) -> _M:
        """Trace ``model``'s forwards in traced steps (instrumented until the run ends); returns it."""
        if instrumentation_of(model) is None:
            self._scope.enter_context(instrument(model, layers=layers))
        self._model = model
        return model

    def traces(self, step: int) -> bool:
        """Whether step ``step`` is traced by ``trace_every`` (the sampler may still drop it)."""
        return step % self.trace_every == 0

    @contextmanager
    def step(
        self,
        *,
        epoch: int,
        images: torch.Tensor,
        targets: torch.Tensor | None = None,
        lr: float | None = None,
    ) -> Iterator[TrainStep]:
        """The next step: traced or not, its duration, throughput, losses and lr go to the metrics."""
        if self._model is None:
            raise RuntimeError("call TrainingRun.watch(model) before the first step")
        index = self.next_step
        self.next_step += 1
        start = time.perf_counter()
        if self.traces(index):
            with train_step(
                self._model, epoch=epoch, step=index, images=images, targets=targets, lr=lr
            ) as handle:
                yield handle
        else:
            with use_tracer_provider(_NO_TRACING):
                handle = TrainStep(_UNTRACED_ROOT, None)
                yield handle
        self.metrics.record_step(
            duration_s=time.perf_counter() - start, images=int(images.shape[0]), losses=handle.losses, lr=lr
        )

    @contextmanager
    def validation(self, model: nn.Module, *, epoch: int) -> Iterator[trace.Span]:
        """One validation pass as its own trace: a ``val`` span, ``model``'s forwards in phase ``val``."""
        with (
            new_root(),
            span(A.PHASE_VAL, phase=A.PHASE_VAL, module=model, attributes={A.EPOCH: epoch}) as root,
        ):
            yield root
