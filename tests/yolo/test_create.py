"""The one-call helpers: upstream's order of steps, and exactly the span tree the contract promises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.testing import SpanRecorder
from yolospan.tracing import use_tracer_provider
from yolospan.yolo import (
    AmpVerdict,
    ConfigError,
    FuseResult,
    amp_check,
    build,
    info_profile,
    load_spec,
    stride_probe,
)
from yolospan.yolo.blocks import Conv
from yolospan.yolo.create import resolve_device


def assert_one_phase_tree_per_step(spans: SpanRecorder) -> None:
    """Steps 2–4 run alone: one root per step, with its forwards (two for the AMP check) and nothing else."""
    spans.roots.assert_names([A.SPAN_STRIDE_PROBE, A.SPAN_INFO_PROFILE, A.SPAN_AMP_CHECK])
    probe, profile, amp = spans.roots
    probe.children.assert_names([A.SPAN_FORWARD])
    profile.children.assert_names([A.SPAN_FORWARD])
    amp.children.assert_names([A.SPAN_FORWARD, A.SPAN_FORWARD])
    spans.assert_count(7)  # and nothing below the forwards


def test_create_model_emits_the_contract_tree_with_upstreams_numbers(spans):
    created = yolospan.create_model("yolov5s", amp_check="on")
    spans.roots.assert_names([A.SPAN_MODEL_INIT])
    root = spans.roots[0]
    root.children.assert_names([A.SPAN_STRIDE_PROBE, A.SPAN_INFO_PROFILE, A.SPAN_AMP_CHECK])
    probe, profile, amp = root.children
    probe.children.assert_names([A.SPAN_FORWARD])
    profile.children.assert_names([A.SPAN_FORWARD])
    amp.children.assert_names([A.SPAN_FORWARD, A.SPAN_FORWARD])
    spans.assert_count(8)  # the spans above and no others: every forward is a leaf
    assert root.attributes == {
        A.MODEL_NAME: "yolov5s",
        A.MODEL_NC: 80,
        A.MODEL_LAYERS: 25,
        A.MODEL_PARAMS: 7_235_389,
        A.MODEL_STRIDE: [8, 16, 32],
    }
    root.children.one(
        A.SPAN_INFO_PROFILE,
        gflops=16.6,
        profile_imgsz=640,
        profile_input=32,
        params=7_235_389,
        gradients=7_235_389,
        layers=214,
    )
    profile.children.one(
        input_shape=[1, 3, 32, 32],
        training=False,
        flops=41_563_136,  # upstream's figure: thop's rules as pinned in pyproject (nearest upsample = 1 op)
        phase=A.SPAN_INFO_PROFILE,
    )
    probe.children.one(
        input_shape=[1, 3, 256, 256],
        training=True,
        output_0_shape=[1, 3, 32, 32, 85],
        output_1_shape=[1, 3, 16, 16, 85],
        output_2_shape=[1, 3, 8, 8, 85],
    )
    root.children.one(A.SPAN_AMP_CHECK, amp_result="passed")
    amp.children.assert_count(2, input_shape=[1, 3, 640, 480])
    assert created.amp.passed and created.model.training
    assert created.profile.summary.startswith("YOLOv5s summary: 214 layers")
    assert created.build.params == 7_235_389 and created.stride_probe.forwards == 1
    assert created.profile.probe_flops == 41_563_136  # thop's own profile agrees with the span


def test_on_the_cpu_auto_skips_the_amp_check_and_its_forwards(spans):
    created = yolospan.create_model("yolov5n")
    assert created.amp.result is AmpVerdict.SKIPPED
    spans.roots.assert_names([A.SPAN_MODEL_INIT])
    spans.roots[0].children.assert_names([A.SPAN_STRIDE_PROBE, A.SPAN_INFO_PROFILE, A.SPAN_AMP_CHECK])
    spans.one(A.SPAN_AMP_CHECK, amp_result="skipped").children.assert_names([])
    spans.assert_count(2, A.SPAN_FORWARD)


def test_fuse_layers_folds_inside_model_init_and_profiles_the_fused_model(spans):
    created = yolospan.create_model("yolov5n", fuse_layers=True)
    spans.roots.assert_names([A.SPAN_MODEL_INIT])
    root = spans.roots[0]
    root.children.assert_names([A.SPAN_STRIDE_PROBE, A.SPAN_INFO_PROFILE, A.SPAN_AMP_CHECK, A.SPAN_FUSE])
    probe, profile, amp, fused = root.children
    probe.children.assert_names([A.SPAN_FORWARD])
    profile.children.assert_names([A.SPAN_FORWARD])
    amp.children.assert_names([])  # policy auto skips the check on the CPU
    fused.children.assert_names([A.SPAN_INFO_PROFILE])
    fused.children[0].children.assert_names([A.SPAN_FORWARD])
    spans.assert_count(9)  # the spans above and no others: every forward is a leaf
    convs = [m for m in created.model.modules() if isinstance(m, Conv)]
    assert all(conv.bn is None for conv in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in created.model.modules())
    assert fused.attributes[A.FUSE_FOLDED] == len(convs) == 57
    fused.children.one(A.SPAN_INFO_PROFILE, params=1_867_405, gflops=4.5, layers=157)
    fused.children[0].children.one(phase=A.SPAN_INFO_PROFILE, input_shape=[1, 3, 32, 32])
    assert isinstance(created.fused, FuseResult)
    assert (created.fused.folded, created.fused.params_before, created.fused.params_after) == (
        57,
        1_872_157,
        1_867_405,
    )
    assert created.fused.profile is not None and created.fused.profile.params == 1_867_405


def test_build_model_is_steps_one_and_two(spans):
    model = yolospan.build_model("yolov5n", nc=5, tracer_provider=spans.provider)
    spans.roots.assert_names([A.SPAN_MODEL_INIT])
    root = spans.roots[0]
    root.children.assert_names([A.SPAN_STRIDE_PROBE])
    root.children[0].children.assert_names([A.SPAN_FORWARD])
    spans.assert_count(3)  # and nothing below the forward
    assert root.attributes[A.MODEL_NC] == 5
    assert model.stride.tolist() == [8.0, 16.0, 32.0] and model.nc == 5


def test_trace_layers_adds_a_span_per_layer_under_each_forward(spans):
    yolospan.build_model("yolov5n", trace_layers=True)
    layers = spans.one(A.SPAN_FORWARD).children
    assert len(layers) == 25
    layers.assert_count(25, phase=A.SPAN_STRIDE_PROBE)


def test_without_a_provider_nothing_is_recorded_or_left_behind():
    model = yolospan.build_model("yolov5n")
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert not any("_compiled_call_impl" in m.__dict__ for m in model.modules())  # yolospan's call slot


def test_use_tracer_provider_routes_the_lifecycle(spans):
    inner = SpanRecorder()
    with use_tracer_provider(inner.provider):
        yolospan.build_model("yolov5n")
    inner.shutdown()
    inner.assert_count(1, A.SPAN_FORWARD)
    spans.assert_none()  # the innermost route wins over the fixture's


def test_the_steps_can_run_one_by_one_with_one_span_each(spans):
    model = build(load_spec("yolov5n")).model
    stride_probe(model, tracer_provider=spans.provider)
    info_profile(model, tracer_provider=spans.provider)
    amp_check(model, policy="on", tracer_provider=spans.provider)
    assert_one_phase_tree_per_step(spans)


def test_an_instrumented_model_is_not_traced_twice_through_the_steps_copies(spans):
    model = build(load_spec("yolov5n")).model
    with yolospan.instrument(model):
        stride_probe(model)
        info_profile(model)
        amp_check(model, policy="on")
    assert_one_phase_tree_per_step(spans)


def test_a_bad_config_fails_before_any_span(spans, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("nc: 0\n")
    with pytest.raises(ConfigError):
        yolospan.build_model(path)
    spans.assert_none()


def test_a_failing_step_ends_model_init_with_an_error(spans, monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("probe broke")

    monkeypatch.setattr("yolospan.yolo.create.stride_probe", failing)
    with pytest.raises(RuntimeError, match="probe broke"):
        yolospan.build_model("yolov5n")
    root = spans.one()  # the only span
    assert root.name == A.SPAN_MODEL_INIT
    assert root.status == "ERROR"
    assert [event["name"] for event in root.events] == ["exception"]
    assert root.events[0]["attributes"]["exception.message"] == "probe broke"


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
def test_on_cuda_auto_runs_the_float16_check(spans):
    created = yolospan.create_model("yolov5s", device="cuda")
    assert created.amp.result is AmpVerdict.PASSED
    assert created.amp.dtype == "float16"
    assert next(created.model.parameters()).is_cuda
    forwards = spans.one(A.SPAN_AMP_CHECK).children
    assert [s.attributes[A.DEVICE] for s in forwards] == ["cuda:0", "cuda:0"]
    assert [s.attributes.get(A.AUTOCAST) for s in forwards] == [None, "float16"]
    with pytest.raises(yolospan.errors.UserError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
