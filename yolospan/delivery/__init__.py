"""Delivery that loses nothing: the spool for spans a collector did not take, and sending them later.

`SpoolingExporter` (wired by `yolospan.otel.setup_tracing` for OTLP) writes every span that was
not acknowledged to the spool directory as an OTLP JSON trace file; `send` delivers such files
(or any trace file) afterwards, removing spool files only once they were fully delivered.
"""

from __future__ import annotations

from yolospan.delivery.sending import FileDelivery, SendReport, collect_trace_files, send, send_files
from yolospan.delivery.spool import SPOOL_DIR_ENV, default_spool_dir, spool_dir
from yolospan.delivery.spooling import DeliveryOutcome, SpoolingExporter

__all__ = [
    "SPOOL_DIR_ENV",
    "DeliveryOutcome",
    "FileDelivery",
    "SendReport",
    "SpoolingExporter",
    "collect_trace_files",
    "default_spool_dir",
    "send",
    "send_files",
    "spool_dir",
]
