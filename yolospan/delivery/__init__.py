"""Delivery that loses nothing: the spool for spans a collector did not take, and sending them later.

`SpoolingExporter` (wired by `yolospan.otel.setup_tracing` for OTLP) writes every span that was
not acknowledged to the spool directory as an OTLP JSON trace file; `send` delivers such files
(or any trace file) afterwards, removing spool files only once they were fully delivered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from yolospan._lazy import lazy_exports

if TYPE_CHECKING:
    from yolospan.delivery.sending import FileDelivery, SendReport, collect_trace_files, send, send_files
    from yolospan.delivery.spool import SPOOL_DIR_ENV, default_spool_dir, spool_dir
    from yolospan.delivery.spooling import DeliveryOutcome, SpoolingExporter

# Loaded on first use: `yolospan --help` reads the spool's location without loading the SDK.
_LAZY: dict[str, str] = {
    "FileDelivery": "yolospan.delivery.sending",
    "SendReport": "yolospan.delivery.sending",
    "collect_trace_files": "yolospan.delivery.sending",
    "send": "yolospan.delivery.sending",
    "send_files": "yolospan.delivery.sending",
    "SPOOL_DIR_ENV": "yolospan.delivery.spool",
    "default_spool_dir": "yolospan.delivery.spool",
    "spool_dir": "yolospan.delivery.spool",
    "DeliveryOutcome": "yolospan.delivery.spooling",
    "SpoolingExporter": "yolospan.delivery.spooling",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
