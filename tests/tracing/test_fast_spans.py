"""The fast paths (deferred layer spans, forward spans started without the tracer API) give
exporters and processors exactly what the API path gives."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import torch
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from torch import nn

import yolospan
from yolospan.tracing import Layer, _fast_spans, _instrument, get_tracer


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.inner(x) + x


class Fails(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def forward(self, x):
        if self.fail:
            raise ValueError("layer went wrong")
        return x.relu()


class Nested(nn.Module):
    """Layers that nest (``block`` holds ``block.inner``), so layer spans have layer parents."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.block = Block()
        self.act = Fails()

    def forward(self, x):
        return self.act(self.block(self.stem(x)))

    def traced_layers(self):
        return [
            Layer(0, self.stem, "Stem", (-1,)),
            Layer(1, self.block, "Block", (0,)),
            Layer(2, self.block.inner, "Inner", (1,)),
            Layer(3, self.act, "Act", (1,)),
        ]


def _provider(**kwargs: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "fast-spans"}), **kwargs)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _both_ways(monkeypatch: pytest.MonkeyPatch, model: nn.Module, x: torch.Tensor, **kwargs: Any):
    """One forward whose recorded layer frames are emitted through the API into one provider and
    through the fast path into another (the forward span's own provider)."""
    fast_provider, fast_spans = _provider(**kwargs)
    api_provider, api_spans = _provider(**kwargs)
    emit = _instrument.Instrumentation._emit_layers
    used: list[bool] = []

    def both(self: _instrument.Instrumentation, root: Any, tracer: Any) -> None:
        pending = list(root.pending)
        used.append(_fast_spans.emitter(tracer, root.span) is not None)
        with monkeypatch.context() as patch:
            patch.setattr(_fast_spans, "emitter", lambda tracer, parent: None)
            emit(self, root, get_tracer(api_provider))
        root.pending = pending
        emit(self, root, tracer)

    monkeypatch.setattr(_instrument.Instrumentation, "_emit_layers", both)
    with (
        yolospan.instrument(model, layers=True, tracer_provider=fast_provider),
        yolospan.tracing.span_attributes({"run": "r1"}),
        yolospan.tracing.phase("val"),
        contextlib.suppress(ValueError),
    ):
        model(x)
    assert used == [True]
    fast = [s for s in fast_spans.get_finished_spans() if s.name != "forward"]
    return fast, list(api_spans.get_finished_spans()), fast_spans.get_finished_spans()


