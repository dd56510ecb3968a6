"""YOLOv5Instrumentor on ``yolov5``'s own ``train.py`` (skipped where the package is not installed)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torchvision")
pytest.importorskip("yolov5")

import matplotlib  # a yolov5 dependency: its font stands in for the Arial yolov5 downloads
import torch
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from PIL import Image
from yolov5 import train as train_script
from yolov5.utils import general, torch_utils
from yolov5.utils.callbacks import Callbacks

from yolospan import attributes as A
from yolospan.export.tracefile import read_trace_file
from yolospan.instrumentation.yolov5 import YOLOv5Instrumentor
from yolospan.testing import SpanList
from yolospan.train.metrics import METRIC_LOSS, METRIC_STEPS, METRIC_VAL_LOSS

LOSSES = (A.LOSS_BOX, A.LOSS_OBJ, A.LOSS_CLS)


@pytest.fixture
def offline(monkeypatch):
    """yolov5 7.0 as it runs here: its font already in place, no socket, torch's old load default."""
    font = Path(general.CONFIG_DIR) / "Arial.ttf"  # check_font downloads it when it is missing
    if not font.exists():
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)

    def refuse(self, address):
        raise OSError(f"the test tried to reach {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    # strip_optimizer reloads its checkpoint with torch.load's default, weights-only since torch 2.6
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


@pytest.fixture
def dataset(tmp_path):
    """6 train and 2 val images of 64x64 noise, one labelled box each, 2 classes."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2)):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / split / f"{i}.jpg")
            (tmp_path / "labels" / split / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.4 0.3\n")
    data = tmp_path / "data.yaml"
    data.write_text(f"path: {tmp_path}\ntrain: images/train\nval: images/val\nnc: 2\nnames: ['a', 'b']\n")
    return data


def _points(reader):
    return {
        (metric.name, tuple(sorted(point.attributes.items()))): getattr(point, "value", None)
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }


def test_a_short_training_is_traced_step_by_step(instrumented, spans, offline, dataset, tmp_path):
    reader = InMemoryMetricReader()
    instrumentor = instrumented(YOLOv5Instrumentor, meter_provider=MeterProvider(metric_readers=[reader]))
    train_script.run(
        data=str(dataset), imgsz=64, epochs=1, batch_size=2, weights="", cfg="yolov5n.yaml",
        device="cpu", workers=0, noplots=True, exist_ok=True, project=str(tmp_path / "runs"),
    )  # fmt: skip
    steps = spans.assert_count(3, "train_step")
    run_id = steps[0].attributes[A.RUN_ID]
    # the run opens before the model is built: every span of the training carries its id
    assert {s.attributes.get(A.RUN_ID) for s in spans.finished} == {run_id}
    # 3 batches of 2; in warm-up upstream accumulates 2 batches from the third on (64 / 2 ramps up)
    children = [["forward", "loss", "backward", "optimizer_step"]] * 2 + [["forward", "loss", "backward"]]
    for index, (step, names) in enumerate(zip(steps, children, strict=True)):
        assert step.parent is None and step.phase == "train"
        step.children.assert_names(names)
        assert step.attributes[A.STEP] == index and step.attributes[A.EPOCH] == 0
        assert step.attributes[A.BATCH_SHAPE] == [2, 3, 64, 64] and step.attributes[A.BATCH_TARGETS] >= 2
        assert 0 < step.attributes[A.LR] <= 0.1  # the bias group's warm-up rate, falling from 0.1
        forward, loss = step.children[:2]
        assert forward.attributes[A.TRAINING] is True and forward.attributes[A.INPUT_SHAPE] == [2, 3, 64, 64]
        components = [loss.attributes[key] for key in LOSSES]
        assert loss.attributes[A.LOSS_TOTAL] == pytest.approx(sum(components)) and min(components) > 0
        assert A.LOSS_DFL not in loss.attributes
        assert loss.readable.end_time <= step.children[2].readable.start_time  # backward follows it
    assert [s.children[3].attributes[A.ACCUMULATE] for s in steps[:2]] == [1, 1]
    epoch = spans.one("epoch")
    assert epoch.parent is None and epoch.attributes[A.EPOCH] == 0 and epoch.attributes[A.STEP] == 3
    assert all(key in epoch.attributes for key in (*LOSSES, A.LR, A.FITNESS))
    assert epoch.readable.start_time <= steps[0].readable.start_time
    assert steps[-1].readable.end_time <= epoch.readable.end_time
    vals = spans.assert_count(2, "val")  # the epoch's, then best.pt's after training
    for val in vals:
        assert val.parent is None and val.attributes[A.VAL_IMAGES] == 2 and val.attributes[A.EPOCH] == 0
        assert all(key in val.attributes for key in LOSSES)
        val.children.assert_names(["forward"])
        assert val.children[0].attributes[A.TRAINING] is False and val.children[0].phase == "val"
    assert spans.one("amp_check").attributes[A.AMP_RESULT] == "skipped"
    assert instrumentor.training.engine.current() is None  # on_train_end closed the run

    points = _points(reader)
    assert points[(METRIC_STEPS, ((A.RUN_ID, run_id),))] == 3
    last = steps[-1].children[1].attributes[A.LOSS_OBJ]
    assert points[(METRIC_LOSS, ((A.LOSS_COMPONENT, "obj"), (A.RUN_ID, run_id)))] == pytest.approx(last)
    val_obj = vals[-1].attributes[A.LOSS_OBJ]
    val_point = points[(METRIC_VAL_LOSS, ((A.LOSS_COMPONENT, "obj"), (A.RUN_ID, run_id)))]
    assert val_point == pytest.approx(val_obj)


def test_opentelemetry_instrument_traces_python_m_yolov5_train(offline, dataset, tmp_path):
    """The documented way: nothing in the code, train.py run as ``__main__`` (so not wrappable itself)."""
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},  # not the developer's
        "OTEL_TRACES_EXPORTER": "otlp_json_file",  # OTLP JSON lines on stdout, among yolov5's own
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    arguments = f"--data {dataset} --img 64 --epochs 1 --batch-size 2 --cfg yolov5n.yaml --device cpu"
    arguments += " --workers 0 --noplots --exist-ok --project runs"
    done = subprocess.run(
        [str(instrument), sys.executable, "-m", "yolov5.train", "--weights", "", *arguments.split()],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # instrumenting imported no copy of train.py before runpy ran it as __main__
    assert "found in sys.modules" not in done.stderr
    trace_file = tmp_path / "trace.jsonl"
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"resourceSpans"')]
    trace_file.write_text("\n".join(lines) + "\n")
    recorded = SpanList.from_readable(read_trace_file(trace_file))
    steps = recorded.assert_count(3, "train_step")
    for step in steps:
        assert [c.name for c in step.children][:3] == ["forward", "loss", "backward"]
        assert all(key in step.children[1].attributes for key in LOSSES)
    assert [len(s.children.find("optimizer_step")) for s in steps] == [1, 1, 0]
    recorded.assert_count(1, "epoch")
    recorded.assert_count(2, "val")
    assert len({s.attributes[A.RUN_ID] for s in recorded}) == 1


# --- train.py's hooks, driven by hand: what its other paths and ranks look like -------------------


class _Script:
    """What train.py does around a step, in the order it does it, through upstream's own objects."""

    def __init__(self, model):
        self.callbacks = Callbacks()
        self.model = model
        self.optimizer = torch_utils.smart_optimizer(model, "SGD", 0.01, 0.9, 0.0)

    def step(self, *, optimize=True, rank0=True):
        self.callbacks.run("on_train_batch_start")
        images = torch.zeros(2, 3, 8, 8)
        self.model(images).sum().backward()
        if optimize:
            self.optimizer.step()
            self.optimizer.zero_grad()
        if rank0:
            self.callbacks.run("on_train_batch_end", self.model, 0, images, None, None, [])


def _model(instrumentor):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    instrumentor.tracer.watch(model)  # as a model built while instrumented is
    return model


def test_trace_every_traces_one_step_in_n_and_drops_the_others_forwards():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # the SDK's default sampler: parent-based, always on
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    instrumentor = YOLOv5Instrumentor()
    instrumentor.instrument(
        tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader]), trace_every=3
    )
    try:
        script = None

        def train():
            nonlocal script
            Callbacks().run("on_pretrain_routine_start")  # train.py makes its own; any instance will do
            script = _Script(_model(instrumentor))
            script.callbacks.run("on_train_epoch_start")
            for _ in range(6):
                script.step()
            script.callbacks.run("on_train_end")

        instrumentor.training.train(train, None, (), {})
    finally:
        instrumentor.uninstrument()
    finished = exporter.get_finished_spans()
    names = [span.name for span in finished]
    assert names.count("train_step") == 2 and names.count("forward") == 2
    assert names.count("optimizer_step") == 2
    assert [s.attributes[A.STEP] for s in finished if s.name == "train_step"] == [0, 3]
    assert [s.attributes[A.ACCUMULATE] for s in finished if s.name == "optimizer_step"] == [1, 1]
    run_id = finished[0].attributes[A.RUN_ID]
    assert _points(reader)[(METRIC_STEPS, ((A.RUN_ID, run_id),))] == 6  # every step, traced or not
    hooks = script.optimizer._optimizer_step_pre_hooks, script.optimizer._optimizer_step_post_hooks
    assert hooks == ({}, {})  # the run's end removed its hooks from the optimizer


