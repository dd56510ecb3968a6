"""YOLOv5Instrumentor on the real ``yolov5`` package (skipped where it is not installed)."""

from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path

import pytest

pytest.importorskip("torchvision")
yolov5 = pytest.importorskip("yolov5")

import torch  # noqa: E402
from yolov5 import train as train_script  # noqa: E402
from yolov5 import val as val_script  # noqa: E402
from yolov5.models import common, yolo  # noqa: E402
from yolov5.utils import callbacks, general, loss, torch_utils  # noqa: E402

import yolospan  # noqa: E402
from yolospan import attributes as A  # noqa: E402
from yolospan.instrumentation.yolov5 import YOLOv5Instrumentor  # noqa: E402
from yolospan.testing import SpanRecorder  # noqa: E402

YOLOV5S = str(Path(yolov5.__file__).parent / "models" / "yolov5s.yaml")

# Everything of a forward span that upstream and yolospan's own model must agree on.
_FORWARD_KEYS = (A.PHASE, A.TRAINING, A.INPUT_SHAPE, A.INPUT_DTYPE, A.OUTPUT_COUNT, A.FLOPS)


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _forwards(recorded):
    return [
        {k: v for k, v in span.attributes.items() if k in _FORWARD_KEYS or k.startswith("yolospan.output.")}
        for span in recorded.find("forward")
    ]


def test_yolov5s_agrees_with_yolospans_own_yolov5s_span_for_span(instrumented, spans):
    torch.manual_seed(0)
    with SpanRecorder() as own:
        yolospan.build_model("yolov5s")
        created = yolospan.create_model("yolov5s")
    instrumented(YOLOv5Instrumentor)
    printed = _Lines()
    logging.getLogger("yolov5").addHandler(printed)
    try:
        model = yolo.DetectionModel(YOLOV5S)
    finally:
        logging.getLogger("yolov5").removeHandler(printed)
    general.check_amp(model)

    init = spans.one("model.init")
    ours = own.find("model.init")[-1]
    assert [c.name for c in init.children] == ["stride_probe", "info_profile"]
    assert [c.name for c in ours.children] == ["stride_probe", "info_profile", "amp_check"]
    for phase_name in ("stride_probe", "info_profile"):
        upstream_phase, own_phase = spans.one(phase_name), ours.children.find(phase_name)[0]
        assert (
            [c.name for c in upstream_phase.children] == [c.name for c in own_phase.children] == ["forward"]
        )
    assert _forwards(spans) == _forwards(ours.descendants())
    profile = spans.one("info_profile").attributes
    assert profile[A.GFLOPS] == own.find("info_profile")[-1].attributes[A.GFLOPS] == 16.6
    assert profile[A.GFLOPS] == round(created.profile.gflops, 1)
    summary = next(line for line in printed.lines if "summary" in line)
    assert summary.endswith(f"7235389 gradients, {profile[A.GFLOPS]} GFLOPs"), summary
    assert spans.one("forward", phase="info_profile").attributes[A.FLOPS] == created.profile.probe_flops
    for key in (A.MODEL_NAME, A.MODEL_NC, A.MODEL_PARAMS, A.MODEL_STRIDE, A.MODEL_LAYERS):
        assert init.attributes[key] == ours.attributes[key], key
    for key in (A.PARAMS, A.GRADIENTS, A.LAYERS, A.PROFILE_IMGSZ, A.PROFILE_INPUT):
        assert profile[key] == own.find("info_profile")[-1].attributes[key], key
    # upstream runs its AMP check in train.py, after the model exists: a trace of its own
    amp = spans.one("amp_check")
    assert amp.parent is None and amp.children == []
    assert amp.attributes[A.AMP_RESULT] == "skipped" and amp.attributes[A.AMP_ENABLED] is False
    assert "CUDA" in amp.attributes[A.AMP_REASON]


