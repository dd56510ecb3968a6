"""Keep the official exporters' own log lines off the screen while yolospan delivers, and learn why
an export failed from them.

On a failure the OTLP exporters log an ERROR (and a WARNING per retry) that can quote the
endpoint, full URLs with query strings, or the collector's reply. yolospan reports one line of its
own instead, built from fixed words only (an HTTP status, a gRPC code, "connection refused").
The filter is scoped to the threads that are inside one of our exports at the moment, so other
exporters in the same process keep logging as before, and nothing is disabled globally.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

__all__ = ["ExporterLogs", "Failure", "describe_failure", "failure_in", "redact_url"]

# Loggers of the OTLP exporters and their transports, and the SDK's batch processor ("Queue full").
_LOGGER_PREFIXES = ("opentelemetry.exporter.", "opentelemetry.sdk._shared_internal")
_PERMANENT_HTTP = frozenset({HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_ENTITY_TOO_LARGE})
_PERMANENT_GRPC = frozenset({"INVALID_ARGUMENT"})
_PHRASES = {status.phrase: status.value for status in HTTPStatus if status >= HTTPStatus.BAD_REQUEST}
_TEXT_REASONS = (  # (fragment of an error text, what we say), first match wins
    ("connection refused", "connection refused"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("deadline", "timed out"),
    ("name or service not known", "host not found"),
    ("nodename nor servname", "host not found"),
    ("failed to resolve", "host not found"),
    ("dns resolution failed", "host not found"),
    ("certificate", "TLS certificate problem"),
    ("ssl", "TLS error"),
)


@dataclass(frozen=True)
class Failure:
    """Why an export failed, in words that are safe to print, and whether retrying can help."""

    reason: str
    permanent: bool = False
    """The collector refused this payload itself (HTTP 400/413, gRPC INVALID_ARGUMENT)."""


class ExporterLogs(logging.Filter):
    """Swallows exporter log records emitted on a thread inside `capture`, and hands them over.

    Attached to every logger under `_LOGGER_PREFIXES` that exists when it is created (the exporter
    modules are imported by then); `close` detaches it once no capture is running any more, so
    an export that outlives its exporter's shutdown stays quiet too.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._captures: dict[int, list[logging.LogRecord]] = {}
        self._closed = False
        self._loggers = [
            logger
            for name, logger in list(logging.root.manager.loggerDict.items())
            if isinstance(logger, logging.Logger) and name.startswith(_LOGGER_PREFIXES)
        ]
        for logger in self._loggers:
            # First in line: the gRPC exporter's DuplicateFilter would otherwise hide a repeated
            # failure from us (and count ours as the previous one).
            logger.filters.insert(0, self)

    def filter(self, record: logging.LogRecord) -> bool:
        records = self._captures.get(record.thread or 0)
        if records is None:
            return True
        records.append(record)
        return False

    @contextmanager
    def capture(self) -> Iterator[list[logging.LogRecord]]:
        """Within the block, records from this thread are collected in the yielded list, not logged."""
        ident = threading.get_ident()
        records: list[logging.LogRecord] = []
        with self._lock:
            outer = self._captures.get(ident)
            self._captures[ident] = records
        try:
            yield records
        finally:
            with self._lock:
                if outer is None:
                    del self._captures[ident]
                else:
                    outer.extend(records)
                    self._captures[ident] = outer
                detach = self._closed and not self._captures
            if detach:
                self._detach()

    def running(self) -> list[logging.LogRecord]:
        """What the captures still running have collected so far (an export stuck in its retries)."""
        with self._lock:
            return [record for records in self._captures.values() for record in records]

    def close(self) -> None:
        """Detach from the loggers now, or when the last running capture ends."""
        with self._lock:
            self._closed = True
            detach = not self._captures
        if detach:
            self._detach()

    def reset_after_fork(self) -> None:
        """In a forked child only this thread exists: forget the parent's captures and lock."""
        self._lock = threading.Lock()
        self._captures = {}

    def _detach(self) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)
        self._loggers = []


def describe_failure(records: Sequence[logging.LogRecord], error: BaseException | None = None) -> Failure:
    """The reason of a failed export from what the exporter logged (or raised), latest evidence first."""
    if error is not None:
        return _from_exception(error)
    return failure_in(records) or Failure("export failed")


def failure_in(records: Sequence[logging.LogRecord]) -> Failure | None:
    """The latest failure the records tell of (a retried one too), or None when they tell none."""
    for record in reversed(records):
        failure = _from_args(record.args)
        if failure is not None:
            return failure
    return None


def _from_args(args: object) -> Failure | None:
    values = tuple(args.values()) if isinstance(args, dict) else args if isinstance(args, tuple) else ()
    texts = [value for value in values if isinstance(value, str)]
    for value in values:
        if isinstance(value, str) and value in _PHRASES:  # a retried HTTP error logs only the phrase
            return _from_http(_PHRASES[value])
        if isinstance(value, enum.Enum) and type(value).__module__.startswith("grpc"):
            return _from_grpc(value.name, texts)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return _from_http(value)
        if isinstance(value, BaseException):
            return _from_exception(value)
    return None


def _from_grpc(code: str, texts: Sequence[str]) -> Failure:
    detail = next((said for text in texts if (said := _from_text(text))), None)
    if code == "DEADLINE_EXCEEDED":
        detail = "timed out"
    return Failure(f"gRPC {code}" + (f", {detail}" if detail else ""), permanent=code in _PERMANENT_GRPC)


def _from_http(status: int) -> Failure:
    try:
        phrase = f" {HTTPStatus(status).phrase}"
    except ValueError:
        phrase = ""
    return Failure(f"HTTP {status}{phrase}", permanent=status in _PERMANENT_HTTP)


def _from_exception(error: BaseException) -> Failure:
    return Failure(_from_text(str(error)) or type(error).__name__)


def _from_text(text: str) -> str | None:
    lowered = text.lower()
    return next((said for fragment, said in _TEXT_REASONS if fragment in lowered), None)


def redact_url(url: str) -> str:
    """``url`` without user info, query or fragment: what may appear in a message or a log."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<unparsable endpoint>"
    if not parts.scheme or not host:  # gRPC's bare host:port
        return url.rpartition("@")[2].split("?", 1)[0].split("#", 1)[0]
    return f"{parts.scheme}://{host}{parts.path}"
