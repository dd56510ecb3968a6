"""Spans straight to the OpenTelemetry SDK's span processors, without the tracer API.

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

Forward spans (eager: made current while the module runs, seen by ``on_start`` before it runs)
take the same shortcut at their start (`Emitter.start`): the SDK's own span class, constructed
and started as ``Tracer.start_span`` constructs and starts it, without the sampler call, the
context lookups and the span metrics' bookkeeping that cannot change the outcome under the
conditions above; a root span only where the sampler samples every root, a child only of a
sampled local parent. Anything else goes through the API. Where no span processor does anything
when a span starts (`_pending.quiet_at_start`: the SDK's batch and simple processors), the forward
span is a `PendingSpan` instead: no SDK span object unless code inside the forward changes the
span, one finished span to ``on_end`` when the forward ends (see `_pending`).

The SDK is never imported here: if ``opentelemetry.sdk.trace`` is not loaded, no provider can be
one of its own.
"""

from __future__ import annotations

import logging
import sys
import traceback
import weakref
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from yolospan.tracing._late_spans import FrameSource, Source, span_class
from yolospan.tracing._pending import PendingSpan, quiet_at_start

_log = logging.getLogger(__name__)

_ERROR = StatusCode.ERROR
_UNPLANNED: Any = object()

Plan = tuple[Any, ...]
"""`Emitter.plan`: (trace id or None, trace flags, trace state, parent span context or None)."""
_UNCHECKED = object()
_NONE: Mapping[str, AttributeValue] = MappingProxyType({})


