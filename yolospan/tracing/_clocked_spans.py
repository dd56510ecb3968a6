"""A clocked layer's finished span that works its attributes out when they are first read.

A forward traced with the native layer clock (`_clock`) ends with one span per layer, made back to
back right after a forward that evicted the CPU caches, where every object and every line of code
costs a trip to memory. What differs between two forwards of a call signature is only each
layer's start and end and its span id: the attributes are the layer's learned ones plus the
achieved FLOP/s, a function of the two times. So a `ClockedSpan` holds the times, its ids and the
layer's shared `ClockedSource`, and computes its attributes when a processor or exporter first
reads them: for a `BatchSpanProcessor`, on its worker thread, a whole batch at a time. The span
is otherwise a `ReadableSpan` like any other; what it gives is exactly what the eagerly built one
gives (`tests/tracing/test_clocked_spans.py` compares them), and a copy of it is a plain
`ReadableSpan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

__all__ = ["ClockedSource", "LearnedLayer", "span_class"]


class LearnedLayer(Protocol):
    """What a clocked model's layer learned for one call signature (`_clock._Learned`)."""

    name: str

    def rates(self, start_ns: int, end_ns: int) -> dict[str, AttributeValue]: ...

    def attributes(
        self, extra: Mapping[str, AttributeValue], phase: str | None, *, ok: bool
    ) -> dict[str, Any]: ...


class ClockedSource:
    """What every span of one learned layer shares under one emitter, span attributes and phase:
    its attributes validated once (``bounded``), to which each span adds its achieved FLOP/s."""

    __slots__ = ("bounded", "emitter", "extra", "layer", "phase")

    def __init__(
        self, emitter: Any, layer: LearnedLayer, extra: Mapping[str, AttributeValue], phase: str | None
    ) -> None:
        self.emitter = emitter
        self.layer = layer
        self.extra = extra
        self.phase = phase
        self.bounded = emitter.attributes(layer.attributes(extra, phase, ok=True))

    def attributes(self, start_ns: int, end_ns: int) -> Any:
        """The attributes of the layer's span that ran from ``start_ns`` to ``end_ns``, validated
        as the SDK validates a span's attributes."""
        measured = self.layer.rates(start_ns, end_ns)
        if not measured:
            return self.bounded
        emitter = self.emitter
        return emitter.appended(self.bounded, measured) or emitter.attributes(
            {**self.layer.attributes(self.extra, self.phase, ok=True), **measured}
        )


_classes: dict[type, type] = {}


def span_class(readable: type) -> type:
    """`ClockedSpan`'s class for the SDK's ``ReadableSpan`` (made on first use, so that the
    tracing core imports the SDK only where a provider of the SDK exists)."""
    made = _classes.get(readable)
    if made is None:
        made = _classes[readable] = _clocked_span(readable)
    return made


def _clocked_span(readable: Any) -> type:
    class ClockedSpan(readable):  # type: ignore[misc]
        """A layer's finished span; its attributes are made on first read (see the module's docstring)."""

        __slots__ = ("_context", "_end_time", "_made", "_name", "_parent", "_source", "_start_time")

        # What the SDK gives every span made without events, links or status: shared, never written.
        _kind = SpanKind.INTERNAL
        _events = ()
        _links = ()
        _status = Status(StatusCode.UNSET)

        def __init__(  # the base class's fields are slots and properties here: its __init__ is not run
            self, source: ClockedSource, context: SpanContext, parent: SpanContext, start_ns: int, end_ns: int
        ) -> None:
            self._source = source
            self._name = source.layer.name
            self._context = context
            self._parent = parent
            self._start_time = start_ns
            self._end_time = end_ns
            self._made: Any = None

        @property
        def _attributes(self) -> Any:
            made = self._made
            if made is None:  # two readers at once compute the same value
                made = self._made = self._source.attributes(self._start_time, self._end_time)
            return made

        @property
        def _resource(self) -> Any:
            return self._source.emitter.resource

        @property
        def _instrumentation_scope(self) -> Any:
            return self._source.emitter.scope

        @property
        def _instrumentation_info(self) -> Any:
            return self._source.emitter.info

        def __reduce__(self) -> tuple[Any, ...]:
            """A copy is the plain `ReadableSpan` with the same content."""
            return (
                _plain,
                (
                    readable,
                    self._name,
                    self._context,
                    self._parent,
                    self._resource,
                    self._attributes,
                    self._instrumentation_info,
                    self._instrumentation_scope,
                    self._start_time,
                    self._end_time,
                ),
            )

    return ClockedSpan


def _plain(
    readable: Any,
    name: str,
    context: SpanContext,
    parent: SpanContext,
    resource: Any,
    attributes: Any,
    info: Any,
    scope: Any,
    start_ns: int,
    end_ns: int,
) -> Any:
    return readable(
        name=name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes,
        instrumentation_info=info,
        instrumentation_scope=scope,
        start_time=start_ns,
        end_time=end_ns,
    )
