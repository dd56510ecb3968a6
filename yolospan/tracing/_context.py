"""Context the hooks read: which tracer provider to use, which phase is running, and which
attributes every span started in this context carries (`span_attributes`).

All three are values of the OpenTelemetry context, beside the current span, so they follow the
code exactly as the current span does: into asyncio tasks, into ``contextvars.copy_context().run``,
and into threads and executors wherever the OpenTelemetry context is carried there (OpenTelemetry's
threading instrumentation, or ``context.attach`` of a context captured in the parent). A bare
``threading.Thread`` or ``ThreadPoolExecutor`` starts from an empty context: no parent span, and
yolospan's spans go to OpenTelemetry's global provider. No process-wide state is changed: a test
can route spans to its own provider without touching OpenTelemetry's global one.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from yolospan._version import __version__

INSTRUMENTATION_NAME = "yolospan"

_PROVIDER = otel_context.create_key("yolospan-tracer-provider")
_PHASE = otel_context.create_key("yolospan-phase")
_ATTRIBUTES = otel_context.create_key("yolospan-span-attributes")
_NO_ATTRIBUTES: Mapping[str, AttributeValue] = MappingProxyType({})


@contextmanager
def _entered(key: str, value: Any) -> Iterator[None]:
    token = otel_context.attach(otel_context.set_value(key, value))
    try:
        yield
    finally:
        otel_context.detach(token)


def resolve_provider(explicit: trace.TracerProvider | None = None) -> trace.TracerProvider:
    """An explicit provider wins, then one set by `use_tracer_provider`, then OpenTelemetry's global."""
    if explicit is not None:
        return explicit
    provider: trace.TracerProvider | None = otel_context.get_value(_PROVIDER)  # type: ignore[assignment]
    return provider or trace.get_tracer_provider()


_tracers: weakref.WeakKeyDictionary[trace.TracerProvider, trace.Tracer] = weakref.WeakKeyDictionary()


def get_tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """yolospan's tracer from the resolved provider, one per provider: the SDK's lookup is not free."""
    return _tracer_of(resolve_provider(provider))


def _tracer_of(resolved: trace.TracerProvider) -> trace.Tracer:
    try:
        tracer = _tracers.get(resolved)
    except TypeError:  # a provider that cannot be weakly referenced
        return resolved.get_tracer(INSTRUMENTATION_NAME, __version__)
    if tracer is None:
        tracer = _tracers[resolved] = resolved.get_tracer(INSTRUMENTATION_NAME, __version__)
    return tracer


class Snapshot(NamedTuple):
    """What a traced call reads from the current context when it starts, read in one go."""

    context: otel_context.Context
    tracer: trace.Tracer
    phase: str | None
    attributes: Mapping[str, AttributeValue]


def snapshot(explicit: trace.TracerProvider | None = None) -> Snapshot:
    """The current context with yolospan's tracer, phase and span attributes in it (`resolve_provider`)."""
    context = otel_context.get_current()
    provider: Any = explicit or context.get(_PROVIDER) or trace.get_tracer_provider()
    attributes: Any = context.get(_ATTRIBUTES)
    phase: Any = context.get(_PHASE)
    if attributes is None:
        attributes = _NO_ATTRIBUTES
    return Snapshot(context, _tracer_of(provider), phase, attributes)


@contextmanager
def use_tracer_provider(provider: trace.TracerProvider) -> Iterator[trace.TracerProvider]:
    """Send yolospan's spans to ``provider`` inside the block; OpenTelemetry's global stays untouched.

    The choice is a value of the OpenTelemetry context: it reaches whatever code the current span
    would reach (see the module's docstring for threads).
    """
    with _entered(_PROVIDER, provider):
        yield provider


def current_phase() -> str | None:
    """The innermost phase entered with `yolospan.tracing.phase` (or a span with ``phase=``), if any."""
    phase: str | None = otel_context.get_value(_PHASE)  # type: ignore[assignment]
    return phase


@contextmanager
def entered_phase(name: str | None) -> Iterator[None]:
    if name is None:
        yield
        return
    with _entered(_PHASE, name):
        yield


@contextmanager
def span_attributes(attributes: Mapping[str, AttributeValue]) -> Iterator[None]:
    """Every span yolospan starts inside the block carries ``attributes`` (a run id, a job name).

    Phase, unit-of-work, forward and layer spans alike, so a whole training run can be found by one
    key. Nested blocks add to the outer ones (the inner value wins for a repeated key); the
    attributes a span sets itself win over these.
    """
    with _entered(_ATTRIBUTES, MappingProxyType({**current_span_attributes(), **attributes})):
        yield


def current_span_attributes() -> Mapping[str, AttributeValue]:
    """The attributes `span_attributes` blocks around this code add to every span (read-only)."""
    attributes: Mapping[str, AttributeValue] | None = otel_context.get_value(_ATTRIBUTES)  # type: ignore[assignment]
    return _NO_ATTRIBUTES if attributes is None else attributes