class Emitter:
    """Makes finished spans for one SDK tracer: see the module's docstring."""

    __slots__ = (
        "__weakref__",
        "_bounded",
        "_cache",
        "_checked",
        "_enabled",
        "_ended",
        "_event",
        "_events",
        "_flags",
        "_info",
        "_late",
        "_limits",
        "_new_id",
        "_new_trace_id",
        "_on_end",
        "_processor",
        "_quiet",
        "_random_flags",
        "_random_roots",
        "_readable",
        "_resource",
        "_roots",
        "_sampler",
        "_scope",
        "_span",
        "no_attributes",
    )

    def __init__(self, tracer: Any, sdk: Any, sampling: Any, *, roots: bool) -> None:
        """``roots``: whether the tracer's sampler samples every root span (`start` makes roots)."""
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk.util import BoundedList

        self._readable = sdk.ReadableSpan
        self._late = span_class(sdk.ReadableSpan)
        self._event = sdk.Event
        self._events = BoundedList
        self._bounded = BoundedAttributes
        self._limits = tracer._span_limits
        self._resource = tracer.resource
        self._scope = tracer._instrumentation_scope
        self._info = tracer.instrumentation_info
        self._new_id = tracer.id_generator.generate_span_id
        self._on_end = tracer.span_processor.on_end
        self._enabled = tracer._is_enabled  # the provider's tracer configurator may turn it off
        # For `start`: what ``Tracer.start_span`` gives every sampled span it makes.
        self._span = sdk._Span
        self._sampler = tracer.sampler
        self._processor = tracer.span_processor
        self._new_trace_id = tracer.id_generator.generate_trace_id
        self._random_roots = bool(tracer.id_generator.is_trace_id_random())
        self._flags = TraceFlags(TraceFlags.SAMPLED)
        self._random_flags = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
        self._roots = roots
        self._ended = tracer._tracer_metrics.start_span(None, sampling.Decision.RECORD_AND_SAMPLE)
        self._cache: dict[Any, tuple[dict[str, AttributeValue], Any]] = {}
        self._checked: Any = _UNCHECKED  # the processors `_quiet` was decided for
        self._quiet = False
        self.no_attributes = self.attributes({})  # what an SDK span that was given none holds

    @property
    def limits(self) -> Any:
        return self._limits

    @property
    def resource(self) -> Any:
        return self._resource

    @property
    def scope(self) -> Any:
        return self._scope

    @property
    def info(self) -> Any:
        return self._info

    def attributes(self, attrs: Mapping[str, AttributeValue]) -> Any:
        """``attrs`` validated against the span limits, as the SDK stores a span's attributes (immutable)."""
        limits = self._limits
        return self._bounded(
            limits.max_span_attributes, attrs, immutable=True, max_value_len=limits.max_span_attribute_length
        )

    def cached_attributes(
        self, key: Any, attrs: dict[str, AttributeValue], measured: Mapping[str, AttributeValue] = _NONE
    ) -> Any:
        """`attributes` of ``{**attrs, **measured}``; ``attrs`` is validated once while the attributes
        last validated under ``key`` are equal, ``measured`` (the call's own numbers, made by
        yolospan: already valid) is appended to a copy."""
        cached = self._cache.get(key)
        if cached is None or cached[0] != attrs:
            if len(self._cache) >= 4096:  # keys are per call signature: stay bounded
                self._cache.clear()
            cached = self._cache[key] = (dict(attrs), self.attributes(attrs))
        if not measured:
            return cached[1]
        return self.appended(cached[1], measured) or self.attributes({**attrs, **measured})

    def appended(self, bounded: Any, measured: Mapping[str, AttributeValue]) -> Any:
        """An immutable copy of ``bounded`` with ``measured`` added, or None where the SDK's own
        validation could differ (a limit reached, a key already there)."""
        try:
            maxlen = bounded.maxlen
            own = bounded._dict
            if not _appendable(own, measured, maxlen):
                return None
            # What `__init__` would leave, without validating again (the lock is only taken by copies)
            copy = object.__new__(self._bounded)
            copy._dict = {**own, **measured}
            copy.maxlen = maxlen
            copy.dropped = bounded.dropped
            copy.max_value_len = bounded.max_value_len
            copy._lock = bounded._lock
            copy._immutable = True
        except AttributeError:  # an SDK whose internals moved: validate as the SDK does
            return None
        return copy

    def enabled(self) -> bool:
        """Whether the tracer makes spans now (what ``Tracer.start_span`` asks first)."""
        return bool(self._enabled())

    def plan(self, parent: SpanContext) -> Plan | None:
        """What `start` gives every span started under ``parent`` (the current span's context):
        its trace id (None: a new root's, made per span), trace flags, trace state and parent; or
        None where the sampler could decide otherwise: a parent that is remote or not sampled,
        or a root where the sampler does not sample every root."""
        if parent.is_valid:
            flags = parent.trace_flags
            if parent.is_remote or not flags.sampled:
                return None
            kept = self._random_flags if flags.random_trace_id else self._flags
            return (parent.trace_id, kept, parent.trace_state, parent)
        if self._roots:
            return (None, self._random_flags if self._random_roots else self._flags, None, None)
        return None

    def start(self, name: str, context: Context, start_ns: int, plan: Any = _UNPLANNED) -> trace.Span | None:
        """The span ``tracer.start_span(name, context=context, start_time=start_ns)`` would start
        (its ``on_start`` called), or None where the sampler could decide otherwise (`plan`).
        Where no processor acts on a span before it ends, a `PendingSpan` (see `_pending`).
        ``plan``: `plan` of the context's current span, where the caller already has it."""
        if plan is _UNPLANNED:
            plan = self.plan(trace.get_current_span(context).get_span_context())
        if plan is None:
            return None
        trace_id, flags, state, parent_context = plan
        if trace_id is None:
            trace_id = self._new_trace_id()
        span_id = self._new_id()
        span_context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags, trace_state=state)
        processors = getattr(self._processor, "_span_processors", None)
        if processors is not self._checked:  # the provider's processors changed (or first use)
            self._checked, self._quiet = processors, quiet_at_start(self._processor)
        if self._quiet:
            return PendingSpan(self, name, span_context, parent_context, context, start_ns)
        started: trace.Span = self.started(name, span_context, parent_context, context, start_ns)
        return started

    def started(
        self,
        name: str,
        span_context: SpanContext,
        parent: SpanContext | None,
        context: Context,
        start_ns: int,
    ) -> Any:
        """The SDK's own span with these ids, started as ``Tracer.start_span`` starts it."""
        span = self._span(
            name=name,
            context=span_context,
            parent=parent,
            sampler=self._sampler,
            resource=self._resource,
            span_processor=self._processor,
            instrumentation_info=self._info,
            limits=self._limits,
            instrumentation_scope=self._scope,
            record_end_metrics=self._ended,
        )
        span.start(start_time=start_ns, parent_context=context)
        return span

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
        context = self._child_of(parent)
        self.finish(name, context, parent, attributes, start_ns, end_ns, error)
        return context

    def emit_late(
        self, source: Source, name: str, parent: SpanContext, start_ns: int, end_ns: int
    ) -> SpanContext:
        """One layer's finished span whose attributes ``source`` makes when they are read (see
        `_late_spans`), child of ``parent`` (a sampled local span), to the span processors."""
        context = self._child_of(parent)
        self.finish_late(source, name, context, parent, start_ns, end_ns)
        return context

    def finish_late(
        self,
        source: Source,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        start_ns: int,
        end_ns: int,
    ) -> None:
        """`finish` for a span with these ids whose attributes ``source`` makes when they are read."""
        if self._late is None:  # an SDK whose spans keep other fields: built at once
            self.finish(name, context, parent, source.attributes(start_ns, end_ns), start_ns, end_ns)
            return
        self._on_end(self._late(source, name, context, parent, start_ns, end_ns))

    def _child_of(self, parent: SpanContext) -> SpanContext:
        """A new span's context under ``parent``, a sampled local span: its trace, flags and state."""
        return SpanContext(
            parent.trace_id,
            self._new_id(),
            is_remote=False,
            trace_flags=parent.trace_flags,
            trace_state=parent.trace_state,
        )

    def finish(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: Any,
        start_ns: int,
        end_ns: int,
        error: BaseException | None = None,
    ) -> None:
        """The finished span with these ids, as the SDK's span gives it to ``on_end``."""
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
    measured: dict[str, AttributeValue]
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
        # The same call signature of the same module gives the same attributes, nearly always.
        key = None if call is None else (frame.name, id(call))
        parent = made.get(id(frame.parent), root_context)
        if frame.error is None:
            made[id(frame)] = fast.emit_late(
                FrameSource(fast, key, frame.attrs, frame.measured),
                frame.name,
                parent,
                frame.start_ns,
                frame.end_ns,
            )
            continue
        if key is None:
            attributes = fast.attributes({**frame.attrs, **frame.measured})
        else:
            attributes = fast.cached_attributes(key, frame.attrs, frame.measured)
        made[id(frame)] = fast.emit(frame.name, parent, attributes, frame.start_ns, frame.end_ns, frame.error)


