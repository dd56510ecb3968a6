"""Finished layer spans that work their attributes out when they are first read.

A forward's layer spans are made back to back right after a forward that evicted the CPU caches,
where every object and every line of code costs a trip to memory. Their attributes are mostly
the same from one forward to the next (a layer's per-signature attributes, validated once) plus
a few numbers of this call (the achieved FLOP/s, from the span's own times), and building and
validating that set is most of a span's cost. So a `LateSpan` holds its name, ids, times and a
*source* that knows how to make its attributes, and makes them when a processor or exporter
first reads them: for a `BatchSpanProcessor`, on its worker thread, a whole batch at a time.
Two sources: `ClockedSource`, one per learned layer of a clocked model (`_clock`), and
`FrameSource`, one per deferred layer call of the hook path. The span is otherwise a
`ReadableSpan` like any other; what it gives is exactly what the span built at once gives
(`tests/tracing/test_late_spans.py` compares them), and a copy of it is a plain `ReadableSpan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

__all__ = ["ClockedSource", "FrameSource", "LearnedLayer", "Source", "span_class"]


class Source(Protocol):
    """What a `LateSpan` makes its attributes with."""

    @property
    def emitter(self) -> Any: ...  # the `_fast_spans.Emitter` that made the span

    def attributes(self, start_ns: int, end_ns: int) -> Any: ...


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


class FrameSource:
    """One deferred layer call's attributes (``attrs``, the call's ``measured`` numbers), validated
    once per attribute set under ``key`` (`_fast_spans.Emitter.cached_attributes`)."""

    __slots__ = ("attrs", "emitter", "key", "measured")

    def __init__(
        self, emitter: Any, key: Any, attrs: dict[str, AttributeValue], measured: Mapping[str, AttributeValue]
    ) -> None:
        self.emitter = emitter
        self.key = key
        self.attrs = attrs
        self.measured = measured

    def attributes(self, start_ns: int, end_ns: int) -> Any:
        emitter = self.emitter
        if self.key is None:  # a call that was not described (logged): nothing to reuse
            return emitter.attributes({**self.attrs, **self.measured})
        return emitter.cached_attributes(self.key, self.attrs, self.measured)


_classes: dict[type, type | None] = {}

_FIELDS = frozenset(
    {
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_instrumentation_info",
        "_instrumentation_scope",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_resource",
        "_start_time",
        "_status",
    }
)
"""What the SDK's ``ReadableSpan`` keeps, and a `LateSpan` gives it through slots and properties."""


def span_class(readable: type) -> type | None:
    """`LateSpan`'s class for the SDK's ``ReadableSpan`` (made on first use, so that the
    tracing core imports the SDK only where a provider of the SDK exists), or None for an SDK
    whose spans keep other fields: the caller then builds each span at once."""
    if readable not in _classes:
        fields = set(vars(readable(name="yolospan probe")))
        _classes[readable] = _late_span(readable) if fields == _FIELDS else None
    return _classes[readable]


def _late_span(readable: Any) -> type:
    class LateSpan(readable):  # type: ignore[misc]
        """A layer's finished span; its attributes are made on first read (see the module's docstring)."""

        __slots__ = ("_context", "_end_time", "_made", "_name", "_parent", "_source", "_start_time")

        # What the SDK gives every span made without events, links or status: shared, never written.
        _kind = SpanKind.INTERNAL
        _events = ()
        _links = ()
        _status = Status(StatusCode.UNSET)

        def __init__(  # the base class's fields are slots and properties here: its __init__ is not run
            self,
            source: Source,
            name: str,
            context: SpanContext,
            parent: SpanContext,
            start_ns: int,
            end_ns: int,
        ) -> None:
            self._source = source
            self._name = name
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

    return LateSpan


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
