from __future__ import annotations

import pytest
import torch
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from yolo_tiny import TINY_YAML

from yolospan.yolo import DetectionModel, build, load_spec, stride_probe


class Capture:
    """Spans of one test, from a fresh in-memory provider."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self):
        return list(self.exporter.get_finished_spans())

    def named(self, name):
        return [s for s in self.finished() if s.name == name]

    def children(self, parent):
        return [
            s for s in self.finished() if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]

    def tree(self):
        """Span names as nested (name, [children]) tuples, in start order."""
        spans = sorted(self.finished(), key=lambda s: s.start_time)

        def node(span):
            return (
                span.name,
                [node(c) for c in spans if c.parent and c.parent.span_id == span.context.span_id],
            )

        return [node(s) for s in spans if s.parent is None]


@pytest.fixture
def tiny_yaml(tmp_path):
    """Path of the tiny config written to a temporary file."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_YAML)
    return path


@pytest.fixture
def capture():
    cap = Capture()
    yield cap
    cap.provider.shutdown()


_probed: dict[str, DetectionModel] = {}


@pytest.fixture
def probed():
    """A built and stride-probed model per config, shared by tests that only read it (eval mode)."""

    def get(name: str) -> DetectionModel:
        if name not in _probed:
            torch.manual_seed(0)
            model = build(load_spec(name)).model
            stride_probe(model)
            _probed[name] = model
        return _probed[name]

    return get
