"""Training metrics leave through the same exporters as the spans: a metrics file, and OTLP
(gRPC and HTTP/protobuf) to a real receiver started here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from otlp_receiver import free_port
from yolospan import attributes as A
from yolospan.cli import main
from yolospan.otel import metrics_path
from yolospan.train.metrics import METRIC_LOSS, METRIC_STEP_DURATION, METRIC_STEPS

TRAIN = ("train", "--cfg", "yolov5n", "--imgsz", "64", "--batch", "4", "--epochs", "1")


def _attrs(attributes: Any) -> dict[str, Any]:
    return {kv.key: kv.value.string_value or kv.value.int_value for kv in attributes}


class MetricsReceiver:
    """Accepts OTLP metric and trace exports on 127.0.0.1 and keeps the metric requests."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.port = free_port()
        self.requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.span_count = 0
        self._lock = threading.Lock()

    def points(self) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for request in self.requests:
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        kind = metric.WhichOneof("data")
                        found.setdefault(metric.name, []).extend(getattr(metric, kind).data_points)
        return found

    def record(self, request: Any) -> None:
        with self._lock:
            if isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
                self.requests.append(request)
            else:
                self.span_count += sum(
                    len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans
                )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> Iterator[MetricsReceiver]:
        if self.protocol == "grpc":
            yield from self._serve_grpc()
        else:
            yield from self._serve_http()

    def _serve_grpc(self) -> Iterator[MetricsReceiver]:
        receiver = self

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):
                receiver.record(request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                receiver.record(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        server = grpc.server(ThreadPoolExecutor(max_workers=4))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
        server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        try:
            yield self
        finally:
            server.stop(grace=None).wait()

    def _serve_http(self) -> Iterator[MetricsReceiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/v1/metrics":
                    receiver.record(metrics_service_pb2.ExportMetricsServiceRequest.FromString(body))
                    reply = metrics_service_pb2.ExportMetricsServiceResponse()
                elif self.path == "/v1/traces":
                    receiver.record(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                    reply = trace_service_pb2.ExportTraceServiceResponse()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                payload = reply.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request) -> Iterator[MetricsReceiver]:
    yield from MetricsReceiver(request.param).serve()


def test_metrics_reach_an_otlp_receiver(receiver, shapes, tmp_path, clean_otel_env, monkeypatch, capsys):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("YOLOSPAN_SPOOL_DIR", str(tmp_path / "spool"))
    code = main([*TRAIN, "--data", str(shapes), "--no-val", "--save-dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    points = receiver.points()
    (steps,) = points[METRIC_STEPS]
    assert steps.as_int == 2 and _attrs(steps.attributes).keys() == {A.RUN_ID}
    assert points[METRIC_STEP_DURATION][0].count == 2
    assert {_attrs(p.attributes)[A.LOSS_COMPONENT] for p in points[METRIC_LOSS]} == {
        "box",
        "obj",
        "cls",
        "total",
    }
    assert receiver.span_count == 6 + 2 * 5  # the spans went the same way
    assert not (tmp_path / "spool").exists()


def test_the_file_exporter_writes_metrics_next_to_the_trace(shapes, tmp_path, clean_otel_env, capsys):
    out = tmp_path / "run.jsonl"
    code = main([*TRAIN, "--data", str(shapes), "--out", str(out), "--save-dir", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 0, err
    path = metrics_path(out)
    assert path == tmp_path / "run.metrics.jsonl"
    assert f"metrics to {path}" in err
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    metrics = {
        metric["name"]: metric
        for line in lines
        for resource in line["resourceMetrics"]
        for scope in resource["scopeMetrics"]
        for metric in scope["metrics"]
    }
    assert int(metrics[METRIC_STEPS]["sum"]["dataPoints"][0]["asInt"]) == 2
    assert {METRIC_STEP_DURATION, METRIC_LOSS, "yolospan.val.loss"} <= metrics.keys()


def test_metrics_paths():
    assert metrics_path("a/run.jsonl").as_posix() == "a/run.metrics.jsonl"
    assert metrics_path("trace").as_posix() == "trace.metrics.jsonl"


def test_metrics_are_wired_only_when_asked_and_to_metric_exporters(tmp_path, clean_otel_env, monkeypatch):
    from yolospan.otel import setup_tracing

    assert setup_tracing(("file",), out=tmp_path / "a.jsonl").meter_provider is None
    assert setup_tracing(("console",), metrics=True).meter_provider is None  # the console: summaries
    telemetry = setup_tracing(("file",), out=tmp_path / "b.jsonl", metrics=True)
    assert telemetry.meter_provider is not None
    assert telemetry.shutdown(timeout_s=5.0)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert setup_tracing(("file",), out=tmp_path / "c.jsonl", metrics=True).meter_provider is None
