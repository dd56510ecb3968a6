from __future__ import annotations

import io

import pytest
import torch
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from torch import nn

import yolospan
from otlp_receiver import free_port
from yolospan import attributes as A
from yolospan.delivery.otlp import DEFAULT_PROTOCOL, otlp_endpoint, otlp_exporter, resolve_protocol
from yolospan.delivery.spool import spool_dir, trace_files
from yolospan.errors import UserError
from yolospan.export.tracefile import read_trace_file
from yolospan.otel import parse_exporters, service_resource, setup_tracing

pytestmark = pytest.mark.usefixtures("clean_otel_env")


def _forward() -> None:
    model = nn.Linear(2, 3).eval()
    with yolospan.instrument(model):
        model(torch.zeros(1, 2))


# --- choosing exporters ---------------------------------------------------------------------------


def test_parse_exporters_normalises_and_deduplicates():
    assert parse_exporters(" console, FILE,console ") == ("console", "file")


@pytest.mark.parametrize(("text", "message"), [("", "no exporter selected"), ("console,jaeger", "'jaeger'")])
def test_parse_exporters_rejects_bad_lists(text, message):
    with pytest.raises(UserError, match=message):
        parse_exporters(text)


@pytest.mark.parametrize(
    ("exporters", "out", "message"),
    [
        (["file"], None, "needs an output path"),
        (["console"], "trace.jsonl", "only written by the file exporter"),
        (["zipkin"], None, "unknown exporter 'zipkin'"),
        ([], None, "no exporter selected"),
    ],
)
def test_bad_combinations_are_user_errors(tmp_path, exporters, out, message):
    with pytest.raises(UserError, match=message):
        setup_tracing(exporters, out=tmp_path / out if out else None)


# --- the OTLP protocol ----------------------------------------------------------------------------


def test_protocol_defaults_to_http_protobuf():
    assert resolve_protocol() == DEFAULT_PROTOCOL == "http/protobuf"


