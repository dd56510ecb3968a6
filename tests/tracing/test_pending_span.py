"""Forward spans handed to the processors finished (`PendingSpan`) where no processor acts at a
span's start: what exporters see is what the tracer API gives, whatever the forward does to its
current span."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pytest
import torch
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags
from torch import nn

import yolospan
from yolospan.delivery.spooling import SpoolingExporter
from yolospan.tracing import _fast_spans, get_tracer
from yolospan.tracing._pending import PendingSpan, quiet_at_start

_LINKED = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))


class Busy(nn.Module):
    """A forward that does to its current span whatever ``todo`` says, and records what it saw."""

    def __init__(self, todo: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.todo = todo
        self.seen: list[Any] = []
        self.tracer: Any = None  # what user code inside the forward starts its own spans with

    def forward(self, x):
        span = trace.get_current_span()
        self.seen.append(span)
        if self.todo == "attribute":
            span.set_attribute("user.note", "set inside the forward")
            span.set_attributes({"user.count": 3, "yolospan.phase": "mine"})
        elif self.todo == "event":
            span.add_event("checkpoint", {"step": 1}, timestamp=123)
        elif self.todo == "status":
            span.set_status(Status(StatusCode.OK))
        elif self.todo == "link":
            span.add_link(_LINKED, {"why": "batch"})
        elif self.todo == "rename":
            span.update_name("renamed")
        elif self.todo == "exception":
            span.record_exception(KeyError("handled"), timestamp=456)
        elif self.todo == "raise":
            raise ValueError("the forward failed")
        elif self.todo == "child":
            with self.tracer.start_as_current_span("user work"):
                pass
        return self.conv(x)


def _provider(processor_kind: type = SimpleSpanProcessor) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "pending"}))
    provider.add_span_processor(processor_kind(exporter))
    return provider, exporter


def _run(todo: str, *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list[ReadableSpan], Busy]:
    provider, exporter = _provider()
    model = Busy(todo).eval()
    model.tracer = provider.get_tracer("user code")
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(_fast_spans, "made_for", lambda tracer: None)
        with (
            yolospan.instrument(model, tracer_provider=provider),
            trace.use_span(trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)),
        ):
            for _ in range(2):
                with contextlib.suppress(ValueError):
                    model(torch.zeros(1, 3, 4, 4))
    provider.force_flush()
    return list(exporter.get_finished_spans()), model


def _fields(span: ReadableSpan, others: dict[int, str]) -> dict[str, Any]:
    rate = "yolospan.achieved_flops_per_s"
    parent = span.parent
    return {
        "name": span.name,
        "parent": None if parent is None else others.get(parent.span_id, "elsewhere"),
        "trace_flags": span.context.trace_flags,
        "kind": span.kind,
        "attributes": [(k, "measured" if k == rate else v) for k, v in (span.attributes or {}).items()],
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "status": (span.status.status_code, span.status.description),
        "events": [
            (
                e.name,
                e.timestamp if e.name != "exception" or e.timestamp == 456 else "at the end",
                {k: v for k, v in (e.attributes or {}).items() if k != "exception.stacktrace"},
            )
            for e in span.events
        ],
        "links": [(link.context, dict(link.attributes or {})) for link in span.links],
        "resource": span.resource.attributes,
        "scope": span.instrumentation_scope,
    }


@pytest.mark.parametrize(
    "todo", ["nothing", "attribute", "event", "status", "link", "rename", "exception", "raise", "child"]
)
def test_what_the_forward_does_to_its_current_span_is_what_the_api_path_exports(monkeypatch, todo):
    fast, model = _run(todo, fast=True, monkeypatch=monkeypatch)
    api, api_model = _run(todo, fast=False, monkeypatch=monkeypatch)
    assert all(type(span) is PendingSpan for span in model.seen)
    assert not any(type(span) is PendingSpan for span in api_model.seen)
    fast_names = {s.context.span_id: s.name for s in fast}
    api_names = {s.context.span_id: s.name for s in api}
    assert [_fields(s, fast_names) for s in fast] == [_fields(s, api_names) for s in api]
    forwards = [s for s in fast if s.name in ("forward", "renamed")]
    assert len(forwards) == 2
    for seen, exported in zip(model.seen, forwards, strict=True):  # the span code saw is the one exported
        assert seen.get_span_context() == exported.context
    if todo == "child":
        children = [s for s in fast if s.name == "user work"]
        assert [c.parent.span_id for c in children] == [f.context.span_id for f in forwards]
    if todo == "raise":
        assert all(f.status.status_code is StatusCode.ERROR for f in forwards)


def test_a_pending_span_is_recording_until_it_ends_and_then_ignores_changes(caplog):
    provider, exporter = _provider()
    tracer = get_tracer(provider)
    fast = _fast_spans.starter(tracer)
    assert fast is not None
    span = fast.start("forward", trace.set_span_in_context(trace.INVALID_SPAN), 1_000)
    assert type(span) is PendingSpan and span.is_recording()
    span.end(2_000)
    assert not span.is_recording()
    with caplog.at_level(logging.WARNING):
        span.set_attribute("late", 1)
        span.end(3_000)
    assert "Tried calling set_attribute on an ended span." in caplog.text
    assert "Calling end() on an ended span." in caplog.text
    [finished] = exporter.get_finished_spans()
    assert (finished.start_time, finished.end_time, dict(finished.attributes)) == (1_000, 2_000, {})


def test_a_changed_pending_span_ends_as_the_sdk_span_it_became(caplog):
    provider, exporter = _provider()
    fast = _fast_spans.starter(get_tracer(provider))
    assert fast is not None
    span = fast.start("forward", trace.set_span_in_context(trace.INVALID_SPAN), 1_000)
    span.set_attribute("a", 1)
    assert type(span._span).__name__ == "_Span" and span.is_recording()
    span.end(2_000)
    with caplog.at_level(logging.WARNING):
        span.set_attribute("late", 1)
    assert "Setting attribute on ended span." in caplog.text
    [finished] = exporter.get_finished_spans()
    assert finished.context == span.get_span_context() and dict(finished.attributes) == {"a": 1}


def test_a_pending_span_ends_late_only_while_nothing_else_changed_it():
    """`PendingSpan.end_late` (a learned forward's attributes, made when read) refuses a span that
    changed since the tracer looked, or that ended: the tracer then sets its attributes as usual."""
    provider, exporter = _provider()
    fast = _fast_spans.starter(get_tracer(provider))
    assert fast is not None
    changed = fast.start("forward", trace.set_span_in_context(trace.INVALID_SPAN), 1_000)
    changed.set_attribute("a", 1)
    assert changed.end_late(object(), 2_000) is False and changed.is_recording()
    changed.end(2_000)
    ended = fast.start("forward", trace.set_span_in_context(trace.INVALID_SPAN), 1_000)
    ended.end(2_000)
    assert ended.end_late(object(), 3_000) is False
    assert [dict(s.attributes) for s in exporter.get_finished_spans()] == [{"a": 1}, {}]


class Watching(SpanProcessor):
    def on_start(self, span, parent_context=None) -> None:
        pass


class BatchThatWatches(BatchSpanProcessor):
    def on_start(self, span, parent_context=None) -> None:
        pass


class QuietBatch(BatchSpanProcessor):
    pass


def _tracking_batch() -> Any:
    spool = SpoolingExporter.__new__(SpoolingExporter)
    return spool.track(BatchSpanProcessor(InMemorySpanExporter()))


@pytest.mark.parametrize(
    ("processors", "quiet"),
    [
        (lambda: [SimpleSpanProcessor(InMemorySpanExporter())], True),
        (lambda: [BatchSpanProcessor(InMemorySpanExporter())], True),
        (lambda: [QuietBatch(InMemorySpanExporter())], True),
        (lambda: [_tracking_batch()], True),  # the spool's ledger passes on_start to a batch processor
        (lambda: [], True),
        (lambda: [Watching()], False),
        (lambda: [BatchThatWatches(InMemorySpanExporter())], False),
        (lambda: [SimpleSpanProcessor(InMemorySpanExporter()), Watching()], False),
    ],
)
@pytest.mark.parametrize("multi", [SynchronousMultiSpanProcessor, ConcurrentMultiSpanProcessor])
def test_only_processors_that_do_nothing_at_a_spans_start_are_quiet(processors, quiet, multi):
    made = processors()
    if len(made) == 1:
        assert quiet_at_start(made[0]) is quiet
    combined = multi()
    for processor in made:
        combined.add_span_processor(processor)
    assert quiet_at_start(combined) is quiet
    for processor in made:
        processor.shutdown()


def test_a_processor_added_later_that_watches_starts_gets_eager_forward_spans():
    provider, _ = _provider()
    model = Busy("nothing").eval()
    with yolospan.instrument(model, tracer_provider=provider):
        model(torch.zeros(1, 3, 4, 4))
        provider.add_span_processor(Watching())
        model(torch.zeros(1, 3, 4, 4))
    assert type(model.seen[0]) is PendingSpan
    assert type(model.seen[1]).__name__ == "_Span"
