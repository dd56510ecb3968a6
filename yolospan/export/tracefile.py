"""Trace files: OTLP JSON, one ``ExportTraceServiceRequest`` per line.

This is what the OpenTelemetry Collector's file exporter writes and what Jaeger's UI accepts as
a "JSON File" upload. Writing uses the official encoder (``opentelemetry-exporter-otlp-json-file``):
ids are hex strings and enums integers, as the OTLP/JSON spec requires. Reading decodes each line
with the official JSON message classes (``opentelemetry-proto-json``) and rebuilds SDK
``ReadableSpan`` objects with the same ids, times, attributes, events, links, status, resource and
scope, so a file can be re-exported unchanged to a collector or queried like live spans.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans
from opentelemetry.proto_json.collector.trace.v1.trace_service import ExportTraceServiceRequest
from opentelemetry.proto_json.common.v1.common import AnyValue, KeyValue
from opentelemetry.proto_json.common.v1.common import InstrumentationScope as JsonScope
from opentelemetry.proto_json.trace.v1.trace import Span as JsonSpan
from opentelemetry.proto_json.trace.v1.trace import Status as JsonStatus
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.util.types import AnyValue as SdkValue

from yolospan.errors import UserError
from yolospan.inputs import check_regular_file

__all__ = [
    "TraceFileError",
    "TraceFileExporter",
    "TraceLine",
    "read_trace_file",
    "read_trace_lines",
    "spans_from_request",
]

_KINDS = {
    0: SpanKind.INTERNAL,  # SPAN_KIND_UNSPECIFIED: the SDK has no such kind; INTERNAL is its default
    1: SpanKind.INTERNAL,
    2: SpanKind.SERVER,
    3: SpanKind.CLIENT,
    4: SpanKind.PRODUCER,
    5: SpanKind.CONSUMER,
}
_T = TypeVar("_T")
_TRACE_FLAGS_MASK = 0xFF
_PARENT_IS_REMOTE = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


class TraceFileError(UserError):
    """A trace file that cannot be read or written; the message names the file and, if any, the line."""


class TraceFileExporter(SpanExporter):
    """Appends each exported batch to ``path`` as one OTLP JSON line, creating parent directories.

    Each line is written unbuffered, so a crash loses at most the batch being written. A batch
    that cannot be written (a full disk, an I/O error) is counted in `lost` and, when ``save``
    is given (the spool's writer, which lives above this module), handed to it (`saved`,
    `saved_files`) so nothing is silently gone; `problem` then says what happened in one line.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        save: Callable[[Sequence[ReadableSpan]], Path] | None = None,
    ) -> None:
        self.path = Path(path)
        self._save_elsewhere = save
        self.lost = 0
        """Spans that could not be written to ``path``."""
        self.saved = 0
        """Of those, spans written to the spool instead."""
        self.saved_files: list[Path] = []
        self._error: str | None = None
        self._spool_error: str | None = None
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab", buffering=0)
        except OSError as error:
            raise TraceFileError(f"cannot write trace file {self.path}: {error.strerror or error}") from error

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        line = (json.dumps(encode_spans(spans).to_dict(), separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            try:
                _write_all(self._file, line)
                return SpanExportResult.SUCCESS
            except OSError as error:
                self.lost += len(spans)
                self._error = self._error or (error.strerror or str(error))
        self._save(spans)
        return SpanExportResult.FAILURE

    def _save(self, spans: Sequence[ReadableSpan]) -> None:
        if self._save_elsewhere is None:
            return
        try:
            path = self._save_elsewhere(spans)
        except OSError as error:
            with self._lock:
                self._spool_error = self._spool_error or (error.strerror or str(error))
            return
        with self._lock:
            self.saved += len(spans)
            self.saved_files.append(path)

    @property
    def problem(self) -> str | None:
        """One line on the spans that did not reach the file (None when all did)."""
        with self._lock:
            if not self.lost:
                return None
            message = f"{self.path}: {self.lost} spans could not be written ({self._error})"
            if self.saved:
                message += f"; {self.saved} of them were saved to {self.saved_files[0].parent}"
            if self.saved < self.lost:
                lost = self.lost - self.saved
                why = f" ({self._spool_error})" if self._spool_error else ""
                message += f"; {lost} spans are lost{why}"
            return message

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError):  # unbuffered: nothing is pending, so nothing is lost
                self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every line is written as it comes


def _write_all(file: io.RawIOBase, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def read_trace_file(path: str | os.PathLike[str]) -> list[ReadableSpan]:
    """Every span in a trace file, in file order; blank lines are skipped.

    Raises `TraceFileError` naming the file and line when the file is missing, is not UTF-8,
    a line is not JSON, or a line is not an OTLP ``ExportTraceServiceRequest``.
    """
    return [span for line in read_trace_lines(path) for span in line.spans]


@dataclass(frozen=True)
class TraceLine:
    """One request of a trace file: its line number, its text as written, and its spans."""

    number: int
    text: str
    spans: list[ReadableSpan]


def read_trace_lines(path: str | os.PathLike[str]) -> list[TraceLine]:
    """Every non-blank line decoded, keeping its text (delivery rewrites what it could not send).

    Raises `TraceFileError` like `read_trace_file`.
    """
    source = Path(path)
    if source.exists() and not source.is_file():  # a device or FIFO would be read forever
        try:
            check_regular_file(source, "trace file")
        except UserError as error:
            raise TraceFileError(str(error)) from None
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceFileError(f"trace file {source} does not exist") from None
    except UnicodeDecodeError as error:
        raise TraceFileError(f"{source}: not a trace file (not UTF-8 text: {error.reason})") from None
    except OSError as error:
        raise TraceFileError(f"cannot read trace file {source}: {error.strerror or error}") from None
    return [
        TraceLine(number, line, _decode_line(line, source, number))
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _decode_line(line: str, path: Path, number: int) -> list[ReadableSpan]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise TraceFileError(f"{path}:{number}: not JSON ({error.msg} at column {error.colno})") from None
    except RecursionError:
        raise TraceFileError(f"{path}:{number}: not a trace file (JSON nested too deeply)") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        reason = (str(error).splitlines() or [type(error).__name__])[0][:120]
        raise TraceFileError(f"{path}:{number}: not a trace file ({reason})") from None
    if not isinstance(data, dict) or "resourceSpans" not in data:
        raise TraceFileError(f"{path}:{number}: not an OTLP ExportTraceServiceRequest (no 'resourceSpans')")
    try:
        return spans_from_request(data)
    except (TypeError, ValueError, AttributeError, KeyError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise TraceFileError(f"{path}:{number}: malformed OTLP JSON: {reason}") from None
    except RecursionError:
        raise TraceFileError(f"{path}:{number}: malformed OTLP JSON (values nested too deeply)") from None


def spans_from_request(data: Mapping[str, Any]) -> list[ReadableSpan]:
    """SDK spans from one OTLP/JSON ``ExportTraceServiceRequest`` (a parsed line of a trace file).

    Raises ``ValueError`` or ``TypeError`` when the structure or a value (an id, an enum) is invalid.
    """
    request = ExportTraceServiceRequest.from_dict(dict(data))
    spans: list[ReadableSpan] = []
    for resource_spans in request.resource_spans:
        json_resource = resource_spans.resource
        resource = Resource(
            _attributes(json_resource.attributes if json_resource else [], "resource"),
            resource_spans.schema_url or None,
        )
        for scope_spans in resource_spans.scope_spans:
            scope = _scope(scope_spans.scope, scope_spans.schema_url)
            spans.extend(_span(span, resource, scope) for span in scope_spans.spans)
    return spans


def _scope(scope: JsonScope | None, schema_url: str | None) -> InstrumentationScope | None:
    if scope is None or not (scope.name or scope.version or scope.attributes):
        return None  # the encoder writes an empty scope for spans that had none
    return InstrumentationScope(
        scope.name or "",
        scope.version or None,
        schema_url or None,
        _attributes(scope.attributes, "scope") or None,
    )


def _span(span: JsonSpan, resource: Resource, scope: InstrumentationScope | None) -> ReadableSpan:
    name = span.name or ""
    where = f"span {name!r}"
    trace_id = _id(span.trace_id, 16, f"{where}: traceId")
    flags = span.flags or 0
    trace_flags = TraceFlags(flags & _TRACE_FLAGS_MASK or TraceFlags.SAMPLED)
    trace_state = TraceState.from_header([span.trace_state]) if span.trace_state else TraceState()
    context = SpanContext(trace_id, _id(span.span_id, 8, f"{where}: spanId"), False, trace_flags, trace_state)
    parent = None
    if span.parent_span_id:
        parent_id = _id(span.parent_span_id, 8, f"{where}: parentSpanId")
        parent = SpanContext(trace_id, parent_id, bool(flags & _PARENT_IS_REMOTE), trace_flags, trace_state)
    kind = _KINDS.get(int(span.kind or 0))
    if kind is None:
        raise ValueError(f"{where}: unknown kind {int(span.kind or 0)}")
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=_bounded(span.attributes, span.dropped_attributes_count, where),
        events=_bounded_list([_event(event, where) for event in span.events], span.dropped_events_count),
        links=_bounded_list([_link(link, where) for link in span.links], span.dropped_links_count),
        kind=kind,
        status=_status(span.status),
        start_time=span.start_time_unix_nano or None,
        end_time=span.end_time_unix_nano or None,
        instrumentation_scope=scope,
    )


def _event(event: JsonSpan.Event, where: str) -> Event:
    return Event(
        event.name or "",
        _bounded(event.attributes, event.dropped_attributes_count, f"{where}: event"),
        event.time_unix_nano or 0,
    )


def _link(link: JsonSpan.Link, where: str) -> Link:
    flags = link.flags or 0
    context = SpanContext(
        _id(link.trace_id, 16, f"{where}: link traceId"),
        _id(link.span_id, 8, f"{where}: link spanId"),
        bool(flags & _PARENT_IS_REMOTE),
        TraceFlags(flags & _TRACE_FLAGS_MASK or TraceFlags.SAMPLED),
        TraceState.from_header([link.trace_state]) if link.trace_state else TraceState(),
    )
    return Link(context, _bounded(link.attributes, link.dropped_attributes_count, f"{where}: link"))


def _status(status: JsonStatus | None) -> Status:
    if status is None:
        return Status(StatusCode.UNSET)
    code = StatusCode(int(status.code or 0))
    # The SDK keeps a description only on ERROR (and warns otherwise); the encoder writes it as is.
    return Status(code, (status.message or None) if code is StatusCode.ERROR else None)


def _id(value: bytes | None, size: int, what: str) -> int:
    if not value or len(value) != size:
        raise ValueError(f"{what} must be {2 * size} hex digits, got {len(value or b'') * 2}")
    number = int.from_bytes(value, "big")
    if number == 0:
        raise ValueError(f"{what} is all zeros (an invalid id)")
    return number


def _bounded(values: list[KeyValue], dropped: int | None, where: str) -> BoundedAttributes:
    """Attributes as the SDK holds them (arrays as tuples, immutable), with the dropped count kept."""
    attributes = BoundedAttributes(maxlen=None, attributes=_attributes(values, where), immutable=True)
    attributes.dropped = dropped or 0
    return attributes


def _bounded_list(items: Sequence[_T], dropped: int | None) -> BoundedList[_T]:
    bounded: BoundedList[_T] = BoundedList(None)
    bounded.extend(items)
    bounded.dropped = dropped or 0
    return bounded


def _attributes(values: list[KeyValue], where: str) -> dict[str, SdkValue]:
    decoded: dict[str, SdkValue] = {}
    for item in values:
        if not item.key:
            raise ValueError(f"{where}: attribute without a key")
        if item.value is not None:
            decoded[item.key] = _value(item.value)
    return decoded


def _value(value: AnyValue) -> SdkValue:
    # The fields of AnyValue form a oneof; the decoder fills exactly the one present (or none: null).
    if value.string_value is not None:
        return value.string_value
    if value.bool_value is not None:
        return value.bool_value
    if value.int_value is not None:
        return value.int_value
    if value.double_value is not None:
        return value.double_value
    if value.array_value is not None:
        return tuple(_value(item) for item in value.array_value.values)
    if value.kvlist_value is not None:
        return {
            str(item.key): _value(item.value) for item in value.kvlist_value.values if item.value is not None
        }
    if value.bytes_value is not None:
        return value.bytes_value
    return None
