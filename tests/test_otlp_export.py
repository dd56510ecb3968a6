"""Spans exported over real OTLP (gRPC and HTTP/protobuf) to a receiver started by the test."""

from __future__ import annotations

import pytest
import torch
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from torch import nn

import yolospan
from otlp_receiver import OtlpReceiver, to_python
from yolospan import attributes as A
from yolospan.delivery.otlp import otlp_exporter
from yolospan.export.tracefile import TraceFileExporter, read_trace_file
from yolospan.otel import setup_tracing

pytestmark = pytest.mark.usefixtures("clean_otel_env")


def _traced_model_init(provider: TracerProvider) -> None:
    """A stride probe with layer spans, and an AMP check that was skipped: a small YOLO-like tree."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 2, 1)).eval()
    with yolospan.use_tracer_provider(provider), yolospan.span(A.SPAN_MODEL_INIT) as init:
        with yolospan.phase(A.SPAN_STRIDE_PROBE, module=model, layers=True):
            model(torch.zeros(1, 3, 8, 8))
        with yolospan.phase(A.SPAN_AMP_CHECK, attributes={A.AMP_RESULT: "skipped"}):
            pass
        init.set_attribute(A.MODEL_STRIDE, [8, 16, 32])


def _use(monkeypatch: pytest.MonkeyPatch, receiver: OtlpReceiver) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol)


def test_spans_arrive_with_names_ids_and_attributes_intact(monkeypatch, otlp_receiver):
    _use(monkeypatch, otlp_receiver)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20t0ken,x-tenant=lab")
    with setup_tracing(["otlp"]) as telemetry:
        local = InMemorySpanExporter()
        telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(local))
        _traced_model_init(telemetry.tracer_provider)
    assert telemetry.shutdown() is True  # everything acknowledged before the handle closed

    sent = {span.context.span_id: span for span in local.get_finished_spans()}
    received = {int.from_bytes(span.span_id, "big"): span for span in otlp_receiver.spans()}
    assert sorted(span.name for span in received.values()) == sorted(
        ["model.init", "stride_probe", "forward", "Conv2d", "SiLU", "Conv2d", "amp_check"]
    )
    assert received.keys() == sent.keys()
    for span_id, original in sent.items():
        arrived = received[span_id]
        assert arrived.name == original.name
        assert int.from_bytes(arrived.trace_id, "big") == original.context.trace_id
        parent = int.from_bytes(arrived.parent_span_id, "big") if arrived.parent_span_id else None
        assert parent == (original.parent.span_id if original.parent else None)
        assert to_python(arrived.attributes) == dict(original.attributes)

    forward = next(span for span in received.values() if span.name == "forward")
    shape = next(item.value for item in forward.attributes if item.key == A.INPUT_SHAPE)
    assert [value.WhichOneof("value") for value in shape.array_value.values] == ["int_value"] * 4
    training = next(item.value for item in forward.attributes if item.key == A.TRAINING)
    assert training.WhichOneof("value") == "bool_value" and training.bool_value is False

    assert {resource["service.name"] for resource in otlp_receiver.resources()} == {"yolospan"}
    headers = otlp_receiver.received[0].headers
    assert headers["authorization"] == "Bearer t0ken"
    assert headers["x-tenant"] == "lab"


def test_gzip_compressed_http_export(monkeypatch, make_otlp_receiver):
    receiver = make_otlp_receiver("http/protobuf")
    _use(monkeypatch, receiver)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    with setup_tracing(["otlp"]) as telemetry:
        _traced_model_init(telemetry.tracer_provider)
    assert receiver.received[0].headers["content-encoding"] == "gzip"
    assert len(receiver.spans()) == 7


def test_the_cli_protocol_choice_overrides_the_environment(monkeypatch, make_otlp_receiver):
    receiver = make_otlp_receiver("grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    with setup_tracing(["otlp"], protocol="grpc") as telemetry:
        _traced_model_init(telemetry.tracer_provider)
    assert len(receiver.spans()) == 7


def test_a_trace_file_is_re_exported_unchanged(tmp_path, otlp_receiver):
    path = tmp_path / "trace.jsonl"
    provider = TracerProvider()
    local = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(local))
    provider.add_span_processor(SimpleSpanProcessor(TraceFileExporter(path)))
    _traced_model_init(provider)
    provider.shutdown()
    original: list[ReadableSpan] = list(local.get_finished_spans())

    exporter = otlp_exporter(otlp_receiver.protocol, endpoint=otlp_receiver.endpoint)
    try:
        assert exporter.export(read_trace_file(path)) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()

    [arrived] = otlp_receiver.received
    assert arrived.request == encode_spans(original)