class _Head(torch.nn.Module):
    """The least ``ComputeLoss`` accepts: upstream's ``Detect`` as ``model[-1]``, and ``hyp``."""

    def __init__(self):
        from yolov5.models.yolo import Detect

        super().__init__()
        self.model = torch.nn.ModuleList([Detect(nc=2, anchors=([10, 13, 16, 30, 33, 23],), ch=(4,))])
        self.model[-1].stride = torch.tensor([8.0])
        self.hyp = {"box": 0.05, "obj": 1, "cls": 0.5, "cls_pw": 1, "obj_pw": 1, "fl_gamma": 0, "anchor_t": 4}

    def forward(self, features):
        return self.model[-1]([features])


def test_a_raising_loss_passes_through_untouched_and_ends_its_step_in_error(instrumented, spans):
    from yolov5.utils.loss import ComputeLoss

    model = _Head()
    criterion = ComputeLoss(model)
    preds = model(torch.zeros(1, 4, 8, 8))
    bad = torch.zeros(1, 5)  # train.py's targets have 6 columns: image, class, box
    with pytest.raises(Exception) as plain:
        criterion(preds, bad)
    instrumentor = instrumented(YOLOv5Instrumentor)
    instrumentor.tracer.watch(model)
    spans.clear()

    def train():
        Callbacks().run("on_pretrain_routine_start")
        callbacks = Callbacks()
        callbacks.run("on_train_epoch_start")
        callbacks.run("on_train_batch_start")
        criterion(model(torch.zeros(1, 4, 8, 8)), bad)

    with pytest.raises(type(plain.value)) as traced:
        instrumentor.training.train(train, None, (), {})
    assert str(traced.value) == str(plain.value) and traced.value.__cause__ is None
    step = spans.one("train_step")
    assert step.status == "ERROR" and spans.one("loss").status == "ERROR"
    assert spans.one("epoch").status == "ERROR"  # the training's wrapper ended what was open
    step.children.assert_names(["forward", "loss"])
    assert instrumentor.training.engine.current() is None


