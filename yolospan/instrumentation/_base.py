"""The part both instrumentors share: settings from arguments or the environment, patches, undo."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from yolospan.instrumentation._model import (
    ModelTracer,
    Settings,
    acquire_profile_patch,
    release_profile_patch,
)
from yolospan.instrumentation._patch import Patches

_log = logging.getLogger(__name__)

ENV_LAYERS = "YOLOSPAN_TRACE_LAYERS"
"""``true`` traces every layer of upstream's models too (``layers=True``); off by default."""

ENV_TRACE_EVERY = "YOLOSPAN_TRACE_EVERY"
"""Trace one training step in N (default 1); every step still goes to the metrics."""

ENV_RUN_ID = "YOLOSPAN_RUN_ID"
"""The run id to put on every span of a training; a new one is made when unset."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        _log.warning("yolospan: %s=%r is not an integer; using %d", name, text, default)
        return default
    return value


class UpstreamInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """``instrument(tracer_provider=None, meter_provider=None, layers=None, trace_every=None)``.

    Unset arguments come from the environment (``YOLOSPAN_TRACE_LAYERS``,
    ``YOLOSPAN_TRACE_EVERY``), as ``opentelemetry-instrument`` passes none.
    """

    tracer: ModelTracer | None = None

    def __init__(self) -> None:
        # BaseInstrumentor is a singleton: __init__ runs again on every YOLOv5Instrumentor() call.
        if not hasattr(self, "_patches"):
            self._patches = Patches()

    def _settings(self, kwargs: Mapping[str, Any]) -> tuple[Settings, int, metrics.MeterProvider | None]:
        provider: trace.TracerProvider | None = kwargs.get("tracer_provider")
        layers = kwargs.get("layers")
        trace_every = kwargs.get("trace_every")
        every = _env_int(ENV_TRACE_EVERY, 1) if trace_every is None else int(trace_every)
        if every < 1:
            raise ValueError(f"trace_every must be at least 1, got {every}")
        settings = Settings(
            layers=_env_flag(ENV_LAYERS) if layers is None else bool(layers),
            tracer_provider=provider,
            extra=self._run_attributes,
        )
        return settings, every, kwargs.get("meter_provider")

    def _run_attributes(self) -> Mapping[str, Any]:
        return {}

    def _instrument(self, **kwargs: Any) -> None:
        settings, every, meter_provider = self._settings(kwargs)
        self.tracer = ModelTracer(
            settings, imgsz_parameter=self._imgsz_parameter, info_parameters=self._info_parameters
        )
        acquire_profile_patch()
        try:
            self._apply(self._patches, self.tracer, every, meter_provider)
        except Exception:
            self._uninstrument()
            raise

    def _uninstrument(self, **kwargs: Any) -> None:
        self._patches.restore()
        release_profile_patch()
        if self.tracer is not None:
            self.tracer.release()
            self.tracer = None

    # --- for subclasses -------------------------------------------------------------------------

    _imgsz_parameter = "imgsz"
    _info_parameters: tuple[str, ...] = ()

    def _apply(
        self,
        patches: Patches,
        tracer: ModelTracer,
        trace_every: int,
        meter_provider: metrics.MeterProvider | None,
    ) -> None:
        raise NotImplementedError
