"""Deferred spans straight to the OpenTelemetry SDK's span processors, without the tracer API.

A forward's layer spans are made after the forward returns, with recorded times, as children of a
forward span that is recording and sampled. Through the API each costs ``Tracer.start_span``
(sampler, context, attribute validation, a lock) and ``Span.end``, ~40 µs. When the tracer is the
SDK's own `Tracer` (from its `TracerProvider`), this module builds each finished span as the SDK
would and hands it to the provider's active span processor's ``on_end``, the call through which
every processor, exporter and file reader receives a span: same name, parent, resource,
instrumentation scope, kind, times, status and events, ids from the provider's id generator, the
parent's trace flags and trace state, and attributes validated once per attribute set against
the provider's span limits (`Attributes`, shared by every span that carries them).

What a span processor does not see for these spans: ``on_start`` (and the SDK's private
``_on_ending``). Both would run after the forward anyway, with the span already timed, so a
processor could not have used them to observe the layer while it ran; nothing else (sampler,
attributes, limits) can differ, because the fast path is taken only where the API path's
outcome is known: the SDK's own tracer, enabled, without its internal metrics, with a sampler
that records and samples every child of a sampled local parent as it is (``ALWAYS_ON``, or
``ParentBased`` whose local-parent-sampled sampler is ``ALWAYS_ON``: the SDK's default). Any
other provider or configuration returns None from `emitter` and the caller uses the API.

The SDK is never imported here: if ``opentelemetry.sdk.trace`` is not loaded, no provider can be
one of its own.
"""

from __future__ import annotations

import logging
import sys
import traceback
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import SpanContext, Status, StatusCode
from opentelemetry.util.types import AttributeValue

_log = logging.getLogger(__name__)

_ERROR = StatusCode.ERROR


class Emitter:
    """Makes finished spans for one SDK tracer: see the module's docstring."""

    __slots__ = (
        "__weakref__",
        "_bounded",
        "_cache",
        "_event",
        "_events",
        "_info",
        "_limits",
        "_new_id",
        "_on_end",
        "_readable",
        "_resource",
        "_scope",
    )

    def __init__(self, tracer: Any, sdk: Any) -> None:
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk.util import BoundedList

        self._readable = sdk.ReadableSpan
        self._event = sdk.Event
        self._events = BoundedList
        self._bounded = BoundedAttributes
        self._limits = tracer._span_limits
        self._resource = tracer.resource
        self._scope = tracer._instrumentation_scope
        self._info = tracer.instrumentation_info
        self._new_id = tracer.id_generator.generate_span_id
        self._on_end = tracer.span_processor.on_end
        self._cache: dict[Any, tuple[dict[str, AttributeValue], Any]] = {}

    @property
    def limits(self) -> Any:
        return self._limits

    def attributes(self, attrs: Mapping[str, AttributeValue]) -> Any:
        """``attrs`` validated against the span limits, as the SDK stores a span's attributes (immutable)."""
        limits = self._limits
        return self._bounded(
            limits.max_span_attributes, attrs, immutable=True, max_value_len=limits.max_span_attribute_length
        )

    def cached_attributes(self, key: Any, attrs: dict[str, AttributeValue]) -> Any:
        """`attributes` of ``attrs``, reused while the attributes last validated under ``key`` are equal."""
        cached = self._cache.get(key)
        if cached is not None and cached[0] == attrs:
            return cached[1]
        if len(self._cache) >= 4096:  # keys are per call signature: stay bounded
            self._cache.clear()
        bounded = self.attributes(attrs)
        self._cache[key] = (dict(attrs), bounded)
        return bounded

    def emit(
        self,
        name: str,
        parent: SpanContext,
        attributes: Any,
        start_ns: int,
        end_ns: int,
        error: BaseException | None = None,
    ) -> SpanContext:
        """One finished span, child of ``parent`` (a sampled local span), to the span processors."""
        context = SpanContext(
            parent.trace_id,
            self._new_id(),
            is_remote=False,
            trace_flags=parent.trace_flags,
            trace_state=parent.trace_state,
        )
        if error is None:
            span = self._readable(
                name=name,
                context=context,
                parent=parent,
                resource=self._resource,
                attributes=attributes,
                events=(),
                links=(),
                instrumentation_info=self._info,
                instrumentation_scope=self._scope,
                start_time=start_ns,
                end_time=end_ns,
            )
        else:
            span = self._readable(
                name=name,
                context=context,
                parent=parent,
                resource=self._resource,
                attributes=attributes,
                events=self._exception_events(error, end_ns),
                links=(),
                instrumentation_info=self._info,
                instrumentation_scope=self._scope,
                status=Status(_ERROR, f"{type(error).__name__}: {error}"),
                start_time=start_ns,
                end_time=end_ns,
            )
        self._on_end(span)
        return context

    def _exception_events(self, error: BaseException, timestamp: int) -> Any:
        """The event ``Span.record_exception(error, timestamp=timestamp)`` adds."""
        limits = self._limits
        kind = type(error)
        module, qualname = kind.__module__, kind.__qualname__
        attrs = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
            "exception.message": str(error),
            "exception.stacktrace": "".join(traceback.format_exception(error)),
            "exception.escaped": "False",
        }
        bounded = self._bounded(
            limits.max_event_attributes, attrs, immutable=True, max_value_len=limits.max_attribute_length
        )
        events: Any = self._events(limits.max_events)
        events.append(self._event("exception", bounded, timestamp))
        return events


