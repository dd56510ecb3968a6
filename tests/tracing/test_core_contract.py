"""The generic core's contract, behaviour by behaviour: instrument, remove, span, phase, sampling.

Each test names one promise of yolospan.tracing a user relies on; each was seen to fail with the
behaviour broken (see the report of issue 15). Fresh in-memory providers throughout.
"""

from __future__ import annotations

import pytest
import torch
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.testing import SpanRecorder
from yolospan.tracing import _attrs, _flops, instrumentation_of, phase, span, span_attributes


def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 2, 1))


def all_hooks(module: nn.Module) -> int:
    """Hooks, plus modules whose call slot (``_compiled_call_impl``) was taken over."""
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + ("_compiled_call_impl" in m.__dict__)
        for m in module.modules()
    )


X = torch.rand(1, 3, 8, 8)


# --- attributes only for recording spans -------------------------------------------------------


@pytest.fixture
def work(monkeypatch):
    """Counts the calls that describe a forward (input and output attributes, FLOPs hooks), calling
    through to the real functions: nothing is injected that the code under test could swallow."""
    calls = {"inputs": 0, "outputs": 0, "counters": 0}

    def counting(key, real):
        def wrapper(*args, **kwargs):
            calls[key] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(_attrs, "input_attributes", counting("inputs", _attrs.input_attributes))
    monkeypatch.setattr(_attrs, "add_output_attributes", counting("outputs", _attrs.add_output_attributes))
    monkeypatch.setattr(_flops, "attach_counters", counting("counters", _flops.attach_counters))
    return calls


def test_a_recording_forward_describes_its_inputs_outputs_and_flops(work, spans):
    m = model()
    with yolospan.instrument(m, layers=True, tracer_provider=spans.provider):
        m(X)
    # The control for the test below: these counters are on the path a recorded forward takes.
    assert work["inputs"] > 0 and work["outputs"] > 0 and work["counters"] > 0
    assert spans.one("forward").attributes[A.FLOPS] > 0


@pytest.mark.parametrize("layers", [False, True])
def test_a_sampled_out_forward_describes_nothing(work, layers):
    m = model()
    with yolospan.instrument(m, layers=layers, tracer_provider=TracerProvider(sampler=ALWAYS_OFF)):
        out = m(X)
    assert work == {"inputs": 0, "outputs": 0, "counters": 0}  # fails without either is_recording guard
    torch.testing.assert_close(out, model()(X))


def test_a_forward_with_no_provider_configured_describes_nothing(work):
    m = model()
    with yolospan.use_tracer_provider(trace.NoOpTracerProvider()), yolospan.instrument(m, layers=True):
        m(X)
    assert work == {"inputs": 0, "outputs": 0, "counters": 0}


# --- instrument and remove ---------------------------------------------------------------------


