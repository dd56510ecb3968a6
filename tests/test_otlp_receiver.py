"""The test receiver's failure modes, which delivery tests rely on, seen through the real exporters."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from yolospan.delivery.otlp import otlp_exporter

pytestmark = pytest.mark.usefixtures("clean_otel_env")


@pytest.fixture
def one_span():
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("one"):
        pass
    provider.shutdown()
    return memory.get_finished_spans()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_down_then_up_then_unavailable_then_rejecting(monkeypatch, make_otlp_receiver, one_span, protocol):
    # A timeout shorter than the exporters' first retry backoff: each failure is reported at once.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "0.5")
    receiver = make_otlp_receiver(protocol, start=False)
    exporter = otlp_exporter(protocol, endpoint=receiver.endpoint)
    try:
        assert exporter.export(one_span) is SpanExportResult.FAILURE  # down: connection refused
        assert receiver.attempts == 0

        receiver.start()  # comes up later, same port
        assert exporter.export(one_span) is SpanExportResult.SUCCESS
        assert [span.name for span in receiver.spans()] == ["one"]

        receiver.set_mode("unavailable")
        assert exporter.export(one_span) is SpanExportResult.FAILURE
        receiver.set_mode("reject")
        assert exporter.export(one_span) is SpanExportResult.FAILURE
        assert len(receiver.received) == 1
        assert receiver.attempts == 3

        receiver.stop()
        assert exporter.export(one_span) is SpanExportResult.FAILURE
        assert receiver.attempts == 3
    finally:
        exporter.shutdown()
