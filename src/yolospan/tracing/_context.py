"""Context the hooks read: which tracer provider to use and which phase is running.

Both live in ``ContextVar``s so they follow the code that set them (threads, asyncio tasks) and
need no process-wide state: a test can route spans to its own provider without touching
OpenTelemetry's global one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import trace

from yolospan._version import __version__

INSTRUMENTATION_NAME = "yolospan"

_provider_override: ContextVar[trace.TracerProvider | None] = ContextVar(
    "yolospan_tracer_provider", default=None
)
_current_phase: ContextVar[str | None] = ContextVar("yolospan_phase", default=None)


def resolve_provider(explicit: trace.TracerProvider | None = None) -> trace.TracerProvider:
    """An explicit provider wins, then one set by `use_tracer_provider`, then OpenTelemetry's global."""
    if explicit is not None:
        return explicit
    return _provider_override.get() or trace.get_tracer_provider()


def get_tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    return resolve_provider(provider).get_tracer(INSTRUMENTATION_NAME, __version__)


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
