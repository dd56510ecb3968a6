"""Checks on OTLP endpoints before any work starts: a value without a scheme is a usage error.

The official exporters take a value such as ``127.0.0.1:4318`` and fail only at the first export,
as a delivery failure named after a ``requests`` exception. `check_endpoint` says what is wrong
while nothing has run yet. Only the standard library is used, so the CLI can call it early.
"""

from __future__ import annotations

import os
from typing import Final
from urllib.parse import urlsplit

from yolospan.delivery._exporter_logs import redact_url
from yolospan.errors import UserError

__all__ = ["ENDPOINT_VARIABLES", "check_endpoint", "check_endpoint_variables"]

ENDPOINT_VARIABLES: Final = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)
"""The variables an OTLP exporter of yolospan reads its endpoint from."""

_SCHEMES: Final = ("http", "https")


def check_endpoint(value: str, source: str, protocol: str) -> None:
    """Raise `UserError` naming ``source`` unless ``value`` is an ``http://`` or ``https://`` URL with
    a host. gRPC also takes a bare ``host:port``, as its exporter does."""
    shown = redact_url(value)  # never print user info or a query (they may hold a token)
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 (parsing the port raises for one out of range or not a number)
    except ValueError as error:
        raise UserError(f"{source}={shown!r} is not a valid URL ({error})") from None
    if parts.scheme in _SCHEMES and parts.hostname:
        return
    if protocol == "grpc" and _is_host_port(value.strip()):
        return
    hint = f" (did you mean http://{shown}?)" if _is_host_port(value.strip()) else ""
    raise UserError(f"{source}={shown!r} is not an http:// or https:// URL with a host{hint}")


def check_endpoint_variables(protocol: str, *, metrics: bool = False) -> None:
    """`check_endpoint` on each endpoint variable that is set (the metrics one only with ``metrics``)."""
    for variable in ENDPOINT_VARIABLES:
        if variable.endswith("_METRICS_ENDPOINT") and not metrics:
            continue
        value = os.environ.get(variable, "")
        if value.strip():
            check_endpoint(value, variable, protocol)


def _is_host_port(value: str) -> bool:
    host, separator, port = value.rpartition(":")
    return bool(separator and host and "/" not in host and port.isdigit())
