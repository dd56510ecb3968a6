from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Capture:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self):
        return list(self.exporter.get_finished_spans())

    def named(self, name):
        return [s for s in self.finished() if s.name == name]


@pytest.fixture
def capture():
    cap = Capture()
    yield cap
    cap.provider.shutdown()
