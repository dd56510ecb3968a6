"""UltralyticsInstrumentor on the real ``ultralytics`` package (skipped where it is not installed)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("torchvision")
pytest.importorskip("ultralytics")

import torch
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from PIL import Image
from ultralytics.engine import trainer as trainer_module
from ultralytics.nn import tasks
from ultralytics.utils import checks

from yolospan import attributes as A
from yolospan.instrumentation.ultralytics import UltralyticsInstrumentor
from yolospan.train.metrics import METRIC_LOSS, METRIC_STEPS

CONFIGS = ["yolov5su.yaml", "yolov8n.yaml", "yolo11n.yaml"]


@pytest.mark.parametrize("config", CONFIGS)
def test_model_init_phases_and_upstreams_own_summary(instrumented, spans, config):
    plain = tasks.DetectionModel(config, verbose=False)
    layers, params, gradients, gflops = plain.info()
    instrumented(UltralyticsInstrumentor)
    model = tasks.DetectionModel(config)
    init = spans.one("model.init")
    init.children.assert_names(["stride_probe", "info_profile"])
    probe = spans.one("forward", phase="stride_probe")
    assert probe.parent.name == "stride_probe" and probe.attributes[A.INPUT_SHAPE] == [1, 3, 256, 256]
    assert [probe.attributes[A.output_shape_key(i)][-1] for i in range(3)] == [32, 16, 8]
    assert init.attributes[A.MODEL_NAME] == config.removesuffix(".yaml")
    assert init.attributes[A.MODEL_STRIDE] == [8, 16, 32]
    assert init.attributes[A.MODEL_PARAMS] == sum(p.numel() for p in model.parameters())
    profile = spans.one("info_profile").attributes
    assert (profile[A.LAYERS], profile[A.PARAMS], profile[A.GRADIENTS]) == (layers, params, gradients)
    assert profile[A.GFLOPS] == round(gflops, 1) > 0
    forward = spans.one("forward", phase="info_profile")
    assert forward.attributes[A.INPUT_SHAPE] == [1, 3, 32, 32]
    assert forward.attributes[A.FLOPS] * (640 / 32) ** 2 / 1e9 == pytest.approx(gflops)


def test_forwards_after_creation_and_layer_spans(instrumented, spans):
    instrumented(UltralyticsInstrumentor, layers=True)
    model = tasks.DetectionModel("yolov8n.yaml", verbose=False).eval()
    spans.clear()
    model(torch.zeros(1, 3, 64, 64))
    forward = spans.one("forward")
    layers = forward.children
    assert [s.attributes[A.LAYER_INDEX] for s in layers] == list(range(len(model.model)))
    assert layers[-1].name == "Detect" and layers[-1].attributes[A.LAYER_FROM] == [15, 18, 21]
    assert layers[0].name == "Conv"
    pickle.loads(pickle.dumps(model))


def test_amp_check_on_cpu_is_skipped_with_upstreams_answer(instrumented, spans):
    instrumented(UltralyticsInstrumentor)
    model = tasks.DetectionModel("yolov8n.yaml", verbose=False)
    spans.clear()
    assert trainer_module.check_amp(model) is False
    amp = spans.one("amp_check")
    assert amp.attributes[A.AMP_RESULT] == "skipped" and amp.attributes[A.AMP_ENABLED] is False
    assert amp.children == []


def test_uninstrument_is_exact(spans):
    targets = [
        (tasks.DetectionModel, "__init__"),
        (tasks.BaseModel, "forward"),
        (tasks.BaseModel, "info"),
        (tasks.BaseModel, "fuse"),
        (tasks.BaseModel, "loss"),
        (checks, "check_amp"),
        (trainer_module, "check_amp"),
        (trainer_module.BaseTrainer, "train"),
        (trainer_module.BaseTrainer, "_do_train"),
        (trainer_module.BaseTrainer, "optimizer_step"),
        (trainer_module.BaseTrainer, "validate"),
    ]
    before = [vars(owner)[name] for owner, name in targets]
    instrumentor = UltralyticsInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider)
    # identity, not ==: a wrapt wrapper compares equal to what it wraps
    assert all(vars(owner)[name] is not was for (owner, name), was in zip(targets, before, strict=True))
    instrumentor.uninstrument()
    assert all(vars(owner)[name] is was for (owner, name), was in zip(targets, before, strict=True))
    assert not hasattr(tasks.BaseModel, "traced_layers")


@pytest.fixture
def dataset(tmp_path):
    """4 train and 4 val images of 64x64 noise, one labelled box each, 2 classes."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / split / f"{i}.jpg")
            (tmp_path / "labels" / split / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.4 0.3\n")
    data = tmp_path / "data.yaml"
    data.write_text(f"path: {tmp_path}\ntrain: images/train\nval: images/val\nnames:\n  0: a\n  1: b\n")
    return data


def test_a_short_training_is_traced_step_by_step(instrumented, spans, dataset, tmp_path):
    from ultralytics import YOLO

    reader = InMemoryMetricReader()
    instrumented(UltralyticsInstrumentor, meter_provider=MeterProvider(metric_readers=[reader]))
    YOLO("yolov8n.yaml").train(
        data=str(dataset), imgsz=64, epochs=1, batch=2, device="cpu", workers=0,
        plots=False, project=str(tmp_path / "runs"), verbose=False,
    )  # fmt: skip
    steps = spans.assert_count(2, "train_step")
    run_id = steps[0].attributes[A.RUN_ID]
    for index, step in enumerate(steps):
        assert step.parent is None and step.phase == "train"
        step.children.assert_names(["forward", "backward", "optimizer_step"])
        assert step.attributes[A.STEP] == index and step.attributes[A.EPOCH] == 0
        assert (
            step.attributes[A.BATCH_SHAPE] == [2, 3, 64, 64] and step.attributes[A.BATCH_TARGETS] >= 2
        )  # mosaic adds boxes
        assert step.attributes[A.RUN_ID] == run_id and A.RANK not in step.attributes
        forward = step.children[0]
        assert forward.attributes[A.PHASE] == "train" and forward.attributes[A.TRAINING] is True
        loss = forward.children.assert_names(["loss"]) or forward.children[0]
        components = [loss.attributes[k] for k in (A.LOSS_BOX, A.LOSS_CLS, A.LOSS_DFL)]
        assert loss.attributes[A.LOSS_TOTAL] == pytest.approx(sum(components))
        assert A.LOSS_OBJ not in loss.attributes
        assert step.children[2].attributes[A.ACCUMULATE] >= 1
    for name in ("forward", "loss", "backward", "optimizer_step"):
        assert all(s.attributes[A.RUN_ID] == run_id for s in spans.find(name, phase="train"))
    epoch = spans.one("epoch")
    assert epoch.parent is None and epoch.attributes[A.EPOCH] == 0 and epoch.attributes[A.STEP] == 2
    assert A.LOSS_DFL in epoch.attributes and A.FITNESS in epoch.attributes
    val = spans.one("val")
    assert val.parent is None and val.attributes[A.VAL_IMAGES] == 4 and val.attributes[A.RUN_ID] == run_id
    val_forwards = val.children.find("forward")
    assert len(val_forwards) == 1 and val_forwards[0].attributes[A.TRAINING] is False
    amp = spans.one("amp_check")
    assert amp.attributes[A.AMP_RESULT] == "skipped" and amp.attributes[A.RUN_ID] == run_id
    trainer_init = [s for s in spans.find("model.init") if s.attributes.get(A.RUN_ID) == run_id]
    assert trainer_init == []  # ultralytics builds the trainer's model before train() starts the run

    points = {
        (metric.name, tuple(sorted(point.attributes.items()))): getattr(point, "value", None)
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }
    assert points[(METRIC_STEPS, ((A.RUN_ID, run_id),))] == 2
    assert (METRIC_LOSS, ((A.LOSS_COMPONENT, "dfl"), (A.RUN_ID, run_id))) in points


def test_forwards_go_to_the_provider_the_instrumentor_was_given():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = UltralyticsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)  # no spans fixture: nothing else routes spans
    try:
        model = tasks.DetectionModel("yolov8n.yaml", verbose=False).eval()
        exporter.clear()
        model(torch.zeros(1, 3, 64, 64))
    finally:
        instrumentor.uninstrument()
    assert [span.name for span in exporter.get_finished_spans()] == ["forward"]


