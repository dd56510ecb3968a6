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
    "instrument",
    "phase",
    "span",
    "use_tracer_provider",
]