def test_other_ranks_run_no_end_hooks_and_their_spans_end_all_the_same(instrumented, spans):
    """Ranks other than 0 see no batch end, fit epoch end or train end; the exit ends the rest."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        instrumentor = instrumented(YOLOv5Instrumentor)
        Callbacks().run("on_pretrain_routine_start")
        script = _Script(_model(instrumentor))
        torch_utils.smart_resume({"epoch": 4, "optimizer": None}, script.optimizer, None, "last.pt", 9)
        for batches in (3, 2):
            script.callbacks.run("on_train_epoch_start")
            for index in range(batches):
                script.step(optimize=index % 2 == 1, rank0=False)
        instrumentor.training._at_exit()  # what atexit runs when the process ends
    finally:
        dist.destroy_process_group()
    steps = spans.assert_count(5, "train_step")
    assert [s.attributes[A.EPOCH] for s in steps] == [5, 5, 5, 6, 6]  # resumed after epoch 4
    assert [len(s.children.find("optimizer_step")) for s in steps] == [0, 1, 0, 0, 1]
    # batches since the last step, across epochs as train.py counts them
    assert [s.attributes[A.ACCUMULATE] for s in spans.find("optimizer_step")] == [2, 3]
    epochs = spans.assert_count(2, "epoch")
    assert [e.attributes[A.STEP] for e in epochs] == [3, 2]
    assert all(s.attributes[A.RANK] == 0 and s.attributes[A.WORLD_SIZE] == 1 for s in spans.finished)
    assert instrumentor.training.engine.current() is None


def test_at_exit_the_exception_that_ended_the_script_marks_what_was_open(instrumented, spans, monkeypatch):
    instrumentor = instrumented(YOLOv5Instrumentor)
    Callbacks().run("on_pretrain_routine_start")
    callbacks = Callbacks()
    callbacks.run("on_train_epoch_start")
    callbacks.run("on_train_batch_start")
    monkeypatch.delattr(sys, "last_exc", raising=False)  # what the interpreter sets when it prints
    monkeypatch.setattr(sys, "last_value", RuntimeError("CUDA out of memory"), raising=False)
    instrumentor.training._at_exit()
    step, epoch = spans.one("train_step"), spans.one("epoch")
    assert step.status == epoch.status == "ERROR" and "out of memory" in step.status_description
    assert instrumentor.training.engine.current() is None
