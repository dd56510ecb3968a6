"""yolospan: every forward a YOLOv5 model runs, and the phase it belongs to, as an OpenTelemetry span."""

from __future__ import annotations

from yolospan._version import __version__
from yolospan.tracing import (
    Instrumentation,
    instrument,
    phase,
    span,
    use_tracer_provider,
)

__all__ = [
    "Instrumentation",
    "__version__",
    "instrument",
    "phase",
    "span",
    "use_tracer_provider",
]
