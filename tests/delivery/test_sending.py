"""`yolospan.delivery.send`: trace files to a real receiver, ids kept, the spool emptied exactly once."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otlp_receiver import to_python
from yolospan.delivery import send, send_files
from yolospan.delivery.otlp import otlp_exporter
from yolospan.delivery.spool import LINE_SPANS, trace_files, write_spool_file
from yolospan.errors import UserError
from yolospan.export.tracefile import TraceFileExporter, read_trace_file


def _spans(count: int, name: str = "step"):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for index in range(count):
        with tracer.start_as_current_span(f"{name} {index}", attributes={"index": index, "shape": [1, 3]}):
            pass
    return list(exporter.get_finished_spans())


def _ids(spans) -> list[tuple[int, int]]:
    return sorted((span.context.trace_id, span.context.span_id) for span in spans)


def _received_ids(receiver) -> list[tuple[int, int]]:
    return sorted(
        (int.from_bytes(span.trace_id, "big"), int.from_bytes(span.span_id, "big"))
        for span in receiver.spans()
    )


def _trace_file(path, spans):
    exporter = TraceFileExporter(path)
    exporter.export(spans)
    exporter.shutdown()
    return path


def test_spool_files_are_delivered_with_ids_and_attributes_and_removed(otlp_receiver, spool):
    first, second = _spans(3), _spans(2)
    paths = [write_spool_file(first, spool), write_spool_file(second, spool)]
    report = send([spool], endpoint=otlp_receiver.endpoint, protocol=otlp_receiver.protocol)
    assert [(file.path, file.delivered, file.removed) for file in report.files] == [
        (paths[0], 3, True),
        (paths[1], 2, True),
    ]
    assert report.complete and report.delivered == 5
    assert _received_ids(otlp_receiver) == _ids(first + second)
    arrived = {span.name: to_python(span.attributes) for span in otlp_receiver.spans()}
    assert arrived["step 2"] == {"index": 2, "shape": (1, 3)}
    assert trace_files(spool) == []


def test_files_outside_the_spool_are_sent_but_never_changed(otlp_receiver, tmp_path):
    spans = _spans(4)
    path = _trace_file(tmp_path / "run.otlp.jsonl", spans)
    content = path.read_text()
    for _ in range(2):  # the user asked twice: both go
        report = send([path], endpoint=otlp_receiver.endpoint, protocol=otlp_receiver.protocol)
        assert report.complete and not report.files[0].removed
    assert path.read_text() == content
    assert len(otlp_receiver.spans()) == 8


def test_the_endpoint_and_protocol_come_from_the_environment(monkeypatch, make_otlp_receiver, spool):
    receiver = make_otlp_receiver("grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=lab")
    write_spool_file(_spans(2), spool)
    report = send([spool])
    assert report.complete and report.endpoint == receiver.endpoint
    assert receiver.received[0].headers["x-tenant"] == "lab"


def test_a_malformed_file_is_reported_and_skipped_the_others_still_go(otlp_receiver, spool, tmp_path):
    good = write_spool_file(_spans(2), spool)
    lines = _trace_file(tmp_path / "two.otlp.jsonl", _spans(3)).read_text().splitlines()
    bad = spool / "0-bad.otlp.jsonl"
    bad.write_text(f"{lines[0]}\n{{not json\n")
    not_otlp = spool / "1-other.otlp.jsonl"
    not_otlp.write_text('{"hello": 1}\n')
    report = send([spool], endpoint=otlp_receiver.endpoint, protocol=otlp_receiver.protocol)

    by_path = {file.path: file for file in report.files}
    assert by_path[bad].malformed and by_path[bad].problem.startswith(f"{bad}:2: not JSON")
    assert (
        by_path[not_otlp].problem
        == f"{not_otlp}:1: not an OTLP ExportTraceServiceRequest (no 'resourceSpans')"
    )
    assert by_path[good].complete and by_path[good].removed
    assert not report.complete and report.delivered == 2
    assert len(otlp_receiver.spans()) == 2  # nothing of the malformed file, not even its good first line
    assert sorted(trace_files(spool)) == sorted([bad, not_otlp])  # kept for the user to look at


def test_a_partial_failure_leaves_exactly_the_undelivered_rest_in_the_spool(
    monkeypatch, make_otlp_receiver, spool
):
    receiver = make_otlp_receiver("http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")  # room for one retry
    spans = _spans(LINE_SPANS + 5)  # two lines: two requests
    path = write_spool_file(spans, spool)

    class CollectorFailsAfterOneRequest(SpanExporter):
        """The real exporter; the receiver becomes unavailable once it accepted the first request."""

        def __init__(self, inner):
            self.inner = inner

        def export(self, batch):
            result = self.inner.export(batch)
            receiver.set_mode("unavailable")
            return result

        def shutdown(self):
            self.inner.shutdown()

    exporter = CollectorFailsAfterOneRequest(otlp_exporter("http/protobuf", endpoint=receiver.endpoint))
    report = send_files([path], exporter, endpoint=receiver.endpoint)
    [file] = report.files
    assert (file.delivered, file.spans, file.removed) == (LINE_SPANS, LINE_SPANS + 5, False)
    assert file.problem == "HTTP 503 Service Unavailable; 5 spans not delivered"
    assert _ids(read_trace_file(path)) == _ids(spans[LINE_SPANS:])  # only the rest is left

    receiver.set_mode("accept")
    assert send([spool], endpoint=receiver.endpoint, protocol="http/protobuf").complete
    assert _received_ids(receiver) == _ids(spans)  # everything, once
    assert trace_files(spool) == []


def test_after_a_failure_the_collector_is_not_hammered_with_the_remaining_files(
    monkeypatch, make_otlp_receiver, spool
):
    receiver = make_otlp_receiver("grpc")
    receiver.set_mode("unavailable")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    paths = [write_spool_file(_spans(1), spool) for _ in range(3)]
    report = send([spool], endpoint=receiver.endpoint, protocol="grpc")
    assert [file.attempted for file in report.files] == [True, False, False]
    assert report.files[0].problem.startswith("gRPC UNAVAILABLE")
    assert trace_files(spool) == paths  # nothing removed


def test_a_request_the_collector_refuses_does_not_stop_the_others(make_otlp_receiver, spool):
    receiver = make_otlp_receiver("http/protobuf")
    receiver.set_mode("reject")
    paths = [write_spool_file(_spans(1), spool) for _ in range(2)]
    report = send([spool], endpoint=receiver.endpoint, protocol="http/protobuf")
    assert [(file.attempted, file.problem) for file in report.files] == [
        (True, "HTTP 400 Bad Request; 1 spans not delivered")
    ] * 2
    assert receiver.attempts == 2
    assert trace_files(spool) == paths


def test_each_path_is_sent_once_and_directories_mean_their_trace_files(make_otlp_receiver, spool):
    receiver = make_otlp_receiver("http/protobuf")
    path = write_spool_file(_spans(1), spool)
    (spool / "notes.txt").write_text("not a trace file")
    report = send([spool, path, spool / ".." / "spool" / path.name], endpoint=receiver.endpoint)
    assert [file.path for file in report.files] == [path]
    assert report.complete and len(receiver.spans()) == 1


def test_missing_paths_are_usage_errors_before_anything_is_sent(make_otlp_receiver, spool, tmp_path):
    receiver = make_otlp_receiver("http/protobuf")
    write_spool_file(_spans(1), spool)
    with pytest.raises(UserError, match=r"missing\.otlp\.jsonl: no such file or directory"):
        send([spool, tmp_path / "missing.otlp.jsonl"], endpoint=receiver.endpoint)
    assert receiver.attempts == 0


def test_an_absent_spool_is_an_empty_one(spool):
    assert not spool.exists()
    assert send([spool]).files == ()


def test_a_bad_protocol_is_a_usage_error(spool):
    with pytest.raises(UserError, match="unsupported OTLP protocol 'http/json'"):
        send([spool], protocol="http/json")
