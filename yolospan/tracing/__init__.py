"""The generic tracing core: any ``nn.Module``'s forwards and any phase as OpenTelemetry spans.

It talks to the OpenTelemetry API only and knows nothing of YOLO; models announce their phases
through `phase` and `span`, and describe their layers through `LayeredModule` (and may time them
in their own loop through `layer_clock`: `ClockedModule`).
"""

from __future__ import annotations

from yolospan.tracing._clock import ClockedModule, LayerClock
from yolospan.tracing._context import (
    current_phase,
    current_span_attributes,
    get_tracer,
    resolve_provider,
    span_attributes,
    use_tracer_provider,
)
from yolospan.tracing._instrument import (
    Instrumentation,
    Layer,
    LayeredModule,
    instrument,
    instrumentation_of,
    invalidate_flops,
    layer_clock,
    layers_of,
)
from yolospan.tracing._span import phase, span
from yolospan.tracing._timing import flush as flush_device_time
from yolospan.tracing._torch_flops import flop_methods

__all__ = [
    "ClockedModule",
    "Instrumentation",
    "Layer",
    "LayerClock",
    "LayeredModule",
    "current_phase",
    "current_span_attributes",
    "flop_methods",
    "flush_device_time",
    "get_tracer",
    "instrument",
    "instrumentation_of",
    "invalidate_flops",
    "layer_clock",
    "layers_of",
    "phase",
    "resolve_provider",
    "span",
    "span_attributes",
    "use_tracer_provider",
]
