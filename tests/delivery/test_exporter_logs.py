"""The exporters' own log lines are kept off the screen during our exports, and read for a reason."""

from __future__ import annotations

import logging
import threading

import grpc
import pytest

from yolospan.delivery._exporter_logs import ExporterLogs, describe_failure, failure_in, redact_url

# Importing the exporter modules creates the loggers ExporterLogs attaches to.
pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")

EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(EXPORTER_LOGGER, logging.ERROR, __file__, 1, message, args, None)


def test_records_of_the_capturing_thread_are_collected_not_logged(caplog):
    logs = ExporterLogs()
    logger = logging.getLogger(EXPORTER_LOGGER)
    try:
        with caplog.at_level(logging.WARNING), logs.capture() as records:
            logger.error("Failed to export %s batch code: %s, reason: %s", "spans", 503, "x")
        assert [record.args for record in records] == [("spans", 503, "x")]
        assert caplog.records == []
    finally:
        logs.close()


def test_other_threads_keep_logging(caplog):
    logs = ExporterLogs()
    logger = logging.getLogger(EXPORTER_LOGGER)
    try:
        with caplog.at_level(logging.WARNING), logs.capture() as records:
            other = threading.Thread(target=logger.error, args=("someone else's exporter failed",))
            other.start()
            other.join()
        assert records == []
        assert [record.getMessage() for record in caplog.records] == ["someone else's exporter failed"]
    finally:
        logs.close()


def test_close_detaches_once_the_last_capture_ends(caplog):
    logs = ExporterLogs()
    logger = logging.getLogger(EXPORTER_LOGGER)
    with caplog.at_level(logging.WARNING):
        with logs.capture():
            logs.close()  # an export still running: stays attached until it ends
            logger.error("late failure of an aborted export")
            assert logs in logger.filters
        assert logs not in logger.filters
        logger.error("after")
    assert [record.getMessage() for record in caplog.records] == ["after"]


@pytest.mark.parametrize(
    ("message", "args", "reason", "permanent"),
    [
        (
            "Failed to export %s batch code: %s, reason: %s",
            ("spans", 400, "Bad Request"),
            "HTTP 400 Bad Request",
            True,
        ),
        (
            "Failed to export %s batch code: %s, reason: %s",
            ("spans", 503, "x"),
            "HTTP 503 Service Unavailable",
            False,
        ),
        (
            "Transient error %s encountered while exporting %s batch, retrying in %.2fs.",
            (ConnectionError("... [Errno 111] Connection refused"), "spans", 1.0),
            "connection refused",
            False,
        ),
        (
            "Failed to export %s to %s, error code: %s, error details: %s",
            ("traces", "127.0.0.1:4317", grpc.StatusCode.UNAVAILABLE, "connect: Connection refused (111)"),
            "gRPC UNAVAILABLE, connection refused",
            False,
        ),
        (
            "Failed to export %s to %s, error code: %s, error details: %s",
            ("traces", "127.0.0.1:4317", grpc.StatusCode.INVALID_ARGUMENT, "token=abc is wrong"),
            "gRPC INVALID_ARGUMENT",
            True,
        ),
        (
            "Failed to export %s to %s, error code: %s, error details: %s",
            ("traces", "h:1", grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
            "gRPC DEADLINE_EXCEEDED, timed out",
            False,
        ),
    ],
)
def test_the_reason_is_read_from_the_exporters_arguments(message, args, reason, permanent):
    failure = describe_failure([_record(message, *args)])
    assert (failure.reason, failure.permanent) == (reason, permanent)


def test_the_latest_evidence_wins_and_words_only_come_from_us():
    records = [
        _record("Transient error %s encountered", ConnectionError("Connection refused ?token=s3cret")),
        _record("Failed to export spans batch due to timeout, max retries or shutdown."),
    ]
    assert describe_failure(records).reason == "connection refused"
    assert failure_in(records[1:]) is None
    assert describe_failure(records[1:]).reason == "export failed"
    assert describe_failure([], RuntimeError("boom token=s3cret")).reason == "RuntimeError"


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("http://127.0.0.1:4318/v1/traces", "http://127.0.0.1:4318/v1/traces"),
        (
            "https://user:pa55@collector.example:443/v1/traces?api_key=s3cret#x",
            "https://collector.example:443/v1/traces",
        ),
        ("user:pa55@collector:4317", "collector:4317"),
        ("collector:4317", "collector:4317"),
    ],
)
def test_urls_lose_user_info_query_and_fragment(url, safe):
    assert redact_url(url) == safe
