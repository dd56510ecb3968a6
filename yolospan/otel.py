"""The one place that wires the OpenTelemetry SDK: provider, resource, processors and exporters.

Everything else in yolospan talks to the OpenTelemetry API only. `setup_tracing` builds a
``TracerProvider`` for the chosen exporters and returns a `Telemetry` handle whose `shutdown` is
bounded, so a dead or hanging collector can never keep a run from ending.

Configuration is the standard one. ``OTEL_SDK_DISABLED=true`` gives a no-op provider.
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` are read by the SDK's ``Resource.create``;
the service name defaults to ``yolospan``. The OTLP protocol comes from
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``grpc`` or
``http/protobuf``), default ``http/protobuf``: the OTLP exporter specification's default, and the
one that passes through ordinary HTTP proxies and load balancers. Endpoint, headers, timeout,
compression and TLS (``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, ``_HEADERS``, ``_TIMEOUT``,
``_COMPRESSION``, ``_CERTIFICATE``, ``_CLIENT_KEY``, ``_CLIENT_CERTIFICATE``, and ``_INSECURE`` for
gRPC) are read by the official exporters themselves. Note that these read ``_TIMEOUT`` in seconds,
not the milliseconds the spec says (opentelemetry-python #4044); `Telemetry.shutdown` is bounded
either way.

OTLP export loses nothing: spans the collector did not acknowledge (refused, unreachable, timed
out, rejected, or still queued when the bounded shutdown gives up) are written to the spool
directory (``YOLOSPAN_SPOOL_DIR``, default in the user's cache directory) as OTLP JSON trace
files, and shutdown logs one warning saying how many and how to send them later
(``yolospan send``). See `yolospan.delivery`.

The tracer provider takes its sampler from ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``
(the SDK's default when none is passed). With ``metrics=True`` a ``MeterProvider`` is wired to the
same exporters: OTLP metrics (same protocol and ``OTEL_EXPORTER_OTLP_[METRICS_]*`` settings) and
an OTLP JSON metrics file next to the trace file (`metrics_path`); the console shows no metrics
(callers print their own summary). Metrics are aggregates and are not spooled.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Final, TextIO

from opentelemetry import trace
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
    OTEL_SDK_DISABLED,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from yolospan.delivery._exporter_logs import ExporterLogs, describe_failure
from yolospan.delivery._refusal import refusal_probe
from yolospan.delivery.otlp import otlp_endpoint, otlp_exporter, otlp_metric_exporter, resolve_protocol
from yolospan.delivery.spool import spool_dir as configured_spool_dir
from yolospan.delivery.spool import write_spool_file
from yolospan.delivery.spooling import DeliveryOutcome, SpoolingExporter
from yolospan.errors import UserError
from yolospan.export.console import ConsoleTreeProcessor
from yolospan.export.tracefile import TraceFileExporter
from yolospan.tracing import flush_device_time, use_tracer_provider

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "DEFAULT_SHUTDOWN_TIMEOUT_S",
    "EXPORTERS",
    "DeviceTimeFlush",
    "Telemetry",
    "metrics_path",
    "parse_exporters",
    "sdk_disabled",
    "service_resource",
    "setup_tracing",
]

_log = logging.getLogger(__name__)

EXPORTERS: Final = ("console", "file", "otlp")
"""Exporter names accepted by `setup_tracing` (and the CLI's ``--exporter``)."""

DEFAULT_SERVICE_NAME: Final = "yolospan"
"""``service.name`` when neither ``OTEL_SERVICE_NAME`` nor ``OTEL_RESOURCE_ATTRIBUTES`` names one."""

DEFAULT_SHUTDOWN_TIMEOUT_S: Final = 5.0
"""How long `Telemetry.shutdown` waits for queued spans to be exported before giving up on them."""

_METRICS_SUFFIX = ".metrics.jsonl"
# The batch processor's defaults (OpenTelemetry SDK spec); read here so the spool knows them too.
_DEFAULT_QUEUE_SIZE = 2048
_DEFAULT_BATCH_SIZE = 512
_DEFAULT_SCHEDULE_DELAY_MS = 5000


def parse_exporters(text: str) -> tuple[str, ...]:
    """``"console,file"`` → ``("console", "file")``, validated (what the CLI's ``--exporter`` takes)."""
    names = tuple(dict.fromkeys(name.strip().lower() for name in text.split(",") if name.strip()))
    _check_exporters(names)
    return names


def _check_exporters(names: Sequence[str]) -> None:
    if not names:
        raise UserError(f"no exporter selected; choose from {', '.join(EXPORTERS)}")
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise UserError(f"unknown exporter {unknown[0]!r}; choose from {', '.join(EXPORTERS)}")


def metrics_path(out: str | os.PathLike[str]) -> Path:
    """Where metrics go next to trace file ``out``: ``run.jsonl`` → ``run.metrics.jsonl``."""
    path = Path(out)
    stem = path.name.removesuffix(".jsonl")
    return path.with_name(stem + _METRICS_SUFFIX)


def service_resource() -> Resource:
    """The SDK's resource from the environment, with ``service.name`` defaulting to ``yolospan``."""
    resource = Resource.create()
    name = resource.attributes.get(SERVICE_NAME)
    # Resource.create falls back to "unknown_service[:<executable>]" when nothing named the service.
    if not isinstance(name, str) or name == "unknown_service" or name.startswith("unknown_service:"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def sdk_disabled() -> bool:
    """Whether ``OTEL_SDK_DISABLED`` switches the SDK off (the spec's boolean: only ``true`` counts)."""
    return os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"


def setup_tracing(
    exporters: Sequence[str] = ("console",),
    *,
    out: str | os.PathLike[str] | None = None,
    console: TextIO | None = None,
    layers_in_console: bool = True,
    protocol: str | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    metrics: bool = False,
) -> Telemetry:
    """A tracer provider exporting to ``exporters`` (a subset of `EXPORTERS`), wrapped in `Telemetry`.

    ``console`` prints the live span tree to ``console`` (default ``sys.stdout``), without layer
    spans when ``layers_in_console`` is false. ``file`` appends OTLP JSON lines to ``out``.
    ``otlp`` sends to a collector over ``protocol`` (default from the environment, see
    `resolve_protocol`); what it cannot deliver goes to ``spool_dir`` (default
    `yolospan.delivery.spool_dir`), created only when needed. Nothing global is touched: route
    yolospan's spans to the provider with ``with telemetry:`` or `yolospan.use_tracer_provider`.
    With ``metrics``, `Telemetry.meter_provider` exports metrics to ``file`` (`metrics_path` of
    ``out``) and ``otlp``; it is None when neither is chosen. Bad names or combinations raise
    `UserError`.
    """
    names = tuple(dict.fromkeys(exporters))
    _check_exporters(names)
    if "file" in names and out is None:
        raise UserError("the file exporter needs an output path (--out)")
    if out is not None and "file" not in names:
        raise UserError(
            "an output path (--out) is only written by the file exporter; add 'file' to the exporters"
        )
    if "otlp" in names:
        resolve_protocol(protocol)  # fail on a bad protocol even when the SDK is disabled
    if sdk_disabled():
        _log.info("%s=true: spans are not recorded or exported", OTEL_SDK_DISABLED)
        return Telemetry(trace.NoOpTracerProvider())

    # First: flushing and shutting down wait for CUDA spans still waiting for their device time.
    processors: list[SpanProcessor] = [DeviceTimeFlush()]
    span_exporters: list[_ShutdownOnce] = []
    if "console" in names:
        processors.append(ConsoleTreeProcessor(console or sys.stdout, layers=layers_in_console))
    # The file goes before OTLP: shutdown drains processors in order, so a slow collector cannot
    # keep spans from reaching the file.
    if "file" in names:
        assert out is not None
        spool = Path(spool_dir) if spool_dir is not None else configured_spool_dir()
        span_exporters.append(
            _ShutdownOnce(TraceFileExporter(Path(out), save=partial(write_spool_file, directory=spool)))
        )
    queue_size, batch_size = _batch_limits()
    delay = _positive_env(OTEL_BSP_SCHEDULE_DELAY, _DEFAULT_SCHEDULE_DELAY_MS)
    processors.extend(
        BatchSpanProcessor(
            exporter, max_queue_size=queue_size, max_export_batch_size=batch_size, schedule_delay_millis=delay
        )
        for exporter in span_exporters
    )
    spooling: SpoolingExporter | None = None
    if "otlp" in names:
        spooling = SpoolingExporter(
            otlp_exporter(protocol),
            spool_dir=Path(spool_dir) if spool_dir is not None else configured_spool_dir(),
            endpoint=otlp_endpoint(protocol),
            capacity=queue_size + batch_size,
            refused=refusal_probe(otlp_endpoint(protocol)),
        )
        batch = BatchSpanProcessor(
            spooling, max_queue_size=queue_size, max_export_batch_size=batch_size, schedule_delay_millis=delay
        )
        processors.append(spooling.track(batch))
        _log.info("exporting spans over OTLP (%s) to %s", resolve_protocol(protocol), spooling.endpoint)

    provider = TracerProvider(resource=service_resource())  # sampler: OTEL_TRACES_SAMPLER[_ARG]
    for processor in processors:
        provider.add_span_processor(processor)
    meter_provider, metric_delivery = _meter_provider(names, out, protocol) if metrics else (None, None)
    telemetry = Telemetry(provider, span_exporters, spooling=spooling, meter_provider=meter_provider)
    telemetry._metric_delivery = metric_delivery
    return telemetry


def _meter_provider(
    names: Sequence[str], out: str | os.PathLike[str] | None, protocol: str | None
) -> tuple[MeterProvider | None, _QuietMetricExporter | None]:
    """Periodic readers for the file and OTLP exporters (interval: ``OTEL_METRIC_EXPORT_INTERVAL``),
    and the OTLP one's exporter, whose failure `Telemetry.shutdown` reports."""
    from opentelemetry.exporter.otlp.json.file import FileMetricExporter

    readers: list[MetricReader] = []
    if "file" in names:
        assert out is not None
        path = metrics_path(out)
        try:
            readers.append(PeriodicExportingMetricReader(FileMetricExporter(path)))
        except OSError as error:
            raise UserError(f"cannot write metrics file {path}: {error.strerror or error}") from error
    exporter = None
    if "otlp" in names:
        where = otlp_endpoint(protocol).removesuffix("/v1/traces")  # the collector, not its traces path
        exporter = _QuietMetricExporter(otlp_metric_exporter(protocol), where)
        readers.append(PeriodicExportingMetricReader(exporter))
    if not readers:
        return None, None
    # Telemetry.shutdown stops it, bounded; an atexit hook would only repeat that (with a warning).
    provider = MeterProvider(metric_readers=readers, resource=service_resource(), shutdown_on_exit=False)
    return provider, exporter


def _batch_limits() -> tuple[int, int]:
    """``OTEL_BSP_MAX_QUEUE_SIZE`` and ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``, defaulted like the SDK does."""
    queue_size = _positive_env(OTEL_BSP_MAX_QUEUE_SIZE, _DEFAULT_QUEUE_SIZE)
    return queue_size, min(_positive_env(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, _DEFAULT_BATCH_SIZE), queue_size)


def _positive_env(variable: str, default: int) -> int:
    text = os.environ.get(variable, "").strip()
    try:
        value = int(text) if text else default
    except ValueError:
        _log.warning("%s is not an integer; using %d", variable, default)
        return default
    if value <= 0:
        _log.warning("%s must be a positive integer; using %d", variable, default)
        return default
    return value


class Telemetry:
    """The provider `setup_tracing` built, and its bounded shutdown.

    As a context manager it routes yolospan's spans to ``tracer_provider`` inside the block (with
    `yolospan.use_tracer_provider`, OpenTelemetry's global provider untouched) and shuts down at
    the end. The routing is a value of the OpenTelemetry context: threads and executors get it
    where the context is carried into them (OpenTelemetry's threading instrumentation,
    ``contextvars.copy_context().run``), not from a bare ``Thread``.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider,
        exporters: Sequence[SpanExporter] = (),
        *,
        spooling: SpoolingExporter | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        """The SDK meter provider `setup_tracing` wired with ``metrics=True``, else None."""
        self._exporters = list(exporters)
        self._spooling = spooling
        self._lock = threading.Lock()
        self._result: bool | None = None
        self._routing = ExitStack()
        self._metric_delivery: _QuietMetricExporter | None = None  # set by setup_tracing

    @property
    def enabled(self) -> bool:
        """False when ``OTEL_SDK_DISABLED=true`` made the provider a no-op."""
        return isinstance(self.tracer_provider, TracerProvider)

    @property
    def delivery(self) -> DeliveryOutcome | None:
        """What became of the OTLP spans, once `shutdown` ran; None without OTLP or before that."""
        with self._lock:
            if self._result is None or self._spooling is None:
                return None
        return self._spooling.finish()  # returns the outcome computed during shutdown

    @property
    def file_problem(self) -> str | None:
        """One line when spans could not be written to the trace file (a full disk, an I/O error):
        how many, and where those that could be were saved instead; None when all were written.
        Callers must not report the file as written then."""
        for exporter in self._exporters:
            inner = exporter.inner if isinstance(exporter, _ShutdownOnce) else exporter
            problem = inner.problem if isinstance(inner, TraceFileExporter) else None
            if problem is not None:
                return problem
        return None

    def shutdown(self, timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
        """Export what is queued, then stop; returns whether that finished within ``timeout_s``.

        The batch processors drain their queues as part of their own shutdown; a separate
        ``force_flush`` would not help, since the SDK's ignores its timeout (opentelemetry-python
        #4568). So the whole shutdown runs on a daemon thread that is waited for at most
        ``timeout_s``; past that, the exporters are shut down, which aborts their retries, and
        the spans still queued are given up on: the file's with a warning, the OTLP exporter's
        are written to the spool (see `delivery`), and one warning says how many and where.
        The meter provider, if any, makes its last export on a second thread within the same
        ``timeout_s``; metrics still unsent then are dropped with a warning.
        Calling it again returns the first result.
        """
        with self._lock:
            if self._result is not None:
                return self._result
            self._result = self._shutdown(timeout_s)
            return self._result

    def _shutdown(self, timeout_s: float) -> bool:
        provider = self.tracer_provider
        deadline = time.monotonic() + max(timeout_s, 0.0)
        metrics_worker = None
        if self.meter_provider is not None:  # in parallel: a dead collector delays both equally
            metrics_worker = threading.Thread(
                target=self.meter_provider.shutdown, name="yolospan-metrics-shutdown", daemon=True
            )
            metrics_worker.start()
        if not isinstance(provider, TracerProvider):
            return self._join_metrics(metrics_worker, deadline, timeout_s)
        worker = threading.Thread(target=provider.shutdown, name="yolospan-telemetry-shutdown", daemon=True)
        worker.start()
        worker.join(max(timeout_s, 0.0))
        timed_out = worker.is_alive()
        metrics_done = self._join_metrics(metrics_worker, deadline, timeout_s)
        if timed_out:  # shut the exporters down: that aborts their retries
            if self._spooling is not None:
                self._spooling.give_up(timeout_s)
            for exporter in self._exporters:
                exporter.shutdown()
        outcome = self._spooling.finish() if self._spooling is not None else None
        message = outcome.warning() if outcome is not None else None
        metrics_failure = self._metric_delivery.failure if self._metric_delivery is not None else None
        if message is not None:
            if metrics_failure is not None:  # the same collector, usually: one line says both
                message += "; metrics were not delivered either"
            _log.warning("%s", message)  # the one line the user sees, whatever else went wrong
        elif metrics_failure is not None:
            _log.warning("%s", metrics_failure)
        elif timed_out:
            _log.warning("spans not written within %.1f s of shutdown; giving up on them", timeout_s)
        return not timed_out and metrics_done

    @staticmethod
    def _join_metrics(worker: threading.Thread | None, deadline: float, timeout_s: float) -> bool:
        """Wait for the metrics shutdown until ``deadline``; metrics still unsent then are dropped."""
        if worker is None:
            return True
        worker.join(max(deadline - time.monotonic(), 0.0))
        if worker.is_alive():
            _log.warning("metrics not exported within %.1f s of shutdown; giving up on them", timeout_s)
            return False
        return True

    def __enter__(self) -> Telemetry:
        self._routing.enter_context(use_tracer_provider(self.tracer_provider))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._routing.close()
        self.shutdown()


class DeviceTimeFlush(SpanProcessor):
    """Makes ``force_flush`` and ``shutdown`` wait for spans still waiting for their device time.

    The spans of a CUDA forward are ended by a worker once the GPU has finished the forward (see
    docs/performance.md); add this processor first, so the exporters after it see them.
    """

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return flush_device_time(timeout_millis / 1e3)

    def shutdown(self) -> None:
        if not flush_device_time(DEFAULT_SHUTDOWN_TIMEOUT_S):
            _log.warning("spans still waiting for their device time after %.1f s", DEFAULT_SHUTDOWN_TIMEOUT_S)


class _ShutdownOnce(SpanExporter):
    """Delegates to ``inner``; shuts it down once, whoever asks first (us on timeout, or its processor)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export(spans)

    def shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _QuietMetricExporter(MetricExporter):
    """Delegates to an OTLP metric exporter; its failures become one warning in safe words.

    The exporter's own log lines can quote endpoints and replies (see `yolospan.delivery`), so
    they are captured during each export; the first failure is kept in `failure`, which
    `Telemetry.shutdown` reports in its one summary line (with the spans' fate, when OTLP failed).
    Metrics are not spooled: they are aggregates, sent again in full at the next interval.
    """

    def __init__(self, inner: MetricExporter, endpoint: str) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._endpoint = endpoint
        self._logs = ExporterLogs()
        self.failure: str | None = None
        """The first failure, in safe words; None while every export succeeded."""

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        error: BaseException | None = None
        with self._logs.capture() as records:
            try:
                result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            except Exception as raised:  # an exporter bug must not end the reader's thread
                result, error = MetricExportResult.FAILURE, raised
        if result is MetricExportResult.FAILURE and self.failure is None:
            reason = describe_failure(records, error).reason
            self.failure = f"metrics not delivered to {self._endpoint} ({reason})"
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        try:
            self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
        finally:
            self._logs.close()