class DeferredSpan(Protocol):
    """A call recorded for a span made later: what the tracing core's deferred layer frames hold."""

    name: str
    parent: Any
    attrs: dict[str, AttributeValue]
    call: Any
    start_ns: int
    end_ns: int
    error: BaseException | None


def emit_frames(fast: Emitter, root: trace.Span, frames: Sequence[DeferredSpan]) -> None:
    """``frames`` as spans under ``root``, parents before children (a frame's ``parent`` is its
    enclosing frame; one that is not among ``frames`` stands for ``root``)."""
    root_context = root.get_span_context()
    made: dict[int, SpanContext] = {}
    for frame in sorted(frames, key=_start_ns):
        call = frame.call
        if call is None:
            attributes = fast.attributes(frame.attrs)
        else:  # the same call signature of the same module gives the same attributes, nearly always
            attributes = fast.cached_attributes((frame.name, id(call)), frame.attrs)
        made[id(frame)] = fast.emit(
            frame.name,
            made.get(id(frame.parent), root_context),
            attributes,
            frame.start_ns,
            frame.end_ns,
            frame.error,
        )


def _start_ns(frame: DeferredSpan) -> int:
    return frame.start_ns


_validated: dict[Any, tuple[Any, Any, dict[str, AttributeValue], Any]] = {}


def set_attributes(span: trace.Span, attrs: dict[str, AttributeValue], key: Any) -> bool:
    """Give an SDK span that has no attribute yet ``attrs``, validated once per attribute set.

    The span keeps its own (mutable) `BoundedAttributes`; it receives the values
    ``span.set_attributes(attrs)`` would store (cleaned against the same limits, the same dropped
    count), copied from the last validation of an equal ``attrs`` under ``key``. False where this
    does not apply (another span class, attributes already set, an SDK whose internals moved):
    the caller then sets them through the API.
    """
    sdk = sys.modules.get("opentelemetry.sdk.trace")
    if sdk is None or type(span) is not getattr(sdk, "_Span", None):
        return False
    try:
        with span._lock:  # type: ignore[attr-defined]
            own = span._attributes  # type: ignore[attr-defined]
            if span._end_time is not None or own._immutable or own._dict or own.dropped:  # type: ignore[attr-defined]
                return False
            maxlen, max_value_len = own.maxlen, own.max_value_len
            cached = _validated.get(key)
            if cached is None or cached[0] != maxlen or cached[1] != max_value_len or cached[2] != attrs:
                if len(_validated) >= 4096:
                    _validated.clear()
                validated = type(own)(maxlen, attrs, immutable=True, max_value_len=max_value_len)
                cached = _validated[key] = (maxlen, max_value_len, dict(attrs), validated)
            validated = cached[3]
            own._dict.update(validated._dict)
            own.dropped = validated.dropped
    except AttributeError:
        _log.debug("yolospan: no fast attribute path for this SDK", exc_info=True)
        return False
    return True


_emitters: weakref.WeakKeyDictionary[Any, Emitter | None] = weakref.WeakKeyDictionary()


def emitter(tracer: trace.Tracer, parent: trace.Span) -> Emitter | None:
    """The fast path for children of ``parent`` made by ``tracer``, or None where the API must be used."""
    context = parent.get_span_context()
    if not context.trace_flags.sampled or context.is_remote:
        return None
    sdk = sys.modules.get("opentelemetry.sdk.trace")
    if sdk is None or type(tracer) is not getattr(sdk, "Tracer", None):
        return None
    made: Emitter | bool | None = _emitters.get(tracer, False)
    if made is False:
        try:
            made = _make(tracer, sdk)
        except Exception:  # an SDK whose private attributes moved: the API path
            _log.debug("yolospan: no fast span path for this SDK", exc_info=True)
            made = None
        _emitters[tracer] = made
    if not isinstance(made, Emitter) or not tracer._is_enabled():  # type: ignore[attr-defined]
        return None
    return made


def _make(tracer: Any, sdk: Any) -> Emitter | None:
    from opentelemetry.sdk.trace import sampling
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics

    if not isinstance(tracer._tracer_metrics, NoOpTracerMetrics):
        return None  # the SDK's own span metrics count every span started through the API
    if not _samples_children(tracer.sampler, sampling):
        return None
    if not hasattr(tracer.span_processor, "on_end"):
        return None
    return Emitter(tracer, sdk)


def _samples_children(sampler: Any, sampling: Any) -> bool:
    """True where the sampler records and samples every child of a sampled local parent as it is."""
    kind = type(sampler)
    if kind.should_sample is sampling.ParentBased.should_sample:
        sampler = sampler._local_parent_sampled
        kind = type(sampler)
    return (
        kind.should_sample is sampling.StaticSampler.should_sample
        and sampler._decision is sampling.Decision.RECORD_AND_SAMPLE
    )


__all__ = ["DeferredSpan", "Emitter", "emit_frames", "emitter", "set_attributes"]
