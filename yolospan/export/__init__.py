"""Where spans go: the live console tree and OTLP JSON trace files (OTLP is wired in `yolospan.otel`)."""

from __future__ import annotations

from yolospan.export.console import ConsoleTreeProcessor
from yolospan.export.tracefile import TraceFileError, TraceFileExporter, read_trace_file, spans_from_request

__all__ = [
    "ConsoleTreeProcessor",
    "TraceFileError",
    "TraceFileExporter",
    "read_trace_file",
    "spans_from_request",
]
