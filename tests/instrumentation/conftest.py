"""Upstream packages offline and out of the user's home; an instrumentor per test, removed after it.

The variables are set when this conftest is imported, before any test imports ``ultralytics`` or
``yolov5`` (both create their settings directories at import time).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

_CONFIG = tempfile.mkdtemp(prefix="yolospan-upstream-")
os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics: never reach the network
os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(_CONFIG, "ultralytics"))
os.environ.setdefault("YOLOV5_CONFIG_DIR", os.path.join(_CONFIG, "yolov5"))
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_CONFIG, "matplotlib"))


@pytest.fixture
def instrumented(spans) -> Iterator[object]:
    """Factory: ``instrumented(Instrumentor, **kwargs)`` instruments into ``spans``, undone at teardown."""
    applied = []

    def apply(cls, **kwargs):
        instrumentor = cls()
        instrumentor.instrument(tracer_provider=spans.provider, **kwargs)
        applied.append(instrumentor)
        return instrumentor

    yield apply
    for instrumentor in applied:
        instrumentor.uninstrument()
