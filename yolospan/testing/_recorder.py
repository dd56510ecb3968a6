"""`SpanRecorder`: a private tracer provider that keeps every finished span in memory.

Inside ``with SpanRecorder() as spans:`` everything yolospan traces goes to the recorder
through `yolospan.tracing.use_tracer_provider`, a value of the OpenTelemetry context (it follows
the code as the current span does; a bare Thread starts without it): OpenTelemetry's global
tracer provider is never replaced, so tests cannot leak providers into each other.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from types import TracebackType
from typing import overload

from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from yolospan.testing._spans import RecordedSpan, SpanKey, SpanList, _Queries
from yolospan.tracing import flush_device_time, use_tracer_provider

__all__ = ["SpanRecorder"]

_DEVICE_TIME_WAIT_S = 60.0
"""How long a query waits for CUDA spans still waiting for their device time."""

_HINT = (
    "yolospan's spans reach a SpanRecorder inside its with-block (the spans fixture is one for the "
    "whole test); code given its own tracer_provider= sends them elsewhere, pass spans.provider to it"
)


class _LogicalClock(SpanProcessor):
    """Numbers span starts and ends as they happen: an order no coarse or shared clock can tie."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._starts: dict[SpanKey, int] = {}
        self.ticks: dict[SpanKey, tuple[int, int]] = {}

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        context = span.context
        if context is not None:
            with self._lock:
                self._starts[(context.trace_id, context.span_id)] = next(self._counter)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        key = (context.trace_id, context.span_id)
        with self._lock:
            end = next(self._counter)
            self.ticks[key] = (self._starts.pop(key, end), end)

    def snapshot(self) -> dict[SpanKey, tuple[int, int]]:
        with self._lock:
            return dict(self.ticks)

    def clear(self) -> None:
        with self._lock:
            self.ticks.clear()


class SpanRecorder(_Queries):
    """Records yolospan's spans in memory for assertions: the engine of the ``spans`` fixture.

    Use it as a context manager to route yolospan's spans to it, or pass `provider` explicitly.
    The query API (`find`, `one`, `assert_count`, `check`, `phase`, ...) always sees the spans
    finished so far.
    """

    def __init__(self) -> None:
        self._exporter = InMemorySpanExporter()
        self._clock = _LogicalClock()
        # No atexit hook (a test suite makes thousands of these) and no sampler or resource
        # taken from the environment: what a test records must not depend on OTEL_* settings.
        self._provider = TracerProvider(
            sampler=ALWAYS_ON, resource=Resource.get_empty(), shutdown_on_exit=False
        )
        self._provider.add_span_processor(self._clock)
        self._provider.add_span_processor(SimpleSpanProcessor(self._exporter))
        self._routes: list[ExitStack] = []
        self._cache: tuple[int, SpanList] | None = None

    @property
    def provider(self) -> TracerProvider:
        """The recording provider, for code that takes ``tracer_provider=`` explicitly."""
        return self._provider

    @property
    def exporter(self) -> InMemorySpanExporter:
        return self._exporter

    def __enter__(self) -> SpanRecorder:
        stack = ExitStack()
        stack.enter_context(use_tracer_provider(self._provider))
        self._routes.append(stack)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._routes.pop().close()

    def shutdown(self) -> None:
        """Stop recording; what was recorded stays queryable."""
        self._provider.shutdown()

    def clear(self) -> None:
        """Forget every span finished so far (e.g. after building the model under test)."""
        self._exporter.clear()
        self._clock.clear()
        self._cache = None

    @property
    def finished(self) -> SpanList:
        """Every span finished so far, in order of occurrence."""
        return self._snapshot()

    def _snapshot(self) -> SpanList:
        # The spans of a CUDA forward end once the GPU has finished it: wait for them.
        flush_device_time(_DEVICE_TIME_WAIT_S)
        spans = self._exporter.get_finished_spans()
        if self._cache is None or self._cache[0] != len(spans):
            self._cache = (
                len(spans),
                SpanList.from_readable(
                    spans, source="SpanRecorder", hint=_HINT, clock=self._clock.snapshot()
                ),
            )
        return self._cache[1]

    def __iter__(self) -> Iterator[RecordedSpan]:
        return iter(self._snapshot())

    def __len__(self) -> int:
        return len(self._snapshot())

    @overload
    def __getitem__(self, index: int) -> RecordedSpan: ...

    @overload
    def __getitem__(self, index: slice) -> list[RecordedSpan]: ...

    def __getitem__(self, index: int | slice) -> RecordedSpan | list[RecordedSpan]:
        return self._snapshot()[index]

    def __repr__(self) -> str:
        return f"<SpanRecorder: {len(self)} finished spans>"
