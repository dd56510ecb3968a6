"""Finished spans built by hand: fixed ids and times, for exact expected text in viewer tests.

``spans = SpanBuilder(); init = spans.add("model.init", 0, 100); spans.add("forward", 10, 20, parent=init)``
Times are milliseconds from an arbitrary epoch offset; ids count up from 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

from yolospan import attributes as A
from yolospan.export.tracefile import TraceFileExporter

EPOCH_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z: a realistic magnitude for times
MS = 1_000_000


def call_attributes(
    in_shape: list[int], out_shape: list[int], *, flops: int | None = None, phase: str | None = None
) -> dict[str, Any]:
    """What the tracer records on a forward or layer span (one input, one output)."""
    attrs: dict[str, Any] = {
        A.TRAINING: False,
        A.INPUT_COUNT: 1,
        A.INPUT_SHAPE: in_shape,
        A.INPUT_DTYPE: "float32",
        A.DEVICE: "cpu",
        A.OUTPUT_COUNT: 1,
        A.output_shape_key(0): out_shape,
        A.OUTPUT_DTYPE: "float32",
    }
    if flops is not None:
        attrs[A.FLOPS] = flops
    if phase is not None:
        attrs[A.PHASE] = phase
    return attrs


class SpanBuilder:
    def __init__(self, trace_id: int = 0x0AF7651916CD43DD8448EB211C80319C) -> None:
        self.trace_id = trace_id
        self.spans: list[ReadableSpan] = []
        self._next_id = 0

    def add(
        self,
        name: str,
        start_ms: float,
        end_ms: float,
        *,
        parent: ReadableSpan | None = None,
        attributes: Mapping[str, Any] | None = None,
        error: str | None = None,
        trace_id: int | None = None,
        span_id: int | None = None,
    ) -> ReadableSpan:
        self._next_id += 1
        trace = trace_id if trace_id is not None else self.trace_id
        context = SpanContext(trace, span_id or self._next_id, False, TraceFlags(TraceFlags.SAMPLED))
        parent_context = parent.context if parent is not None else None
        attrs = {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in (attributes or {}).items()
        }
        span = ReadableSpan(
            name=name,
            context=context,
            parent=parent_context,
            attributes=attrs,
            status=Status(StatusCode.ERROR, error) if error else Status(StatusCode.UNSET),
            start_time=EPOCH_NS + round(start_ms * MS),
            end_time=EPOCH_NS + round(end_ms * MS),
        )
        self.spans.append(span)
        return span


def model_init_trace(builder: SpanBuilder | None = None) -> SpanBuilder:
    """A small ``yolospan trace``-like tree: init, three phases, forwards, two layers, an error."""
    b = builder or SpanBuilder()
    init = b.add("model.init", 0, 100, attributes={A.MODEL_NAME: "yolov5n", A.MODEL_NC: 80})
    probe = b.add("stride_probe", 1, 11, parent=init, attributes={A.PHASE: "stride_probe"})
    b.add(
        "forward",
        2,
        10,
        parent=probe,
        attributes=call_attributes(
            [1, 3, 256, 256], [1, 3, 32, 32, 85], flops=1_000_000, phase="stride_probe"
        ),
    )
    profile = b.add("info_profile", 12, 30, parent=init, attributes={A.PHASE: "info_profile", A.GFLOPS: 4.6})
    forward = b.add(
        "forward",
        13,
        29,
        parent=profile,
        attributes=call_attributes([1, 3, 64, 64], [1, 16, 32, 32], flops=3_500_000, phase="info_profile"),
    )
    b.add(
        "Conv",
        13.5,
        20.25,
        parent=forward,
        attributes={
            **call_attributes([1, 3, 64, 64], [1, 16, 32, 32], flops=3_500_000, phase="info_profile"),
            A.LAYER_INDEX: 0,
        },
    )
    b.add(
        "Upsample",
        21,
        21.5,
        parent=forward,
        attributes={
            **call_attributes([1, 16, 32, 32], [1, 16, 64, 64], phase="info_profile"),
            A.LAYER_INDEX: 1,
        },
    )
    amp = b.add(
        "amp_check",
        40,
        90,
        parent=init,
        attributes={A.PHASE: "amp_check", A.AMP_RESULT: "failed"},
        error="AMP checks failed",
    )
    b.add(
        "forward",
        41,
        60,
        parent=amp,
        attributes=call_attributes([1, 3, 64, 64], [1, 4, 85], phase="amp_check"),
    )
    b.add(
        "forward",
        61,
        88,
        parent=amp,
        attributes=call_attributes([1, 3, 64, 64], [1, 4, 85], phase="amp_check"),
    )
    return b


def write_trace_file(path: Path, builder: SpanBuilder, *, per_line: int = 4) -> Path:
    """The spans as a trace file, ``per_line`` spans per request line (as the batch exporter writes)."""
    exporter = TraceFileExporter(path)
    for at in range(0, len(builder.spans), per_line):
        exporter.export(builder.spans[at : at + per_line])
    exporter.shutdown()
    return path
