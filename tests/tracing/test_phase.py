from __future__ import annotations

import pytest
import torch
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.tracing import current_phase, instrumentation_of


def test_forwards_inside_a_phase_carry_it_and_nest_under_it(capture):
    model = nn.Conv2d(3, 4, 1)
    with yolospan.span("model.init", tracer_provider=capture.provider):
        with yolospan.phase("stride_probe", module=model, tracer_provider=capture.provider):
            assert current_phase() == "stride_probe"
            model(torch.zeros(1, 3, 256, 256))
        with yolospan.phase("info_profile", module=model, tracer_provider=capture.provider):
            model(torch.zeros(1, 3, 32, 32))
    assert current_phase() is None
    spans = {s.name: s for s in capture.finished() if s.name != "forward"}
    probe_fwd, info_fwd = capture.named("forward")
    assert probe_fwd.parent.span_id == spans["stride_probe"].context.span_id
    assert info_fwd.parent.span_id == spans["info_profile"].context.span_id
    assert spans["stride_probe"].parent.span_id == spans["model.init"].context.span_id
    assert probe_fwd.attributes[A.PHASE] == "stride_probe"
    assert spans["stride_probe"].attributes[A.PHASE] == "stride_probe"
    assert A.PHASE not in spans["model.init"].attributes
    assert probe_fwd.attributes[A.INPUT_SHAPE] == (1, 3, 256, 256)


def test_phase_instrumentation_is_temporary(capture):
    model = nn.Conv2d(3, 4, 1)
    with yolospan.phase("p", module=model, layers=True, tracer_provider=capture.provider):
        assert instrumentation_of(model) is not None
    assert instrumentation_of(model) is None
    assert not model._forward_hooks and not model._forward_pre_hooks


def test_phase_reuses_an_existing_instrumentation(capture):
    model = nn.Conv2d(3, 4, 1)
    with yolospan.instrument(model, tracer_provider=capture.provider) as handle:
        with yolospan.phase("p", module=model, tracer_provider=capture.provider):
            assert instrumentation_of(model) is handle
            model(torch.zeros(1, 3, 2, 2))
        assert instrumentation_of(model) is handle
    (forward,) = capture.named("forward")
    assert forward.attributes[A.PHASE] == "p"


def test_a_non_recording_phase_attaches_nothing():
    model = nn.Conv2d(3, 4, 1)
    with yolospan.phase("p", module=model, tracer_provider=TracerProvider(sampler=ALWAYS_OFF)):
        assert instrumentation_of(model) is None
    with yolospan.phase("p", module=model):  # no provider configured anywhere
        assert instrumentation_of(model) is None


def test_a_span_with_a_phase_tags_the_work_inside_it(capture):
    model = nn.Linear(2, 2)
    with yolospan.span("train_step", phase="train", module=model, tracer_provider=capture.provider):
        with yolospan.span("loss", tracer_provider=capture.provider):
            pass
        model(torch.ones(1, 2))
    spans = {s.name: s for s in capture.finished()}
    assert spans["train_step"].attributes[A.PHASE] == "train"
    assert spans["loss"].attributes[A.PHASE] == "train"
    assert spans["forward"].attributes[A.PHASE] == "train"


def test_an_exception_in_a_phase_marks_it_and_propagates(capture):
    with pytest.raises(KeyError), yolospan.phase("amp_check", tracer_provider=capture.provider):
        raise KeyError("x")
    (span,) = capture.finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[0].attributes["exception.type"] == "KeyError"
    assert current_phase() is None


def test_span_attributes_are_set(capture):
    with yolospan.span("model.init", attributes={A.MODEL_NAME: "tiny"}, tracer_provider=capture.provider):
        pass
    assert capture.finished()[0].attributes[A.MODEL_NAME] == "tiny"
