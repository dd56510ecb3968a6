"""Training metrics through the OpenTelemetry metrics API, recorded for every step, traced or not.

Like the tracing core, this talks to the API only: instruments come from the meter provider
given explicitly, else the one set with `use_meter_provider`, else OpenTelemetry's global one
(a no-op until an SDK is installed). `yolospan.otel` wires an SDK provider to the exporters.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from opentelemetry import metrics

from yolospan import attributes as A
from yolospan._version import __version__

if TYPE_CHECKING:
    import torch

__all__ = [
    "DURATION_BUCKETS_S",
    "METRIC_LOSS",
    "METRIC_LR",
    "METRIC_STEPS",
    "METRIC_STEP_DURATION",
    "METRIC_THROUGHPUT",
    "METRIC_VAL_LOSS",
    "LossComponents",
    "LossValues",
    "TrainingMetrics",
    "resolve_meter_provider",
    "use_meter_provider",
]

METRIC_STEP_DURATION: Final = "yolospan.train.step.duration"
"""Histogram (s): wall time of each training step, from its forward to the end of its optimizer step."""

METRIC_THROUGHPUT: Final = "yolospan.train.throughput"
"""Gauge ({image}/s): images in the step over its duration."""

METRIC_LOSS: Final = "yolospan.train.loss"
"""Gauge: the step's loss per ``yolospan.loss.component`` (box, obj, cls, total; ultralytics: dfl, no obj)."""

METRIC_LR: Final = "yolospan.train.lr"
"""Gauge: learning rate of the first parameter group during the step."""

METRIC_STEPS: Final = "yolospan.train.steps"
"""Counter ({step}): training steps completed."""

METRIC_VAL_LOSS: Final = "yolospan.val.loss"
"""Gauge: mean validation loss per ``yolospan.loss.component`` after each validation pass."""

