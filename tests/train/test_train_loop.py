"""yolov5n at 64 px on a synthetic set: the real loop, its spans, metrics and checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from metrics_reader import MetricCapture

from yolospan import attributes as A
from yolospan.testing import SpanRecorder
from yolospan.train import Hyp, TrainConfig, Trainer, TrainResult, load_checkpoint
from yolospan.train.metrics import METRIC_LOSS, METRIC_STEP_DURATION, METRIC_STEPS, METRIC_VAL_LOSS

STEP_CHILDREN = ["forward", "loss", "backward", "optimizer_step"]


@dataclass
class Run:
    result: TrainResult
    spans: SpanRecorder
    metrics: MetricCapture
    save_dir: Path
    summaries: list


@pytest.fixture(scope="module")
def run(shapes, tmp_path_factory) -> Run:
    """2 epochs x 2 steps (8 images, batch 4), every 2nd step traced, validated, checkpointed."""
    torch.set_num_threads(1)
    save_dir = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        shapes,
        cfg="yolov5n",
        imgsz=64,
        epochs=2,
        batch=4,
        nbs=4,
        trace_every=2,
        save_dir=save_dir,
        run_id="r-7",
    )
    summaries: list = []
    capture = MetricCapture()
    with SpanRecorder() as spans:
        result = Trainer(config, on_epoch_end=summaries.append).fit(meter_provider=capture.provider)
    return Run(result, spans, capture, save_dir, summaries)


def test_init_is_one_trace_and_each_traced_step_another(run):
    spans = run.spans
    init = spans.one("model.init", model_name="yolov5n", model_nc=3)
    init.children.assert_names(["stride_probe", "info_profile", "amp_check"])
    steps = spans.find("train_step")
    assert [(s.attributes[A.EPOCH], s.attributes[A.STEP]) for s in steps] == [(0, 0), (1, 2)]
    roots = spans.roots
    assert len(roots) == len({s.trace_id for s in roots}) == 5  # init, 2 steps, 2 validations


def test_a_step_runs_forward_loss_backward_optimizer_step(run):
    step = run.spans.one("train_step", step=0, batch_shape=[4, 3, 64, 64], lr=0.0, phase="train")
    step.children.assert_names(STEP_CHILDREN)
    forward, loss, _, optimizer = step.children
    assert forward.attributes[A.PHASE] == "train" and forward.attributes[A.TRAINING] is True
    assert forward.attributes[A.OUTPUT_COUNT] == 3  # one map per level in training mode
    assert forward.attributes[A.output_shape_key(0)] == [4, 3, 8, 8, 8]
    assert forward.attributes[A.FLOPS] > 0
    assert all(loss.attributes[key] > 0 for key in (A.LOSS_BOX, A.LOSS_OBJ, A.LOSS_CLS))
    assert loss.attributes[A.LOSS_TOTAL] == pytest.approx(
        loss.attributes[A.LOSS_BOX] + loss.attributes[A.LOSS_OBJ] + loss.attributes[A.LOSS_CLS]
    )
    assert optimizer.attributes[A.ACCUMULATE] == 1 and optimizer.attributes[A.GRAD_NORM] > 0
    assert step.attributes[A.BATCH_TARGETS] > 0


def test_every_span_carries_the_run_id(run):
    assert len(run.spans) == 20  # init 6, two steps of 5, two validations of 2
    assert {span.attributes.get(A.RUN_ID) for span in run.spans} == {"r-7"}


def test_validation_forwards_run_in_phase_val_on_the_ema_weights(run):
    passes = run.spans.find("val", phase="val")
    assert [p.attributes[A.EPOCH] for p in passes] == [0, 1]
    for val in passes:
        assert val.attributes[A.VAL_IMAGES] == 2 and val.attributes[A.LOSS_TOTAL] > 0
        (forward,) = val.children
        assert forward.attributes[A.PHASE] == "val" and forward.attributes[A.TRAINING] is False


def test_metrics_count_every_step(run):
    points = run.metrics.points()
    assert points[METRIC_STEPS] == [({A.RUN_ID: "r-7"}, 4)]
    assert points[METRIC_STEP_DURATION][0][1]["count"] == 4
    last = {attrs[A.LOSS_COMPONENT]: value for attrs, value in points[METRIC_LOSS]}
    assert last["total"] == pytest.approx(run.result.step_losses[-1].total)
    assert {attrs[A.LOSS_COMPONENT] for attrs, _ in points[METRIC_VAL_LOSS]} == {"box", "obj", "cls", "total"}


def test_the_checkpoint_holds_model_ema_optimizer_epoch_and_run_id(run):
    checkpoint = load_checkpoint(run.save_dir / "weights" / "last.pt")
    assert run.result.checkpoint == run.save_dir / "weights" / "last.pt"
    assert checkpoint["epoch"] == 1 and checkpoint["run_id"] == "r-7"
    assert checkpoint["config"] == {"cfg": "yolov5n", "nc": 3, "imgsz": 64, "epochs": 2}
    assert checkpoint["ema_updates"] == run.result.ema.updates == 4
    model_state = run.result.model.state_dict()
    assert checkpoint["model"].keys() == model_state.keys()
    torch.testing.assert_close(checkpoint["ema"], run.result.ema.ema.state_dict())
    assert [g["name"] for g in checkpoint["optimizer"]["param_groups"]] == ["weights", "norm", "biases"]


def test_epoch_summaries(run):
    assert [s.epoch for s in run.summaries] == [0, 1]
    assert all(s.steps == 2 and s.images == 8 and s.val_losses is not None for s in run.summaries)
    assert run.summaries[0].line(2).startswith("epoch 1/2  loss ")


def test_overfitting_a_handful_of_images_lowers_the_loss(four_shapes, spans):
    hyp = Hyp(warmup_epochs=0, warmup_min_steps=0)  # no warm-up: 20 steps at lr 0.01
    config = TrainConfig(
        four_shapes, cfg="yolov5n", imgsz=64, epochs=20, batch=4, nbs=4, trace_every=10, hyp=hyp
    )
    result = Trainer(config).fit()
    losses = [values.total for values in result.step_losses]
    assert len(losses) == 20
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, losses
    assert len(spans.find("train_step")) == 2
    assert spans.find("val") == []  # no val split


def test_runs_with_the_same_seed_get_different_trace_ids(run, shapes):
    config = TrainConfig(shapes, cfg="yolov5n", imgsz=64, epochs=1, batch=8, nbs=8, validate=False)
    with SpanRecorder() as again:
        Trainer(config).fit()
    first = {s.trace_id for s in run.spans}
    assert first.isdisjoint({s.trace_id for s in again})


def test_gradients_accumulate_as_upstream(shapes, spans):
    hyp = Hyp(warmup_epochs=0, warmup_min_steps=0)
    config = TrainConfig(shapes, cfg="yolov5n", imgsz=64, epochs=2, batch=4, nbs=8, hyp=hyp, validate=False)
    Trainer(config).fit()
    steps = spans.find("train_step")
    # 8 images per optimizer step at batch 4: every second step has an optimizer_step.
    assert [len(s.children) for s in steps] == [3, 4, 3, 4]
    assert [s.attributes[A.ACCUMULATE] for s in spans.find("optimizer_step")] == [2, 2]
