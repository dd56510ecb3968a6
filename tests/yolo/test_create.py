"""The one-call helpers: upstream's order of steps, and exactly the span tree the contract promises."""

from __future__ import annotations

import pytest
import torch
from opentelemetry.trace import StatusCode

import yolospan
from yolospan import attributes as A
from yolospan.tracing import use_tracer_provider
from yolospan.yolo import (
    AmpVerdict,
    ConfigError,
    amp_check,
    build,
    info_profile,
    load_spec,
    stride_probe,
)
from yolospan.yolo.create import resolve_device

FORWARD = (A.SPAN_FORWARD, [])


def test_create_model_emits_the_contract_tree_with_upstreams_numbers(capture):
    created = yolospan.create_model("yolov5s", amp_check="on", tracer_provider=capture.provider)
    assert capture.tree() == [
        (
            A.SPAN_MODEL_INIT,
            [
                (A.SPAN_STRIDE_PROBE, [FORWARD]),
                (A.SPAN_INFO_PROFILE, [FORWARD]),
                (A.SPAN_AMP_CHECK, [FORWARD, FORWARD]),
            ],
        )
    ]
    (root,) = capture.named(A.SPAN_MODEL_INIT)
    assert dict(root.attributes) == {
        A.MODEL_NAME: "yolov5s",
        A.MODEL_NC: 80,
        A.MODEL_LAYERS: 25,
        A.MODEL_PARAMS: 7_235_389,
        A.MODEL_STRIDE: (8, 16, 32),
    }
    (profile,) = capture.named(A.SPAN_INFO_PROFILE)
    assert profile.attributes[A.GFLOPS] == 16.6
    assert profile.attributes[A.PROFILE_IMGSZ] == 640
    assert profile.attributes[A.PROFILE_INPUT] == 32
    assert (profile.attributes[A.PARAMS], profile.attributes[A.GRADIENTS]) == (7_235_389, 7_235_389)
    assert profile.attributes[A.LAYERS] == 214
    (profile_forward,) = capture.children(profile)
    assert profile_forward.attributes[A.INPUT_SHAPE] == (1, 3, 32, 32)
    assert profile_forward.attributes[A.TRAINING] is False
    assert profile_forward.attributes[A.FLOPS] == created.profile.probe_flops  # the core and thop agree
    assert profile_forward.attributes[A.PHASE] == A.SPAN_INFO_PROFILE
    (probe,) = capture.named(A.SPAN_STRIDE_PROBE)
    (probe_forward,) = capture.children(probe)
    assert probe_forward.attributes[A.INPUT_SHAPE] == (1, 3, 256, 256)
    assert probe_forward.attributes[A.TRAINING] is True
    assert [probe_forward.attributes[A.output_shape_key(i)] for i in range(3)] == [
        (1, 3, 32, 32, 85),
        (1, 3, 16, 16, 85),
        (1, 3, 8, 8, 85),
    ]
    (amp,) = capture.named(A.SPAN_AMP_CHECK)
    assert amp.attributes[A.AMP_RESULT] == "passed"
    assert [s.attributes[A.INPUT_SHAPE] for s in capture.children(amp)] == [(1, 3, 640, 480)] * 2
    assert created.amp.passed and created.model.training
    assert created.profile.summary.startswith("YOLOv5s summary: 214 layers")
    assert created.build.params == 7_235_389 and created.stride_probe.forwards == 1


def test_on_the_cpu_auto_skips_the_amp_check_and_its_forwards(capture):
    created = yolospan.create_model("yolov5n", tracer_provider=capture.provider)
    assert created.amp.result is AmpVerdict.SKIPPED
    (root,) = capture.tree()
    assert root[1][2] == (A.SPAN_AMP_CHECK, [])
    assert len(capture.named(A.SPAN_FORWARD)) == 2