class _Trainer:
    """What the step callbacks read from ultralytics' trainer."""

    def __init__(self):
        self.callbacks = {}
        self.epoch = 0
        self.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
        self.loss_items = torch.tensor([1.0, 2.0, 3.0])

    def add_callback(self, event, callback):
        self.callbacks.setdefault(event, []).append(callback)

    def run(self, event):
        for callback in self.callbacks.get(event, []):
            callback(self)


def test_trace_every_traces_one_step_in_n_and_drops_the_others_forwards():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # the SDK's default sampler: parent-based, always on
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = UltralyticsInstrumentor()
    instrumentor.instrument(tracer_provider=provider, trace_every=3)
    try:
        model = tasks.DetectionModel("yolov8n.yaml", verbose=False).eval()
        exporter.clear()
        trainer = _Trainer()

        def steps():
            for _ in range(6):
                trainer.run("on_train_batch_start")
                model(torch.zeros(1, 3, 32, 32))
                trainer.run("on_train_batch_end")

        instrumentor.training.do_train(steps, trainer, (), {})
    finally:
        instrumentor.uninstrument()
    names = [span.name for span in exporter.get_finished_spans()]
    assert names.count("train_step") == 2 and names.count("forward") == 2
    assert [s.attributes[A.STEP] for s in exporter.get_finished_spans() if s.name == "train_step"] == [0, 3]
    assert trainer.callbacks == {event: [] for event in trainer.callbacks}  # ours removed after the run
