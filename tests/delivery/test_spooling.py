"""A dead, hanging or refusing collector: the run ends, one warning, and every span is in the spool.

Real OTLP receivers (tests/otlp_receiver.py) and the official exporters; what the collector should
have received is compared with an in-memory exporter on the same provider.
"""

from __future__ import annotations

import logging
import os

import pytest
import torch
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from torch import nn

import yolospan
from yolospan.delivery import send
from yolospan.delivery.spool import trace_files
from yolospan.export.tracefile import read_trace_file
from yolospan.otel import setup_tracing

SECRET = "s3cret-t0ken"
GENEROUS_S = 60.0  # a bound on shutdown no healthy test gets near; it only keeps a broken one from hanging


def _configure(monkeypatch, receiver, *, timeout_s: int) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{SECRET}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", str(timeout_s))


def _traced_run(telemetry) -> InMemorySpanExporter:
    """A small instrumented model, with layer spans; returns what was recorded locally."""
    local = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(local))
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 2, 1)).eval()
    with (
        yolospan.use_tracer_provider(telemetry.tracer_provider),
        yolospan.phase("stride_probe", module=model, layers=True),
    ):
        for _ in range(3):
            model(torch.zeros(1, 3, 8, 8))
    return local


def _ids(spans) -> list[tuple[int, int]]:
    return sorted((span.context.trace_id, span.context.span_id) for span in spans)


def _received_ids(receiver) -> list[tuple[int, int]]:
    return sorted(
        (int.from_bytes(span.trace_id, "big"), int.from_bytes(span.span_id, "big"))
        for span in receiver.spans()
    )


def _spooled(spool) -> list[tuple[int, int]]:
    return _ids(span for path in trace_files(spool) for span in read_trace_file(path))


def _warnings(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_collector_down_then_up_every_span_arrives_exactly_once(
    monkeypatch, caplog, make_otlp_receiver, spool, protocol
):
    receiver = make_otlp_receiver(protocol, start=False)  # nothing listens: connection refused
    _configure(monkeypatch, receiver, timeout_s=2)  # room for one retry (the exporters back off 1 s)
    with caplog.at_level(logging.DEBUG, logger="opentelemetry"), caplog.at_level(logging.WARNING):
        telemetry = setup_tracing(["otlp"])
        local = _traced_run(telemetry)
        telemetry.shutdown(timeout_s=GENEROUS_S)

    sent = _ids(local.get_finished_spans())
    assert len(sent) == 3 * 4 + 1  # 3 forwards with 3 layers each, and the phase
    assert _spooled(spool) == sent
    [warning] = _warnings(caplog)  # one line, and none of the exporters' own
    assert warning.name == "yolospan.otel"
    message = warning.getMessage()
    assert "connection refused" in message
    assert f"13 spans spooled to {spool}; deliver them later with: yolospan send {spool}" in message
    assert SECRET not in caplog.text
    outcome = telemetry.delivery
    assert (outcome.delivered, outcome.spooled, outcome.lost) == (0, 13, 0)
    assert outcome.files == tuple(trace_files(spool))

    receiver.start()
    report = send([spool])
    assert report.complete and report.delivered == 13
    assert _received_ids(receiver) == sent  # every id once, none added
    assert trace_files(spool) == []
    assert send([spool]).delivered == 0  # a second send has nothing left to send
    assert _received_ids(receiver) == sent


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_hanging_collector_is_given_up_on_and_queued_spans_are_spooled(
    monkeypatch, caplog, make_otlp_receiver, spool, protocol
):
    receiver = make_otlp_receiver(protocol)
    receiver.set_mode("hang")
    _configure(monkeypatch, receiver, timeout_s=30)  # the exporter would wait longer than shutdown does
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")  # one small batch hangs, the rest stays queued
    with caplog.at_level(logging.WARNING):
        telemetry = setup_tracing(["otlp"])
        local = _traced_run(telemetry)
        finished_in_time = telemetry.shutdown(timeout_s=0.5)

    # The receiver answers nothing until it is stopped, so shutdown cannot have seen an answer.
    assert finished_in_time is False
    assert receiver.received == []
    [warning] = _warnings(caplog)
    assert "(no answer within 0.5 s)" in warning.getMessage()
    assert SECRET not in caplog.text
    sent = _ids(local.get_finished_spans())
    assert _spooled(spool) == sent

    receiver.stop()  # the hung request is answered "unavailable" and so not counted
    receiver.set_mode("accept")
    receiver.start()
    assert send([spool]).complete
    assert _received_ids(receiver) == sent


def test_spans_the_batch_queue_drops_are_spooled_too(monkeypatch, caplog, make_otlp_receiver, spool):
    receiver = make_otlp_receiver("http/protobuf")
    receiver.set_mode("hang")
    _configure(monkeypatch, receiver, timeout_s=30)
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    with caplog.at_level(logging.WARNING):
        telemetry = setup_tracing(["otlp"])
        local = InMemorySpanExporter()
        telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(local))
        tracer = telemetry.tracer_provider.get_tracer("test")
        for index in range(1000):  # far more than the queue holds while the collector hangs
            with tracer.start_as_current_span(f"step {index}"):
                pass
        spooled_during_the_run = _spooled(spool)
        telemetry.shutdown(timeout_s=0.5)

    assert len(spooled_during_the_run) >= 512  # overflow goes to disk as it happens, not kept in memory
    assert _spooled(spool) == _ids(local.get_finished_spans())
    [warning] = _warnings(caplog)  # and no "Queue full, dropping Span" from the SDK
    assert "1000 spans spooled" in warning.getMessage()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_rejecting_collector_spools_the_rejected_batch(
    monkeypatch, caplog, make_otlp_receiver, spool, protocol
):
    receiver = make_otlp_receiver(protocol)
    receiver.set_mode("reject")
    _configure(monkeypatch, receiver, timeout_s=5)
    with caplog.at_level(logging.WARNING):
        telemetry = setup_tracing(["otlp"])
        local = _traced_run(telemetry)
        telemetry.shutdown(timeout_s=GENEROUS_S)
    [warning] = _warnings(caplog)
    reason = "gRPC INVALID_ARGUMENT" if protocol == "grpc" else "HTTP 400 Bad Request"
    assert f"failed ({reason})" in warning.getMessage()
    assert _spooled(spool) == _ids(local.get_finished_spans())


