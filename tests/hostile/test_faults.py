"""Faults around a run: SIGTERM mid-training, a full disk, a collector that refuses connections."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from yolospan.cli import main
from yolospan.delivery._refusal import refusal_probe
from yolospan.delivery.spooling import SpoolingExporter
from yolospan.export.tracefile import read_trace_file

_REPO = Path(__file__).resolve().parents[2]
TINY = """\
nc: 2
depth_multiple: 0.33
width_multiple: 0.25
anchors: [[10,13, 16,30, 33,23], [30,61, 62,45, 59,119]]
backbone:
  [[-1, 1, Conv, [32, 3, 2]], [-1, 1, Conv, [64, 3, 2]], [-1, 1, C3, [64]],
   [-1, 1, Conv, [128, 3, 2]], [-1, 1, Conv, [256, 3, 2]]]
head:
  [[[3, 4], 1, Detect, [nc, anchors]]]
"""


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spans(path: Path) -> list[ReadableSpan]:
    return read_trace_file(path) if path.exists() else []


# --- SIGTERM ---------------------------------------------------------------------------------------


def test_sigterm_mid_epoch_ends_open_spans_as_errors_writes_every_parent_and_exits_143(
    tmp_path: Path,
) -> None:
    from yolospan.data import synth_dataset

    synth_dataset(tmp_path / "ds", images=64, val_images=1, imgsz=64, nc=2)
    (tmp_path / "tiny.yaml").write_text(TINY)
    out, spool = tmp_path / "run.jsonl", tmp_path / "spool"
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")} | {
        "YOLOSPAN_SPOOL_DIR": str(spool),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}",  # the collector is down
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # export often, so spans reach the file while it trains
        "PYTHONPATH": str(_REPO),
    }
    command = [sys.executable, "-m", "yolospan", "train", "--data", "ds", "--cfg", "tiny.yaml"]
    command += ["--imgsz", "64", "--batch", "2", "--epochs", "1000", "--no-val", "--exporter", "file,otlp"]
    command += ["--out", str(out), "--save-dir", "run"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300  # a bound on waiting for training to start, not a timing check
        while sum(span.name == "train_step" for span in _spans(out)) < 2:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "training never wrote two train_step spans"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert err.rstrip().splitlines()[-1].startswith("yolospan: terminated"), err
    assert "Traceback" not in err
    spans = read_trace_file(out)
    ids = {span.context.span_id for span in spans if span.context is not None}
    orphans = [span.name for span in spans if span.parent is not None and span.parent.span_id not in ids]
    assert orphans == []  # every written span's parent is written
    failed = [span for span in spans if span.status.status_code.name == "ERROR"]
    steps = [span for span in spans if span.name == "train_step"]
    if failed:  # the signal landed inside a step (nearly always): the step and what was open in it
        assert "train_step" in {span.name for span in failed}, f"the open step was not marked ERROR: {failed}"
        assert all(span.end_time is not None for span in failed)
    else:  # it fell between two steps (the trainer has no span around its steps): nothing was open
        assert steps and all(span.status.status_code.name == "UNSET" for span in steps)
    # The collector was down: what the file has, the spool has too (nothing lost on either path).
    spooled = [span for path in sorted(spool.glob("*.otlp.jsonl")) for span in read_trace_file(path)]
    assert {span.context.span_id for span in spooled if span.context is not None} == ids


def test_the_cli_restores_the_sigterm_handler_and_the_library_installs_none(tmp_path: Path, capsys) -> None:
    before = signal.getsignal(signal.SIGTERM)
    from yolospan.otel import setup_tracing
    from yolospan.yolo import build_model

    with setup_tracing(["file"], out=tmp_path / "t.jsonl") as telemetry:
        build_model(TINY_DICT(), tracer_provider=telemetry.tracer_provider)
    assert signal.getsignal(signal.SIGTERM) is before
    assert main(["check", str(tmp_path / "t.jsonl"), "model.init == 1"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before


def TINY_DICT() -> dict[str, object]:
    import yaml

    return dict(yaml.safe_load(TINY))


def test_an_interrupt_marks_the_open_span_as_error() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from yolospan import span
    from yolospan.signals import Terminated

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with pytest.raises(Terminated), span("work", tracer_provider=provider):
        raise Terminated
    (finished,) = exporter.get_finished_spans()
    assert finished.status.status_code.name == "ERROR"
    assert finished.status.description == "Terminated"


# --- a full disk -----------------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_an_error_with_the_spans_counted_and_kept_in_the_spool(
    tmp_path: Path, capsys, clean_otel_env, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    spool = tmp_path / "spool"
    monkeypatch.setenv("YOLOSPAN_SPOOL_DIR", str(spool))
    code = main(["trace", "tiny.yaml", "--exporter", "file", "--out", "/dev/full"])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "trace written" not in err
    assert lines[0].startswith("yolospan: error: /dev/full: ") and "No space left on device" in lines[0]
    kept = [span for path in spool.glob("*.otlp.jsonl") for span in read_trace_file(path)]
    assert kept and f"{len(kept)} spans could not be written" in lines[0]
    assert {span.name for span in kept} >= {"model.init", "stride_probe"}


# --- a collector that refuses connections ------------------------------------------------------------


class _Recording(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        return SpanExportResult.SUCCESS


def _one_span() -> ReadableSpan:
    from opentelemetry.sdk.trace import TracerProvider

    with TracerProvider().get_tracer("t").start_as_current_span("s") as current:
        pass
    assert isinstance(current, ReadableSpan)
    return current


def test_a_refused_connection_spools_the_batch_without_asking_the_exporter(tmp_path: Path) -> None:
    inner = _Recording()
    probe = refusal_probe(f"http://127.0.0.1:{closed_port()}/v1/traces")
    assert probe is not None and probe()
    exporter = SpoolingExporter(inner, spool_dir=tmp_path, endpoint="e", capacity=10, refused=probe)
    span = _one_span()
    exporter._record(span)
    assert exporter.export([span]) is SpanExportResult.FAILURE
    assert inner.calls == 0  # no retries: the exporter was never asked
    outcome = exporter.finish()
    assert (outcome.spooled, outcome.reason) == (1, "connection refused")


def test_a_listening_collector_is_not_probed_away(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        probe = refusal_probe(f"http://127.0.0.1:{server.getsockname()[1]}")
        assert probe is not None and not probe()
        inner = _Recording()
        exporter = SpoolingExporter(inner, spool_dir=tmp_path, endpoint="e", capacity=10, refused=probe)
        span = _one_span()
        exporter._record(span)
        assert exporter.export([span]) is SpanExportResult.SUCCESS and inner.calls == 1


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "grpc_proxy"])
def test_no_probe_through_a_proxy(monkeypatch, variable: str) -> None:
    monkeypatch.setenv(variable, "http://proxy:3128")
    assert refusal_probe("http://127.0.0.1:4318") is None


def test_no_probe_for_unix_sockets_or_nonsense() -> None:
    assert refusal_probe("unix:///tmp/otel.sock") is None
    assert refusal_probe("http://[::1") is None


def test_send_to_a_refused_port_fails_at_once_per_file(tmp_path: Path, capsys, clean_otel_env) -> None:
    span = {
        "traceId": "0123456789abcdef0123456789abcdef",
        "spanId": "0123456789abcdef",
        "name": "s",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
    }
    line = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    (tmp_path / "a.otlp.jsonl").write_text(line + "\n")
    code = main(["send", str(tmp_path / "a.otlp.jsonl"), "--endpoint", f"http://127.0.0.1:{closed_port()}"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "connection refused; 1 spans not delivered" in err


def test_sigterm_as_interrupt_raises_once_then_ignores_and_restores() -> None:
    from yolospan.signals import Terminated, sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
    with sigterm_as_interrupt():
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGTERM)  # a second one, during the shutdown: ignored
    assert signal.getsignal(signal.SIGTERM) is before
