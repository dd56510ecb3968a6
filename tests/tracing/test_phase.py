from __future__ import annotations

import pytest
import torch
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.tracing import current_phase, instrumentation_of


def test_forwards_inside_a_phase_carry_it_and_nest_under_it(spans):
    model = nn.Conv2d(3, 4, 1)
    with yolospan.span("model.init", tracer_provider=spans.provider):
        with yolospan.phase("stride_probe", module=model, tracer_provider=spans.provider):
            assert current_phase() == "stride_probe"
            model(torch.zeros(1, 3, 256, 256))
        with yolospan.phase("info_profile", module=model, tracer_provider=spans.provider):
            model(torch.zeros(1, 3, 32, 32))
    assert current_phase() is None
    by_name = {s.name: s for s in spans if s.name != "forward"}
    probe_fwd, info_fwd = spans.find("forward")
    assert probe_fwd.parent.span_id == by_name["stride_probe"].span_id
    assert info_fwd.parent.span_id == by_name["info_profile"].span_id
    assert by_name["stride_probe"].parent.span_id == by_name["model.init"].span_id
    assert probe_fwd.attributes[A.PHASE] == "stride_probe"
    assert by_name["stride_probe"].attributes[A.PHASE] == "stride_probe"
    assert A.PHASE not in by_name["model.init"].attributes
    assert probe_fwd.attributes[A.INPUT_SHAPE] == [1, 3, 256, 256]


def test_phase_instrumentation_is_temporary(spans):
    model = nn.Conv2d(3, 4, 1)
    with yolospan.phase("p", module=model, layers=True, tracer_provider=spans.provider):
        assert instrumentation_of(model) is not None
    assert instrumentation_of(model) is None
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert "_compiled_call_impl" not in model.__dict__  # where yolospan's call runs


def test_phase_reuses_an_existing_instrumentation(spans):
    model = nn.Conv2d(3, 4, 1)
    with yolospan.instrument(model, tracer_provider=spans.provider) as handle:
        with yolospan.phase("p", module=model, tracer_provider=spans.provider):
            assert instrumentation_of(model) is handle
            model(torch.zeros(1, 3, 2, 2))
        assert instrumentation_of(model) is handle
    (forward,) = spans.find("forward")
    assert forward.attributes[A.PHASE] == "p"


def test_a_non_recording_phase_attaches_nothing():
    model = nn.Conv2d(3, 4, 1)
    with yolospan.phase("p", module=model, tracer_provider=TracerProvider(sampler=ALWAYS_OFF)):
        assert instrumentation_of(model) is None
    with yolospan.phase("p", module=model):  # no provider configured anywhere
        assert instrumentation_of(model) is None


def test_a_span_with_a_phase_tags_the_work_inside_it(spans):
    model = nn.Linear(2, 2)
    with yolospan.span("train_step", phase="train", module=model, tracer_provider=spans.provider):
        with yolospan.span("loss", tracer_provider=spans.provider):
            pass
        model(torch.ones(1, 2))
    by_name = {s.name: s for s in spans}
    assert by_name["train_step"].attributes[A.PHASE] == "train"
    assert by_name["loss"].attributes[A.PHASE] == "train"
    assert by_name["forward"].attributes[A.PHASE] == "train"


def test_an_exception_in_a_phase_marks_it_and_propagates(spans):
    with pytest.raises(KeyError), yolospan.phase("amp_check", tracer_provider=spans.provider):
        raise KeyError("x")
    (span,) = list(spans)
    assert span.status == "ERROR"
    assert span.events[0]["attributes"]["exception.type"] == "KeyError"
    assert current_phase() is None


def test_span_attributes_are_set(spans):
    with yolospan.span("model.init", attributes={A.MODEL_NAME: "tiny"}, tracer_provider=spans.provider):
        pass
    assert spans.one("model.init").attributes[A.MODEL_NAME] == "tiny"
