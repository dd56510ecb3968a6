"""The step API on a tiny model: span sequence, new traces, run id, sampling, metrics."""

from __future__ import annotations

import pytest
import torch
from metrics_reader import MetricCapture
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.tracing import instrumentation_of
from yolospan.train import TrainingRun, train_step
from yolospan.train.metrics import (
    METRIC_LOSS,
    METRIC_LR,
    METRIC_STEP_DURATION,
    METRIC_STEPS,
    METRIC_THROUGHPUT,
)

STEP_CHILDREN = ["forward", "loss", "backward", "optimizer_step"]


@pytest.fixture
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))


def _one_step(step, model, optimizer, images, *, scaler=None):
    output = model(images)
    with step.loss() as loss:
        total = output.square().mean()
        loss.record(torch.tensor([0.25, 0.5, 0.125]))
    with step.backward():
        total.backward()
    with step.optimizer_step(scaler=scaler, accumulate=1):
        optimizer.step()
        optimizer.zero_grad()


def test_a_step_is_its_own_trace_with_forward_loss_backward_optimizer_step(spans, model):
    images = torch.rand(2, 3, 8, 8)
    model(images)  # materialise the lazy layer
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    targets = torch.zeros(5, 6)
    with (
        yolospan.instrument(model),
        yolospan.span("outer"),  # an enclosing span must not adopt the step
        train_step(model, epoch=1, step=7, images=images, targets=targets, lr=0.01) as step,
    ):
        _one_step(step, model, optimizer, images)
    root = spans.one("train_step", epoch=1, step=7, batch_shape=[2, 3, 8, 8], batch_targets=5, lr=0.01)
    assert root.parent is None and root.trace_id != spans.one("outer").trace_id
    root.children.assert_names(STEP_CHILDREN)
    forward = root.children[0]
    assert forward.attributes[A.PHASE] == "train" and forward.attributes[A.INPUT_SHAPE] == [2, 3, 8, 8]
    assert forward.attributes[A.FLOPS] > 0
    assert spans.one("loss", loss_box=0.25, loss_obj=0.5, loss_cls=0.125, loss_total=0.875).phase == "train"
    assert spans.one("optimizer_step").attributes[A.ACCUMULATE] == 1
    assert A.SCALER_SCALE not in spans.one("optimizer_step").attributes  # no scaler, no scaler state


def test_a_failing_step_ends_its_spans_with_error(spans, model):
    with pytest.raises(RuntimeError), train_step(model, epoch=0, step=0) as step, step.backward():
        raise RuntimeError("boom")
    assert spans.one("backward").status == "ERROR"
    assert spans.one("train_step").status == "ERROR"


def test_the_scaler_state_is_recorded_and_a_skipped_step_shows(spans):
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    for index, value in enumerate((1.0, float("inf"))):
        with train_step(model, epoch=0, step=index) as step:
            loss = model(torch.ones(1, 2)).sum() * value
            with step.backward():
                scaler.scale(loss).backward()
            with step.optimizer_step(scaler=scaler) as opt:
                scaler.unscale_(optimizer)
                opt.record_grad_norm(torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0))
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
    good, skipped = spans.find("optimizer_step")
    assert good.attributes[A.SCALER_SKIPPED] is False and good.attributes[A.SCALER_SCALE] == 1024.0
    assert good.attributes[A.GRAD_NORM] > 0
    assert skipped.attributes[A.SCALER_SKIPPED] is True and skipped.attributes[A.SCALER_SCALE] == 512.0
    assert A.GRAD_NORM not in skipped.attributes  # not finite


def test_a_run_puts_its_id_on_every_span_and_traces_every_nth_step(spans, model):
    images = torch.rand(2, 3, 8, 8)
    optimizer = None
    with TrainingRun(run_id="run-42", trace_every=3) as run:
        with yolospan.span("setup"):
            model(images)  # unwatched: not traced, but inside the run
        run.watch(model)
        assert instrumentation_of(model) is not None
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for index in range(7):
            with run.step(epoch=index // 4, images=images, lr=0.1) as step:
                _one_step(step, model, optimizer, images)
        with run.validation(model, epoch=1), torch.no_grad():
            model.eval()(images)
    assert instrumentation_of(model) is None  # the run's instrumentation ends with it
    assert [s.attributes[A.STEP] for s in spans.find("train_step")] == [0, 3, 6]
    assert [s.attributes[A.EPOCH] for s in spans.find("train_step")] == [0, 0, 1]
    assert len(spans.find("forward", phase="train")) == 3
    assert len(spans.find("forward")) == 4  # + validation; untraced steps' forwards make no span
    assert len(spans.find("loss")) == 3
    val = spans.one("val", phase="val", epoch=1)
    assert val.parent is None
    val.children.assert_names(["forward"])
    assert val.children[0].attributes[A.PHASE] == "val"
    assert {s.attributes.get(A.RUN_ID) for s in spans} == {"run-42"}
    assert len({s.trace_id for s in spans.roots}) == len(spans.roots) == 5  # setup, 3 steps, val


def test_metrics_cover_every_step_traced_or_not(spans, model):
    capture = MetricCapture()
    images = torch.rand(4, 3, 8, 8)
    with TrainingRun(run_id="r", trace_every=100, meter_provider=capture.provider) as run:
        run.watch(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            with run.step(epoch=0, images=images, lr=0.05) as step:
                _one_step(step, model, optimizer, images)
    points = capture.points()
    assert points[METRIC_STEPS] == [({A.RUN_ID: "r"}, 3)]
    ((attrs, histogram),) = points[METRIC_STEP_DURATION]
    assert attrs == {A.RUN_ID: "r"} and histogram["count"] == 3 and histogram["sum"] > 0
    assert histogram["bounds"][:3] == (0.005, 0.01, 0.025)
    assert points[METRIC_LR] == [({A.RUN_ID: "r"}, 0.05)]
    assert points[METRIC_THROUGHPUT][0][1] > 0
    losses = {attrs[A.LOSS_COMPONENT]: value for attrs, value in points[METRIC_LOSS]}
    assert losses == {"box": 0.25, "obj": 0.5, "cls": 0.125, "total": 0.875}
    assert len(spans.find("train_step")) == 1


def test_a_sampled_out_run_records_nothing_but_still_counts(model):
    capture = MetricCapture()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    images = torch.rand(2, 3, 8, 8)
    with TrainingRun(tracer_provider=provider, meter_provider=capture.provider) as run:
        run.watch(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        with run.step(epoch=0, images=images) as step:
            assert step.span is not trace.INVALID_SPAN and not step.recording
            _one_step(step, model, optimizer, images)
    assert capture.points()[METRIC_STEPS][0][1] == 1


def test_steps_need_a_watched_model():
    with (
        TrainingRun() as run,
        pytest.raises(RuntimeError, match="watch"),
        run.step(epoch=0, images=torch.zeros(1)),
    ):
        pass


def test_trace_every_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        TrainingRun(trace_every=0)