def test_build_model_is_steps_one_and_two(capture):
    model = yolospan.build_model("yolov5n", nc=5, tracer_provider=capture.provider)
    assert capture.tree() == [(A.SPAN_MODEL_INIT, [(A.SPAN_STRIDE_PROBE, [FORWARD])])]
    (root,) = capture.named(A.SPAN_MODEL_INIT)
    assert root.attributes[A.MODEL_NC] == 5
    assert model.stride.tolist() == [8.0, 16.0, 32.0] and model.nc == 5


def test_trace_layers_adds_a_span_per_layer_under_each_forward(capture):
    yolospan.build_model("yolov5n", tracer_provider=capture.provider, trace_layers=True)
    (forward,) = capture.named(A.SPAN_FORWARD)
    layers = capture.children(forward)
    assert len(layers) == 25
    assert {s.attributes[A.PHASE] for s in layers} == {A.SPAN_STRIDE_PROBE}


def test_without_a_provider_nothing_is_recorded_or_left_behind():
    model = yolospan.build_model("yolov5n")
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_use_tracer_provider_routes_the_lifecycle(capture):
    with use_tracer_provider(capture.provider):
        yolospan.build_model("yolov5n")
    assert len(capture.named(A.SPAN_FORWARD)) == 1


def test_the_steps_can_run_one_by_one_with_one_span_each(capture):
    model = build(load_spec("yolov5n")).model
    stride_probe(model, tracer_provider=capture.provider)
    info_profile(model, tracer_provider=capture.provider)
    amp_check(model, policy="on", tracer_provider=capture.provider)
    assert capture.tree() == [
        (A.SPAN_STRIDE_PROBE, [FORWARD]),
        (A.SPAN_INFO_PROFILE, [FORWARD]),
        (A.SPAN_AMP_CHECK, [FORWARD, FORWARD]),
    ]


def test_an_instrumented_model_is_not_traced_twice_through_the_steps_copies(capture):
    model = build(load_spec("yolov5n")).model
    with yolospan.instrument(model, tracer_provider=capture.provider):
        stride_probe(model, tracer_provider=capture.provider)
        info_profile(model, tracer_provider=capture.provider)
        amp_check(model, policy="on", tracer_provider=capture.provider)
    assert [len(capture.children(s)) for s in capture.finished() if s.name != A.SPAN_FORWARD] == [1, 1, 2]


def test_a_bad_config_ends_model_init_with_an_error(capture, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("nc: 0\n")
    with pytest.raises(ConfigError):
        yolospan.build_model(path, tracer_provider=capture.provider)
    (root,) = capture.finished()
    assert root.name == A.SPAN_MODEL_INIT
    assert root.status.status_code is StatusCode.ERROR


def test_create_model_returns_every_steps_result(tiny_yaml):
    created = yolospan.create_model(tiny_yaml, imgsz=320, amp_check="off")
    assert created.model.stride.tolist() == [4.0, 8.0]
    assert created.profile.imgsz == 320 and created.profile.probe_size == 32
    assert created.stride_probe.output_shapes == ((1, 2, 64, 64, 7), (1, 2, 32, 32, 7))
    assert created.amp.reason == "AMP check turned off (policy off)"
    assert created.build.layers == 9


@pytest.mark.parametrize("device", ["cpu", "CPU", torch.device("cpu")])
def test_cpu_device_spellings(device):
    assert resolve_device(device) == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_auto_runs_the_float16_check(capture):
    created = yolospan.create_model("yolov5s", device="cuda", tracer_provider=capture.provider)
    assert created.amp.result is AmpVerdict.PASSED
    assert created.amp.dtype == "float16"
    assert next(created.model.parameters()).is_cuda
    (amp,) = capture.named(A.SPAN_AMP_CHECK)
    forwards = capture.children(amp)
    assert [s.attributes[A.DEVICE] for s in forwards] == ["cuda:0", "cuda:0"]
    assert [s.attributes.get(A.AUTOCAST) for s in forwards] == [None, "float16"]
    with pytest.raises(yolospan.errors.UserError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
