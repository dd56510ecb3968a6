"""OpenTelemetry instrumentors for the upstream YOLO packages: the same spans as yolospan's models.

`yolospan.instrumentation.yolov5.YOLOv5Instrumentor` (pip ``yolov5``, v7) and
`yolospan.instrumentation.ultralytics.UltralyticsInstrumentor` (pip ``ultralytics``, 8.x) are
``BaseInstrumentor`` subclasses registered under the ``opentelemetry_instrumentor`` entry point,
so ``opentelemetry-instrument yolo train ...`` traces an unchanged upstream training. Install
the extra (``yolospan[yolov5]`` or ``yolospan[ultralytics]``); the upstream packages (AGPL-3.0)
are imported only when an instrumentor is applied. See docs/upstream.md.
"""

from __future__ import annotations

from yolospan.instrumentation._base import ENV_LAYERS, ENV_RUN_ID, ENV_TRACE_EVERY

__all__ = ["ENV_LAYERS", "ENV_RUN_ID", "ENV_TRACE_EVERY"]