def _fields(span: ReadableSpan, names: dict[int, str]) -> dict[str, Any]:
    """Everything an exporter reads from a span, ids replaced by the names of the spans they point at."""
    parent = span.parent
    assert parent is not None
    return {
        "name": span.name,
        "parent": names.get(parent.span_id, "forward"),
        "trace_id_is_the_forward's": parent.trace_id == span.context.trace_id,
        "trace_flags": (span.context.trace_flags, parent.trace_flags),
        "trace_state": span.context.trace_state,
        "remote": (span.context.is_remote, parent.is_remote),
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "dropped_attributes": span.dropped_attributes,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "status": (span.status.status_code, span.status.description),
        "events": [(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events],
        "dropped_events": span.dropped_events,
        "links": list(span.links),
        "dropped_links": span.dropped_links,
        "resource": span.resource.attributes,
        "scope": span.instrumentation_scope,
        "json": span.to_json(indent=None).replace(f"{span.context.span_id:016x}", "ID"),
    }


def _compare(fast: list[ReadableSpan], api: list[ReadableSpan]) -> None:
    fast_names = {s.context.span_id: s.name for s in fast}
    api_names = {s.context.span_id: s.name for s in api}
    assert [s.name for s in fast] == [s.name for s in api]
    for mine, theirs in zip(fast, api, strict=True):
        assert mine.context.span_id != theirs.context.span_id
        assert _fields(mine, fast_names)["json"].count("ID") == 1
        a, b = _fields(mine, fast_names), _fields(theirs, api_names)
        a.pop("json"), b.pop("json")
        assert a == b


def test_a_forward_emitted_both_ways_gives_the_same_spans(monkeypatch):
    model = Nested().eval()
    fast, api, everything = _both_ways(monkeypatch, model, torch.zeros(1, 3, 8, 8))
    assert [s.name for s in fast] == ["Stem", "Block", "Inner", "Act"]
    assert [type(s).__name__ for s in fast] == ["LateSpan"] * 4  # attributes made when read
    _compare(fast, api)
    by_name = {s.name: s for s in fast}
    assert by_name["Inner"].parent.span_id == by_name["Block"].context.span_id
    forward = next(s for s in everything if s.name == "forward")
    assert by_name["Stem"].parent.span_id == forward.context.span_id
    assert by_name["Stem"].attributes["run"] == "r1" and by_name["Stem"].attributes["yolospan.phase"] == "val"


def test_a_raising_layer_is_an_error_with_its_exception_event_both_ways(monkeypatch):
    model = Nested().eval()
    model.act.fail = True
    fast, api, _ = _both_ways(monkeypatch, model, torch.zeros(1, 3, 8, 8))
    _compare(fast, api)
    act = next(s for s in fast if s.name == "Act")
    assert type(act) is ReadableSpan  # a raising layer's span is built at once
    assert act.status.description == "ValueError: layer went wrong"
    assert [e.name for e in act.events] == ["exception"]
    assert "layer went wrong" in act.events[0].attributes["exception.stacktrace"]


def test_span_limits_apply_the_same_way(monkeypatch):
    limits = SpanLimits(max_span_attributes=6, max_span_attribute_length=3, max_event_attributes=2)
    model = Nested().eval()
    model.act.fail = True
    fast, api, _ = _both_ways(monkeypatch, model, torch.zeros(1, 3, 8, 8), span_limits=limits)
    _compare(fast, api)
    assert all(len(s.attributes) == 6 and s.dropped_attributes > 0 for s in fast)


class CountingStarts(SpanProcessor):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []

    def on_start(self, span, parent_context=None) -> None:
        self.started.append(span.name)

    def on_end(self, span) -> None:
        self.ended.append(span.name)


def test_layer_spans_reach_on_end_only():
    """What the docs say a processor sees: on_start for the forward span, on_end for every span."""
    provider = TracerProvider()
    processor = CountingStarts()
    provider.add_span_processor(processor)
    model = Nested().eval()
    with yolospan.instrument(model, layers=True, tracer_provider=provider):
        model(torch.zeros(1, 3, 8, 8))
    assert processor.started == ["forward"]
    assert sorted(processor.ended) == sorted(["Stem", "Block", "Inner", "Act", "forward"])


@pytest.mark.parametrize(
    ("sampler", "fast"),
    [
        (None, True),  # the SDK's default: ParentBased(ALWAYS_ON)
        (ALWAYS_ON, True),
        (ParentBased(ALWAYS_ON), True),
        (TraceIdRatioBased(1.0), False),  # would sample each child itself: the API decides
        (ParentBased(ALWAYS_ON, local_parent_sampled=TraceIdRatioBased(1.0)), False),
    ],
)
def test_the_fast_path_is_taken_only_where_the_api_path_would_sample_every_layer(sampler, fast):
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    tracer = get_tracer(provider)
    with tracer.start_as_current_span("forward") as parent:
        assert (_fast_spans.emitter(tracer, parent) is not None) is fast


def test_other_tracers_and_unsampled_parents_take_the_api_path():
    from opentelemetry import trace

    provider = TracerProvider()
    sampled = get_tracer(provider).start_span("forward")
    assert _fast_spans.emitter(trace.NoOpTracer(), sampled) is None
    assert _fast_spans.emitter(get_tracer(provider), trace.INVALID_SPAN) is None

    class VendorTracer(type(get_tracer(provider))):  # a subclass may start spans its own way
        pass

    vendor = VendorTracer.__new__(VendorTracer)
    assert _fast_spans.emitter(vendor, sampled) is None


@pytest.mark.parametrize("limits", [None, SpanLimits(max_span_attributes=5, max_span_attribute_length=2)])
def test_the_forward_spans_attributes_validated_once_are_what_the_api_sets(monkeypatch, limits):
    def forward_spans(fast: bool) -> list[ReadableSpan]:
        provider, exporter = _provider(span_limits=limits)
        model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()).eval()
        with monkeypatch.context() as patch:
            if not fast:
                patch.setattr(_fast_spans, "set_attributes", lambda span, attrs, measured, key: False)
            with yolospan.instrument(model, tracer_provider=provider), yolospan.tracing.phase("val"):
                model(torch.zeros(1, 3, 4, 4))
                model(torch.zeros(1, 3, 4, 4))
                model(torch.zeros(2, 3, 4, 4))
        return list(exporter.get_finished_spans())

    fast, api = forward_spans(True), forward_spans(False)

    def settled(span: ReadableSpan) -> list[tuple[str, Any]]:  # the rate is measured, run by run
        rate = "yolospan.achieved_flops_per_s"
        return [(k, "measured" if k == rate else v) for k, v in (span.attributes or {}).items()]

    assert [settled(s) for s in fast] == [settled(s) for s in api]
    assert [s.dropped_attributes for s in fast] == [s.dropped_attributes for s in api]
    assert limits is not None or fast[0].attributes["yolospan.phase"] == "val"
    assert fast[2].attributes is not fast[1].attributes


