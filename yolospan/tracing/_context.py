"""Context the hooks read: which tracer provider to use, which phase is running, and which
attributes every span started in this context carries (`span_attributes`).

All live in ``ContextVar``s so they follow the code that set them (threads, asyncio tasks) and
need no process-wide state: a test can route spans to its own provider without touching
OpenTelemetry's global one.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from yolospan._version import __version__

INSTRUMENTATION_NAME = "yolospan"

_provider_override: ContextVar[trace.TracerProvider | None] = ContextVar(
    "yolospan_tracer_provider", default=None
)
_current_phase: ContextVar[str | None] = ContextVar("yolospan_phase", default=None)
_NO_ATTRIBUTES: Mapping[str, AttributeValue] = MappingProxyType({})
_span_attributes: ContextVar[Mapping[str, AttributeValue]] = ContextVar(
    "yolospan_span_attributes", default=_NO_ATTRIBUTES
)


def resolve_provider(explicit: trace.TracerProvider | None = None) -> trace.TracerProvider:
    """An explicit provider wins, then one set by `use_tracer_provider`, then OpenTelemetry's global."""
    if explicit is not None:
        return explicit
    return _provider_override.get() or trace.get_tracer_provider()


_tracers: weakref.WeakKeyDictionary[trace.TracerProvider, trace.Tracer] = weakref.WeakKeyDictionary()


def get_tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """yolospan's tracer from the resolved provider, one per provider: the SDK's lookup is not free."""
    resolved = resolve_provider(provider)
    try:
        tracer = _tracers.get(resolved)
    except TypeError:  # a provider that cannot be weakly referenced
        return resolved.get_tracer(INSTRUMENTATION_NAME, __version__)
    if tracer is None:
        tracer = _tracers[resolved] = resolved.get_tracer(INSTRUMENTATION_NAME, __version__)
    return tracer


@contextmanager
def use_tracer_provider(provider: trace.TracerProvider) -> Iterator[trace.TracerProvider]:
    """Send yolospan's spans to ``provider`` inside the block; OpenTelemetry's global stays untouched."""
    token = _provider_override.set(provider)
    try:
        yield provider
    finally:
        _provider_override.reset(token)


def current_phase() -> str | None:
    """The innermost phase entered with `yolospan.tracing.phase` (or a span with ``phase=``), if any."""
    return _current_phase.get()


@contextmanager
def entered_phase(name: str | None) -> Iterator[None]:
    if name is None:
        yield
        return
    token = _current_phase.set(name)
    try:
        yield
    finally:
        _current_phase.reset(token)


@contextmanager
def span_attributes(attributes: Mapping[str, AttributeValue]) -> Iterator[None]:
    """Every span yolospan starts inside the block carries ``attributes`` (a run id, a job name).

    Phase, unit-of-work, forward and layer spans alike, so a whole training run can be found by one
    key. Nested blocks add to the outer ones (the inner value wins for a repeated key); the
    attributes a span sets itself win over these.
    """
    token = _span_attributes.set(MappingProxyType({**_span_attributes.get(), **attributes}))
    try:
        yield
    finally:
        _span_attributes.reset(token)


def current_span_attributes() -> Mapping[str, AttributeValue]:
    """The attributes `span_attributes` blocks around this code add to every span (read-only)."""
    return _span_attributes.get()
