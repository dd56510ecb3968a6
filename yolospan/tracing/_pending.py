"""A forward span that becomes the SDK's span object only if something asks for one.

Starting and ending the SDK's span object right after a forward that evicted the CPU caches costs
about twice a finished span handed to the processors (docs/performance.md). Where no span
processor of the SDK's provider does anything when a span starts or is ending (`quiet_at_start`:
the SDK's batch and simple processors, and processors that only pass those calls on to quiet
ones), nothing can tell a forward span from a finished span handed over when the forward ends,
except code inside the forward that reads the current span. yolospan then makes the forward span
current as a `PendingSpan`: ids, parent and start time fixed as the SDK's span would have them.
The first call that changes it (an attribute, an event, a status, a link or a new name set from
inside the forward) makes the SDK's own span with those ids and start time and passes the call
on, so from then on it *is* that span, with the SDK's own semantics. A pending span that nothing
changed reaches the processors' ``on_end`` as one finished span when the forward ends, with
yolospan's attributes validated once per attribute set.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types
from opentelemetry.util.types import AttributeValue

__all__ = ["PendingSpan", "quiet_at_start"]

_log = logging.getLogger(__name__)
_materializing = threading.Lock()
"""One lock for every pending span: taken when one becomes the SDK's span (rare) and once when
it ends (uncontended), so that a change from another thread is never lost to a span ending."""


class PendingSpan(trace.Span):
    """A recording span whose SDK object is made on its first change; see the module's docstring.

    ``emitter`` is the `yolospan.tracing._fast_spans.Emitter` of the tracer that starts it.
    """

    __slots__ = (
        "_attributes",
        "_context",
        "_emitter",
        "_end_ns",
        "_name",
        "_parent",
        "_parent_context",
        "_span",
        "_start_ns",
    )

    def __init__(
        self,
        emitter: Any,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        parent_context: Context,
        start_ns: int,
    ) -> None:
        self._emitter = emitter
        self._name = name
        self._context = context
        self._parent = parent
        self._parent_context = parent_context
        self._start_ns = start_ns
        self._end_ns: int | None = None
        self._attributes: Any = None  # yolospan's own, validated (`set_validated`)
        self._span: Any = None  # the SDK's span, once something changed this one

    # --- what reading the span gives ------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        span = self._span
        return self._end_ns is None if span is None else bool(span.is_recording())

    # --- changes: passed on to the SDK's span --------------------------------------------------

    def _sdk(self, what: str) -> Any:
        """The SDK's span, made on first use; None (with the SDK's warning) once this span ended."""
        span = self._span
        if span is not None:
            return span
        with _materializing:
            if self._span is None:
                if self._end_ns is not None:
                    _log.warning("Tried calling %s on an ended span.", what)
                    return None
                span = self._emitter.started(
                    self._name, self._context, self._parent, self._parent_context, self._start_ns
                )
                if self._attributes is not None:  # as the API would hold them after setting them
                    own = span._attributes
                    own._dict.update(self._attributes._dict)
                    own.dropped = self._attributes.dropped
                self._span = span
        return self._span

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        span = self._sdk("set_attribute")
        if span is not None:
            span.set_attribute(key, value)

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        span = self._sdk("set_attributes")
        if span is not None:
            span.set_attributes(attributes)

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        span = self._sdk("add_event")
        if span is not None:
            span.add_event(name, attributes, timestamp)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        span = self._sdk("add_link")
        if span is not None:
            span.add_link(context, attributes)

    def update_name(self, name: str) -> None:
        span = self._sdk("update_name")
        if span is not None:
            span.update_name(name)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        span = self._sdk("set_status")
        if span is not None:
            span.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        span = self._sdk("record_exception")
        if span is not None:
            span.record_exception(exception, attributes, timestamp, escaped)

    def set_validated(
        self, attrs: dict[str, AttributeValue], measured: Mapping[str, AttributeValue], key: Any
    ) -> bool:
        """yolospan's attributes for a span that has none yet, validated once per attribute set
        (`Emitter.cached_attributes`); False where the caller must set them through the API."""
        span = self._span
        if span is not None or self._end_ns is not None or self._attributes is not None:
            return False
        self._attributes = self._emitter.cached_attributes(key, attrs, measured)
        return True

    @property
    def emitter(self) -> Any:
        return self._emitter

    def untouched(self) -> bool:
        """Nothing changed it and it has not ended: its attributes can still come from yolospan alone."""
        return self._span is None and self._end_ns is None and self._attributes is None

    def end_late(self, source: Any, end_ns: int) -> bool:
        """End it as one finished span whose attributes ``source`` makes when they are read
        (`_fast_spans.Emitter.finish_late`); False (nothing done) where it is no longer untouched."""
        with _materializing:
            if not self.untouched():
                return False
            self._end_ns = end_ns
        self._emitter.finish_late(source, self._name, self._context, self._parent, self._start_ns, end_ns)
        return True

    def end(self, end_time: int | None = None) -> None:
        with _materializing:
            span = self._span
            if span is None:
                if self._end_ns is not None:
                    _log.warning("Calling end() on an ended span.")
                    return
                self._end_ns = end_time if end_time is not None else time.time_ns()
        if span is not None:
            span.end(end_time)
            return
        emitter = self._emitter
        attributes = self._attributes
        emitter.finish(
            self._name,
            self._context,
            self._parent,
            emitter.no_attributes if attributes is None else attributes,
            self._start_ns,
            self._end_ns,
        )

    def __repr__(self) -> str:
        return f"PendingSpan({self._name!r}, span_id=0x{self._context.span_id:016x})"


def quiet_at_start(processor: Any) -> bool:
    """True where ``processor`` does nothing when a span starts or is ending, so a span it is given
    only at its end looks the same to it: the SDK's batch and simple processors (and their
    subclasses that keep those methods), the SDK's multi-processors of quiet ones, and any
    processor that lists the processors it passes those calls to in ``span_start_delegates``."""
    sdk = sys.modules.get("opentelemetry.sdk.trace")
    if sdk is None:
        return False
    kind = type(processor)
    inner: Iterable[Any] | None = None
    if kind in (sdk.SynchronousMultiSpanProcessor, sdk.ConcurrentMultiSpanProcessor):
        inner = processor._span_processors
    elif isinstance(getattr(processor, "span_start_delegates", None), Sequence):
        inner = processor.span_start_delegates
    if inner is not None:
        return all(quiet_at_start(each) for each in inner)
    quiet_start, quiet_ending = _quiet_methods(sdk)
    return kind.on_start in quiet_start and getattr(kind, "_on_ending", None) in quiet_ending


def _quiet_methods(sdk: Any) -> tuple[set[Any], set[Any]]:
    """The ``on_start`` and ``_on_ending`` methods known to do nothing."""
    kinds: list[Any] = [sdk.SpanProcessor]
    export = sys.modules.get("opentelemetry.sdk.trace.export")
    if export is not None:
        kinds += [export.BatchSpanProcessor, export.SimpleSpanProcessor]
    starts = {vars(kind)["on_start"] for kind in kinds if "on_start" in vars(kind)}
    endings = {vars(kind)["_on_ending"] for kind in kinds if "_on_ending" in vars(kind)}
    return starts, endings
