"""Clocked layer spans, whose attributes are made when first read, give exporters exactly what a
finished span built at once gives."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
import torch
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from torch import nn

import yolospan
from yolospan import attributes as A
from yolospan.tracing import Layer, _clock, _fast_spans, _late_spans


class Looped(nn.Module):
    """A model that runs its own layer loop and notes the clock, as yolospan's YOLO models do."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 2, 1)])

    def forward(self, x):
        clock = yolospan.tracing.layer_clock(self)
        for i, layer in enumerate(self.layers):
            if clock is None:
                x = layer(x)
                continue
            clock.ticks[2 * i] = time.time_ns()
            x = clock.call(i, layer, x) if clock.describing else layer(x)
            clock.ticks[2 * i + 1] = time.time_ns()
        return x

    def traced_layers(self):
        return [Layer(i, layer, f"L{i}", (i - 1,)) for i, layer in enumerate(self.layers)]

    def clocks_its_layers(self) -> bool:
        return True


class Keeps(SpanProcessor):
    """Keeps what it is given and reads nothing of it."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def _steady_forward(monkeypatch: pytest.MonkeyPatch, *, eager: bool, limits: SpanLimits | None) -> list[Any]:
    """The layer spans of a forward after the first of its signature, as an exporter receives them.
    ``eager``: each built at once (`Emitter.emit` with the attributes it would compute)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "clocked"}),
        **({} if limits is None else {"span_limits": limits}),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if eager:

        def emit_at_once(self: Any, source: Any, name: str, parent: Any, start_ns: int, end_ns: int) -> Any:
            return self.emit(name, parent, source.attributes(start_ns, end_ns), start_ns, end_ns)

        monkeypatch.setattr(_fast_spans.Emitter, "emit_late", emit_at_once)
    model = Looped().eval()
    with yolospan.instrument(model, layers=True, tracer_provider=provider), yolospan.tracing.phase("val"):
        model(torch.zeros(1, 3, 8, 8))
        exporter.clear()
        model(torch.zeros(1, 3, 8, 8))
    monkeypatch.undo()
    return [s for s in exporter.get_finished_spans() if s.name != "forward"]


def _fields(span: ReadableSpan) -> dict[str, Any]:
    """Everything an exporter reads, the span's own id and its measured rates aside."""
    rates = (A.ACHIEVED_FLOPS_PER_S, A.PEAK_FRACTION)
    own_id = f"{span.context.span_id:016x}"
    encoded = encode_spans([span]).to_dict()
    scope_spans = encoded["resourceSpans"][0]["scopeSpans"][0]
    [wire] = scope_spans["spans"]
    ids = (wire.pop("spanId"), wire.pop("traceId"), wire.pop("parentSpanId"))
    wire["attributes"] = [a for a in wire["attributes"] if a["key"] not in rates]
    return {
        "name": span.name,
        "parent": (
            span.parent.trace_id == span.context.trace_id,
            span.parent.is_remote,
            span.parent.trace_flags,
        ),
        "trace": (span.context.trace_flags, span.context.trace_state, span.context.is_remote),
        "wire ids": [len(each) for each in ids],
        "kind": span.kind,
        "attributes": [(k, v) for k, v in span.attributes.items() if k not in rates],
        "rate keys": sorted(k for k in span.attributes if k in rates),
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "status": (span.status.status_code, span.status.description),
        "events": list(span.events),
        "links": list(span.links),
        "resource": span.resource,
        "scope": span.instrumentation_scope,
        "json": {
            k: v
            for k, v in json.loads(span.to_json()).items()
            if k not in ("context", "attributes", "parent_id", "start_time", "end_time")
        },
        "json ids": json.loads(span.to_json())["context"]["span_id"] == f"0x{own_id}",
        "otlp": (
            encoded["resourceSpans"][0]["resource"],
            scope_spans["scope"],
            wire | {"startTimeUnixNano": 0, "endTimeUnixNano": 0},
        ),
    }


