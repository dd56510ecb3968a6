from __future__ import annotations

import pytest
import torch
from opentelemetry.trace import NoOpTracerProvider
from yolo_tiny import TINY_YAML

from yolospan.tracing import use_tracer_provider
from yolospan.yolo import DetectionModel, build, load_spec, stride_probe


@pytest.fixture
def tiny_yaml(tmp_path):
    """Path of the tiny config written to a temporary file."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_YAML)
    return path


_probed: dict[str, DetectionModel] = {}


@pytest.fixture
def probed():
    """A built and stride-probed model per config, shared by tests that only read it (eval mode)."""

    def get(name: str) -> DetectionModel:
        if name not in _probed:
            torch.manual_seed(0)
            model = build(load_spec(name)).model
            # Untraced: the first test to ask must not record a probe the others do not see.
            with use_tracer_provider(NoOpTracerProvider()):
                stride_probe(model)
            _probed[name] = model
        return _probed[name]

    return get
