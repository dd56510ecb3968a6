"""Where spans go: the live console tree and OTLP JSON trace files (OTLP is wired in `yolospan.otel`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from yolospan._lazy import lazy_exports

if TYPE_CHECKING:
    from yolospan.export.console import ConsoleTreeProcessor
    from yolospan.export.tracefile import (
        TraceFileError,
        TraceFileExporter,
        read_trace_file,
        spans_from_request,
    )

# Loaded on first use: `yolospan --help` names the spool's files without loading the SDK.
_LAZY: dict[str, str] = {
    "ConsoleTreeProcessor": "yolospan.export.console",
    "TraceFileError": "yolospan.export.tracefile",
    "TraceFileExporter": "yolospan.export.tracefile",
    "read_trace_file": "yolospan.export.tracefile",
    "spans_from_request": "yolospan.export.tracefile",
}

__all__ = [
    "ConsoleTreeProcessor",
    "TraceFileError",
    "TraceFileExporter",
    "read_trace_file",
    "spans_from_request",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
