"""Deliver trace files (spooled, or written with ``yolospan trace --out``) to a collector.

Each line of a trace file is one OTLP request; lines are re-exported in order with the official
exporters, ids unchanged. A spool file is removed once every line was acknowledged, or rewritten
(atomically) to the lines still undelivered, so sending again never resends an acknowledged line;
files outside the spool are never changed. A malformed file is skipped whole, before any of it is sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from yolospan.delivery._exporter_logs import ExporterLogs, Failure, describe_failure
from yolospan.delivery._refusal import refusal_probe
from yolospan.delivery.otlp import otlp_endpoint, otlp_exporter
from yolospan.delivery.spool import in_spool, replace_lines, spool_dir, trace_files
from yolospan.errors import UserError
from yolospan.export.tracefile import TraceFileError, read_trace_lines
from yolospan.inputs import check_regular_file

__all__ = ["FileDelivery", "SendReport", "collect_trace_files", "send", "send_files"]


@dataclass(frozen=True)
class FileDelivery:
    """What happened to one file."""

    path: Path
    spans: int
    """Spans in the file (0 when it is malformed)."""
    delivered: int = 0
    problem: str | None = None
    """One line: why the file was skipped or not fully delivered; None when all went."""
    malformed: bool = False
    attempted: bool = True
    """False when an earlier failure stopped delivery before this file."""
    removed: bool = False
    """A spool file that was fully delivered and deleted."""

    @property
    def complete(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class SendReport:
    endpoint: str
    """Where the files went, without user info or query."""
    files: tuple[FileDelivery, ...]

    @property
    def delivered(self) -> int:
        return sum(file.delivered for file in self.files)

    @property
    def complete(self) -> bool:
        """Every span of every file delivered, no file malformed."""
        return all(file.complete for file in self.files)


def collect_trace_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files named, plus the ``*.otlp.jsonl`` files of directories named, each once, in order.

    A path that does not exist is a `UserError`, except the spool directory before anything
    was spooled (an empty spool).
    """
    files: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            files.extend(trace_files(given))
        elif given.exists():
            files.append(check_regular_file(given, "trace file"))  # never read a device or FIFO
        elif given.expanduser().absolute() != spool_dir().absolute():
            raise UserError(f"{given}: no such file or directory")
    unique: dict[Path, Path] = {}
    for file in files:
        unique.setdefault(file.resolve(), file)
    return list(unique.values())


def send_files(
    files: Sequence[Path],
    exporter: SpanExporter,
    *,
    endpoint: str,
    refused: Callable[[], bool] | None = None,
) -> SendReport:
    """Deliver ``files`` through ``exporter`` (shut down afterwards) and report on each.

    After a failure the collector is likely down, so the remaining files are not attempted,
    unless it refused that one request's content (HTTP 400/413, gRPC INVALID_ARGUMENT).
    ``refused``, when given, is asked before each request whether the collector refuses
    connections right now; then that request fails at once instead of being retried.
    """
    spool = spool_dir()
    results: list[FileDelivery] = []
    stopped = False
    with _quiet(exporter) as logs:
        for path in files:
            if stopped:
                results.append(FileDelivery(path, spans=0, attempted=False, problem="not attempted"))
                continue
            result, failure = _deliver(
                path, exporter, logs, spool_file=in_spool(path, spool), refused=refused
            )
            results.append(result)
            stopped = failure is not None and not failure.permanent
    return SendReport(endpoint=endpoint, files=tuple(results))


@contextmanager
def _quiet(exporter: SpanExporter) -> Iterator[ExporterLogs]:
    logs = ExporterLogs()
    try:
        yield logs
    finally:
        with logs.capture():
            exporter.shutdown()
        logs.close()


def _deliver(
    path: Path,
    exporter: SpanExporter,
    logs: ExporterLogs,
    *,
    spool_file: bool,
    refused: Callable[[], bool] | None = None,
) -> tuple[FileDelivery, Failure | None]:
    try:
        lines = read_trace_lines(path)
    except TraceFileError as error:
        return FileDelivery(path, spans=0, problem=str(error), malformed=True), None
    total = sum(len(line.spans) for line in lines)
    delivered = 0
    for index, line in enumerate(lines):
        failure = _export(line.spans, exporter, logs, refused)
        if failure is not None:
            remaining = [later.text for later in lines[index:]]
            kept = total - delivered
            problem = f"{failure.reason}; {kept} spans not delivered"
            if spool_file and delivered:
                try:
                    replace_lines(path, remaining)
                except OSError as error:
                    problem += f", and the file could not be updated ({error.strerror or error})"
            return FileDelivery(path, spans=total, delivered=delivered, problem=problem), failure
        delivered += len(line.spans)
    if not spool_file:
        return FileDelivery(path, spans=total, delivered=delivered), None
    try:
        path.unlink()
    except FileNotFoundError:
        pass  # someone else removed it; our copy was delivered all the same
    except OSError as error:
        problem = f"delivered, but could not be removed from the spool ({error.strerror or error})"
        return FileDelivery(path, spans=total, delivered=delivered, problem=problem), None
    return FileDelivery(path, spans=total, delivered=delivered, removed=True), None


def _export(
    spans: list[ReadableSpan],
    exporter: SpanExporter,
    logs: ExporterLogs,
    refused: Callable[[], bool] | None = None,
) -> Failure | None:
    if not spans:
        return None
    if refused is not None and refused():
        return Failure("connection refused")
    with logs.capture() as records:
        try:
            result = exporter.export(spans)
        except Exception as error:  # report it like any failed delivery, with the file kept
            return describe_failure(records, error)
    return None if result is SpanExportResult.SUCCESS else describe_failure(records)


def send(
    paths: Sequence[str | os.PathLike[str]],
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
) -> SendReport:
    """`send_files` for ``paths`` (see `collect_trace_files`) through the official OTLP exporter.

    ``endpoint`` and ``protocol`` override ``OTEL_EXPORTER_OTLP_ENDPOINT`` and the protocol
    variables; headers, TLS, timeout and compression come from ``OTEL_EXPORTER_OTLP_*``. Bad paths
    or settings raise `UserError` before anything is sent.
    """
    files = collect_trace_files(paths)
    where = otlp_endpoint(protocol, endpoint=endpoint)
    exporter = otlp_exporter(protocol, endpoint=endpoint)
    return send_files(files, exporter, endpoint=where, refused=refusal_probe(where))
