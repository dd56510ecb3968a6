"""yolospan: every forward a YOLOv5 model runs, and the phase it belongs to, as an OpenTelemetry span.

The names below load on first use, so importing yolospan (as pytest does for the ``spans``
plugin in every run) costs nothing until torch or the model code is actually needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from yolospan._lazy import lazy_exports
from yolospan._version import __version__

if TYPE_CHECKING:
    from yolospan.compare import diff
    from yolospan.tracing import (
        Instrumentation,
        instrument,
        phase,
        span,
        span_attributes,
        use_tracer_provider,
    )
    from yolospan.yolo import (
        AmpCheckResult,
        AmpPolicy,
        AmpVerdict,
        BuildResult,
        ConfigError,
        CreatedModel,
        DetectionModel,
        FuseResult,
        ImageError,
        InfoProfileResult,
        SegmentationModel,
        StrideProbeResult,
        build_model,
        create_model,
    )

_LAZY: dict[str, str] = {
    "diff": "yolospan.compare",
    "Instrumentation": "yolospan.tracing",
    "instrument": "yolospan.tracing",
    "phase": "yolospan.tracing",
    "span": "yolospan.tracing",
    "span_attributes": "yolospan.tracing",
    "use_tracer_provider": "yolospan.tracing",
    "AmpCheckResult": "yolospan.yolo",
    "AmpPolicy": "yolospan.yolo",
    "AmpVerdict": "yolospan.yolo",
    "BuildResult": "yolospan.yolo",
    "ConfigError": "yolospan.yolo",
    "CreatedModel": "yolospan.yolo",
    "DetectionModel": "yolospan.yolo",
    "FuseResult": "yolospan.yolo",
    "ImageError": "yolospan.yolo",
    "InfoProfileResult": "yolospan.yolo",
    "SegmentationModel": "yolospan.yolo",
    "StrideProbeResult": "yolospan.yolo",
    "build_model": "yolospan.yolo",
    "create_model": "yolospan.yolo",
}

__all__ = [
    "AmpCheckResult",
    "AmpPolicy",
    "AmpVerdict",
    "BuildResult",
    "ConfigError",
    "CreatedModel",
    "DetectionModel",
    "FuseResult",
    "ImageError",
    "InfoProfileResult",
    "Instrumentation",
    "SegmentationModel",
    "StrideProbeResult",
    "__version__",
    "build_model",
    "create_model",
    "diff",
    "instrument",
    "phase",
    "span",
    "span_attributes",
    "use_tracer_provider",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
