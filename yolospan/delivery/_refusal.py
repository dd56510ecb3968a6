"""Knowing at once that nobody listens: a refused TCP connection needs no retries.

The official exporters treat every connection error as transient and retry with backoff until
their timeout (and our bounded shutdown) runs out, so a collector that is simply not running cost
each run 5 s and each ``yolospan send`` 7-8 s. A refused connection is known in a millisecond:
`RefusalProbe` tries one TCP connect to the collector's host and port before an export, and a
refusal fails the export at once (the spans go to the spool). A collector that accepts the
connection but never answers still gets the exporter's own bounded wait.

The probe stays out of the way where it could be wrong: with a proxy configured (the exporter
talks to the proxy, not to the host), for a Unix socket, and for an endpoint it cannot parse.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

__all__ = ["RefusalProbe", "refusal_probe"]

_PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy", "grpc_proxy")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CONNECT_TIMEOUT_S = 1.0  # only a refusal counts; a slow or silent host is left to the exporter


class RefusalProbe:
    """``probe()`` is True when a TCP connection to ``host:port`` is refused right now."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __call__(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=_CONNECT_TIMEOUT_S):
                return False
        except ConnectionRefusedError:
            return True
        except OSError:  # timeouts, unreachable networks, names that do not resolve: the exporter decides
            return False


def refusal_probe(url: str) -> RefusalProbe | None:
    """A probe for the collector at ``url`` (``http[s]://host[:port][/path]``), or None where a
    probe could mislead (a proxy is configured, not a TCP endpoint, unparsable)."""
    if any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARIABLES):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return RefusalProbe(parts.hostname, port if port is not None else _DEFAULT_PORTS[parts.scheme])
