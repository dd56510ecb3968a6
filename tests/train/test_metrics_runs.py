"""Several runs on one meter provider: each run's points are exported, told apart by run id."""

from __future__ import annotations

import gc
import weakref

import torch
from metrics_reader import MetricCapture
from opentelemetry.sdk.metrics import MeterProvider
from torch import nn

from yolospan import attributes as A
from yolospan.train import TrainingRun
from yolospan.train.metrics import (
    METRIC_LOSS,
    METRIC_LR,
    METRIC_STEP_DURATION,
    METRIC_STEPS,
    METRIC_THROUGHPUT,
    METRIC_VAL_LOSS,
    LossValues,
    TrainingMetrics,
)


def _by_run(points: list[tuple[dict, object]]) -> dict[str, object]:
    return {attrs[A.RUN_ID]: value for attrs, value in points}


def test_two_training_runs_on_one_provider_both_export_their_metrics():
    capture = MetricCapture()
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(3))
    images = torch.rand(2, 3, 8, 8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for run_id, steps, lr in (("run-a", 2, 0.05), ("run-b", 3, 0.01)):
        with TrainingRun(run_id=run_id, meter_provider=capture.provider) as run:
            run.watch(model)
            for _ in range(steps):
                with run.step(epoch=0, images=images, lr=lr) as step:
                    output = model(images)
                    with step.loss() as loss:
                        loss.record(torch.tensor([0.25, 0.5, 0.125]))
                    with step.backward():
                        output.square().mean().backward()
                    with step.optimizer_step(accumulate=1):
                        optimizer.step()
                        optimizer.zero_grad()
    points = capture.points()
    assert _by_run(points[METRIC_STEPS]) == {"run-a": 2, "run-b": 3}
    assert _by_run(points[METRIC_LR]) == {"run-a": 0.05, "run-b": 0.01}
    assert set(_by_run(points[METRIC_THROUGHPUT])) == {"run-a", "run-b"}
    durations = _by_run(points[METRIC_STEP_DURATION])
    assert {run: histogram["count"] for run, histogram in durations.items()} == {"run-a": 2, "run-b": 3}
    totals = {attrs[A.RUN_ID] for attrs, _ in points[METRIC_LOSS] if attrs[A.LOSS_COMPONENT] == "total"}
    assert totals == {"run-a", "run-b"}


def test_every_gauge_of_a_second_run_is_observed():
    capture = MetricCapture()
    first = TrainingMetrics(run_id="a", meter_provider=capture.provider)
    second = TrainingMetrics(run_id="b", meter_provider=capture.provider)
    first.record_step(duration_s=0.5, images=4, losses=LossValues(1.0, 2.0, 3.0), lr=0.1)
    second.record_step(duration_s=0.25, images=4, losses=LossValues(0.5, 0.25, 0.125), lr=0.2)
    second.record_validation(LossValues(0.0, 1.0, 0.0))
    points = capture.points()
    assert _by_run(points[METRIC_THROUGHPUT]) == {"a": 8.0, "b": 16.0}
    assert _by_run(points[METRIC_LR]) == {"a": 0.1, "b": 0.2}
    losses = {(attrs[A.RUN_ID], attrs[A.LOSS_COMPONENT]): value for attrs, value in points[METRIC_LOSS]}
    assert losses[("a", "total")] == 6.0 and losses[("b", "total")] == 0.875
    assert _by_run([(a, v) for a, v in points[METRIC_VAL_LOSS] if a[A.LOSS_COMPONENT] == "obj"]) == {"b": 1.0}


def test_runs_on_different_providers_stay_apart():
    one, other = MetricCapture(), MetricCapture()
    TrainingMetrics(run_id="a", meter_provider=one.provider).record_step(duration_s=1.0, images=1)
    TrainingMetrics(run_id="b", meter_provider=other.provider).record_step(duration_s=1.0, images=1)
    assert _by_run(one.points()[METRIC_STEPS]) == {"a": 1}
    assert _by_run(other.points()[METRIC_STEPS]) == {"b": 1}


def test_a_finished_run_is_still_exported_and_freed_with_its_provider():
    capture = MetricCapture()
    TrainingMetrics(run_id="finished", meter_provider=capture.provider).record_step(duration_s=1.0, images=1)
    gc.collect()  # nothing else holds the first run: its final values must still be exported
    TrainingMetrics(run_id="current", meter_provider=capture.provider)
    assert _by_run(capture.points()[METRIC_STEPS]) == {"finished": 1, "current": 0}

    provider = MeterProvider(shutdown_on_exit=False)
    run = weakref.ref(TrainingMetrics(run_id="x", meter_provider=provider))
    del provider
    gc.collect()
    assert run() is None  # the registry of runs does not keep a dropped provider (or its runs) alive
