"""The whole story from the command line: ``yolospan trace`` with the collector down, then ``send``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from yolospan.cli import main
from yolospan.delivery.spool import trace_files, write_spool_file
from yolospan.export.tracefile import read_trace_file

SECRET = "s3cret-t0ken"
GENEROUS_S = 120  # only keeps a broken run from hanging the suite; the run takes seconds


def _one_span():
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("test").start_as_current_span("one"):
        pass
    return memory.get_finished_spans()


def _ids(spans) -> list[tuple[int, int]]:
    return sorted((span.context.trace_id, span.context.span_id) for span in spans)


def _received_ids(receiver) -> list[tuple[int, int]]:
    return sorted(
        (int.from_bytes(span.trace_id, "big"), int.from_bytes(span.span_id, "big"))
        for span in receiver.spans()
    )


def test_trace_with_the_collector_down_then_send(monkeypatch, capsys, make_otlp_receiver, spool, tmp_path):
    receiver = make_otlp_receiver("http/protobuf", start=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.replace("http://", "http://user:pw@"))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{SECRET}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    out = tmp_path / "run.otlp.jsonl"  # the file exporter records independently what OTLP should get

    # A child process: its stderr is exactly what a user sees (in here, pytest owns the logging).
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "yolospan",
            "trace",
            "yolov5n",
            "--imgsz",
            "64",
            "--exporter",
            "file,otlp",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=GENEROUS_S,
    )
    assert run.returncode == 0, run.stderr
    [warning] = [line for line in run.stderr.splitlines() if line != f"trace written to {out}"]
    assert warning.startswith(
        f"yolospan: WARNING: OTLP export to http://127.0.0.1:{receiver.port}/v1/traces failed"
    )
    assert f"deliver them later with: yolospan send {spool}" in warning
    assert SECRET not in warning and "user:pw" not in warning
    recorded = _ids(read_trace_file(out))
    assert _ids(span for path in trace_files(spool) for span in read_trace_file(path)) == recorded
    files = len(trace_files(spool))  # refused batches are spooled at once, each in its own file

    receiver.start()
    assert main(["send", str(spool), "--endpoint", receiver.endpoint]) == 0
    output = capsys.readouterr().out
    assert (
        f"{len(recorded)} spans delivered to {receiver.endpoint}/v1/traces; {files} of {files} files complete"
        in output
    )
    assert _received_ids(receiver) == recorded
    assert trace_files(spool) == []

    assert main(["send", "--endpoint", receiver.endpoint]) == 0  # no PATH: the spool, empty now
    assert capsys.readouterr().out == "nothing to send\n"
    assert _received_ids(receiver) == recorded


def test_send_reports_a_malformed_file_and_exits_1(capsys, make_otlp_receiver, spool, tmp_path):
    receiver = make_otlp_receiver("grpc")
    good = tmp_path / "good.otlp.jsonl"
    spooled = write_spool_file(_one_span(), spool)
    good.write_text(spooled.read_text())
    bad = tmp_path / "bad.otlp.jsonl"
    bad.write_text("\n[1, 2]\n")

    code = main(
        ["send", str(bad), str(good), str(spool), "--endpoint", receiver.endpoint, "--protocol", "grpc"]
    )
    assert code == 1
    captured = capsys.readouterr()
    problem = f"{bad}:2: not an OTLP ExportTraceServiceRequest (no 'resourceSpans')"
    assert captured.err == f"yolospan: error: {problem} (file skipped)\n"
    assert f"{good}: 1 spans delivered\n" in captured.out
    assert f"{spooled}: 1 spans delivered (removed from the spool)\n" in captured.out
    assert "2 spans delivered" in captured.out and "2 of 3 files complete, 1 malformed" in captured.out
    assert len(receiver.spans()) == 2
    assert bad.exists() and good.exists()


def test_send_failure_exits_1_and_keeps_the_spool(monkeypatch, capsys, make_otlp_receiver, spool):
    receiver = make_otlp_receiver("http/protobuf", start=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    path = write_spool_file(_one_span(), spool)
    assert main(["send", "--endpoint", receiver.endpoint]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"{path}: 0 of 1 spans delivered; connection refused; 1 spans not delivered\n"
    assert trace_files(spool) == [path]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["send", "/no/such/trace.otlp.jsonl"],
            "yolospan: error: /no/such/trace.otlp.jsonl: no such file or directory",
        ),
        (["send", "--protocol", "http/json"], "invalid choice: 'http/json'"),
    ],
)
def test_usage_errors_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as raised:
        code = main(argv)
        raise SystemExit(code)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err