def test_every_later_forward_is_a_span_and_layers_come_from_upstreams_list(instrumented, spans):
    instrumented(YOLOv5Instrumentor, layers=True)
    model = yolo.DetectionModel(YOLOV5S).eval()
    spans.clear()
    model(torch.zeros(1, 3, 64, 64))
    forward = spans.one("forward")
    assert forward.attributes.get(A.PHASE) is None
    layers = forward.children
    assert [s.attributes[A.LAYER_INDEX] for s in layers] == list(range(25))
    assert [s.name for s in layers][:3] == ["Conv", "Conv", "C3"]
    detect = layers[-1]
    assert detect.name == "Detect" and detect.attributes[A.LAYER_FROM] == [17, 20, 23]
    assert detect.attributes[A.LAYER_PARAMS] == sum(p.numel() for p in model.model[-1].parameters())
    assert layers[12].attributes[A.LAYER_FROM] == [-1, 6]


def test_fuse_is_a_phase_with_its_profile_inside(instrumented, spans):
    instrumented(YOLOv5Instrumentor)
    model = yolo.DetectionModel(YOLOV5S)
    spans.clear()
    model.fuse()
    fuse = spans.one("fuse")
    assert fuse.attributes[A.FUSE_FOLDED] == 57
    assert [c.name for c in fuse.children] == ["info_profile"]
    assert fuse.children[0].children.assert_names(["forward"]) is None


def test_an_instrumented_model_pickles_and_saves(instrumented):
    instrumented(YOLOv5Instrumentor)
    model = yolo.DetectionModel(YOLOV5S)
    pickle.loads(pickle.dumps(model))
    buffer = io.BytesIO()
    torch.save(model, buffer)  # upstream's checkpoints save the model object itself
    assert buffer.tell() > 0


def test_uninstrument_leaves_every_upstream_function_as_it_was(spans):
    import thop

    targets = [
        (yolo.DetectionModel, "__init__"),
        (yolo.DetectionModel, "forward"),
        (yolo.BaseModel, "info"),
        (yolo.BaseModel, "fuse"),
        (general, "check_amp"),
        (common.AutoShape, "__init__"),
        (thop, "profile"),
        (callbacks.Callbacks, "run"),
        (loss.ComputeLoss, "__call__"),
        (torch_utils, "smart_optimizer"),
        (torch_utils, "smart_resume"),
        (train_script, "check_amp"),  # train.py's own names, bound when it was imported
        (train_script, "smart_optimizer"),
        (train_script, "smart_resume"),
        (train_script, "train"),
        (val_script, "run"),
    ]
    before = [vars(owner)[name] for owner, name in targets]
    instrumentor = YOLOv5Instrumentor()
    for _ in range(2):  # instrument, uninstrument, instrument again works
        instrumentor.instrument(tracer_provider=spans.provider)
        # identity, not ==: a wrapt wrapper compares equal to what it wraps
        assert all(vars(owner)[name] is not was for (owner, name), was in zip(targets, before, strict=True))
        assert hasattr(yolo.BaseModel, "traced_layers")
        instrumentor.uninstrument()
        assert all(vars(owner)[name] is was for (owner, name), was in zip(targets, before, strict=True))
        assert not hasattr(yolo.BaseModel, "traced_layers")
    spans.clear()
    yolo.DetectionModel(YOLOV5S)
    assert spans.finished == []


def test_upstreams_own_error_passes_through_unchanged(instrumented, spans, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nc: 80\ndepth_multiple: 1.0\nwidth_multiple: 1.0\nanchors: 3\nbackbone: []\nhead: []\n")
    with pytest.raises(Exception) as plain:
        yolo.DetectionModel(str(bad))
    instrumented(YOLOv5Instrumentor)
    with pytest.raises(type(plain.value)) as traced:
        yolo.DetectionModel(str(bad))
    assert str(traced.value) == str(plain.value)
    assert spans.one("model.init").status == "ERROR"
