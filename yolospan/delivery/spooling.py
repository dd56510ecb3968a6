"""Export that loses nothing: every span a collector did not acknowledge ends up in the spool.

`SpoolingExporter` wraps an OTLP exporter and keeps a ledger of the spans handed to its batch
processor (through `SpoolingExporter.track`). A span leaves the ledger when the collector
acknowledged it, or when it is written to the spool: at once when its batch fails (refused,
unreachable, timed out, rejected), when the batch processor's queue overflowed and dropped it,
and, at `SpoolingExporter.finish`, whatever is still queued or in flight when the bounded shutdown
gave up. A span is taken out of the ledger under a lock by exactly one of these paths, and a batch
only exports the spans still in the ledger, so nothing is both delivered and spooled by us.
(A collector that accepts a request but answers only after the shutdown gave up on it may still
receive spans that were spooled: delivery is at least once, like OTLP's own retries.)
"""

from __future__ import annotations

import os
import shlex
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from yolospan.delivery._exporter_logs import ExporterLogs, describe_failure, failure_in
from yolospan.delivery.spool import LINE_SPANS, write_spool_file

__all__ = ["DeliveryOutcome", "SpoolingExporter"]

_SpanKey = tuple[int, int]

# Spans may reach the batch processor in a slightly different order than they reach the ledger
# when several threads end spans at once; the overflow check leaves this much room for that.
_REORDER_SLACK = 64


@dataclass(frozen=True)
class DeliveryOutcome:
    """What became of the spans given to a `SpoolingExporter`."""

    endpoint: str
    """Where they were sent, without user info or query."""
    spool_dir: Path
    delivered: int = 0
    """Spans the collector acknowledged."""
    spooled: int = 0
    """Spans written to ``files`` for ``yolospan send``."""
    lost: int = 0
    """Spans that could neither be delivered nor written to the spool (``spool_error`` says why)."""
    files: tuple[Path, ...] = ()
    reason: str | None = None
    """Why the first failed export failed (no secrets: an HTTP status, a gRPC code, a fixed phrase)."""
    spool_error: str | None = None

    @property
    def complete(self) -> bool:
        """Whether every span was acknowledged by the collector."""
        return self.spooled == 0 and self.lost == 0

    def warning(self) -> str | None:
        """The one line to tell the user when not everything was delivered, else None."""
        if self.complete:
            return None
        parts = [f"OTLP export to {self.endpoint} failed ({self.reason or 'export failed'})"]
        if self.spooled:
            parts.append(f"{self.spooled} spans spooled to {self.spool_dir}")
        if self.lost:
            parts.append(f"{self.lost} spans could not be spooled ({self.spool_error}) and are lost")
        if self.spooled:
            parts.append(f"deliver them later with: yolospan send {shlex.quote(str(self.spool_dir))}")
        return "; ".join(parts)


