"""OTLP exporters built from the standard ``OTEL_EXPORTER_OTLP_*`` settings.

Below both users of it: `yolospan.otel` wires these exporters into the SDK's pipeline, and
`yolospan.delivery.sending` hands one to ``yolospan send``. The protocol comes from
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``grpc`` or
``http/protobuf``), default ``http/protobuf``: the OTLP exporter specification's default, and the
one that passes through ordinary HTTP proxies. Endpoint, headers, timeout, compression and TLS are
read by the official exporters themselves.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Final

from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_METRICS_HEADERS,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
)

from yolospan.delivery._exporter_logs import redact_url
from yolospan.errors import UserError

if TYPE_CHECKING:  # the SDK loads with the exporters, not with `yolospan --help`
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "check_headers",
    "otlp_endpoint",
    "otlp_exporter",
    "otlp_metric_exporter",
    "resolve_protocol",
]

PROTOCOLS: Final = ("grpc", "http/protobuf")
"""OTLP transports the installed exporters implement."""

DEFAULT_PROTOCOL: Final = "http/protobuf"
"""The OTLP exporter spec's default transport; also the one that crosses HTTP proxies."""

_HTTP_TRACES_PATH: Final = "v1/traces"
_HTTP_METRICS_PATH: Final = "v1/metrics"
_DEFAULT_ENDPOINTS: Final = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}


# The header syntax the exporters accept (W3C baggage style, as the SDK's liberal parser reads it):
# key=value pairs separated by commas; a key is an HTTP token, a value URL-encoded (spaces allowed).
_HEADER_KEY = re.compile(r"[\x21\x23-\x27\x2a\x2b\x2d\x2e\x30-\x39\x41-\x5a\x5e-\x7a\x7c\x7e]+")
_HEADER_VALUE = re.compile(r"[\x20\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_HEADER_DELIMITER = re.compile(r"[ \t]*,[ \t]*")
_HEADER_VARIABLES: Final = (
    OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    OTEL_EXPORTER_OTLP_METRICS_HEADERS,
)


def check_headers() -> None:
    """Raise `UserError` when an ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]HEADERS`` entry is malformed.

    The SDK would skip such an entry with a warning that quotes it, value and all, and a header
    usually carries a secret. The message here says which entry and which key (when the key
    itself is well-formed), never the value.
    """
    for variable in _HEADER_VARIABLES:
        text = os.environ.get(variable)
        if not text:
            continue
        for number, entry in enumerate(_HEADER_DELIMITER.split(text.strip()), start=1):
            if not entry:
                continue
            key, equals, value = entry.partition("=")
            key, value = key.strip(), value.strip()
            if not equals:
                problem = "has no '=' (write key=value pairs separated by commas)"
            elif not _HEADER_KEY.fullmatch(key):
                problem = "has a key that is not a valid header name"
            elif not _HEADER_VALUE.fullmatch(value):
                problem = f"(key {key!r}) has a value with characters that must be URL-encoded"
            else:
                continue
            raise UserError(f"{variable}: entry {number} {problem}; the value is not shown")


def resolve_protocol(explicit: str | None = None) -> str:
    """The OTLP protocol: ``explicit``, else the traces variable, else the generic one, else the default."""
    source = "the protocol argument"
    value = explicit
    for variable in (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL):
        if value:
            break
        value, source = os.environ.get(variable), variable
    if not value:
        return DEFAULT_PROTOCOL
    normalized = value.strip().lower()
    if normalized not in PROTOCOLS:
        raise UserError(f"unsupported OTLP protocol {value!r} (from {source}); use {' or '.join(PROTOCOLS)}")
    return normalized


def otlp_exporter(protocol: str | None = None, *, endpoint: str | None = None) -> SpanExporter:
    """The official OTLP span exporter for ``protocol`` (see `resolve_protocol`), configured from the env.

    ``endpoint`` overrides ``OTEL_EXPORTER_OTLP_ENDPOINT`` with the same meaning: a base URL such as
    ``http://127.0.0.1:4318`` (``/v1/traces`` is appended for HTTP) or ``http://127.0.0.1:4317``.
    Invalid exporter settings in the environment raise `UserError`.
    """
    chosen = resolve_protocol(protocol)
    check_headers()
    try:
        if chosen == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.exporter import InvalidCompressionValueException
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )

            try:
                return GrpcSpanExporter(endpoint=endpoint)
            except InvalidCompressionValueException as error:
                raise ValueError(str(error)) from error
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

        url = f"{endpoint.rstrip('/')}/{_HTTP_TRACES_PATH}" if endpoint else None
        return HttpSpanExporter(endpoint=url)
    except (ValueError, RuntimeError, OSError) as error:
        raise UserError(f"invalid OTLP exporter settings ({chosen}): {error}") from error


def otlp_metric_exporter(protocol: str | None = None, *, endpoint: str | None = None) -> MetricExporter:
    """The official OTLP metric exporter, as `otlp_exporter` (``/v1/metrics`` is appended for HTTP)."""
    chosen = resolve_protocol(protocol)
    check_headers()
    try:
        if chosen == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )

            return GrpcMetricExporter(endpoint=endpoint)
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )

        url = f"{endpoint.rstrip('/')}/{_HTTP_METRICS_PATH}" if endpoint else None
        return HttpMetricExporter(endpoint=url)
    except (ValueError, RuntimeError, OSError) as error:
        raise UserError(f"invalid OTLP metric exporter settings ({chosen}): {error}") from error


def otlp_endpoint(protocol: str | None = None, *, endpoint: str | None = None) -> str:
    """Where `otlp_exporter` with the same arguments sends traces, safe to print (no user info, query).

    The resolution the official exporters apply: ``endpoint``, else
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as is, else ``OTEL_EXPORTER_OTLP_ENDPOINT``, else
    localhost; HTTP appends ``/v1/traces`` to a base URL.
    """
    chosen = resolve_protocol(protocol)
    signal = None if endpoint else os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    if signal:
        return redact_url(signal)
    base = endpoint or os.environ.get(OTEL_EXPORTER_OTLP_ENDPOINT) or _DEFAULT_ENDPOINTS[chosen]
    if chosen == "grpc":
        return redact_url(base)
    return redact_url(f"{base.rstrip('/')}/{_HTTP_TRACES_PATH}")