DURATION_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Histogram boundaries for step durations: steps take milliseconds on a GPU, seconds on a CPU."""

_METER_NAME = "yolospan.train"
_meter_override: ContextVar[metrics.MeterProvider | None] = ContextVar(
    "yolospan_meter_provider", default=None
)


class LossComponents(Protocol):
    """Any step's losses by component name (yolospan's box/obj/cls, ultralytics' box/cls/dfl)."""

    def as_dict(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class LossValues:
    """The three loss components of a step (per image, gains applied) as plain floats."""

    box: float
    obj: float
    cls: float

    @property
    def total(self) -> float:
        return self.box + self.obj + self.cls

    @classmethod
    def of(cls, items: Sequence[float] | torch.Tensor) -> LossValues:
        """From ``[box, obj, cls]``: a list, or a detached tensor (read once, one device sync)."""
        tolist = getattr(items, "tolist", None)
        values = tolist() if callable(tolist) else list(items)
        if len(values) != 3:
            raise ValueError(f"expected 3 loss components (box, obj, cls), got {len(values)}")
        box, obj, cls_ = (float(v) for v in values)
        return cls(box, obj, cls_)

    def as_dict(self) -> dict[str, float]:
        return {"box": self.box, "obj": self.obj, "cls": self.cls, "total": self.total}


def resolve_meter_provider(explicit: metrics.MeterProvider | None = None) -> metrics.MeterProvider:
    """An explicit provider wins, then one set by `use_meter_provider`, then OpenTelemetry's global."""
    if explicit is not None:
        return explicit
    return _meter_override.get() or metrics.get_meter_provider()


@contextmanager
def use_meter_provider(provider: metrics.MeterProvider) -> Iterator[metrics.MeterProvider]:
    """Send yolospan's metrics to ``provider`` inside the block; OpenTelemetry's global stays untouched."""
    token = _meter_override.set(provider)
    try:
        yield provider
    finally:
        _meter_override.reset(token)


class _SharedInstruments:
    """The observable instruments of one meter provider, shared by every run recording to it.

    The SDK makes an instrument once per name and meter: a second ``create_observable_gauge`` of
    the same name hands back the first instrument and drops the new callbacks. So each provider
    gets one set of instruments, created by its first run, whose callbacks observe every run made
    on it (each point carries its run's ``yolospan.run.id``). A finished run keeps being observed
    with its final values for as long as the provider lives, so an export after the run ended
    (at shutdown, say) still has them, and a cumulative counter's series never vanishes.
    """

    def __init__(self, meter: metrics.Meter) -> None:
        self._runs: list[TrainingMetrics] = []
        self._lock = threading.Lock()
        self.duration = meter.create_histogram(
            METRIC_STEP_DURATION,
            unit="s",
            description="Wall time of a training step",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S),
        )
        meter.create_observable_counter(
            METRIC_STEPS,
            [self._over_runs(TrainingMetrics._steps_points)],
            unit="{step}",
            description="Training steps",
        )
        meter.create_observable_gauge(
            METRIC_THROUGHPUT,
            [self._over_runs(TrainingMetrics._throughput_points)],
            unit="{image}/s",
            description="Training images per second",
        )
        meter.create_observable_gauge(
            METRIC_LOSS,
            [self._over_runs(TrainingMetrics._loss_points_now)],
            unit="1",
            description="Training loss per component",
        )
        meter.create_observable_gauge(
            METRIC_LR, [self._over_runs(TrainingMetrics._lr_points)], unit="1", description="Learning rate"
        )
        meter.create_observable_gauge(
            METRIC_VAL_LOSS,
            [self._over_runs(TrainingMetrics._val_loss_points)],
            unit="1",
            description="Validation loss per component",
        )

    def add(self, run: TrainingMetrics) -> None:
        with self._lock:
            self._runs.append(run)

    def _over_runs(
        self, points: Callable[[TrainingMetrics], list[metrics.Observation]]
    ) -> Callable[[metrics.CallbackOptions], Iterable[metrics.Observation]]:
        def observe(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
            with self._lock:  # the reader's thread collects while training threads add runs
                runs = list(self._runs)
            return [point for run in runs for point in points(run)]

        return observe


# Weak keys: a provider that is dropped takes its instruments and runs with it.
_shared: weakref.WeakKeyDictionary[metrics.MeterProvider, _SharedInstruments] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def _instruments_of(provider: metrics.MeterProvider) -> _SharedInstruments:
    with _shared_lock:
        shared = _shared.get(provider)
        if shared is None:
            shared = _shared[provider] = _SharedInstruments(provider.get_meter(_METER_NAME, __version__))
        return shared


class TrainingMetrics:
    """The training instruments of one run; every point carries ``yolospan.run.id``.

    Only the step-duration histogram is recorded through the SDK on each step. Counts and the
    gauges' latest values are kept here and read by asynchronous (observable) instruments when
    the metrics are collected, which exports the same points for a fraction of the per-step cost.
    Several runs on one meter provider share its instruments; their points differ by run id.
    """

    def __init__(self, *, run_id: str, meter_provider: metrics.MeterProvider | None = None) -> None:
        shared = _instruments_of(resolve_meter_provider(meter_provider))
        self._run = {A.RUN_ID: run_id}
        self._components = {
            name: {A.RUN_ID: run_id, A.LOSS_COMPONENT: name} for name in ("box", "obj", "cls", "total")
        }
        self.steps = 0
        self.throughput: float | None = None
        self.losses: LossComponents | None = None
        self.lr: float | None = None
        self.val_losses: LossComponents | None = None
        self._duration = shared.duration
        shared.add(self)

    def record_step(
        self, *, duration_s: float, images: int, losses: LossComponents | None = None, lr: float | None = None
    ) -> None:
        self._duration.record(duration_s, self._run)
        self.steps += 1
        if duration_s > 0:
            self.throughput = images / duration_s
        if losses is not None:
            self.losses = losses
        if lr is not None:
            self.lr = lr

    def record_validation(self, losses: LossComponents) -> None:
        self.val_losses = losses

    # --- this run's points, read by the shared instruments' callbacks at collection -----------------

    def _steps_points(self) -> list[metrics.Observation]:
        return [metrics.Observation(self.steps, self._run)]

    def _throughput_points(self) -> list[metrics.Observation]:
        return [] if self.throughput is None else [metrics.Observation(self.throughput, self._run)]

    def _lr_points(self) -> list[metrics.Observation]:
        return [] if self.lr is None else [metrics.Observation(self.lr, self._run)]

    def _loss_points_now(self) -> list[metrics.Observation]:
        return self._loss_points(self.losses)

    def _val_loss_points(self) -> list[metrics.Observation]:
        return self._loss_points(self.val_losses)

    def _loss_points(self, losses: LossComponents | None) -> list[metrics.Observation]:
        if losses is None:
            return []
        return [metrics.Observation(value, self._component(name)) for name, value in losses.as_dict().items()]

    def _component(self, name: str) -> dict[str, str]:
        attrs = self._components.get(name)
        if attrs is None:
            attrs = self._components[name] = {A.RUN_ID: self._run[A.RUN_ID], A.LOSS_COMPONENT: name}
        return attrs