class SpoolingExporter(SpanExporter):
    """Sends through ``inner``; what it cannot deliver goes to ``spool_dir`` as OTLP JSON trace files.

    ``capacity`` is how many spans the batch processor can hold (queue plus one batch): a span
    older than that which is still unacknowledged was dropped by the processor and is spooled.
    The exporter's own failure logs are kept off the screen; `finish` reports the outcome.
    ``refused``, when given, is asked before each export whether the collector refuses
    connections right now (`yolospan.delivery._refusal`); then the batch is spooled at once.
    """

    def __init__(
        self,
        inner: SpanExporter,
        *,
        spool_dir: Path,
        endpoint: str,
        capacity: int,
        refused: Callable[[], bool] | None = None,
    ) -> None:
        self.inner = inner
        self._refused = refused
        self.spool_dir = spool_dir
        self.endpoint = endpoint
        self._capacity = capacity + _REORDER_SLACK
        self._logs = ExporterLogs()
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._pending: OrderedDict[_SpanKey, ReadableSpan] = OrderedDict()
        self._in_flight: dict[_SpanKey, int] = {}
        self._writing = 0
        self._closed = False
        self._shut = False
        self._delivered = 0
        self._spooled = 0
        self._lost = 0
        self._files: list[Path] = []
        self._reason: str | None = None
        self._spool_error: str | None = None
        self._outcome: DeliveryOutcome | None = None
        _forget_in_forked_children(self)

    def track(self, processor: SpanProcessor) -> SpanProcessor:
        """``processor`` (the batch processor feeding this exporter), recording each span it is given."""
        return _Tracking(self, processor)

    # --- called by the batch processor ---------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if self._shut:
                return SpanExportResult.FAILURE
            # Only what is still ours to deliver: an overflowed or finished span is in the spool already.
            batch = [span for span in spans if _key(span) in self._pending]
            for span in batch:
                self._in_flight[_key(span)] = self._in_flight.get(_key(span), 0) + 1
        if not batch:
            return SpanExportResult.SUCCESS
        if self._refused is not None and self._refused():  # nobody listens: no retries, spool now
            self._settle(batch, delivered=False, reason="connection refused")
            return SpanExportResult.FAILURE
        error: Exception | None = None
        with self._logs.capture() as records:
            try:
                result = self.inner.export(batch)
            except Exception as raised:  # an exporter bug must not lose the batch either
                error, result = raised, SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self._settle(batch, delivered=True)
        else:
            self._settle(batch, delivered=False, reason=describe_failure(records, error).reason)
        return result

    def shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    # --- the ledger ------------------------------------------------------------------------------------

    def _record(self, span: ReadableSpan) -> None:
        overflow: list[ReadableSpan] = []
        with self._lock:
            if self._closed:
                return
            self._pending[_key(span)] = span
            waiting = len(self._pending) - len(self._in_flight)
            if waiting >= self._capacity + LINE_SPANS:  # spool in whole lines, not span by span
                for key in list(self._pending):
                    if waiting <= self._capacity:
                        break
                    if key not in self._in_flight:
                        overflow.append(self._pending.pop(key))
                        waiting -= 1
            if overflow:
                self._reason = self._reason or "export queue overflowed"
                self._writing += 1
        if overflow:
            self._spool(overflow)

    def _settle(self, batch: Sequence[ReadableSpan], *, delivered: bool, reason: str | None = None) -> None:
        failed: list[ReadableSpan] = []
        with self._lock:
            for span in batch:
                key = _key(span)
                count = self._in_flight.pop(key, 1) - 1
                if count:
                    self._in_flight[key] = count
                if (taken := self._pending.pop(key, None)) is None:
                    continue  # `finish` spooled it while the export was running
                if delivered:
                    self._delivered += 1
                else:
                    failed.append(taken)
            if failed:
                if not self._closed:  # after giving up, the abort itself is no news
                    self._reason = self._reason or reason
                self._writing += 1
        if failed:
            self._spool(failed)

    def _spool(self, spans: Sequence[ReadableSpan]) -> None:
        """Write ``spans`` (already out of the ledger, ``_writing`` counted) to a new spool file."""
        path: Path | None = None
        problem: str | None = None
        try:
            path = write_spool_file(spans, self.spool_dir)
        except OSError as error:
            problem = f"{error.strerror or error}: {error.filename or self.spool_dir}"
        with self._written:
            if path is not None:
                self._spooled += len(spans)
                self._files.append(path)
            else:
                self._lost += len(spans)
                self._spool_error = self._spool_error or problem
            self._writing -= 1
            self._written.notify_all()

    def give_up(self, waited_s: float) -> None:
        """Abort what is in flight (the batch processor's shutdown took longer than ``waited_s``)."""
        retried = failure_in(self._logs.running())  # e.g. "connection refused", retried since
        with self._lock:
            self._closed = True  # from now on, failures are the abort's doing
            if self._reason is None and self._pending:
                self._reason = retried.reason if retried else f"no answer within {waited_s:g} s"
        self.shutdown()

    def finish(self) -> DeliveryOutcome:
        """Spool every span not acknowledged yet and report; later calls return the same outcome.

        Call it after the batch processor's shutdown returned, or after `give_up`: what is still
        queued or in flight is spooled then.
        """
        with self._lock:
            if self._outcome is not None:
                return self._outcome
            self._closed = True
            remaining = list(self._pending.values())
            self._pending.clear()
            if remaining:
                self._reason = self._reason or "not sent before shutdown"
                self._writing += 1
        if remaining:
            self._spool(remaining)
        with self._written:
            self._written.wait_for(lambda: self._writing == 0)
            self._outcome = DeliveryOutcome(
                endpoint=self.endpoint,
                spool_dir=self.spool_dir,
                delivered=self._delivered,
                spooled=self._spooled,
                lost=self._lost,
                files=tuple(sorted(self._files)),
                reason=self._reason,
                spool_error=self._spool_error,
            )
        self._logs.close()
        return self._outcome

    def _after_fork(self) -> None:
        """In a forked child: the batch processor starts empty there, and so does the ledger."""
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._pending.clear()
        self._in_flight.clear()
        self._writing = 0
        self._logs.reset_after_fork()


class _Tracking(SpanProcessor):
    """Records each ended span in the ledger, then hands it to the batch processor."""

    def __init__(self, exporter: SpoolingExporter, processor: SpanProcessor) -> None:
        self._exporter = exporter
        self._processor = processor

    @property
    def span_start_delegates(self) -> tuple[SpanProcessor, ...]:
        """The processors ``on_start`` passes spans to: yolospan's tracer may hand this one forward
        spans finished where they do nothing at start (`yolospan.tracing._pending.quiet_at_start`)."""
        return (self._processor,)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return  # the batch processor skips these too
        self._exporter._record(span)
        # Its "Queue full, dropping Span" warning is wrong here: the ledger spools those spans.
        with self._exporter._logs.capture():
            self._processor.on_end(span)

    def shutdown(self) -> None:
        self._processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._processor.force_flush(timeout_millis)


def _key(span: ReadableSpan) -> _SpanKey:
    context = span.context
    assert context is not None  # ended SDK spans always have one
    return (context.trace_id, context.span_id)


def _forget_in_forked_children(exporter: SpoolingExporter) -> None:
    if not hasattr(os, "register_at_fork"):
        return
    reference = weakref.ref(exporter)

    def after_in_child() -> None:
        if (alive := reference()) is not None:
            alive._after_fork()

    os.register_at_fork(after_in_child=after_in_child)