def _start_ns(frame: DeferredSpan) -> int:
    return frame.start_ns


_validated: dict[Any, tuple[Any, Any, dict[str, AttributeValue], Any]] = {}


def set_attributes(
    span: trace.Span, attrs: dict[str, AttributeValue], measured: Mapping[str, AttributeValue], key: Any
) -> bool:
    """Give an SDK span that has no attribute yet ``attrs`` then ``measured``, as
    ``span.set_attributes({**attrs, **measured})`` would, with ``attrs`` validated once per
    attribute set.

    The span keeps its own (mutable) `BoundedAttributes`; it receives the values the API would
    store (cleaned against the same limits, the same dropped count), copied from the last
    validation of an equal ``attrs`` under ``key``; ``measured`` (the call's own numbers, made by
    yolospan: already valid) is added as it is. False where this does not apply (another span
    class, attributes already set, a limit reached, an SDK whose internals moved): the caller
    then sets them through the API.
    """
    if type(span) is PendingSpan:
        if span.set_validated(attrs, measured, key):
            return True
        span = span._span  # the SDK's span it became, if any
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
            values = cached[3]._dict
            if measured and not _appendable(values, measured, maxlen):
                return False
            own._dict.update(values)
            own._dict.update(measured)
            own.dropped = cached[3].dropped
    except AttributeError:
        _log.debug("yolospan: no fast attribute path for this SDK", exc_info=True)
        return False
    return True


def _appendable(validated: Mapping[str, Any], measured: Mapping[str, Any], maxlen: int | None) -> bool:
    """Whether adding ``measured`` to attributes already ``validated`` gives what the SDK's own
    validation of both would: no limit reached (it would evict the oldest), no key replaced."""
    if maxlen is not None and len(validated) + len(measured) > maxlen:
        return False
    return not any(key in validated for key in measured)


_emitters: weakref.WeakKeyDictionary[Any, Emitter | None] = weakref.WeakKeyDictionary()


def emitter(tracer: trace.Tracer, parent: trace.Span) -> Emitter | None:
    """The fast path for children of ``parent`` made by ``tracer``, or None where the API must be used."""
    context = parent.get_span_context()
    if not context.trace_flags.sampled or context.is_remote:
        return None
    return starter(tracer)


def starter(tracer: trace.Tracer) -> Emitter | None:
    """The fast path for spans made by ``tracer`` (`Emitter.start` decides per span), or None."""
    made = made_for(tracer)
    if made is None or not made.enabled():
        return None
    return made


def made_for(tracer: trace.Tracer) -> Emitter | None:
    """``tracer``'s `Emitter` (made once) where it is the SDK's own, whether or not it is enabled
    now (`Emitter.enabled`, asked per span as the tracer asks it)."""
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
    return made if isinstance(made, Emitter) else None


def _make(tracer: Any, sdk: Any) -> Emitter | None:
    from opentelemetry.sdk.trace import sampling
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics

    if not isinstance(tracer._tracer_metrics, NoOpTracerMetrics):
        return None  # the SDK's own span metrics count every span started through the API
    if not _samples_children(tracer.sampler, sampling):
        return None
    if not hasattr(tracer.span_processor, "on_end"):
        return None
    return Emitter(tracer, sdk, sampling, roots=_samples_roots(tracer.sampler, sampling))


def _samples_roots(sampler: Any, sampling: Any) -> bool:
    """True where the sampler records and samples every root span."""
    if type(sampler).should_sample is sampling.ParentBased.should_sample:
        sampler = sampler._root
    return _always_on(sampler, sampling)


def _always_on(sampler: Any, sampling: Any) -> bool:
    return (
        type(sampler).should_sample is sampling.StaticSampler.should_sample
        and sampler._decision is sampling.Decision.RECORD_AND_SAMPLE
    )


def _samples_children(sampler: Any, sampling: Any) -> bool:
    """True where the sampler records and samples every child of a sampled local parent as it is."""
    if type(sampler).should_sample is sampling.ParentBased.should_sample:
        sampler = sampler._local_parent_sampled
    return _always_on(sampler, sampling)


__all__ = ["DeferredSpan", "Emitter", "emit_frames", "emitter", "made_for", "set_attributes", "starter"]
