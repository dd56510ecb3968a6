"""A real OTLP trace receiver for tests: gRPC or HTTP/protobuf on 127.0.0.1.

It speaks the protocol for real (a grpc server implementing the generated ``TraceService``, or an
``http.server`` accepting ``POST /v1/traces`` with a protobuf body, gzip/deflate included) and
records every ``ExportTraceServiceRequest`` with its headers. Delivery tests can make it fail:
``set_mode("unavailable")`` answers with a retryable error, ``"reject"`` with a permanent one,
``"hang"`` never answers until the mode changes or the receiver stops; ``stop()`` leaves the
port refusing connections and ``start()`` listens on the same port again ("comes up later").
"""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

Mode = Literal["accept", "unavailable", "reject", "hang"]
MODES: tuple[Mode, ...] = ("accept", "unavailable", "reject", "hang")
PROTOCOLS = ("grpc", "http/protobuf")
TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class Received:
    """One accepted export: the decoded request and its headers (gRPC metadata), keys lower-case."""

    request: ExportTraceServiceRequest
    headers: dict[str, str]


def free_port() -> int:
    """A loopback port nobody listens on (reserved by binding, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OtlpReceiver:
    """An OTLP trace receiver for ``protocol`` (``grpc`` or ``http/protobuf``) on ``127.0.0.1:port``."""

    def __init__(self, protocol: str, port: int | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
        self.protocol = protocol
        self.port = port if port is not None else free_port()
        self.received: list[Received] = []
        self.attempts = 0
        self._mode: Mode = "accept"
        self._changed = threading.Condition()
        self._stopping = False
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The base URL to put in ``OTEL_EXPORTER_OTLP_ENDPOINT`` for this receiver."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._grpc is not None or self._http is not None

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode) -> None:
        """Change how requests are answered; a hanging request is released by any change."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        with self._changed:
            self._mode = mode
            self._changed.notify_all()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> OtlpReceiver:
        """Listen on ``port`` (again, after `stop`)."""
        if self.running:
            return self
        with self._changed:
            self._stopping = False
        if self.protocol == "grpc":
            server = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="otlp-receiver"))
            add_TraceServiceServicer_to_server(_Servicer(self), server)
            if server.add_insecure_port(f"127.0.0.1:{self.port}") != self.port:
                raise OSError(f"cannot listen on 127.0.0.1:{self.port}")
            server.start()
            self._grpc = server
        else:
            http = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
            http.daemon_threads = True
            self._http_thread = threading.Thread(
                target=http.serve_forever, args=(0.05,), name="otlp-receiver", daemon=True
            )
            self._http_thread.start()
            self._http = http
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused) and release hanging requests."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait()
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
            if self._http_thread is not None:
                self._http_thread.join()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what arrived ---------------------------------------------------------------------------

    def spans(self) -> list[Span]:
        """Every received span, in arrival order."""
        return [span for item in self.received for span in _spans(item.request)]

    def resources(self) -> list[dict[str, Any]]:
        """The resource attributes of every received ``ResourceSpans``."""
        return [
            to_python(resource_spans.resource.attributes)
            for item in self.received
            for resource_spans in item.request.resource_spans
        ]

    # --- request handling (both protocols) ------------------------------------------------------

    def _answer(self) -> Mode:
        """The mode to answer the current request with; waits while the receiver hangs."""
        with self._changed:
            self.attempts += 1
            while self._mode == "hang" and not self._stopping:
                self._changed.wait()
            return "unavailable" if self._stopping else self._mode

    def _record(self, request: ExportTraceServiceRequest, headers: dict[str, str]) -> None:
        with self._changed:
            self.received.append(Received(request, headers))


def _spans(request: ExportTraceServiceRequest) -> Iterator[Span]:
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            yield from scope_spans.spans


def to_python(attributes: Any) -> dict[str, Any]:
    """Protobuf ``KeyValue``s as the SDK holds attributes: arrays as tuples, ints as ints."""
    return {item.key: _value(item.value) for item in attributes if isinstance(item, KeyValue)}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return to_python(value.kvlist_value.values)
    return None if kind is None else getattr(value, kind)


class _Servicer(TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> Any:
        mode = self._receiver._answer()
        if mode == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "test receiver is unavailable")
        if mode == "reject":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "test receiver rejects the request")
        headers = {key.lower(): str(value) for key, value in context.invocation_metadata()}
        self._receiver._record(request, headers)
        return ExportTraceServiceResponse()


def _handler_for(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0 (the default): one request per connection, so after stop() nothing still gets
        # through a kept-alive connection and "down" really means refused.

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != TRACES_PATH:
                self._reply(404, b"not found", "text/plain")
                return
            if self.headers.get("Content-Type", "").split(";")[0].strip() != PROTOBUF:
                self._reply(415, b"expected application/x-protobuf", "text/plain")
                return
            encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
            try:
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                elif encoding != "identity":
                    self._reply(415, b"unsupported content encoding", "text/plain")
                    return
                request = ExportTraceServiceRequest.FromString(body)
            except (OSError, zlib.error, DecodeError):
                self._reply(400, b"malformed request body", "text/plain")
                return
            mode = receiver._answer()
            if mode == "unavailable":
                self._reply(503, b"test receiver is unavailable", "text/plain")
            elif mode == "reject":
                self._reply(400, b"test receiver rejects the request", "text/plain")
            else:
                receiver._record(request, {key.lower(): value for key, value in self.headers.items()})
                self._reply(200, ExportTraceServiceResponse().SerializeToString(), PROTOBUF)

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