def test_protocol_precedence(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert resolve_protocol() == "grpc"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    assert resolve_protocol() == "http/protobuf"  # the signal-specific variable wins
    assert resolve_protocol("GRPC") == "grpc"  # an explicit choice (the CLI's flag) wins over both


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"])
def test_a_bad_protocol_names_its_source(monkeypatch, variable):
    monkeypatch.setenv(variable, "http/json")
    with pytest.raises(UserError, match=f"unsupported OTLP protocol 'http/json' \\(from {variable}\\)"):
        resolve_protocol()
    with pytest.raises(UserError, match="unsupported OTLP protocol"):
        setup_tracing(["otlp"])


def test_the_protocol_picks_the_official_exporter():
    grpc_exporter = otlp_exporter("grpc")
    http_exporter = otlp_exporter("http/protobuf")
    try:
        assert isinstance(grpc_exporter, GrpcSpanExporter)
        assert isinstance(http_exporter, HttpSpanExporter)
    finally:
        grpc_exporter.shutdown()
        http_exporter.shutdown()


def test_invalid_exporter_settings_in_the_environment_are_user_errors(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")  # the gRPC exporter refuses it
    with pytest.raises(UserError, match=r"invalid OTLP exporter settings \(grpc\).*brotli"):
        setup_tracing(["otlp"], protocol="grpc")


# --- resource -------------------------------------------------------------------------------------


def test_service_name_defaults_to_yolospan():
    assert service_resource().attributes["service.name"] == "yolospan"


def test_otel_service_name_wins(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "train-job")
    assert service_resource().attributes["service.name"] == "train-job"


def test_otel_resource_attributes_are_honoured(monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,deployment.environment=ci")
    attributes = service_resource().attributes
    assert attributes["service.name"] == "from-attrs"
    assert attributes["deployment.environment"] == "ci"


def test_the_provider_carries_the_resource(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc")
    path = tmp_path / "trace.jsonl"
    with setup_tracing(["file"], out=path):
        _forward()
    assert [span.resource.attributes["service.name"] for span in read_trace_file(path)] == ["svc"]


# --- the Telemetry handle -------------------------------------------------------------------------


def test_the_with_block_routes_yolospan_spans_and_shuts_down(tmp_path):
    path = tmp_path / "trace.jsonl"
    console = io.StringIO()
    with setup_tracing(["console", "file"], out=path, console=console) as telemetry:
        assert telemetry.enabled
        _forward()
    _forward()  # after the block: no longer routed here
    assert [span.name for span in read_trace_file(path)] == ["forward"]
    assert console.getvalue().startswith("forward ")
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)  # the global one untouched


def test_console_can_hide_layers(tmp_path):
    console = io.StringIO()
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU()).eval()
    with (
        setup_tracing(["console"], console=console, layers_in_console=False),
        yolospan.instrument(model, layers=True),
    ):
        model(torch.zeros(1, 2))
    assert console.getvalue().count("\n") == 1


def test_otel_sdk_disabled_gives_a_working_no_op(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    path = tmp_path / "trace.jsonl"
    console = io.StringIO()
    with setup_tracing(["console", "file"], out=path, console=console) as telemetry:
        assert not telemetry.enabled
        assert not isinstance(telemetry.tracer_provider, TracerProvider)
        _forward()
    assert telemetry.shutdown() is True
    assert console.getvalue() == ""
    assert not path.exists()


def test_otel_sdk_disabled_only_when_true(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    telemetry = setup_tracing(["console"], console=io.StringIO())
    assert telemetry.enabled
    telemetry.shutdown()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_shutdown_returns_with_an_unreachable_collector(monkeypatch, protocol):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nobody listens
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "30")  # longer than any test should take
    telemetry = setup_tracing(["otlp"], protocol=protocol)
    with yolospan.use_tracer_provider(telemetry.tracer_provider):
        _forward()
    # A refused connection is known at once: the batch is spooled without the exporter's 30 s of
    # retries, so shutdown finishes well within its bound (a collector that accepts and never
    # answers is the case that runs into it: see the hanging collector below).
    assert telemetry.shutdown(timeout_s=10) is True
    # Not delivered, not lost: the forward span waits in the spool for `yolospan send`.
    (spooled,) = trace_files(spool_dir())
    (span,) = read_trace_file(spooled)
    assert (span.name, tuple(span.attributes[A.INPUT_SHAPE])) == ("forward", (1, 2))
    # Shutdown runs once: a second call neither shuts down (nor spools) again, it repeats the answer.
    assert telemetry.shutdown(timeout_s=0) is True
    assert trace_files(spool_dir()) == [spooled]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_shutdown_returns_with_a_hanging_collector(monkeypatch, make_otlp_receiver, protocol):
    receiver = make_otlp_receiver(protocol)
    receiver.set_mode("hang")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "30")  # longer than any test should take
    telemetry = setup_tracing(["otlp"], protocol=protocol)
    with yolospan.use_tracer_provider(telemetry.tracer_provider):
        _forward()
    # The receiver answers nothing until the test ends, so the export cannot have finished: shutdown
    # gave up (and aborted the exporter) instead of waiting for it.
    assert telemetry.shutdown(timeout_s=0.2) is False
    assert receiver.received == []


# --- where OTLP goes ------------------------------------------------------------------------------


def test_otlp_endpoint_follows_the_exporters_resolution(monkeypatch):
    assert otlp_endpoint("http/protobuf") == "http://localhost:4318/v1/traces"
    assert otlp_endpoint("grpc") == "http://localhost:4317"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert otlp_endpoint("http/protobuf") == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/custom")
    assert otlp_endpoint("http/protobuf") == "http://traces:4318/custom"  # used as is
    assert otlp_endpoint("http/protobuf", endpoint="http://cli:4318") == "http://cli:4318/v1/traces"


def test_otlp_endpoint_never_shows_credentials(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:pa55@collector:4318")
    assert otlp_endpoint("http/protobuf") == "https://collector:4318/v1/traces"
    assert otlp_endpoint("grpc") == "https://collector:4318"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://u:p@collector/v1/traces?api_key=s3cret")
    assert otlp_endpoint("http/protobuf") == "https://collector/v1/traces"