@pytest.mark.parametrize("limits", [None, SpanLimits(max_span_attributes=7, max_span_attribute_length=4)])
def test_late_spans_are_what_the_spans_built_at_once_are(monkeypatch, limits):
    lazy = _steady_forward(monkeypatch, eager=False, limits=limits)
    eager = _steady_forward(monkeypatch, eager=True, limits=limits)
    assert [type(s).__name__ for s in lazy] == ["LateSpan"] * 3
    assert [type(s) for s in eager] == [ReadableSpan] * 3
    assert [_fields(s) for s in lazy] == [_fields(s) for s in eager]
    for span in lazy:  # the rate is the span's FLOPs over its own duration
        flops = span.attributes.get(A.FLOPS)
        if flops and A.ACHIEVED_FLOPS_PER_S in span.attributes:
            seconds = (span.end_time - span.start_time) / 1e9
            assert span.attributes[A.ACHIEVED_FLOPS_PER_S] == pytest.approx(flops / seconds)
    if limits is not None:
        assert all(len(s.attributes) == 7 and s.dropped_attributes > 0 for s in lazy)


def test_a_copy_of_a_clocked_span_is_a_plain_readable_span(monkeypatch):
    """(Neither pickles: the SDK's span attributes hold a lock.)"""
    for span in _steady_forward(monkeypatch, eager=False, limits=None):
        for other in (copy.copy(span), copy.deepcopy(span)):
            assert type(other) is ReadableSpan
            assert other.to_json() == span.to_json()
            assert other.dropped_attributes == span.dropped_attributes


def test_attributes_are_made_when_first_read():
    provider = TracerProvider()
    keeps = Keeps()
    provider.add_span_processor(keeps)
    model = Looped().eval()
    with yolospan.instrument(model, layers=True, tracer_provider=provider):
        model(torch.zeros(1, 3, 8, 8))
        keeps.spans.clear()
        model(torch.zeros(1, 3, 8, 8))
    layers = [s for s in keeps.spans if s.name != "forward"]
    assert len(layers) == 3 and all(s._made is None for s in layers)
    assert layers[0].attributes[A.LAYER_INDEX] == 0
    assert layers[0]._made is not None and layers[1]._made is None


def test_layer_attributes_are_validated_in_the_forward_that_learns_them(monkeypatch):
    """Not in the first forward that only reads the clock, nor again for equal span attributes
    entered anew (one block per training step, say)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    validations: list[str] = []

    class Counted(_clock.ClockedSource):
        def __init__(self, emitter: Any, layer: Any, *args: Any) -> None:
            validations.append(layer.name)
            super().__init__(emitter, layer, *args)

    monkeypatch.setattr(_clock, "ClockedSource", Counted)
    model = Looped().eval()
    with yolospan.instrument(model, layers=True, tracer_provider=provider):
        with yolospan.tracing.span_attributes({"run": "r1"}):
            model(torch.zeros(1, 3, 8, 8))  # describes: validates
        assert sorted(validations) == ["L0", "L1", "L2", "forward"]  # the forward span's own, too
        validations.clear()
        for _ in range(3):
            with yolospan.tracing.span_attributes({"run": "r1"}):
                model(torch.zeros(1, 3, 8, 8))
        assert validations == []
        with yolospan.tracing.span_attributes({"run": "r2"}):
            model(torch.zeros(1, 3, 8, 8))
        assert sorted(validations) == ["L0", "L1", "L2", "forward"]  # for the new attributes


def test_an_sdk_whose_spans_keep_other_fields_gets_spans_built_at_once(monkeypatch):
    from opentelemetry.sdk import trace as sdk_trace

    class Newer(ReadableSpan):  # a later SDK's span, with a field yolospan's class does not give
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._flags = 0

    monkeypatch.setattr(sdk_trace, "ReadableSpan", Newer)
    assert _late_spans.span_class(Newer) is None
    spans = _steady_forward(monkeypatch, eager=False, limits=None)
    assert [type(s) for s in spans] == [Newer] * 3
    assert all(A.LAYER_INDEX in s.attributes for s in spans)