def _remote_parent(sampled: bool) -> Any:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    context = SpanContext(
        0x1234,
        0x5678,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
        trace_state=TraceState([("vendor", "v1")]),
    )
    return trace.use_span(NonRecordingSpan(context))


@pytest.mark.parametrize(
    ("parent", "sampler", "fast_expected"),
    [
        ("none", None, True),  # a root: the default sampler samples every root
        ("phase", None, True),  # a child of a sampled local span
        ("phase under remote", None, True),  # ... that carries a remote trace's trace state
        ("remote", None, False),  # the sampler decides about a remote parent: the API
        ("unsampled remote", None, False),
        ("none", ParentBased(TraceIdRatioBased(1.0)), False),  # roots the sampler decides about
        ("phase", ParentBased(TraceIdRatioBased(1.0)), True),
    ],
)
def test_forward_spans_started_without_the_api_are_what_start_span_makes(
    monkeypatch, parent, sampler, fast_expected
):
    def forward_spans(fast: bool) -> tuple[list[ReadableSpan], list[bool]]:
        provider, exporter = _provider(**({} if sampler is None else {"sampler": sampler}))
        used: list[bool] = []
        start = _fast_spans.Emitter.start

        def counted(self: Any, *args: Any) -> Any:
            span = start(self, *args)
            used.append(span is not None)
            return span

        model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()).eval()
        with monkeypatch.context() as patch:
            patch.setattr(_fast_spans.Emitter, "start", counted)
            if not fast:
                patch.setattr(_fast_spans, "made_for", lambda tracer: None)
            with contextlib.ExitStack() as stack:
                stack.enter_context(yolospan.instrument(model, tracer_provider=provider))
                if parent in ("remote", "phase under remote"):
                    stack.enter_context(_remote_parent(sampled=True))
                if parent == "unsampled remote":
                    stack.enter_context(_remote_parent(sampled=False))
                if parent.startswith("phase"):
                    stack.enter_context(yolospan.tracing.phase("val", tracer_provider=provider))
                model(torch.zeros(1, 3, 4, 4))
                model(torch.zeros(1, 3, 4, 4))
        return [s for s in exporter.get_finished_spans() if s.name == "forward"], used

    (fast, used), (api, _) = forward_spans(True), forward_spans(False)
    assert used == [fast_expected] * 2
    assert len(fast) == len(api) == (0 if parent == "unsampled remote" else 2)

    def fields(span: ReadableSpan) -> dict[str, Any]:
        rate = "yolospan.achieved_flops_per_s"
        up = span.parent
        return {
            "name": span.name,
            "parent": None if up is None else (up.is_remote, up.trace_flags),
            "same trace as the parent": up is None or up.trace_id == span.context.trace_id,
            "trace_flags": span.context.trace_flags,
            "trace_state": span.context.trace_state,
            "remote": span.context.is_remote,
            "kind": span.kind,
            "attributes": [(k, "measured" if k == rate else v) for k, v in (span.attributes or {}).items()],
            "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
            "status": (span.status.status_code, span.status.description),
            "events": list(span.events),
            "links": list(span.links),
            "resource": span.resource.attributes,
            "scope": span.instrumentation_scope,
        }

    assert [fields(s) for s in fast] == [fields(s) for s in api]
    if parent == "none":  # each root forward starts its own trace
        assert fast[0].context.trace_id != fast[1].context.trace_id


def test_a_forward_span_started_without_the_api_reaches_on_start_before_the_forward_runs():
    provider, _ = _provider()
    seen: list[str] = []

    class Watch(SpanProcessor):
        def on_start(self, span, parent_context=None) -> None:
            seen.append(f"start {span.name}")

    class Marks(nn.Module):
        def forward(self, x):
            seen.append("forward runs")
            return x

    provider.add_span_processor(Watch())
    model = Marks()
    with yolospan.instrument(model, tracer_provider=provider):
        assert _fast_spans.starter(get_tracer(provider)) is not None
        model(torch.zeros(1))
    assert seen == ["start forward", "forward runs"]