def test_the_model_computes_exactly_what_it_computes_untraced(spans):
    traced, plain = model(), model()
    x = X.clone().requires_grad_()
    with yolospan.instrument(traced, layers=True, tracer_provider=spans.provider):
        out = traced(x)
        out.sum().backward()
    expected = plain(X.clone().requires_grad_())
    expected.sum().backward()
    assert torch.equal(out, expected)
    for a, b in zip(traced.parameters(), plain.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


def test_remove_takes_every_hook_off_and_stops_the_spans(spans):
    m = model()
    before = all_hooks(m)
    handle = yolospan.instrument(m, layers=True, tracer_provider=spans.provider)
    assert all_hooks(m) > before
    m(X)
    handle.remove()
    assert all_hooks(m) == before
    assert instrumentation_of(m) is None and not handle.active
    m(X)
    assert len(spans.find("forward")) == 1


def test_remove_twice_is_harmless_and_instrument_again_works(spans):
    m = model()
    handle = yolospan.instrument(m, tracer_provider=spans.provider)
    handle.remove()
    handle.remove()
    with yolospan.instrument(m, tracer_provider=spans.provider) as again:
        assert instrumentation_of(m) is again
        m(X)
    assert spans.one("forward").attributes[A.FLOPS_METHOD] == "thop"  # a new handle counts afresh


def test_instrumenting_twice_is_refused_while_the_first_is_active(spans):
    m = model()
    with yolospan.instrument(m, tracer_provider=spans.provider):
        with pytest.raises(RuntimeError, match="already instrumented"):
            yolospan.instrument(m, tracer_provider=spans.provider)
        m(X)
    assert len(spans.find("forward")) == 1  # one span per forward, not two


def test_leaving_the_with_block_by_an_exception_removes_the_hooks(spans):
    m = model()
    with pytest.raises(KeyError), yolospan.instrument(m, tracer_provider=spans.provider):
        raise KeyError("user code")
    assert all_hooks(m) == 0 and instrumentation_of(m) is None


def test_the_forward_span_is_current_inside_the_forward_and_restored_after(spans):
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(trace.get_current_span().get_span_context().span_id)
            with span("inside"):
                return x + 1

    m = Probe()
    with yolospan.instrument(m, tracer_provider=spans.provider):
        m(X)
    forward = spans.one("forward")
    assert seen == [forward.readable.context.span_id]
    assert spans.one("inside").parent is forward
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_separately_instrumented_nested_modules_nest_their_spans(spans):
    inner = nn.Conv2d(3, 3, 1)
    outer = nn.Sequential(inner, nn.ReLU())
    with (
        yolospan.instrument(outer, tracer_provider=spans.provider),
        yolospan.instrument(inner, tracer_provider=spans.provider),
    ):
        outer(X)
    first, second = spans.find("forward")
    assert (first.parent, second.parent) == (None, first)
    assert second.attributes[A.INPUT_SHAPE] == [1, 3, 8, 8]


def test_layer_spans_are_children_of_their_forward_in_order(spans):
    m = model()
    with yolospan.instrument(m, layers=True, tracer_provider=spans.provider):
        m(X)
    forward = spans.one("forward")
    layers = forward.children
    assert [s.name for s in layers] == ["Conv2d", "SiLU", "Conv2d"]
    assert [s.attributes[A.LAYER_INDEX] for s in layers] == [0, 1, 2]
    starts = [s.readable.start_time for s in layers]
    assert starts == sorted(starts)
    assert all(forward.readable.start_time <= s.readable.start_time for s in layers)
    assert all(s.readable.end_time <= forward.readable.end_time for s in layers)
    assert sum(s.attributes[A.FLOPS] for s in layers) == forward.attributes[A.FLOPS]


def test_an_exception_in_a_forward_propagates_as_it_was_raised(spans):
    error = ValueError("bad input")

    class Fails(nn.Module):
        def forward(self, x):
            raise error

    m = Fails()
    with yolospan.instrument(m, tracer_provider=spans.provider), pytest.raises(ValueError) as raised:
        m(X)
    assert raised.value is error
    failed = spans.one("forward")
    assert (failed.status, failed.status_description) == ("ERROR", "ValueError: bad input")
    assert trace.get_current_span() is trace.INVALID_SPAN


# --- span, phase and span_attributes -----------------------------------------------------------


def test_phases_nest_and_the_innermost_names_the_forwards(spans):
    m = model()
    with yolospan.instrument(m, tracer_provider=spans.provider):
        with phase("outer", tracer_provider=spans.provider):
            m(X)
            with phase("inner", tracer_provider=spans.provider):
                m(X)
            m(X)
        m(X)
    phases = [s.attributes.get(A.PHASE) for s in spans.find("forward")]
    assert phases == ["outer", "inner", "outer", None]
    assert spans.one("inner").parent is spans.one("outer")


def test_span_with_module_traces_it_only_inside_the_block(spans):
    m = model()
    with span("work", module=m, layers=True, tracer_provider=spans.provider):
        assert instrumentation_of(m) is not None
        m(X)
    assert instrumentation_of(m) is None and all_hooks(m) == 0
    m(X)
    forward = spans.one("forward")
    assert forward.parent is spans.one("work") and len(forward.children) == 3


def test_span_with_module_keeps_an_instrumentation_it_did_not_make(spans):
    m = model()
    with yolospan.instrument(m, tracer_provider=spans.provider) as handle:
        with span("work", module=m, tracer_provider=spans.provider):
            m(X)
        assert instrumentation_of(m) is handle
        m(X)
    assert len(spans.find("forward")) == 2


def test_a_sampled_out_span_does_not_instrument_its_module():
    m = model()
    with span("work", module=m, tracer_provider=TracerProvider(sampler=ALWAYS_OFF)) as current:
        assert not current.is_recording()
        assert instrumentation_of(m) is None and all_hooks(m) == 0


def test_an_exception_in_a_span_marks_it_error_and_propagates(spans):
    with pytest.raises(ZeroDivisionError), span("work", tracer_provider=spans.provider):
        1 / 0  # noqa: B018
    work = spans.one("work")
    assert work.status == "ERROR"
    assert work.events[0]["attributes"]["exception.type"] == "ZeroDivisionError"


def test_span_attributes_reach_every_span_and_own_attributes_win(spans):
    m = model()
    with (
        span_attributes({"run": "a", "job": "outer"}),
        span_attributes({"job": "inner"}),
        yolospan.instrument(m, layers=True, tracer_provider=spans.provider),
        span("work", attributes={"run": "own"}, tracer_provider=spans.provider),
    ):
        m(X)
    assert spans.one("work").attributes.items() >= {"run": "own", "job": "inner"}.items()
    traced = [s for s in spans if s.name != "work"]
    assert [s.name for s in traced] == ["forward", "Conv2d", "SiLU", "Conv2d"]
    for s in traced:
        assert (s.attributes["run"], s.attributes["job"]) == ("a", "inner"), s.name


# --- sampling ----------------------------------------------------------------------------------


def _parent(sampled: bool) -> otel_context.Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    remote = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(remote))