def test_a_healthy_collector_gets_everything_and_nothing_is_spooled(
    monkeypatch, caplog, otlp_receiver, spool
):
    _configure(monkeypatch, otlp_receiver, timeout_s=5)
    with caplog.at_level(logging.WARNING), setup_tracing(["otlp"]) as telemetry:
        local = _traced_run(telemetry)
    assert _received_ids(otlp_receiver) == _ids(local.get_finished_spans())
    assert telemetry.delivery.complete and telemetry.delivery.delivered == 13
    assert telemetry.delivery.warning() is None
    assert _warnings(caplog) == []
    assert not spool.exists()  # created only when needed


def test_an_unwritable_spool_is_reported_as_loss_not_raised(
    monkeypatch, caplog, make_otlp_receiver, tmp_path
):
    receiver = make_otlp_receiver("http/protobuf", start=False)
    _configure(monkeypatch, receiver, timeout_s=1)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        telemetry = setup_tracing(["otlp"], spool_dir=blocker / "spool")
        _traced_run(telemetry)
        telemetry.shutdown(timeout_s=GENEROUS_S)
    [warning] = _warnings(caplog)
    assert "13 spans could not be spooled (Not a directory" in warning.getMessage()
    assert "are lost" in warning.getMessage()
    assert telemetry.delivery.lost == 13


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_spool_its_parents_spans_again(monkeypatch, make_otlp_receiver, spool):
    """DataLoader workers fork: the child's ledger starts empty, like its batch processor's queue."""
    receiver = make_otlp_receiver("http/protobuf")
    receiver.set_mode("hang")
    _configure(monkeypatch, receiver, timeout_s=30)
    telemetry = setup_tracing(["otlp"])
    local = _traced_run(telemetry)  # pending in the parent: the collector does not answer
    pid = os.fork()
    if pid == 0:  # the child: end as a worker would if it shut its telemetry down
        try:
            telemetry.shutdown(timeout_s=0.5)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    telemetry.shutdown(timeout_s=0.5)
    assert {path.name.split("-")[1] for path in trace_files(spool)} == {str(os.getpid())}
    assert _spooled(spool) == _ids(local.get_finished_spans())
