"""A forward's steady state: what every later call of a signature gives its forward span, and what
the current context gave the thread's last traced call.

Both are read on every recorded forward, so both are kept rather than computed again: a call
signature's forward span, once its FLOPs are cached, has the same attributes on every call but
for the achieved FLOP/s (`SteadySpan`); a context object never changes, so the same object gives
the same tracer, phase and span attributes (`ContextReading`).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from yolospan.tracing import _attrs, _fast_spans
from yolospan.tracing._clock import _Learned, learned_layer
from yolospan.tracing._context import Snapshot
from yolospan.tracing._late_spans import ClockedSource
from yolospan.tracing._pending import PendingSpan

__all__ = ["ContextReading", "SteadySpan"]


class SteadySpan:
    """A call signature's forward span as every later call on the CPU gives it (its outputs'
    signature included), where nothing but yolospan sets its attributes."""

    __slots__ = ("gave", "learned")

    def __init__(self, learned: _Learned, output: Any) -> None:
        self.learned = learned
        self.gave = _attrs.OutputSignature(output)

    @classmethod
    def learn(cls, frame: Any, output: Any) -> SteadySpan | None:
        """From a described forward (its frame) that returned ``output``; its attributes validated
        now for a pending span's emitter (this forward is a slow one anyway)."""
        learned = learned_layer(frame, frame.extra, frame.phase)
        if learned is None:
            return None
        if type(frame.span) is PendingSpan:
            learned.clocked_source(frame.span.emitter, frame.extra, frame.phase)
        return cls(learned, output)

    def source(self, frame: Any, span: trace.Span, output: Any) -> ClockedSource | None:
        """The attributes of this forward's span as a late source (`_late_spans`), or None where
        the span is made as usual: it is not a pending span nothing changed, or its outputs are
        not the ones the signature learned."""
        if type(span) is not PendingSpan or not span.untouched() or not self.gave.matches(output):
            return None
        return self.learned.clocked_source(span.emitter, frame.extra, frame.phase)


class ContextReading:
    """What the current context gave a thread's last traced call: the same context object (and
    the same global provider, where it is the one used) gives the same again."""

    __slots__ = ("attributes", "context", "fast", "phase", "plan", "provider", "tracer")

    def __init__(self, now: Snapshot, explicit: trace.TracerProvider | None) -> None:
        try:
            self.context: weakref.ref[Any] | None = weakref.ref(now.context)  # not kept alive here
        except TypeError:  # a context that cannot be weakly referenced: read every time
            self.context = None
        self.provider = trace.get_tracer_provider() if explicit is None else None
        self.tracer: trace.Tracer = now.tracer
        self.phase: str | None = now.phase
        self.attributes: Mapping[str, AttributeValue] = now.attributes
        self.fast = fast = _fast_spans.made_for(now.tracer)
        parent = trace.get_current_span(now.context).get_span_context()
        self.plan = None if fast is None else fast.plan(parent)  # how a forward span starts under it

    def gives(self, context: Any, explicit: trace.TracerProvider | None) -> bool:
        ref = self.context
        if ref is None or ref() is not context:
            return False
        return explicit is not None or self.provider is trace.get_tracer_provider()