def recorded_with(sampler: Sampler) -> tuple[SpanRecorder, TracerProvider]:
    """A recorder's exporter behind a provider with ``sampler`` (the recorder's own samples all)."""
    recorder = SpanRecorder()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(recorder.exporter))
    return recorder, provider


@pytest.mark.parametrize("sampled", [True, False])
def test_a_forward_follows_its_parents_sampling_decision(sampled):
    spans, provider = recorded_with(ParentBased(ALWAYS_ON))  # the SDK's default sampler
    m = model()
    token = otel_context.attach(_parent(sampled))
    try:
        with yolospan.instrument(m, tracer_provider=provider):
            m(X)
    finally:
        otel_context.detach(token)
    found = spans.find("forward")
    if sampled:
        (forward,) = found
        assert forward.readable.context.trace_id == 0xABC
        assert forward.readable.parent.span_id == 0xDEF
    else:
        assert found == []


class EveryOther(Sampler):
    """Records the 2nd, 4th, ... root span: a stand-in for a ratio sampler, deterministic."""

    def __init__(self) -> None:
        self.calls = 0

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None):
        self.calls += 1
        decision = Decision.RECORD_AND_SAMPLE if self.calls % 2 == 0 else Decision.DROP
        return SamplingResult(decision, attributes)

    def get_description(self) -> str:
        return "EveryOther"


def test_a_forward_recorded_after_sampled_out_ones_still_counts_its_flops():
    recorder, provider = recorded_with(EveryOther())
    m = model()
    with yolospan.instrument(m, tracer_provider=provider):
        for _ in range(4):
            m(X)
    first, second = recorder.find("forward")
    assert first.attributes[A.FLOPS_METHOD] == "thop"  # the dropped first forward counted nothing
    assert first.attributes[A.FLOPS] == 2 * (4 * 8 * 8 * 3 * 9 + 2 * 8 * 8 * 4)  # by hand: conv 3x3, 1x1
    assert second.attributes[A.FLOPS_METHOD] == "thop.cached"
    assert second.attributes[A.FLOPS] == first.attributes[A.FLOPS]
