"""Phase and unit-of-work spans: the events a model announces besides its forwards."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from torch import nn

from yolospan import attributes as A
from yolospan.tracing._context import current_phase, current_span_attributes, entered_phase, get_tracer
from yolospan.tracing._instrument import instrument, instrumentation_of


@contextmanager
def span(
    name: str,
    *,
    phase: str | None = None,
    module: nn.Module | None = None,
    layers: bool = False,
    attributes: Mapping[str, AttributeValue] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[trace.Span]:
    """A span for one unit of work, current inside the block; an exception marks it ERROR and propagates.

    An interrupt (``KeyboardInterrupt``, the CLI's SIGTERM, ``SystemExit``) marks it ERROR too: the
    work did not finish.

    ``phase`` names the phase the work belongs to: forwards run inside carry it as
    ``yolospan.phase``. With ``module``, its forwards inside the block are traced even if nobody
    instrumented it (temporarily, and only when the span is recording).
    """
    tracer = get_tracer(tracer_provider)
    with tracer.start_as_current_span(name) as current, ExitStack() as cleanup:
        cleanup.enter_context(entered_phase(phase))
        if current.is_recording():
            own = dict(current_span_attributes())
            effective = current_phase()
            if effective is not None:
                own[A.PHASE] = effective
            if attributes:
                own.update(attributes)
            if own:
                current.set_attributes(own)
            if module is not None and instrumentation_of(module) is None:
                cleanup.enter_context(instrument(module, layers=layers, tracer_provider=tracer_provider))
        try:
            yield current
        except Exception:
            raise  # the SDK records it and sets ERROR
        except BaseException as interrupt:  # Ctrl-C, SIGTERM in the CLI, SystemExit: the SDK skips these
            if current.is_recording():
                current.record_exception(interrupt, escaped=True)
                current.set_status(trace.Status(trace.StatusCode.ERROR, type(interrupt).__name__))
            raise


@contextmanager
def phase(
    name: str,
    *,
    module: nn.Module | None = None,
    layers: bool = False,
    attributes: Mapping[str, AttributeValue] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[trace.Span]:
    """A span named ``name`` that is also the phase of every forward inside it."""
    with span(
        name,
        phase=name,
        module=module,
        layers=layers,
        attributes=attributes,
        tracer_provider=tracer_provider,
    ) as current:
        yield current
