"""Synthetic traces with chosen durations and attributes, built through the real SDK (a plain module:
conftest modules are not importable by name)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from yolospan import attributes as A
from yolospan.export.tracefile import TraceFileExporter

MS = 1_000_000


@dataclass
class Layer:
    index: int
    type: str
    ms: float
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Forward:
    ms: float
    shape: Sequence[int] = (1, 3, 32, 32)
    dtype: str = "float32"
    flops: int = 1000
    layers: Sequence[Layer] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Phase:
    name: str
    forwards: Sequence[Forward] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    root: str | None = None
    """A span name for the phase span when it is not the phase's name (``train_step`` for ``train``)."""


def layer(index: int, kind: str, ms: float, **attrs: Any) -> Layer:
    return Layer(index, kind, ms, attrs)


def forward(ms: float, *layers: Layer, **options: Any) -> Forward:
    attrs = options.pop("attrs", {})
    return Forward(ms, layers=layers, attrs=attrs, **options)


def phase(name: str, *forwards: Forward, root: str | None = None, **attrs: Any) -> Phase:
    return Phase(name, forwards, attrs, root)


def call_attributes(name: str, fwd: Forward) -> dict[str, Any]:
    return {
        A.PHASE: name,
        A.TRAINING: False,
        A.INPUT_COUNT: 1,
        A.INPUT_SHAPE: list(fwd.shape),
        A.INPUT_DTYPE: fwd.dtype,
        A.DEVICE: "cpu",
        A.OUTPUT_COUNT: 1,
        A.output_shape_key(0): [fwd.shape[0], 10],
        A.OUTPUT_DTYPE: fwd.dtype,
        A.FLOPS: fwd.flops,
        A.FLOPS_METHOD: "thop",
    }


def make_trace(*phases: Phase) -> list[ReadableSpan]:
    """One ``model.init``-like root per call, a span per phase, forwards and layers back to back."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.get_empty(), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    now = 1_000 * MS
    root = tracer.start_span("model.init", start_time=now)
    for ph in phases:
        phase_start = now
        phase_span = tracer.start_span(
            ph.root or ph.name,
            context=otel_trace.set_span_in_context(root),
            start_time=now,
            attributes={A.PHASE: ph.name, **ph.attrs},
        )
        for fwd in ph.forwards:
            span = tracer.start_span(
                A.SPAN_FORWARD,
                context=otel_trace.set_span_in_context(phase_span),
                start_time=now,
                attributes={**call_attributes(ph.name, fwd), **fwd.attrs},
            )
            inner = now
            for item in fwd.layers:
                attrs = {
                    **call_attributes(ph.name, fwd),
                    A.LAYER_INDEX: item.index,
                    A.LAYER_TYPE: item.type,
                    **item.attrs,
                }
                child = tracer.start_span(
                    item.type,
                    context=otel_trace.set_span_in_context(span),
                    start_time=inner,
                    attributes=attrs,
                )
                inner += round(item.ms * MS)
                child.end(end_time=inner)
            now += round(fwd.ms * MS)
            span.end(end_time=now)
        now += MS
        phase_span.end(end_time=max(now, phase_start + 1))
    root.end(end_time=now + MS)
    provider.shutdown()
    return list(exporter.get_finished_spans())


def write_trace(path: Path, spans: Sequence[ReadableSpan]) -> Path:
    exporter = TraceFileExporter(path)
    exporter.export(spans)
    exporter.shutdown()
    return path
